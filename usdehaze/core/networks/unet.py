"""Compact time-conditioned U-Net score network, fully convolutional (any H, W).

Parametrisation: the network predicts the unit noise ε in x_t = α_t x_0 + β_t ε, from the
preconditioned input x_t / sqrt(α_t² σ_data² + β_t²) and an embedding of log β_t; the score is
−ε̂ / β_t. With the DSM weighting λ(t) = β_t² the loss is then the plain ε-regression loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


class FourierEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar (log β_t) into ``dim`` features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(100.0), dim // 2)))

    def forward(self, s: Tensor) -> Tensor:
        a = s[:, None] * self.freqs[None]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv ×2 with a time-conditioned shift."""

    def __init__(self, cin: int, cout: int, tdim: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(_groups(cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2 = nn.GroupNorm(_groups(cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(temb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """U-Net over ``len(mults)`` resolutions; predicts ε (see module docstring)."""

    def __init__(
        self,
        channels: int = 1,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        blocks: int = 1,
        sigma_data: float = 0.5,
    ) -> None:
        super().__init__()
        self.channels, self.sigma_data = channels, sigma_data
        tdim = base * 4
        self.embed = nn.Sequential(
            FourierEmbedding(base), nn.Linear(base, tdim), nn.SiLU(), nn.Linear(tdim, tdim)
        )
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        chs = [base * m for m in mults]
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c = base
        skips = []
        for i, ch in enumerate(chs):
            for _ in range(blocks):
                self.down.append(ResBlock(c, ch, tdim))
                c = ch
                skips.append(c)
            if i < len(chs) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, tdim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chs))):
            for _ in range(blocks):
                self.up.append(ResBlock(c + skips.pop(), ch, tdim))
                c = ch
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out = nn.Sequential(
            nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.blocks, self.levels = blocks, len(chs)
        self.factor = 2 ** (len(chs) - 1)

    def forward(self, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        """ε̂ for x_t with per-sample marginal scale ``alpha`` and std ``beta`` (shape (B,))."""
        b4 = beta.reshape(-1, 1, 1, 1).to(x)
        a4 = alpha.reshape(-1, 1, 1, 1).to(x)
        h_in = x / torch.sqrt(a4**2 * self.sigma_data**2 + b4**2)
        H, W = x.shape[-2:]
        ph, pw = (-H) % self.factor, (-W) % self.factor
        if ph or pw:
            h_in = F.pad(
                h_in, (0, pw, 0, ph), mode="reflect" if min(H, W) > max(ph, pw) else "replicate"
            )
        temb = self.embed(torch.log(beta.to(x)).reshape(-1))
        h = self.inp(h_in)
        skips = []
        k = 0
        for lvl in range(self.levels):
            for _ in range(self.blocks):
                h = self.down[k](h, temb)
                skips.append(h)
                k += 1
            if lvl < self.levels - 1:
                h = self.pool[lvl](h)
        h = self.mid(h, temb)
        k = 0
        for lvl in range(self.levels):
            for _ in range(self.blocks):
                s = skips.pop()
                if h.shape[-2:] != s.shape[-2:]:
                    h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
                    h = self.upsample[lvl - 1](h)
                h = self.up[k](torch.cat([h, s], dim=1), temb)
                k += 1
        return self.out(h)[..., :H, :W]
