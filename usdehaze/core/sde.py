"""Forward SDEs dx = f(t)·x dt + g(t) dw and their Gaussian marginals x_t = α_t·x_0 + β_t·z.

The samplers only need f, g, α, β; each SDE also knows how to draw from its prior at t = 1
at the right scale (VE with σ = 25 has β_1 ≈ 9.85, not 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor


def _t(t: Tensor | float) -> Tensor:
    return t if isinstance(t, Tensor) else torch.tensor(float(t), dtype=torch.float64)


class SDE:
    """Base class: linear-drift SDE on [eps, T] with closed-form Gaussian marginals."""

    name = "sde"
    T: float = 1.0
    eps: float = 1e-3

    def f(self, t: Tensor) -> Tensor:
        """Drift coefficient: drift = f(t)·x."""
        raise NotImplementedError

    def g(self, t: Tensor) -> Tensor:
        """Diffusion coefficient g(t)."""
        raise NotImplementedError

    def alpha(self, t: Tensor) -> Tensor:
        """Marginal mean scale α_t (x_t = α_t x_0 + β_t z)."""
        raise NotImplementedError

    def beta(self, t: Tensor) -> Tensor:
        """Marginal standard deviation β_t."""
        raise NotImplementedError

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw x_T from the prior N(0, β_T² I) (mean 0: the data's contribution has vanished)."""
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return z * float(self.beta(_t(self.T)))

    def marginal(self, x0: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """x_t = α_t x_0 + β_t z, with t broadcast over the batch dimension."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a = self.alpha(t).to(x0).reshape(shape)
        b = self.beta(t).to(x0).reshape(shape)
        return a * x0 + b * z

    def timesteps(
        self, steps: int, t_start: float | None = None, device: torch.device | str = "cpu"
    ) -> Tensor:
        """``steps + 1`` times from t_start (default T) down to eps, float64."""
        t0 = self.T if t_start is None else float(t_start)
        return torch.linspace(t0, self.eps, steps + 1, dtype=torch.float64, device=device)

    def config(self) -> dict:
        """Serialisable description (stored with weights and outputs)."""
        raise NotImplementedError


@dataclass
class VESDE(SDE):
    """Variance exploding: f = 0, g(t) = σ^t, β_t² = (σ^{2t} − 1) / (2 ln σ) (TMLR paper, σ = 25)."""

    sigma: float = 25.0
    eps: float = 1e-3
    T: float = 1.0
    name = "ve"

    def f(self, t: Tensor) -> Tensor:
        return torch.zeros_like(_t(t))

    def g(self, t: Tensor) -> Tensor:
        return self.sigma ** _t(t)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(_t(t))

    def beta(self, t: Tensor) -> Tensor:
        t = _t(t)
        return torch.sqrt((self.sigma ** (2 * t) - 1.0) / (2 * math.log(self.sigma)))

    def t_of_beta(self, beta: float) -> float:
        """Inverse of β_t: the time at which the marginal std equals ``beta`` (for late starts)."""
        return 0.5 * math.log(1.0 + 2 * math.log(self.sigma) * beta**2) / math.log(self.sigma)

    def config(self) -> dict:
        return {"kind": "ve", "sigma": self.sigma, "eps": self.eps}


@dataclass
class VPSDE(SDE):
    """Variance preserving (ICLR draft): β(s) linear in s, f = −β(t)/2, g = √β(t)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-3
    T: float = 1.0
    name = "vp"

    def _b(self, t: Tensor) -> Tensor:
        return self.beta_min + _t(t) * (self.beta_max - self.beta_min)

    def _int_b(self, t: Tensor) -> Tensor:
        t = _t(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def f(self, t: Tensor) -> Tensor:
        return -0.5 * self._b(t)

    def g(self, t: Tensor) -> Tensor:
        return torch.sqrt(self._b(t))

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * self._int_b(t))

    def beta(self, t: Tensor) -> Tensor:
        return torch.sqrt(-torch.expm1(-self._int_b(t)))

    def t_of_beta(self, beta: float) -> float:
        """Inverse of β_t (solves the quadratic ∫β = −ln(1 − β²))."""
        target = -math.log1p(-(min(beta, 0.999999) ** 2))
        a = 0.5 * (self.beta_max - self.beta_min)
        b = self.beta_min
        return (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)

    def config(self) -> dict:
        return {"kind": "vp", "beta_min": self.beta_min, "beta_max": self.beta_max, "eps": self.eps}


def sde_from_config(cfg: dict, source: str = "sde config") -> SDE:
    """Rebuild an SDE from :meth:`SDE.config` output; every field is checked (``source`` names
    the file and key in the one-line error): known keys only, finite positive numbers, VE
    σ > 1, VP β_max > β_min, 0 < eps < T."""
    from usdehaze import limits
    from usdehaze.errors import UsageError

    if not isinstance(cfg, dict):
        raise UsageError(f"{source}: expected a mapping with 'kind', got {cfg!r}")
    kind = cfg.get("kind")
    classes = {"ve": VESDE, "vp": VPSDE}
    if kind not in classes:
        raise UsageError(f"{source}: key 'kind': expected 've' or 'vp', got {kind!r}")
    cls = classes[kind]
    allowed = sorted(f.name for f in fields(cls))
    params = {}
    for k, v in cfg.items():
        if k == "kind":
            continue
        if k not in allowed:
            raise UsageError(f"{source}: key '{k}': unknown for a {kind} SDE (expected {allowed})")
        params[k] = limits.number(v, f"{source}: key '{k}'", positive=True)
    sde = cls(**params)
    if not sde.eps < sde.T:
        raise UsageError(f"{source}: key 'eps': expected less than T = {sde.T:g}, got {sde.eps:g}")
    if kind == "ve" and not sde.sigma > 1:
        raise UsageError(f"{source}: key 'sigma': expected a number > 1, got {sde.sigma:g}")
    if kind == "vp" and not sde.beta_max > sde.beta_min:
        raise UsageError(
            f"{source}: key 'beta_max': expected more than beta_min = {sde.beta_min:g}, got {sde.beta_max:g}"
        )
    return sde
