"""Issue 32 item 2: torch's CPU threads chosen for the machine's load (``threads``: 0 auto)."""

from __future__ import annotations

import os

import numpy as np
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


def test_a_frames_result_is_the_same_whatever_its_batch_and_threads(tiny_iq_priors, torch_threads):
    """Issue 31 item 12: a frame's result depends only on the seed, the frame and the settings.
    Batched, a frame's noise was its own but the networks' rounding was not: one batch of 4
    against 4 batches of 1 changed 94 % of the demo's pixels by up to 60 dB (the sampler
    amplifies differences of 1e-6), and torch's CPU kernels round differently with 1 and 3
    threads. Every frame now runs on its own with one torch thread, the threads on frames."""
    from usdehaze.ultrasound.dehaze import Dehazer
    from usdehaze.ultrasound.simulate import simulate_cardiac

    iq = simulate_cardiac(4, seed=5, shape=(64, 48)).hazy_iq
    t, h = tiny_iq_priors
    base = {"tissue_prior": str(t), "haze_prior": str(h), "device": "cpu", "steps": 8}
    base |= {"noise": "per-frame", "samples": 2}
    runs = {}
    for threads in (1, 2, 3):
        d = Dehazer(DehazeConfig(**base, threads=threads))
        runs[threads, "all"] = d.dehaze_iq(iq, frames=[0, 1, 2, 3])
        ones = [d.dehaze_iq(iq[i : i + 1], frames=[i]) for i in range(4)]
        runs[threads, "one by one"] = {k: np.concatenate([o[k] for o in ones]) for k in ones[0]}
        split = [d.dehaze_iq(iq[[0, 2]], frames=[0, 2]), d.dehaze_iq(iq[[1, 3]], frames=[1, 3])]
        runs[threads, "two shards"] = {  # frames 0, 2 and 1, 3: back in frame order
            k: np.stack([split[0][k][0], split[1][k][0], split[0][k][1], split[1][k][1]])
            for k in split[0]
        }
    want = runs[1, "all"]
    assert np.isfinite(want["tissue"]).all() and want["tissue"].std() > 0
    assert not np.array_equal(want["tissue"][0], want["tissue"][1])  # per-frame noise
    for key, got in runs.items():
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{key}: {k}")
    assert torch.get_num_threads() == 3  # the Dehazer's threads, back after each batch


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_students_frames_are_the_same_whatever_their_batch_and_threads(
    tiny_student, tiny_iq_priors, torch_threads, precision
):
    """The fast method's one pass, as the sampler's frames: batched it moved a frame by up to
    2e-5 dB with its batch and threads (and refine's sampler steps after it by 2e-3 dB); bf16
    (what auto runs on CPUs with AMX, in NHWC layout) keeps it so."""
    from usdehaze.ultrasound.dehaze import Dehazer
    from usdehaze.ultrasound.simulate import simulate_cardiac

    iq = simulate_cardiac(4, seed=6, shape=(64, 48)).hazy_iq
    t, h = tiny_iq_priors
    base = {"tissue_prior": str(t), "haze_prior": str(h), "device": "cpu", "method": "fast"}
    base["precision"] = precision
    want = None
    for threads in (1, 3):
        d = Dehazer(DehazeConfig(**base, student=str(tiny_student), threads=threads))
        ones = [d.dehaze_iq(iq[i : i + 1], frames=[i]) for i in range(4)]
        for got in (d.dehaze_iq(iq, frames=[0, 1, 2, 3]), {
            k: np.concatenate([o[k] for o in ones]) for k in ones[0]
        }):  # fmt: skip
            want = got if want is None else want
            for k in ("tissue", "haze"):
                np.testing.assert_array_equal(got[k], want[k], err_msg=f"{threads}: {k}")
    assert want["tissue"].std() > 0
