"""Ultrasound measurement models in the priors' normalised log domain (u ∈ [-1, 1] ↔ dB ∈ [-DR, 0]).

Beamformed IQ is linear: hazy = tissue + haze exactly, and on average (random speckle phases)
the envelope powers add. After log compression that becomes a smooth maximum, not a sum:

    y_dB = 10·log10(10^(x_dB/10) + γ·10^(n_dB/10))

``LogPowerSum`` is this model (the log-compression analogue of the follow-up dehazing paper's
y = C(C⁻¹(x) + γ·C⁻¹(h)) with μ-law C); ``γ`` sets the dehazing strength. ``Additive`` is the
TMLR paper's literal y = x + n on the normalised log images. ``MuLawIQSum`` is the follow-up
paper's model itself: x, n, y are μ-law companded I/Q channels and the sum is exact in IQ.
Each is registered in core's ``OPERATORS`` by its config's kind, so the ``operator`` attribute of
a result builds it again (``usdehaze.core.operators.operator_from_config``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from usdehaze.core.operators import Identity, MeasurementModel, register_operator
from usdehaze.ultrasound.logcomp import MU, mu_law, mu_law_inverse


@register_operator
class LogPowerSum(MeasurementModel):
    """y = C(C⁻¹(x) + γ·C⁻¹(n)) with C = normalised log compression of envelope power.

    Nonlinear: no adjoint, no covariance solve (the dps rule). Without haze (γ·C⁻¹(n) → 0) the
    measurement is the tissue itself; n = 0 is not that, it is haze at −DR/2 dB.
    """

    name = "logsum"
    linear = False

    def __init__(self, dynamic_range: float = 60.0, gamma: float = 1.0) -> None:
        if dynamic_range <= 0 or gamma <= 0:
            raise ValueError("dynamic_range and gamma must be positive")
        self.dynamic_range = float(dynamic_range)
        self.gamma = float(gamma)
        # u -> natural log of power: ln p = dB·ln10/10 = (DR/2)(u − 1)·ln10/10
        self._k = self.dynamic_range / 2 * math.log(10) / 10

    def measure(self, x: Tensor, n: Tensor) -> Tensor:
        """Hazy image (normalised units) from tissue ``x`` and haze ``n`` (normalised units)."""
        lx = self._k * (x - 1)
        ln = self._k * (n - 1) + math.log(self.gamma)
        return 1 + torch.logaddexp(lx, ln) / self._k

    def noiseless(self, x: Tensor) -> Tensor:
        return x

    def config(self) -> dict:
        return {"kind": self.name, "dynamic_range": self.dynamic_range, "gamma": self.gamma}


@register_operator
class Additive(Identity):
    """The TMLR paper's ultrasound model: y = x + n on the normalised log-compressed images.

    Linear (A = I, noise scale 1): every rule applies, ΠGDM with the closed-form covariance solve.
    """

    name = "additive"

    def __init__(self) -> None:
        super().__init__(noise_scale=1.0)

    def config(self) -> dict:
        return {"kind": self.name}


@register_operator
class MuLawIQSum(MeasurementModel):
    """y = C(C⁻¹(x) + γ·C⁻¹(n)) on μ-law companded I/Q channels (Stevens et al., IEEE TMI 2024).

    Beamformed IQ adds exactly (hazy = tissue + haze), so this is the physics, not an average.
    Tweedie estimates are clipped to the companded range [-1, 1] before expanding, where
    C⁻¹ grows like (1 + μ)^|u| and a stray estimate would otherwise dominate the residual.
    Nonlinear (the dps rule); C⁻¹(0) = 0, so here n = 0 is no haze: ``noiseless(x)`` = C(C⁻¹(x)).
    """

    name = "iq"
    linear = False

    def __init__(self, gamma: float = 1.0, mu: float = MU) -> None:
        if gamma <= 0 or mu <= 0:
            raise ValueError("gamma and mu must be positive")
        self.gamma, self.mu = float(gamma), float(mu)

    def expand(self, u: Tensor) -> Tensor:
        """C⁻¹: companded [-1, 1] → linear [-1, 1] (usdehaze.ultrasound.logcomp.mu_law_inverse)."""
        return mu_law_inverse(u.clamp(-1, 1), self.mu)

    def compress(self, v: Tensor) -> Tensor:
        """C: linear → companded (odd, monotonic, C(±1) = ±1; logcomp.mu_law)."""
        return mu_law(v, self.mu)

    def measure(self, x: Tensor, n: Tensor) -> Tensor:
        return self.compress(self.expand(x) + self.gamma * self.expand(n))

    def noiseless(self, x: Tensor) -> Tensor:
        return self.compress(self.expand(x))

    def config(self) -> dict:
        return {"kind": self.name, "gamma": self.gamma, "mu": self.mu}
