"""``iq``: tissue and haze add exactly in beamformed IQ (Stevens et al., IEEE TMI 2024).

Priors on μ-law companded I/Q channels; y = C(C⁻¹(x) + γ·C⁻¹(n))
(usdehaze.ultrasound.measurement.MuLawIQSum). Needs complex IQ: magnitude-only data runs the
logsum model instead. Tissue and haze decode per posterior sample to dB, 0 dB = the input
frame's envelope maximum; the haze as it adds to the input, γ·C⁻¹(n).
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    params = ("gamma", "dynamic_range")  # dynamic_range: of the dB images it decodes to
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
        c = self.cfg
        out: dict[str, np.ndarray] = {}
        for name, draws, gain in (
            ("tissue", res.x_samples, 1.0),
            ("haze", res.n_samples, c.gamma),  # the haze as it adds to the input: γ·C⁻¹(n)
        ):
            d = draws.cpu().numpy()  # (B, K, 2, z, x)
            per = [
                to_db(
                    mulaw_to_iq(d[:, k], m.context["scale"]) * gain,
                    c.dynamic_range,
                    m.context["ref"],
                )
                for k in range(d.shape[1])
            ]
            out[name] = np.mean(per, axis=0).astype(np.float32)
            if c.samples > 1:
                out[f"{name}_std"] = np.std(per, axis=0).astype(np.float32)
        return out
