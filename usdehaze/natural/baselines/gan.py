"""GAN baseline: a DCGAN (Radford et al. 2015) and CSGM latent optimisation (Bora et al. 2017).

Paper's sizes: latent l = 100, generator feature maps [512, 256, 128, 64] with 4×4 transposed
convolutions, batch norm and ReLU; discriminator [64, 128, 256, 512]. Both are configurable, so
the small preset uses a few channels. Recovery (eq. 19): ẑ = argmin_z ‖y − α μ_n − A G(z)‖² + λ‖z‖².
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usdehaze.errors import UsageError


@dataclass
class GANConfig:
    channels: int = 3
    size: int = 64
    latent: int = 100
    gen: list[int] = field(default_factory=lambda: [512, 256, 128, 64])
    disc: list[int] = field(default_factory=lambda: [64, 128, 256, 512])

    def __post_init__(self) -> None:
        for name, chans in (("gen", self.gen), ("disc", self.disc)):
            if 4 * 2 ** len(chans) != self.size:
                raise UsageError(
                    f"gan config: key '{name}': {len(chans)} layers give {4 * 2 ** len(chans)}-pixel images, size is {self.size} (need size = 4·2^layers)"
                )


class Generator(nn.Module):
    """z (B, l) -> 4×4 -> ... -> size×size image in [-1, 1] (tanh)."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent, cfg.gen[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(cfg.gen[0]),
            nn.ReLU(True),
        ]
        for a, b in zip(cfg.gen[:-1], cfg.gen[1:]):
            layers += [
                nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(cfg.gen[-1], cfg.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent = cfg.latent

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.latent, 1, 1))


class Discriminator(nn.Module):
    """Image -> one logit; strided 4×4 convolutions, batch norm, leaky ReLU."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, cfg.disc[0], 4, 2, 1),
            nn.LeakyReLU(0.2, True),
        ]
        for a, b in zip(cfg.disc[:-1], cfg.disc[1:]):
            layers += [
                nn.Conv2d(a, b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(b),
                nn.LeakyReLU(0.2, True),
            ]
        layers += [nn.Conv2d(cfg.disc[-1], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(-1)


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_generator(config: dict) -> Generator:
    return Generator(GANConfig(**config))


def train_gan(
    data: np.ndarray,
    cfg: GANConfig,
    *,
    steps: int,
    batch: int = 64,
    lr: float = 2e-4,
    seed: int = 0,
    checkpoint=None,
    progress: bool = True,
) -> tuple[Generator, list]:
    """Non-saturating GAN training with Adam(β1 = 0.5), as in DCGAN."""
    from usdehaze.natural.baselines.fit import fit

    torch.manual_seed(seed)
    G, D = Generator(cfg), Discriminator(cfg)
    G.apply(_init)
    D.apply(_init)
    og = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))

    def step(x: Tensor, gen: torch.Generator) -> float:
        B = x.shape[0]
        z = torch.randn(B, cfg.latent, generator=gen)
        fake = G(z)
        ones, zeros = torch.ones(B), torch.zeros(B)
        loss_d = F.binary_cross_entropy_with_logits(
            D(x), ones
        ) + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
        od.zero_grad(set_to_none=True)
        loss_d.backward()
        od.step()
        loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        og.zero_grad(set_to_none=True)
        loss_g.backward()
        og.step()
        return float(loss_g.detach())

    log = fit(
        {"G": G, "D": D},
        {"G": og, "D": od},
        step,
        data,
        steps=steps,
        batch=batch,
        seed=seed,
        checkpoint=checkpoint,
        desc="gan",
        progress=progress,
    )
    return G.eval(), log


def csgm(
    G: Generator,
    op,
    y: Tensor,
    noise_mean: Tensor | float = 0.0,
    *,
    steps: int = 600,
    lr: float = 0.05,
    lam: float = 0.1,
    restarts: int = 1,
    seed: int = 0,
) -> Tensor:
    """Eq. 19 by Adam on z, keeping per image the best of ``restarts`` random starts."""
    G.eval().requires_grad_(False)
    alpha = getattr(op, "noise_scale", 1.0)
    yt = (y - alpha * noise_mean).detach()
    B = y.shape[0]
    gen = torch.Generator().manual_seed(seed)
    best_x, best_loss = None, torch.full((B,), float("inf"))
    for _ in range(max(1, restarts)):
        z = torch.randn(B, G.latent, generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            x = G(z)
            loss = ((op.A(x) - yt) ** 2).reshape(B, -1).sum(1) + lam * (z**2).sum(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            x = G(z)
            loss = ((op.A(x) - yt) ** 2).reshape(B, -1).sum(1) + lam * (z**2).sum(1)
            better = loss < best_loss
            best_x = (
                x.clone() if best_x is None else torch.where(better[:, None, None, None], x, best_x)
            )
            best_loss = torch.minimum(loss, best_loss)
    return best_x


def gan_config_dict(cfg: GANConfig) -> dict:
    return asdict(cfg)
