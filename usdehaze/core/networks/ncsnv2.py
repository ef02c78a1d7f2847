"""NCSNv2-style score network (Song & Ermon, 2020), compact and fully convolutional.

As in NCSNv2: an unconditional RefineNet-like body of residual blocks with InstanceNorm++ and
ELU, dilated convolutions at the coarsest level, multi-resolution refinement, and noise
conditioning only by dividing the output by the noise level (score = net(x)/σ, so the predicted
unit noise is ε̂ = −net(x)). Unlike the original the input is scaled by 1/sqrt(α²σ_data² + β²)
(the same preconditioning as the U-Net) so one network covers the whole VE range stably.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InstanceNormPlus(nn.Module):
    """InstanceNorm++: instance norm plus a learned correction from the channel means."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(ch, affine=False)
        self.alpha = nn.Parameter(torch.zeros(ch))
        self.gamma = nn.Parameter(torch.ones(ch))
        self.beta = nn.Parameter(torch.zeros(ch))

    def forward(self, x: Tensor) -> Tensor:
        means = x.mean(dim=(2, 3))
        m = (
            (means - means.mean(1, keepdim=True))
            / (means.std(1, keepdim=True, unbiased=False) + 1e-5)
            if x.shape[1] > 1
            else means * 0
        )
        h = self.norm(x) + (m * self.alpha)[:, :, None, None]
        return self.gamma[None, :, None, None] * h + self.beta[None, :, None, None]


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool = False, dilation: int = 1) -> None:
        super().__init__()
        self.n1, self.n2 = InstanceNormPlus(cin), InstanceNormPlus(cout)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation)
        self.down = down
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout or down else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(F.elu(self.n1(x)))
        h = self.c2(F.elu(self.n2(h)))
        s = self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class Refine(nn.Module):
    """Fuse a coarse path into a finer one: adapt, upsample, sum, residual pooling."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)
        self.pool = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:
        h = self.a(F.elu(fine)) + F.interpolate(
            self.b(F.elu(coarse)), size=fine.shape[-2:], mode="bilinear", align_corners=False
        )
        return h + self.pool(F.max_pool2d(F.elu(h), 5, stride=1, padding=2))


class NCSNv2(nn.Module):
    """Levels: ngf, 2ngf (↓2), 2ngf (↓2), 2ngf dilated 2, 2ngf dilated 4; RefineNet decoder."""

    factor = 4

    def __init__(self, channels: int = 1, ngf: int = 32, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.channels, self.sigma_data = channels, sigma_data
        c2 = 2 * ngf
        self.inp = nn.Conv2d(channels, ngf, 3, padding=1)
        self.l1 = ResBlock(ngf, ngf)
        self.l2 = ResBlock(ngf, c2, down=True)
        self.l3 = ResBlock(c2, c2, down=True)
        self.l4 = ResBlock(c2, c2, dilation=2)
        self.l5 = ResBlock(c2, c2, dilation=4)
        self.r4, self.r3, self.r2 = Refine(c2), Refine(c2), Refine(c2)
        self.to1 = nn.Conv2d(c2, ngf, 1)
        self.r1 = Refine(ngf)
        self.up1 = nn.Conv2d(c2, ngf, 1)
        self.out = nn.Sequential(
            InstanceNormPlus(ngf), nn.ELU(), nn.Conv2d(ngf, channels, 3, padding=1)
        )

    def forward(self, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        """ε̂ = −net(x) (NCSNv2's score net(x)/σ, times −σ)."""
        a = alpha.reshape(-1, 1, 1, 1).to(x)
        b = beta.reshape(-1, 1, 1, 1).to(x)
        H, W = x.shape[-2:]
        h = x / torch.sqrt(a**2 * self.sigma_data**2 + b**2)
        ph, pw = (-H) % self.factor, (-W) % self.factor
        if ph or pw:
            h = F.pad(h, (0, pw, 0, ph), mode="replicate")
        h1 = self.l1(self.inp(h))
        h2 = self.l2(h1)
        h3 = self.l3(h2)
        h4 = self.l4(h3)
        h5 = self.l5(h4)
        y = self.r4(h4, h5)
        y = self.r3(h3, y)
        y = self.r2(h2, y)
        y = self.r1(h1, self.up1(y))
        return -self.out(y)[..., :H, :W]
