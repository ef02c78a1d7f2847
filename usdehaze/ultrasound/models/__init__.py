"""Data models of the joint sampler, one module each, registered in ``DATA_MODELS``.

``logsum`` (envelope powers add on dB images), ``additive`` (the TMLR paper's y = x + n on dB
images) and ``iq`` (the TMI paper's exact sum in IQ, priors on μ-law I/Q). Every module of this
package is imported here, so a new model is one new module (see ``base``).
"""

from __future__ import annotations

import importlib
import pkgutil

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
for _name in ("logsum", "additive", "iq"):
    importlib.import_module(f"{__name__}.{_name}")
for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

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
