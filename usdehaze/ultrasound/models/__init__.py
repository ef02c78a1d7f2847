"""Data models of the joint sampler, one module each, registered in ``DATA_MODELS``.

``logsum`` (envelope powers add on dB images), ``additive`` (the TMLR paper's y = x + n on dB
images) and ``iq`` (the TMI paper's exact sum in IQ, priors on μ-law I/Q). Every module of this
package is imported here, so a new model is one new module (see ``base``).
"""

from __future__ import annotations

from usdehaze.core.registry import import_modules
from usdehaze.ultrasound.models.base import (
    DATA_MODELS,
    DataModel,
    DbModel,
    Measurement,
    PriorKey,
    data_model,
    haze_from_power,
    register_model,
)

# the shipped models first, in this order (help texts, the widget, evaluate's rows), then any other
import_modules(__name__, __path__, first=("logsum", "additive", "iq"))

__all__ = [
    "DATA_MODELS",
    "DataModel",
    "DbModel",
    "Measurement",
    "PriorKey",
    "data_model",
    "haze_from_power",
    "register_model",
]
