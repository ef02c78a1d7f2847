"""Shared fixtures: tiny untrained priors saved like the shipped ones, small in-memory scans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usdehaze.core.networks import build_network
from usdehaze.core.priors import save_prior
from usdehaze.core.sde import VESDE
from usdehaze.ultrasound.scan import Scan
from usdehaze.ultrasound.simulate import simulate_cardiac

TINY_NET = {"arch": "unet", "base": 8, "mults": [1, 2], "channels": 1}


def _tiny_pair(d, channels: int, normalisation: dict) -> tuple:
    net_cfg = {**TINY_NET, "channels": channels}
    paths = []
    for i, name in enumerate(("tissue", "haze")):
        torch.manual_seed(i)
        net = build_network(net_cfg)
        for p in net.parameters():  # non-zero output layer so the score is not trivially 0
            p.data.add_(0.01 * torch.randn_like(p))
        paths.append(
            save_prior(d / name, net, network=net_cfg, sde=VESDE(), normalisation=normalisation)
        )
    return tuple(paths)


@pytest.fixture(scope="session")
def tiny_priors(tmp_path_factory):
    """(tissue, haze) prior paths: tiny random networks with the ultrasound dB normalisation."""
    d = tmp_path_factory.mktemp("priors")
    return _tiny_pair(d, 1, {"domain": "db", "dynamic_range": 60})


@pytest.fixture(scope="session")
def tiny_iq_priors(tmp_path_factory):
    """(tissue, haze) prior paths for the iq model: 2 channels (μ-law I, Q)."""
    d = tmp_path_factory.mktemp("iq_priors")
    return _tiny_pair(d, 2, {"domain": "iq-mulaw", "mu": 255})


def memory_scan(n_frames: int = 3, shape=(48, 32), seed: int = 0) -> Scan:
    """A simulated hazy scan held in memory, in the Scan interface the readers return."""
    sim = simulate_cardiac(n_frames, seed=seed, shape=shape)
    iq = sim.hazy_iq
    return Scan(
        path="memory.h5",
        layout="memory",
        key="hazy",
        n_frames=n_frames,
        shape=shape,
        read=lambda a, b: iq[a:b],
        x=sim.x,
        z=sim.z,
        grid="polar",
        axes=sim.axes,
    )


@pytest.fixture
def small_scan():
    return memory_scan()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
