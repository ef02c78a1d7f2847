"""Dehazing methods, one module each, registered in ``METHODS``.

``auto`` (the default: refine on beamformed I/Q, joint with priors of one's own, fast on
scan-converted B-mode), ``joint`` (the two-prior sampler), ``fast`` (its one-pass student),
``refine`` (the student refined by a few sampler steps), ``dps`` and ``pigdm-gauss`` (the
single-prior baselines), ``bm3d`` (classical despeckling). Every module of this package is
imported here, so a new method is one new module (see ``base``).
"""

from __future__ import annotations

from usdehaze.core.registry import import_modules
from usdehaze.ultrasound.methods.base import (
    METHODS,
    Method,
    SamplerMethod,
    SinglePriorMethod,
    for_magnitude_data,
    for_scan,
    method_of,
    register_method,
    run_model,
    uses_iq,
)

# the shipped methods first, in this order (help texts, the widget, evaluate's rows), then any other
import_modules(__name__, __path__, first=("auto", "joint", "fast", "dps", "pigdm_gauss", "bm3d"))

__all__ = [
    "METHODS",
    "Method",
    "SamplerMethod",
    "SinglePriorMethod",
    "for_magnitude_data",
    "for_scan",
    "method_of",
    "register_method",
    "run_model",
    "uses_iq",
]
