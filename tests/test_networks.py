"""Score networks: fully convolutional (trained on patches, run on any size) and trainable."""

import pytest
import torch

from usdehaze.core.networks import build_network, count_parameters
from usdehaze.errors import UsageError


@pytest.mark.parametrize(
    "cfg", [{"arch": "unet", "base": 8, "mults": [1, 2, 2]}, {"arch": "ncsnv2", "ngf": 8}]
)
def test_any_image_size(cfg):
    net = build_network(cfg)
    for shape in ((2, 1, 64, 64), (1, 1, 96, 160), (1, 1, 37, 50)):
        x = torch.randn(shape)
        out = net(x, torch.ones(shape[0]), torch.full((shape[0],), 0.7))
        assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "cfg", [{"arch": "unet", "base": 8, "mults": [1, 2]}, {"arch": "ncsnv2", "ngf": 8}]
)
def test_one_step_lowers_the_loss_on_a_fixed_batch(cfg):
    torch.manual_seed(0)
    net = build_network(cfg)
    x, z = torch.randn(4, 1, 16, 16) * 0.5, torch.randn(4, 1, 16, 16)
    a, b = torch.ones(4), torch.full((4,), 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = ((net(x + 0.5 * z, a, b) - z) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0] and count_parameters(net) > 0


def test_unknown_arch():
    with pytest.raises(UsageError, match="'arch'"):
        build_network({"arch": "transformer"})
