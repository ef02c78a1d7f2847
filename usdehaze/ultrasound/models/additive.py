"""``additive``: the TMLR paper's y = x + n on normalised log-compressed images.

Linear (A = I): every DC rule applies, ΠGDM with its closed-form covariance solve. The haze
decodes as the power the tissue estimate leaves over. The single-prior baselines (dps,
pigdm-gauss: y = x + Gaussian noise) read and decode frames the same way.
"""

from __future__ import annotations

from usdehaze.ultrasound.logcomp import DB
from usdehaze.ultrasound.models.base import DbModel, register_model


@register_model
class Additive(DbModel):
    name = "additive"
    label = "additive, TMLR"
    summary = "TMLR: y = x + n on dB images"
    domain = DB
    params = ("dynamic_range",)
    settings = {"rule": "pigdm", "weighting": "paper"}

    @classmethod
    def operator_type(cls) -> type:
        from usdehaze.ultrasound.measurement import Additive as AdditiveOperator

        return AdditiveOperator

    def operator(self):
        return self.operator_type()()
