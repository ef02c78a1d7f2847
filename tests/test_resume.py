"""Exact resume after a real Ctrl-C (issue 18 item 4): `usdehaze train` and `usdehaze experiment`
get SIGINT in the middle of a training step, are rerun, and end bit for bit where an
uninterrupted run ends (weights, loss log, estimates)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]

# The CLI, with one change: right after the N-th PatchSampler of the process draws its K-th
# batch, the process gets a real SIGINT (as Ctrl-C sends): mid-step, with the step's batch drawn
# but no weight updated yet.
HARNESS = """
import os, signal, sys
from usdehaze.core import data
N, K = int(os.environ["SIGINT_SAMPLER"]), int(os.environ["SIGINT_CALL"])
made, original = [], data.PatchSampler.sample
def sample(self, batch, generator):
    if not any(s is self for s in made):
        made.append(self)
    self._calls = getattr(self, "_calls", 0) + 1
    drawn = original(self, batch, generator)  # the batch generator has moved on
    if K and made.index(self) + 1 == N and self._calls == K:
        os.kill(os.getpid(), signal.SIGINT)
    return drawn
data.PatchSampler.sample = sample
from usdehaze.cli import main
sys.argv[0] = "usdehaze"
main(sys.argv[1:])
"""


def cli(*argv: str, sampler: int = 0, call: int = 0, cwd: Path = ROOT):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SIGINT_SAMPLER": str(sampler),
        "SIGINT_CALL": str(call),
    }
    return subprocess.run(
        [sys.executable, "-c", HARNESS, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), (a.name, k)


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume_data")
    rng = np.random.default_rng(0)
    for name in ("signal", "noise"):
        np.savez(d / f"{name}.npz", images=rng.uniform(-1, 1, (20, 1, 8, 8)).astype(np.float32))
    return d


TRAIN = """data: {{path: {data}/signal.npz, key: images, patch: 6}}
network: {{arch: unet, base: 8, mults: [1, 2]}}
steps: 12
batch: 4
checkpoint_every: 5
log_every: 1
seed: 3
threads: 1
out: {out}
export: {{path: {out}/prior}}
"""


def test_train_resumes_exactly_after_sigint(tmp_path, arrays):
    """SIGINT during step 8 (between checkpoints, which come every 5 steps): the resumed run
    ends with the same weights, EMA and loss log as one uninterrupted run."""
    for run in ("full", "cut"):
        (tmp_path / f"{run}.yaml").write_text(TRAIN.format(data=arrays, out=tmp_path / run))
    r = cli("train", str(tmp_path / "full.yaml"), "--device", "cpu")
    assert r.returncode == 0, r.stderr[-2000:]
    cut = str(tmp_path / "cut.yaml")
    r = cli("train", cut, "--device", "cpu", sampler=1, call=8)
    assert r.returncode == 130, r.stderr[-2000:]
    assert "stopped after step 8:" in r.stderr and "RNG states" in r.stderr
    assert f"usdehaze train {cut} --resume to continue exactly" in r.stderr
    assert not (tmp_path / "cut" / "prior.safetensors").exists()
    r = cli("train", cut, "--device", "cpu", "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "at step 8: kept the network, EMA, optimiser state" in r.stderr
    same_weights(tmp_path / "full" / "prior.safetensors", tmp_path / "cut" / "prior.safetensors")
    full, cut = (torch.load(tmp_path / r / "checkpoint.pt") for r in ("full", "cut"))
    for key in ("net", "ema"):
        for k in full[key]:
            assert torch.equal(full[key][k], cut[key][k]), (key, k)
    assert (tmp_path / "full/loss.csv").read_text() == (tmp_path / "cut/loss.csv").read_text()


EXPERIMENT = """name: tiny
out: {out}
seed: 0
size: 8
channels: 1
threads: 1
device: cpu
batch: 2
signal:
  train: {{kind: npz, path: {data}/signal.npz, count: 16}}
  test: {{kind: npz, path: {data}/signal.npz, offset: 16, count: 2}}
noise:
  kind: images
  train: {{kind: npz, path: {data}/noise.npz, count: 16}}
  test: {{kind: npz, path: {data}/noise.npz, offset: 16, count: 4}}
task: {{kind: blend, beta: 0.5, alpha: 0.5}}
priors:
  sde: {{kind: ve, sigma: 25.0}}
  signal: {{network: {{arch: unet, base: 8, mults: [1, 2]}}, steps: 8, batch: 4}}
  noise: {{network: {{arch: unet, base: 8, mults: [1, 2]}}, steps: 8, batch: 4}}
methods:
  joint: {{rule: pigdm, steps: 4}}
  gan:
    model: {{latent: 4, gen: [8], disc: [8]}}
    train: {{steps: 8, batch: 4}}
    csgm: {{steps: 3, restarts: 1}}
"""


def test_experiment_resumes_exactly_after_sigint(tmp_path, arrays):
    """Ctrl-C in the GAN baseline's step 5 (its loop saved whatever state it was in before):
    the rerun gives the same models and estimates as one uninterrupted run. (The score priors
    train with the DSM trainer, tested above.)"""
    for run in ("full", "cut"):
        (tmp_path / f"{run}.yaml").write_text(EXPERIMENT.format(data=arrays, out=tmp_path / run))
    r = cli("experiment", str(tmp_path / "full.yaml"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    # batch samplers of the first run: 1 signal prior, 2 noise prior, 3 the GAN
    r = cli("experiment", str(tmp_path / "cut.yaml"), "--quiet", sampler=3, call=5)
    assert r.returncode == 130, r.stderr[-2000:]
    assert "gan: stopped after step 5" in r.stderr and "rerun the same command" in r.stderr
    r = cli("experiment", str(tmp_path / "cut.yaml"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "gan: resuming" in r.stderr and "at step 5: kept the networks" in r.stderr
    for f in ("priors/signal", "priors/noise", "baselines/gan_generator"):
        same_weights(tmp_path / "full" / f"{f}.safetensors", tmp_path / "cut" / f"{f}.safetensors")
    full, cut = (np.load(tmp_path / r / "estimates.npz") for r in ("full", "cut"))
    for k in ("joint", "gan"):
        assert np.array_equal(full[k], cut[k]), k
