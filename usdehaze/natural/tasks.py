"""Tasks: which core operator measures the signal, and the image shape the noise lives in.

- ``blend``: y = β·x + α·n (digits on faces, β = α = 0.5; the core's ScaledBlend),
- ``denoise``: y = x + n (A = I),
- ``cs``: y = A·vec(x) + n with a random Gaussian A ∈ R^{m×d}, d/m = ``ratio`` (GaussianMatrix).

For ``cs`` the noise is an m-vector; its generators and priors see it as an image of shape
(C, H/ratio, W) (row-major, so the per-pixel sinusoid runs along the flattened vector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from usdehaze.errors import UsageError


@dataclass
class Task:
    kind: str
    operator: Any
    x_shape: tuple[int, int, int]
    noise_shape: tuple[int, int, int]

    @property
    def vector_noise(self) -> bool:
        return self.kind == "cs"

    def to_measurement(self, n: Tensor) -> Tensor:
        """Noise images (B, *noise_shape) -> the operator's measurement layout."""
        return n.reshape(n.shape[0], -1) if self.vector_noise else n

    def to_image(self, n: Tensor) -> Tensor:
        """Measurement-layout noise -> images (B, *noise_shape)."""
        return n.reshape(n.shape[0], *self.noise_shape) if self.vector_noise else n


def build_task(
    cfg: dict[str, Any], x_shape: tuple[int, int, int], seed: int = 0, source: str = "task"
) -> Task:
    from usdehaze.core.operators import GaussianMatrix, Identity, ScaledBlend

    cfg = dict(cfg or {})
    kind = cfg.pop("kind", None)
    try:
        if kind == "blend":
            op = ScaledBlend(float(cfg.pop("beta", 0.5)), float(cfg.pop("alpha", 0.5)))
            nshape = x_shape
        elif kind == "denoise":
            op = Identity(float(cfg.pop("alpha", 1.0)))
            nshape = x_shape
        elif kind == "cs":
            ratio = cfg.pop("ratio", 2)
            c, h, w = x_shape
            if int(ratio) != ratio or h % int(ratio):
                raise UsageError(
                    f"{source}: key 'ratio': expected an integer dividing the image height {h}, got {ratio}"
                )
            r = int(ratio)
            op = GaussianMatrix(
                x_shape,
                float(r),
                seed=int(cfg.pop("seed", seed)),
                noise_scale=float(cfg.pop("alpha", 1.0)),
            )
            nshape = (c, h // r, w)
            assert op.m == math.prod(nshape)
        else:
            raise UsageError(f"{source}: key 'kind': expected blend, denoise or cs, got {kind!r}")
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{source}: {exc}") from None
    if cfg:
        raise UsageError(f"{source}: key '{sorted(cfg)[0]}': unknown for task '{kind}'")
    return Task(kind, op, tuple(x_shape), tuple(nshape))


class ReshapedPrior(nn.Module):
    """A score prior on noise images used on flat measurement vectors (compressed sensing)."""

    def __init__(self, prior: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.prior, self.shape = prior, tuple(shape)

    def forward(self, n_t: Tensor, t: Tensor) -> Tensor:
        B = n_t.shape[0]
        return self.prior(n_t.reshape(B, *self.shape), t).reshape(n_t.shape)
