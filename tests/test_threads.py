"""Issue 32 item 2: torch's CPU threads chosen for the machine's load (``threads``: 0 auto)."""

from __future__ import annotations

import os

import pytest
import torch

from usdehaze.core.device import cpu_threads, set_cpu_threads
from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze import DehazeConfig


@pytest.fixture
def torch_threads():
    """Leave torch's thread count as it was."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine without OMP_NUM_THREADS; ``set(load)`` sets its 1-minute load."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)

    def set_load(load: float) -> None:
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    return set_load


@pytest.mark.parametrize("load, threads", [(0.0, 2), (0.4, 2), (0.6, 1), (4.0, 1), (9.2, 1)])
def test_auto_takes_the_free_cores(machine, load, threads):
    """Idle: both cores; loaded: one (issue 32: 150-220 s with 2 threads, 74 s with 1)."""
    machine(load)
    assert cpu_threads(0) == threads
    assert cpu_threads(3) == 3  # given: as given


def test_auto_keeps_omp_num_threads(monkeypatch, torch_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cpu_threads(0) == torch.get_num_threads()


def test_the_dehazer_sets_them_on_cpu(tiny_priors, torch_threads):
    from usdehaze.ultrasound.dehaze import Dehazer

    cfg = DehazeConfig(
        tissue_prior=str(tiny_priors[0]), haze_prior=str(tiny_priors[1]), model="logsum",
        device="cpu", threads=1,
    )  # fmt: skip
    assert Dehazer(cfg).threads == 1 and torch.get_num_threads() == 1
    assert set_cpu_threads(2) == 2 and torch.get_num_threads() == 2


@pytest.mark.parametrize("value", [-1, 1025])
def test_threads_out_of_range_is_one_line(value):
    with pytest.raises(UsageError, match="threads"):
        DehazeConfig(threads=value).validate()
