"""A small time-conditioned MLP for low-dimensional data given as (B, C, 1, 1) "images" (tests, toys)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from usdehaze.core.networks.unet import FourierEmbedding


class MLP(nn.Module):
    """ε-predicting MLP with the same interface and preconditioning as the U-Net."""

    factor = 1

    def __init__(
        self, channels: int = 2, hidden: int = 128, layers: int = 3, sigma_data: float = 0.5
    ) -> None:
        super().__init__()
        self.channels, self.sigma_data = channels, sigma_data
        self.embed = FourierEmbedding(32)
        dims = [channels + 32] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.SiLU()]
        mods.append(nn.Linear(hidden, channels))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        shape = x.shape
        flat = x.reshape(shape[0], -1)
        b = beta.reshape(-1, 1).to(x)
        a = alpha.reshape(-1, 1).to(x)
        h = torch.cat(
            [
                flat / torch.sqrt(a**2 * self.sigma_data**2 + b**2),
                self.embed(torch.log(b.reshape(-1))),
            ],
            dim=1,
        )
        return self.net(h).reshape(shape)
