"""Measurement models y = measure(x, n) and the linear ones y = A·x + α·n (DeepInverse style).

``MeasurementModel`` is the interface a data-consistency rule (usdehaze.core.dc_rules) may ask
of a model; what it offers is declared, never probed: ``linear`` (``A`` is linear), ``adjoint``
(``A`` and ``A_adjoint`` exist), ``cov_solve`` (``solve_cov`` exists), ``noise_scale`` α, and
``noiseless(x)``, the measurement of x with no noise at all (for a nonlinear model n = 0 need
not be "no noise"). ``LinearOperator`` derives from it: each operator maps signal images
(B, C, H, W) to measurements and back: ``A(x)``, ``A_adjoint(y)``, ``measure(x, n) = A(x) + α·n``
(``noise_scale`` α, 1 by default), and what ΠGDM needs, ``solve_cov(v, r2, q2) =
(r²·AAᵀ + q²·α²·I)⁻¹ v`` — closed form where the structure allows it, conjugate gradients
otherwise. The noise n lives in measurement space.

``OPERATORS`` registers the models by the ``kind`` their ``config()`` records (the result files'
``operator`` attribute): a config is that kind plus the constructor's keyword arguments, so
``operator_from_config(op.config())`` builds the same model (one factory, for the natural tasks
too). A model with array parameters (``Mask``, ``Blur``) records them as nested lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from usdehaze.core.registry import Registry


def _bshape(v: float | Tensor, like: Tensor) -> Tensor | float:
    """Broadcast a per-sample scalar (B,) over the remaining dimensions of ``like``."""
    if isinstance(v, Tensor) and v.dim() == 1:
        return v.to(like).reshape(-1, *([1] * (like.dim() - 1)))
    return v


# what a model may declare, and how a refusal names it
CAPABILITIES = {
    "linear": "a linear operator",
    "adjoint": "an adjoint (A_adjoint)",
    "cov_solve": "a covariance solve (solve_cov)",
}


class MeasurementModel:
    """y = measure(x, n): signal x and structured noise n (measurement space) to a measurement.

    Subclasses implement ``measure`` and ``noiseless`` and declare what else they offer:
    ``linear`` (y = A(x) + α·n with A linear), ``adjoint`` (``A(x)`` and ``A_adjoint(y)``),
    ``cov_solve`` (``solve_cov(v, r2, q2)`` = (r²AAᵀ + q²α²I)⁻¹ v). ``noiseless(x)`` is the
    measurement of x alone, with no noise term at all: not ``measure(x, 0)``, since n = 0 is
    a noise value like any other for a nonlinear model (the ultrasound LogPowerSum's u = 0 is
    haze at half the dynamic range below the maximum).
    """

    name = "measurement"
    linear: bool = False
    adjoint: bool = False
    cov_solve: bool = False
    noise_scale: float = 1.0

    def measure(self, x: Tensor, n: Tensor) -> Tensor:
        raise NotImplementedError

    def noiseless(self, x: Tensor) -> Tensor:
        """The measurement of ``x`` with no noise (single-prior DC rules use it)."""
        raise NotImplementedError

    def capabilities(self) -> set[str]:
        """The capabilities (keys of CAPABILITIES) this model declares."""
        return {c for c in CAPABILITIES if getattr(self, c)}

    def missing(self, needs) -> list[str]:
        """What of ``needs`` (capability names) this model lacks, in CAPABILITIES order."""
        have = self.capabilities()
        return [c for c in CAPABILITIES if c in needs and c not in have]

    def config(self) -> dict:
        return {"kind": type(self).__name__, "noise_scale": self.noise_scale}


class LinearOperator(MeasurementModel):
    """Base class: subclasses implement ``A`` and ``A_adjoint`` (and may override ``solve_cov``)."""

    noise_scale: float = 1.0
    linear = True
    adjoint = True
    cov_solve = True  # conjugate gradients unless a subclass has a closed form

    def A(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def A_adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Measurement shape for a signal of shape ``in_shape`` (batch dimension included)."""
        return tuple(self.A(torch.zeros(in_shape)).shape)

    def measure(self, x: Tensor, n: Tensor) -> Tensor:
        return self.A(x) + self.noise_scale * n

    def noiseless(self, x: Tensor) -> Tensor:
        return self.A(x)

    def solve_cov(
        self, v: Tensor, r2: float | Tensor, q2: float | Tensor, iters: int = 50, tol: float = 1e-6
    ) -> Tensor:
        """(r²AAᵀ + q²α²I)⁻¹ v by conjugate gradients (per sample)."""
        r2, q2 = _bshape(r2, v), _bshape(q2, v)
        a2 = self.noise_scale**2

        def op(u: Tensor) -> Tensor:
            return r2 * self.A(self.A_adjoint(u)) + q2 * a2 * u

        return conjugate_gradient(op, v, iters, tol)

    def __call__(self, x: Tensor) -> Tensor:
        return self.A(x)

    def config(self) -> dict:
        return {"kind": type(self).__name__, "noise_scale": self.noise_scale}


# measurement models by the kind their config() records (name), built back from it
OPERATORS: Registry[type[MeasurementModel]] = Registry("operator")
register_operator = OPERATORS.register


def operator_from_config(cfg: Mapping[str, Any], source: str = "operator") -> MeasurementModel:
    """The model a ``config()`` describes: its ``kind`` registered, the rest its constructor's
    keyword arguments (a wrong kind, key or value: one UsageError line naming ``source``)."""
    from usdehaze.errors import UsageError, first_line

    if not isinstance(cfg, Mapping):
        raise UsageError(f"{source}: expected a mapping with 'kind', got {cfg!r}")
    params = dict(cfg)
    cls = OPERATORS.lookup(params.pop("kind", None), source)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{source}: {cls.name}: {first_line(exc)}") from None


def adjoint_guess(op: LinearOperator, y: Tensor) -> Tensor:
    """A cheap signal estimate from a measurement: Aᵀy rescaled to A's gain (y itself for A = I)."""
    aty = op.A_adjoint(y)
    a_aty = op.A(aty)
    return aty * ((a_aty * y).sum() / (a_aty**2).sum().clamp_min(1e-12))


def conjugate_gradient(op, b: Tensor, iters: int = 50, tol: float = 1e-6) -> Tensor:
    """Solve op(x) = b for a symmetric positive definite ``op``, independently per batch item."""
    dims = tuple(range(1, b.dim()))
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(dims, keepdim=True)
    b2 = (b * b).sum(dims, keepdim=True).clamp_min(1e-30)
    for _ in range(iters):
        Ap = op(p)
        alpha = rs / (p * Ap).sum(dims, keepdim=True).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = (r * r).sum(dims, keepdim=True)
        if bool((rs_new / b2).max() < tol**2):
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


@register_operator
class Identity(LinearOperator):
    """Denoising: y = x + α·n."""

    name = "Identity"

    def __init__(self, noise_scale: float = 1.0) -> None:
        self.noise_scale = float(noise_scale)

    def A(self, x: Tensor) -> Tensor:
        return x

    def A_adjoint(self, y: Tensor) -> Tensor:
        return y

    def solve_cov(self, v, r2, q2, iters=0, tol=0.0):
        return v / (_bshape(r2, v) + _bshape(q2, v) * self.noise_scale**2)


@register_operator
class ScaledBlend(Identity):
    """The digits-on-faces task: y = β·x + α·n (β = α = 0.5 in the paper)."""

    name = "ScaledBlend"

    def __init__(self, beta: float = 0.5, alpha: float = 0.5) -> None:
        self.beta, self.noise_scale = float(beta), float(alpha)

    def A(self, x: Tensor) -> Tensor:
        return self.beta * x

    def A_adjoint(self, y: Tensor) -> Tensor:
        return self.beta * y

    def solve_cov(self, v, r2, q2, iters=0, tol=0.0):
        return v / (_bshape(r2, v) * self.beta**2 + _bshape(q2, v) * self.noise_scale**2)

    def config(self) -> dict:
        return {"kind": self.name, "beta": self.beta, "alpha": self.noise_scale}


@register_operator
class Mask(LinearOperator):
    """Inpainting: y = m ⊙ x + α·n with a fixed 0/1 mask (measurement keeps the image shape)."""

    name = "Mask"

    def __init__(self, mask: Tensor | list, noise_scale: float = 1.0) -> None:
        self.mask = torch.as_tensor(mask).float()
        self.noise_scale = float(noise_scale)

    def A(self, x: Tensor) -> Tensor:
        return x * self.mask.to(x)

    A_adjoint = A

    def solve_cov(self, v, r2, q2, iters=0, tol=0.0):
        return v / (_bshape(r2, v) * self.mask.to(v) + _bshape(q2, v) * self.noise_scale**2)

    def config(self) -> dict:
        return {"kind": self.name, "mask": self.mask.tolist(), "noise_scale": self.noise_scale}


@register_operator
class GaussianMatrix(LinearOperator):
    """Compressed sensing: y = A·vec(x) + α·n with A ∈ R^{m×d}, entries N(0, 1/m), m = d/ratio."""

    name = "GaussianMatrix"

    def __init__(
        self, in_shape: tuple[int, ...], ratio: float = 2.0, seed: int = 0, noise_scale: float = 1.0
    ) -> None:
        self.in_shape = tuple(int(s) for s in in_shape)  # (C, H, W)
        d = math.prod(self.in_shape)
        self.ratio, self.seed = float(ratio), int(seed)
        self.m = max(1, int(round(d / self.ratio)))
        g = torch.Generator().manual_seed(self.seed)
        self.matrix = torch.randn(self.m, d, generator=g) / math.sqrt(self.m)
        self.noise_scale = float(noise_scale)
        self._eig = None

    def A(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1) @ self.matrix.to(x).T

    def A_adjoint(self, y: Tensor) -> Tensor:
        return (y @ self.matrix.to(y)).reshape(y.shape[0], *self.in_shape)

    def solve_cov(self, v, r2, q2, iters=0, tol=0.0):
        if self._eig is None:  # AAᵀ = U diag(λ) Uᵀ, once
            lam, U = torch.linalg.eigh(self.matrix.double() @ self.matrix.double().T)
            self._eig = (lam.float(), U.float())
        lam, U = (e.to(v) for e in self._eig)
        w = v @ U
        w = w / (_bshape(r2, w) * lam + _bshape(q2, w) * self.noise_scale**2)
        return w @ U.T

    def config(self) -> dict:
        return {
            "kind": self.name,
            "in_shape": list(self.in_shape),
            "ratio": self.ratio,  # m = round(d / ratio) rows, drawn from seed
            "seed": self.seed,
            "noise_scale": self.noise_scale,
        }


@register_operator
class Blur(LinearOperator):
    """Circular convolution with a kernel (exact adjoint and closed-form ΠGDM solve via FFT)."""

    name = "Blur"

    def __init__(self, kernel: Tensor | list, noise_scale: float = 1.0) -> None:
        kernel = torch.as_tensor(kernel)
        self.kernel = kernel.float() / kernel.sum()
        self.noise_scale = float(noise_scale)

    def config(self) -> dict:
        return {"kind": self.name, "kernel": self.kernel.tolist(), "noise_scale": self.noise_scale}

    @classmethod
    def gaussian(cls, sigma: float, size: int | None = None, noise_scale: float = 1.0) -> Blur:
        size = size or 2 * int(math.ceil(3 * sigma)) + 1
        ax = torch.arange(size) - (size - 1) / 2
        k = torch.exp(-(ax[:, None] ** 2 + ax[None] ** 2) / (2 * sigma**2))
        return cls(k, noise_scale)

    def _otf(self, shape: tuple[int, int], like: Tensor) -> Tensor:
        H, W = shape
        kh, kw = self.kernel.shape
        pad = torch.zeros(
            H,
            W,
            dtype=like.dtype if like.is_floating_point() else torch.float32,
            device=like.device,
        )
        pad[:kh, :kw] = self.kernel.to(pad)
        pad = torch.roll(pad, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
        return torch.fft.rfft2(pad)

    def A(self, x: Tensor) -> Tensor:
        K = self._otf(x.shape[-2:], x)
        return torch.fft.irfft2(torch.fft.rfft2(x) * K, s=x.shape[-2:])

    def A_adjoint(self, y: Tensor) -> Tensor:
        K = self._otf(y.shape[-2:], y)
        return torch.fft.irfft2(torch.fft.rfft2(y) * K.conj(), s=y.shape[-2:])

    def solve_cov(self, v, r2, q2, iters=0, tol=0.0):
        K = self._otf(v.shape[-2:], v)
        r2, q2 = _bshape(r2, v), _bshape(q2, v)
        denom = r2 * (K.abs() ** 2) + q2 * self.noise_scale**2
        return torch.fft.irfft2(torch.fft.rfft2(v) / denom, s=v.shape[-2:])
