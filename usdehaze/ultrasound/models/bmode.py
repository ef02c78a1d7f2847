"""``bmode``: envelope powers add, on exported B-mode (scan-converted display grey levels).

The operator is logsum's (usdehaze.ultrasound.measurement.LogPowerSum: y_dB = 10·log10(10^(x/10)
+ γ·10^(n/10))) on dB images read through the display map (usdehaze.ultrasound.display), but its
priors (``tissue_bmode``, ``haze_bmode``; domain ``bmode-db``) were trained on the physics corpus
rendered through randomised display chains (usdehaze.ultrasound.corpus.display_chain: gain, TGC,
dynamic range 40–80 dB, grey-map gamma, 8-bit quantisation, JPEG, speckle-reduction and edge
filters, persistence, scan conversion at 0.2–0.5 mm) and its diffuse near-field clutter. The
sampler works where they were trained: on the Cartesian pixels. Their unit range is grey/255·2 − 1,
which is the run's dB over its dynamic range whatever that is, so the priors' JSON need not match
the run's dynamic range (only their domain is checked).
"""

from __future__ import annotations

from usdehaze.core.domains import BMODE_DB
from usdehaze.ultrasound.models.base import PriorKey, register_model
from usdehaze.ultrasound.models.logsum import LogSum


@register_model
class BMode(LogSum):
    name = "bmode"
    label = "B-mode"
    summary = "envelope powers add on exported B-mode grey levels"
    domain = BMODE_DB
    prior_suffix = "_bmode"
    params = ("dynamic_range", "gamma")
    settings = {"rule": "dps"}
    display = True  # B-mode input (DICOM, video, images) runs this model
    table_row = False  # exported B-mode, not beamformer frames: pipelines/eval_bmode.py scores it

    def prior_keys(self) -> list[PriorKey]:
        """The domain only: grey levels are one unit range at every dynamic range."""
        return super(LogSum, self).prior_keys()[:1]
