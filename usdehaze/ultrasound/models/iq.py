"""``iq``: tissue and haze add exactly in beamformed IQ (Stevens et al., IEEE TMI 2024).

Priors on μ-law companded I/Q channels; y = C(C⁻¹(x) + γ·C⁻¹(n))
(usdehaze.ultrasound.measurement.MuLawIQSum). Needs complex IQ: magnitude-only data runs the
logsum model instead. Tissue and haze decode per posterior sample to dB, 0 dB = the input
frame's envelope maximum; the haze as it adds to the input, γ·C⁻¹(n).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from usdehaze.core.residual import split_residual
from usdehaze.ultrasound.logcomp import (
    IQ_MULAW,
    MU,
    iq_reference,
    iq_to_mulaw,
    mulaw_to_iq,
    reference,
    to_db,
)
from usdehaze.ultrasound.models.base import DataModel, Measurement, PriorKey, register_model


@register_model
class IQ(DataModel):
    name = "iq"
    label = "μ-law IQ, TMI"
    summary = "μ-law I/Q, TMI 2024"
    domain = IQ_MULAW
    needs_phase = True
    fallback = "logsum"
    prior_suffix = "_iq"
    # dynamic_range: of the dB images it decodes to; residual: what decode does with y − x − h
    params = ("gamma", "dynamic_range", "residual")
    settings = {"rule": "dps"}
    single_prior = "additive"  # the single-prior baselines read dB images

    def prior_keys(self) -> list[PriorKey]:
        return super().prior_keys() + [
            PriorKey(
                "normalisation.mu",
                MU,
                "prior trained on μ-law I/Q with μ = {got:g}, the iq model uses μ = {want:g}",
                number=True,
            )
        ]

    @classmethod
    def operator_type(cls) -> type:
        from usdehaze.ultrasound.measurement import MuLawIQSum

        return MuLawIQSum

    def operator(self):
        return self.operator_type()(self.cfg.gamma)

    def encode(self, frames: np.ndarray, device: Any, within: Any = None) -> Measurement:
        import torch

        whole = frames if within is None else np.asarray(within)  # crops: scaled as their frames
        scale = iq_reference(whole)
        y = torch.from_numpy(iq_to_mulaw(frames, scale)).to(device)
        op = self.operator()
        n_init = op.compress(op.expand(y) * 10 ** (self.cfg.haze_init_db / 20))
        env_ref = reference(np.abs(whole), "frame")
        return Measurement(y, x_init=y, n_init=n_init, context={"scale": scale, "ref": env_ref})

    def decode(self, res: Any, m: Measurement) -> dict[str, np.ndarray]:
        """Each posterior sample's tissue and haze I/Q (the haze as it adds to the input,
        γ·C⁻¹(n)), with what they leave of the input handed back to them (``residual`` split:
        usdehaze.core.residual) or not (keep), then in dB; the mean over samples (and std)."""
        c = self.cfg
        scale = m.context["scale"]
        x_draws, n_draws = res.x_samples.cpu().numpy(), res.n_samples.cpu().numpy()
        y = mulaw_to_iq(m.y.cpu().numpy(), scale) if c.residual == "split" else None
        per: dict[str, list[np.ndarray]] = {"tissue": [], "haze": []}
        for k in range(x_draws.shape[1]):  # (B, K, 2, z, x): draw k of every frame
            x = mulaw_to_iq(x_draws[:, k], scale)
            h = mulaw_to_iq(n_draws[:, k], scale) * c.gamma
            if y is not None:
                x, h = split_residual(y, x, h)
            per["tissue"].append(to_db(x, c.dynamic_range, m.context["ref"]))
            per["haze"].append(to_db(h, c.dynamic_range, m.context["ref"]))
        out: dict[str, np.ndarray] = {}
        for name, draws in per.items():
            out[name] = np.mean(draws, axis=0).astype(np.float32)
            if c.samples > 1:
                out[f"{name}_std"] = np.std(draws, axis=0).astype(np.float32)
        return out
