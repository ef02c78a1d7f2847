"""``pigdm-gauss``: the single-prior ΠGDM baseline (tissue prior, y = x + Gaussian noise on dB
images, ΠGDM's own step: weighting paper)."""

from __future__ import annotations

from usdehaze.ultrasound.methods.base import SinglePriorMethod, register_method


@register_method
class PigdmGauss(SinglePriorMethod):
    name = "pigdm-gauss"
    summary = "tissue prior only, ΠGDM"
    row = "ΠGDM-Gauss, no haze prior"
    rule = "pigdm"

    def rule_params(self):
        return {"weighting": "paper"}
