"""FLOW baseline: Glow (Kingma & Dhariwal 2018) for signal and noise, MAP in latent space
(Whang et al. 2021; paper eqs. 17–18).

Multi-scale: per level a 2×2 squeeze, K steps of (actnorm, invertible 1×1 conv, affine coupling),
then half the channels leave as latents. The latents of all levels are flattened into one vector
z ∈ R^d with a standard normal prior, so ``encode(x) -> (z, log|det ∂z/∂x|)`` and ``decode(z)``
are exact inverses. The paper's size is L = 4 levels, K = 18 steps; the small preset is tiny.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from usdehaze.errors import UsageError

LOG2PI = math.log(2 * math.pi)


@dataclass
class GlowConfig:
    channels: int = 3
    size: int = 64
    levels: int = 4
    depth: int = 18
    hidden: int = 256
    height: int | None = None  # non-square inputs (compressed-sensing noise): rows, default size

    def __post_init__(self) -> None:
        h = self.height or self.size
        if h % 2**self.levels or self.size % 2**self.levels:
            raise UsageError(
                f"glow config: key 'levels': {self.levels} levels need sides divisible by {2**self.levels}, got {h}×{self.size}"
            )


class ActNorm(nn.Module):
    """Per-channel affine map initialised from the first batch to zero mean, unit variance."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.register_buffer("ready", torch.tensor(0, dtype=torch.uint8))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.ready:
            with torch.no_grad():
                self.bias.copy_(-x.mean((0, 2, 3), keepdim=True))
                self.logs.copy_(-torch.log(x.std((0, 2, 3), keepdim=True) + 1e-6))
                self.ready.fill_(1)
        ld = self.logs.sum() * x.shape[2] * x.shape[3]
        return (x + self.bias) * torch.exp(self.logs), ld.expand(x.shape[0])

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ld = self.logs.sum() * y.shape[2] * y.shape[3]
        return y * torch.exp(-self.logs) - self.bias, ld.expand(y.shape[0])


class InvConv(nn.Module):
    """Invertible 1×1 convolution (a random rotation at init)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        w = torch.linalg.qr(torch.randn(c, c))[0]
        self.weight = nn.Parameter(w)

    def _ld(self, x: Tensor) -> Tensor:
        return (torch.linalg.slogdet(self.weight)[1] * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.einsum("ij,bjhw->bihw", self.weight, x), self._ld(x)

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.weight), y), self._ld(y)


class Coupling(nn.Module):
    """Affine coupling: x_b -> (x_b + t(x_a))·σ(s(x_a) + 2); the last conv starts at zero."""

    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c // 2, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, c - c // 2 + c - c // 2, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(xa)
        shift, raw = h[:, 0::2], h[:, 1::2]
        return shift, torch.sigmoid(raw + 2.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c = x.shape[1] // 2
        xa, xb = x[:, :c], x[:, c:]
        shift, s = self._st(xa)
        return torch.cat([xa, (xb + shift) * s], 1), torch.log(s).flatten(1).sum(1)

    def reverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        c = y.shape[1] // 2
        ya, yb = y[:, :c], y[:, c:]
        shift, s = self._st(ya)
        return torch.cat([ya, yb / s - shift], 1), torch.log(s).flatten(1).sum(1)


def squeeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


class Glow(nn.Module):
    """``encode(x) -> (z, logdet)``, ``decode(z) -> (x, logdet)`` (logdet of the encoder at x)."""

    def __init__(self, cfg: GlowConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.levels = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []  # shape of each level's latent
        c, h, w = cfg.channels, cfg.height or cfg.size, cfg.size
        for lvl in range(cfg.levels):
            c, h, w = c * 4, h // 2, w // 2
            steps = nn.ModuleList()
            for _ in range(cfg.depth):
                steps.append(nn.ModuleList([ActNorm(c), InvConv(c), Coupling(c, cfg.hidden)]))
            self.levels.append(steps)
            if lvl < cfg.levels - 1:
                self.shapes.append((c // 2, h, w))
                c = c - c // 2
            else:
                self.shapes.append((c, h, w))
        self.dim = sum(math.prod(s) for s in self.shapes)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        zs = []
        for lvl, steps in enumerate(self.levels):
            x = squeeze(x)
            for layer in steps:
                for f in layer:
                    x, ld = f(x)
                    logdet = logdet + ld
            if lvl < len(self.levels) - 1:
                k = self.shapes[lvl][0]
                zs.append(x[:, :k].flatten(1))
                x = x[:, k:]
        zs.append(x.flatten(1))
        return torch.cat(zs, 1), logdet

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        B = z.shape[0]
        parts, i = [], 0
        for s in self.shapes:
            n = math.prod(s)
            parts.append(z[:, i : i + n].reshape(B, *s))
            i += n
        logdet = torch.zeros(B, device=z.device, dtype=z.dtype)
        x = parts[-1]
        for lvl in reversed(range(len(self.levels))):
            if lvl < len(self.levels) - 1:
                x = torch.cat([parts[lvl], x], 1)
            for layer in reversed(self.levels[lvl]):
                for f in reversed(layer):
                    x, ld = f.reverse(x)
                    logdet = logdet + ld
            x = unsqueeze(x)
        return x, logdet

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) per sample (nats) = log N(z; 0, I) + log|det ∂z/∂x|."""
        z, ld = self.encode(x)
        return -0.5 * (z**2).sum(1) - 0.5 * self.dim * LOG2PI + ld


def build_glow(config: dict) -> Glow:
    return Glow(GlowConfig(**config))


def glow_config_dict(cfg: GlowConfig) -> dict:
    return asdict(cfg)


def train_glow(
    data: np.ndarray,
    cfg: GlowConfig,
    *,
    steps: int,
    batch: int = 32,
    lr: float = 1e-3,
    dequant: float = 2.0 / 256,
    grad_clip: float = 5.0,
    seed: int = 0,
    checkpoint=None,
    progress: bool = True,
    desc: str = "glow",
) -> tuple[Glow, list]:
    """Maximum likelihood with uniform dequantisation of width ``dequant``; loss in nats/dim."""
    from usdehaze.natural.baselines.fit import fit

    torch.manual_seed(seed)
    model = Glow(cfg)
    h = cfg.height or cfg.size
    if data.shape[1:] != (cfg.channels, h, cfg.size):
        raise UsageError(
            f"glow: training data {data.shape[1:]} does not match config ({cfg.channels}, {h}, {cfg.size})"
        )
    with torch.no_grad():  # data-dependent actnorm initialisation on a first batch
        g0 = torch.Generator().manual_seed(seed + 1)
        idx = torch.randint(len(data), (min(len(data), 256),), generator=g0)
        model.encode(torch.from_numpy(data[idx.numpy()]))
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x: Tensor, gen: torch.Generator) -> float:
        x = x + dequant * (torch.rand(x.shape, generator=gen) - 0.5)
        loss = -model.log_prob(x).mean() / model.dim
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        return float(loss.detach())

    log = fit(
        {"glow": model},
        {"glow": opt},
        step,
        data,
        steps=steps,
        batch=batch,
        seed=seed,
        checkpoint=checkpoint,
        desc=desc,
        progress=progress,
    )
    return model.eval(), log


def flow_map(
    signal: Glow,
    noise: Glow,
    op,
    y: Tensor,
    *,
    x_shape: tuple[int, ...],
    noise_shape: tuple[int, ...] | None = None,
    steps: int = 600,
    lr: float = 0.005,
    lam: float = 0.03,
    init: str = "zeros",
) -> Tensor:
    """Eq. 18: ẑ = argmax_z log p_GN((y − A G_X(z))/α) + λ log p_GX(G_X(z)), by Adam.

    ``noise_shape`` is the noise flow's image shape (C, H, W) when measurements are vectors
    (compressed sensing); ``init="zeros"`` starts at the latent mode, ``"pinv"`` from the encoded pseudo-inverse.
    """
    signal.eval().requires_grad_(False)
    noise.eval().requires_grad_(False)
    alpha = getattr(op, "noise_scale", 1.0)
    B = y.shape[0]
    y = y.detach()
    if init == "pinv":
        with torch.no_grad():
            x0 = op.A_adjoint(y)
            gain = (op.A(x0) * y).sum() / (op.A(x0) ** 2).sum().clamp_min(1e-12)
            z0 = signal.encode((x0 * gain).clamp(-1, 1))[0]
    elif init == "zeros":
        z0 = torch.zeros(B, signal.dim)
    else:
        raise UsageError(f"flow: key 'init': expected 'pinv' or 'zeros', got {init!r}")
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    nshape = (B, *noise_shape) if noise_shape else None
    for _ in range(steps):
        x, ld_x = signal.decode(z)
        n = (y - op.A(x)) / alpha
        lp_n = noise.log_prob(n.reshape(nshape) if nshape else n)
        lp_x = -0.5 * (z**2).sum(1) + ld_x
        loss = -(lp_n + lam * lp_x).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return signal.decode(z)[0].clamp(-1, 1)
