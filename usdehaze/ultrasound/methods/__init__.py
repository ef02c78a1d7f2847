"""Dehazing methods, one module each, registered in ``METHODS``.

``joint`` (the two-prior sampler, the default), ``fast`` (its one-pass student), ``dps`` and
``pigdm-gauss`` (the single-prior baselines), ``bm3d`` (classical despeckling). Every module of
this package is imported here, so a new method is one new module (see ``base``).
"""

from __future__ import annotations

import importlib
import pkgutil

from usdehaze.ultrasound.methods.base import (
    METHODS,
    Method,
    SamplerMethod,
    SinglePriorMethod,
    for_magnitude_data,
    method_of,
    register_method,
    run_model,
    uses_iq,
)

# the shipped methods first, in this order (help texts, the widget, evaluate's rows), then any other
for _name in ("joint", "fast", "dps", "pigdm_gauss", "bm3d"):
    importlib.import_module(f"{__name__}.{_name}")
for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = [
    "METHODS",
    "Method",
    "SamplerMethod",
    "SinglePriorMethod",
    "for_magnitude_data",
    "method_of",
    "register_method",
    "run_model",
    "uses_iq",
]
