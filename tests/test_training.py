"""DSM training: the loss prefers the true score, resume is exact, DDP matches one process."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from procs import kill_tree

from usdehaze.core.priors import GaussianPrior, load_prior
from usdehaze.core.sde import VESDE
from usdehaze.core.training import Trainer, config_from_dict, dsm_loss, train
from usdehaze.errors import UsageError


def test_dsm_loss_is_lowest_for_the_true_score():
    sde = VESDE()
    d = 4
    cov = torch.eye(d, dtype=torch.float64) * 0.3 + 0.1
    mean = torch.zeros(d, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x0 = (
        torch.randn(20000, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    ).reshape(-1, 1, 2, 2)
    t = torch.rand(20000, generator=g, dtype=torch.float64) * 0.999 + 0.001
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    true = GaussianPrior(mean.reshape(1, -1), cov, sde)
    wrong = GaussianPrior(mean.reshape(1, -1) + 0.3, cov * 1.5, sde)
    assert dsm_loss(true, x0, sde, t, z) < dsm_loss(wrong, x0, sde, t, z) - 0.01


def _cfg(tmp_path, data, steps=6, **kw):
    base = {
        "data": {"path": str(data), "key": "images", "patch": 8},
        "network": {"arch": "unet", "base": 8, "mults": [1, 2]},
        "steps": steps,
        "batch": 4,
        "checkpoint_every": 3,
        "log_every": 1,
        "seed": 3,
        "out": str(tmp_path / "run"),
        "export": {"path": str(tmp_path / "prior")},
    }
    base.update(kw)
    return config_from_dict(base)


@pytest.fixture
def data(tmp_path):
    arr = np.random.default_rng(0).uniform(-1, 1, (10, 12, 12)).astype(np.float32)
    p = tmp_path / "d.npz"
    np.savez(p, images=arr)
    return p


def test_resume_is_exact(tmp_path, data):
    a = Trainer(_cfg(tmp_path / "a", data, steps=6), progress=False)
    a.fit()
    b = Trainer(_cfg(tmp_path / "b", data, steps=3), progress=False)
    b.fit()
    c = Trainer(_cfg(tmp_path / "b", data, steps=6), progress=False)
    assert c.load_checkpoint() and c.step == 3
    c.fit()
    for pa, pc in zip(a.net.parameters(), c.net.parameters()):
        assert torch.equal(pa, pc)


def test_export_and_load_round_trip(tmp_path, data):
    path = train(_cfg(tmp_path, data, steps=4), device="cpu", progress=False)
    prior = load_prior(path)
    assert prior.meta["training"]["steps"] == 4 and (tmp_path / "run" / "loss.png").is_file()
    x = torch.randn(2, 1, 20, 36)  # trained on 8x8 patches, runs on any size
    assert prior(x, torch.tensor([0.3, 0.7])).shape == x.shape
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match="checksum"):
        load_prior(path)


def test_export_only_writes_the_checkpoint_prior(tmp_path, data):
    """A stopped (or running) training exports its EMA prior without taking a step."""
    from usdehaze.core.training import export_checkpoint

    cfg = _cfg(tmp_path, data, steps=3)
    with pytest.raises(UsageError, match="no checkpoint"):
        export_checkpoint(cfg)
    full = load_prior(train(cfg, device="cpu", progress=False))
    mid = _cfg(tmp_path, data, steps=3, export={"path": str(tmp_path / "mid")})
    path, step = export_checkpoint(mid)
    assert step == 3 and path == tmp_path / "mid.safetensors"
    again = load_prior(path)
    assert again.meta["training"]["steps"] == 3
    for a, b in zip(full.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)


def test_config_errors(tmp_path, data):
    with pytest.raises(UsageError, match="key 'stepz'"):
        config_from_dict({"data": {"path": "x"}, "stepz": 1})
    with pytest.raises(UsageError, match="data.path"):
        config_from_dict({"steps": 1})
    with pytest.raises(UsageError, match="not found"):
        Trainer(_cfg(tmp_path, tmp_path / "missing.npz"), progress=False)


def test_tiny_network_learns_a_gaussian_mixture(tmp_path):
    """Two modes at ±0.6 (2-D points as 2-channel 1×1 images): samples land on both."""
    rng = np.random.default_rng(0)
    modes = np.array([[0.6, 0.6], [-0.6, -0.6]], np.float32)
    pts = modes[rng.integers(0, 2, 4000)] + 0.05 * rng.standard_normal((4000, 2)).astype(np.float32)
    np.savez(tmp_path / "gmm.npz", images=pts.reshape(-1, 2, 1, 1))
    cfg = config_from_dict(
        {
            "data": {
                "path": str(tmp_path / "gmm.npz"),
                "key": "images",
                "patch": None,
                "flips": False,
            },
            "network": {"arch": "mlp", "hidden": 128, "layers": 3},
            "steps": 2000,
            "batch": 128,
            "lr": 1e-3,
            "ema": 0.99,
            "seed": 0,
            "out": str(tmp_path / "run"),
            "checkpoint_every": 1000,
        }
    )
    tr = Trainer(cfg, progress=False)
    tr.fit()
    prior, sde = tr.prior(), tr.sde
    g = torch.Generator().manual_seed(1)
    x = sde.prior_sample((400, 2, 1, 1), g)
    ts = sde.timesteps(300)
    with torch.no_grad():
        for i in range(300):
            t, dt = ts[i], float(ts[i] - ts[i + 1])
            gt = float(sde.g(t))
            x = x + gt**2 * prior(x, t.reshape(1).float()) * dt
            if i < 299:
                x = x + gt * dt**0.5 * torch.randn(x.shape, generator=g)
    x = x.reshape(-1, 2).numpy()
    d = np.linalg.norm(x[:, None] - modes[None], axis=2)
    near = d.min(1) < 0.25
    assert near.mean() > 0.8
    share = (d.argmin(1)[near] == 0).mean()
    assert 0.25 < share < 0.75


@pytest.mark.slow
def test_ddp_two_processes_match_one_with_the_doubled_batch(tmp_path, data):
    """2 gloo processes with global batch 4 == 1 process with batch 4 (same global batch)."""
    one = Trainer(_cfg(tmp_path / "one", data, steps=3), progress=False)
    one.fit()
    cfg_path = tmp_path / "ddp.yaml"
    import yaml

    cfg = {
        "data": {"path": str(data), "key": "images", "patch": 8},
        "network": {"arch": "unet", "base": 8, "mults": [1, 2]},
        "steps": 3,
        "batch": 4,
        "checkpoint_every": 3,
        "log_every": 1,
        "seed": 3,
        "out": str(tmp_path / "two" / "run"),
        "export": {"path": str(tmp_path / "two" / "prior")},
    }
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--standalone",  # rendezvous on a free port
            "--log-dir",
            str(tmp_path / "logs"),
            "--redirects",
            "3",
            "-m",
            "usdehaze",
            "train",
            str(cfg_path),
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)  # torchrun and its workers: none left behind
        _, err = proc.communicate()
    workers = "".join(
        f"{p.parent.name}: {p.read_text()[-600:]}"
        for p in sorted((tmp_path / "logs").rglob("stderr.log"))
    )
    assert proc.returncode == 0, err[-1000:] + workers
    state = torch.load(tmp_path / "two" / "run" / "checkpoint.pt", weights_only=True)
    for name, p in one.net.state_dict().items():
        assert torch.allclose(p, state["net"][name], atol=1e-5), name


def test_masked_patch_sampler_centres_patches_on_the_mask():
    """Frames of two sizes; a small region in one: every patch holds masked pixels from it."""
    from usdehaze.core.data import MaskedPatchSampler

    a = np.arange(2 * 1 * 40 * 30, dtype=np.float32).reshape(2, 1, 40, 30)
    b = -np.ones((3, 1, 20, 50), np.float32)
    region = np.zeros((40, 30), bool)
    region[2:6, 25:29] = True  # 16 pixels near a corner, far smaller than a patch
    s = MaskedPatchSampler([a, b], [region, None], patch=64, flips=True)
    assert s.patch == 20 and s.channels == 1 and s.pixels == 2 * 16 + 3 * 20 * 50
    x, m = s.sample(400, torch.Generator().manual_seed(0))
    assert x.shape == (400, 1, 20, 20) and m.shape == (400, 1, 20, 20)
    from_a = x[:, 0, 0, 0] >= 0
    assert 0 < int(from_a.sum()) < 400
    assert torch.all(m[from_a].sum(dim=(1, 2, 3)) >= 1)  # centred on the region
    assert torch.all(m[~from_a] == 1)  # an array without a mask: every pixel counts
    inside = a[:, 0][:, region]  # values under the mask, flips or not
    assert np.isin(x[from_a][m[from_a] > 0].numpy(), inside).all()


def test_masked_loss_with_a_full_mask_is_the_plain_loss(tmp_path, data):
    """The masked mean over an all-ones mask is the plain mean: same training, same weights."""

    class Ones:
        def __init__(self, inner):
            self.inner, self.channels = inner, inner.channels

        def sample(self, batch, generator):
            x = self.inner.sample(batch, generator)
            return x, torch.ones(x.shape[0], 1, *x.shape[2:])

    plain = Trainer(_cfg(tmp_path / "a", data, steps=3), progress=False)
    plain.fit()
    masked = Trainer(_cfg(tmp_path / "b", data, steps=3), progress=False)
    masked.sampler = Ones(masked.sampler)
    masked.fit()
    for p, q in zip(plain.net.parameters(), masked.net.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_time_budget_ends_training_and_a_rerun_continues(tmp_path, data):
    tr = Trainer(_cfg(tmp_path, data, steps=10**6), progress=False)
    tr.fit(seconds=0.3)
    assert tr.seconds >= 0.3 and 0 < tr.step < 10**6
    again = Trainer(_cfg(tmp_path, data, steps=10**6), progress=False)
    assert again.load_checkpoint() and again.step == tr.step and again.seconds == tr.seconds
    again.fit(seconds=0.6)
    assert again.step > tr.step and again.seconds >= 0.6
    again.fit(seconds=0.6)  # budget spent: no step
    assert Trainer(_cfg(tmp_path, data), progress=False).load_checkpoint()


def test_ctrl_c_finishes_the_step_and_saves_it(tmp_path, data):
    """A real SIGINT mid-step: the step completes, the checkpoint holds it, then the loop stops."""
    import signal

    tr = Trainer(_cfg(tmp_path, data, steps=100, checkpoint_every=1000), progress=False)
    inner = tr.sampler.sample

    def sample(batch, generator):
        if tr.step == 2:
            signal.raise_signal(signal.SIGINT)  # lands inside step 3
        return inner(batch, generator)

    tr.sampler.sample = sample
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert tr.step == 3
    state = torch.load(tr.checkpoint_path, weights_only=True)
    assert state["step"] == 3
    for name, p in tr.net.state_dict().items():
        assert torch.equal(p, state["net"][name])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_prior_pair_is_renamed_together_after_ctrl_c(tmp_path, monkeypatch):
    """Ctrl-C while save_prior writes is held until both files are in place: the new pair loads."""
    import signal

    import safetensors.torch

    from usdehaze.core.networks import build_network
    from usdehaze.core.priors import save_prior

    net_cfg = {"arch": "unet", "base": 8, "mults": [1, 2], "channels": 1}
    save_prior(tmp_path / "p", build_network(net_cfg), network=net_cfg, sde=VESDE())
    write = safetensors.torch.save_file

    def interrupted(*args, **kw):
        signal.raise_signal(signal.SIGINT)
        return write(*args, **kw)

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    torch.manual_seed(5)
    with pytest.raises(KeyboardInterrupt):
        save_prior(
            tmp_path / "p", build_network(net_cfg), network=net_cfg, sde=VESDE(), data={"n": 2}
        )
    assert load_prior(tmp_path / "p.safetensors").meta["data"] == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.safetensors"]
