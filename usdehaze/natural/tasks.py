"""Tasks: which core operator measures the signal, and the image shape the noise lives in.

- ``blend``: y = β·x + α·n (digits on faces, β = α = 0.5; the core's ScaledBlend),
- ``denoise``: y = x + n (A = I),
- ``cs``: y = A·vec(x) + n with a random Gaussian A ∈ R^{m×d}, d/m = ``ratio`` (GaussianMatrix).

For ``cs`` the noise is an m-vector; its generators and priors see it as an image of shape
(C, H/ratio, W) (row-major, so the per-pixel sinusoid runs along the flattened vector).
The operator is built by core's one factory (``operator_from_config``) from the task's keys.
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


# task kind → (the core operator kind, task key → that operator's config key); each key the
# task YAML may write, with its default (None: the operator's own default)
TASKS: dict[str, tuple[str, dict[str, tuple[str, Any]]]] = {
    "blend": ("ScaledBlend", {"beta": ("beta", 0.5), "alpha": ("alpha", 0.5)}),
    "denoise": ("Identity", {"alpha": ("noise_scale", 1.0)}),
    "cs": (
        "GaussianMatrix",
        {"ratio": ("ratio", 2), "seed": ("seed", None), "alpha": ("noise_scale", 1.0)},
    ),
}


def build_task(
    cfg: dict[str, Any], x_shape: tuple[int, int, int], seed: int = 0, source: str = "task"
) -> Task:
    """The task a config's ``task`` mapping names: its operator built by the one core factory
    (usdehaze.core.operators.operator_from_config) from the task's keys; ``seed``: the cs
    matrix's when the task gives none."""
    from usdehaze.core.operators import operator_from_config

    cfg = dict(cfg or {})
    kind = cfg.pop("kind", None)
    if kind not in TASKS:
        raise UsageError(f"{source}: key 'kind': expected {', '.join(TASKS)}, got {kind!r}")
    op_kind, keys = TASKS[kind]
    unknown = sorted(k for k in cfg if k not in keys)
    if unknown:
        raise UsageError(f"{source}: key '{unknown[0]}': unknown for task '{kind}'")
    params = {to: cfg.get(k, default) for k, (to, default) in keys.items()}
    nshape = tuple(x_shape)
    if kind == "cs":  # the noise is an m-vector, seen as images of (C, H / ratio, W)
        c, h, w = x_shape
        ratio = params["ratio"]
        try:
            ok = int(ratio) == ratio and int(ratio) > 0 and h % int(ratio) == 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(
                f"{source}: key 'ratio': expected an integer dividing the image height {h}, got {ratio}"
            )
        params.update(in_shape=list(x_shape), ratio=float(ratio))
        params["seed"] = seed if params["seed"] is None else params["seed"]
        nshape = (c, h // int(ratio), w)
    op = operator_from_config({"kind": op_kind, **params}, source)
    if kind == "cs":
        assert op.m == math.prod(nshape)
    return Task(kind, op, tuple(x_shape), nshape)


class ReshapedPrior(nn.Module):
    """A score prior on noise images used on flat measurement vectors (compressed sensing)."""

    def __init__(self, prior: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.prior, self.shape = prior, tuple(shape)

    def forward(self, n_t: Tensor, t: Tensor) -> Tensor:
        B = n_t.shape[0]
        return self.prior(n_t.reshape(B, *self.shape), t).reshape(n_t.shape)
