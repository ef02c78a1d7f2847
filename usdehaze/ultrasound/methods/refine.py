"""``refine``: the one-pass student's estimate, refined by a few steps of the two-prior sampler.

The student (``fast``) gives tissue and haze in one pass; the joint sampler then starts late
(CCDF) from them, noised to ``start_sigma``, instead of from the noised input, and runs a few
stochastic steps (issue 29 item 2: fewer network evaluations than the default at equal haze
removed). The start in the priors' μ-law I/Q: the student's envelopes with the input's phase,
the haze divided by γ (it adds to the input as γ·C⁻¹(n)). Posterior samples and std maps as
``joint`` (``samples``); ``nfe``: the sampler's evaluations plus the student's one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.methods.base import METHODS, register_method
from usdehaze.ultrasound.methods.fast import Fast
from usdehaze.ultrasound.methods.joint import Joint


@dataclass(frozen=True)
class RefineParams:
    """Its own sampler settings, chosen on the validation split (docs/results.md): a few steps
    from a low noise level."""

    steps: int = 4
    start_sigma: float = 0.25


@register_method
class Refine(Joint):
    name = "refine"
    summary = "its student, refined by a few joint-sampler steps"
    row = "refine"  # its rows are named by the steps they run
    priors = ("student", "tissue", "haze")
    models = ("iq",)
    models_why = "starts from the student, distilled from the iq model"
    Params = RefineParams

    @classmethod
    def for_magnitude_data(cls, cfg: Any) -> tuple[Any, str | None]:
        raise UsageError(
            "method refine needs complex IQ data (its student is distilled from the iq model) "
            "and this input is magnitude-only; use --method joint"
        )

    @classmethod
    def for_display_data(cls, cfg: Any) -> tuple[Any, str | None]:
        raise UsageError(
            "method refine has no student for scan-converted B-mode (it is distilled from the "
            "iq model); use --method joint, which runs such input with the B-mode priors"
        )

    @classmethod
    def rows(cls, base: Any) -> dict[str, Any]:
        """Its row when a run finds a student (fast's rule), named by the steps it runs."""
        found = (cls.defaults(c) for c in Fast.rows.__func__(cls, base).values())
        mark = ", default" if METHODS["auto"].runs(base) == cls.name else ""
        return {
            f"refine (student + {c.steps} joint steps from σ = {c.start_sigma:g}{mark})": c
            for c in found
        }

    def sample(self, d, frames_in, seed, callback, frames, within=None):
        """The student's tissue and haze → the sampler's start (``start``) → a few steps."""
        from usdehaze.ultrasound import student

        c = self.cfg
        est = student.run(d.student, frames_in, c.dynamic_range, d.device, d.precision(), within)
        self._batch = frames_in, est  # for start(), which gets the encoded batch
        try:
            out = super().sample(d, frames_in, seed, callback, frames, within)
        finally:
            self._batch = None
        d.nfe += 1  # and the student's pass
        return out

    def start(self, m: Any) -> dict[str, Any]:
        iq, est = self._batch
        x_init, n_init = self.warm_start(iq, est, m.context, self.cfg)
        return {"x_init": x_init.to(m.y.device), "n_init": n_init.to(m.y.device)}

    @staticmethod
    def warm_start(iq: np.ndarray, est: dict[str, np.ndarray], context: dict, cfg: Any):
        """The student's dB tissue and haze → (x_init, n_init) in the priors' μ-law I/Q, on the
        input's phase and the scales the iq model's encode set (``context``: scale, ref)."""
        import torch

        from usdehaze.ultrasound.logcomp import iq_to_mulaw

        phase = np.exp(1j * np.angle(np.asarray(iq)))
        ref = context["ref"]

        def on_phase(db: np.ndarray, gain: float) -> torch.Tensor:
            amp = ref * 10 ** (np.asarray(db, np.float64) / 20) / gain
            return torch.from_numpy(iq_to_mulaw(amp * phase, context["scale"]))

        return on_phase(est["tissue"], 1.0), on_phase(est["haze"], cfg.gamma)
