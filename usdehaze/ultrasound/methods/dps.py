"""``dps``: the single-prior DPS baseline (tissue prior, y = x + Gaussian noise on dB images)."""

from __future__ import annotations

from usdehaze.ultrasound.methods.base import SinglePriorMethod, register_method


@register_method
class Dps(SinglePriorMethod):
    name = "dps"
    summary = "tissue prior only, DPS"
    row = "DPS, no haze prior"
    rule = "dps"
