"""``logsum``: envelope powers add, on log-compressed images (the default for magnitude data).

y_dB = 10·log10(10^(x_dB/10) + γ·10^(n_dB/10)) on dB images normalised to [-1, 1]
(usdehaze.ultrasound.measurement.LogPowerSum); the haze decodes as it adds to the input, γ·n.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from usdehaze.ultrasound.logcomp import DB, unit_to_db
from usdehaze.ultrasound.models.base import DbModel, register_model


@register_model
class LogSum(DbModel):
    name = "logsum"
    label = "logsum"
    summary = "envelope powers add on dB images"
    domain = DB
    params = ("dynamic_range", "gamma")
    settings = {"rule": "dps"}
    single_prior = "additive"  # its haze needs the haze prior

    @classmethod
    def operator_type(cls) -> type:
        from usdehaze.ultrasound.measurement import LogPowerSum

        return LogPowerSum

    def operator(self):
        return self.operator_type()(self.cfg.dynamic_range, self.cfg.gamma)

    def decode_haze(self, res: Any, m: Any, tissue: np.ndarray) -> np.ndarray:
        c = self.cfg  # the haze as it adds to the input: γ·n
        n_db = unit_to_db(res.n[:, 0].cpu().numpy(), c.dynamic_range) + 10 * np.log10(c.gamma)
        return np.clip(n_db, -c.dynamic_range, 0).astype(np.float32)
