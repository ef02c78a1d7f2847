"""run-many: one zarr store from many scans, sharded over processes, resumable, equal to `run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from procs import kill_tree

from usdehaze.errors import UsageError
from usdehaze.ultrasound.batch_run import run_many
from usdehaze.ultrasound.dehaze import DehazeConfig, run_dehaze
from usdehaze.ultrasound.info import describe
from usdehaze.ultrasound.io import load_scan, write_scan
from usdehaze.ultrasound.results import load_result
from usdehaze.ultrasound.simulate import simulate_cardiac


def _scan(path: Path, frames: int, seed: int) -> Path:
    sim = simulate_cardiac(frames, seed=seed, shape=(48, 32))
    return write_scan(path, sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)


@pytest.fixture
def scans(tmp_path):
    return [_scan(tmp_path / "a.h5", 3, 1), _scan(tmp_path / "b.h5", 2, 2)]


def _cfg(tiny_priors, **kw):
    t, h = tiny_priors
    base = {"tissue_prior": str(t), "haze_prior": str(h), "steps": 3, "device": "cpu"}
    return DehazeConfig(**{**base, "model": "logsum", **kw})


def test_iq_model_store_equals_run(tiny_iq_priors, scans, tmp_path):
    """The default iq model through run-many: each frame as ``usdehaze run`` writes it."""
    out = tmp_path / "iq.zarr"
    cfg = _cfg(tiny_iq_priors, model="iq", batch=2)
    run_many(scans, out, cfg, log=lambda s: None)
    root = zarr.open_group(str(out), mode="r")
    for i, p in enumerate(scans):
        ref = tmp_path / f"iq{i}.h5"
        with load_scan(p) as s:
            run_dehaze(s, ref, cfg)
        with load_result(ref) as r:
            for k in ("input", "tissue", "haze"):
                np.testing.assert_array_equal(root[f"scans/{i:03d}/{k}_db"][:], r.frames(k))
        assert json.loads(root.attrs["config"])["model"] == "iq"


def test_store_equals_run_and_resumes(tiny_priors, scans, tmp_path):
    out = tmp_path / "out.zarr"
    cfg = _cfg(tiny_priors, batch=2)
    fig = run_many(scans, out, cfg, log=lambda s: None)
    assert fig["frames_all"] == 5 and fig["skipped"] == 0
    ref = tmp_path / "a.dehazed.h5"
    with load_scan(scans[0]) as s:
        run_dehaze(s, ref, _cfg(tiny_priors, batch=3))
    with load_result(out / "scans/000") as got, load_result(ref) as want:
        assert got.attrs["complete"] and got.n_frames == 3
        for key in ("input", "tissue", "haze"):
            # batch 2 vs 3: each frame runs on its own, so bit for bit (issue 31 item 12)
            np.testing.assert_array_equal(got.frames(key), want.frames(key))
    # the network evaluations each frame got (3 steps × 2 priors), on the store and each scan
    assert fig["nfe"] == 6 and zarr.open_group(str(out), mode="r").attrs["nfe"] == 6
    with load_result(out / "scans/001") as got, load_result(ref) as want:
        assert got.attrs["nfe"] == 6
        # the one provenance record (driver.provenance), as usdehaze run writes it
        from usdehaze.ultrasound.driver import PROVENANCE_KEYS

        for k in (*PROVENANCE_KEYS, "magnitude_only"):
            if k == "config":  # batch 2 vs 3 (a runtime setting)
                assert {**got.attrs[k], "batch": 3} == want.attrs[k]
            else:
                assert got.attrs[k] == want.attrs[k], k
    # a second run finds everything done; a run with other settings refuses to mix
    fig = run_many(scans, out, cfg, log=lambda s: None)
    assert fig["frames_all"] == 0 and fig["skipped"] == 5
    assert fig["nfe"] == 0 and zarr.open_group(str(out), mode="r").attrs["nfe"] == 6  # kept
    info = describe(out)
    assert info["frames_done"] == "5/5" and len(info["runs"]) == 2
    assert [s["frames"] for s in info["scans"]] == [3, 2]
    with pytest.raises(UsageError, match=r"other config \(\['steps'\]\)"):
        run_many(scans, out, _cfg(tiny_priors, steps=4), log=lambda s: None)
    with pytest.raises(UsageError, match="give -o NAME.zarr"):
        run_many(scans, tmp_path / "out.h5", cfg)


def test_a_store_recorded_before_a_setting_existed_resumes(tiny_priors, scans, tmp_path):
    """A store whose recorded identity lacks a setting added since (rho, which the dps rule
    declares) ran that setting's default: it resumes with the default, not with another value."""
    from dataclasses import replace

    out = tmp_path / "old.zarr"
    cfg = _cfg(tiny_priors, batch=2)
    run_many(scans[:1], out, cfg, log=lambda s: None)
    root = zarr.open_group(str(out), mode="r+")
    identity = json.loads(root.attrs["identity"])
    del identity["config"]["rho"]  # as recorded before the rules declared their parameters
    root.attrs["identity"] = json.dumps(identity)
    assert run_many(scans[:1], out, cfg, log=lambda s: None)["skipped"] == 3
    with pytest.raises(UsageError, match=r"other config \(\['rho'\]\)"):
        run_many(scans[:1], out, replace(cfg, rho=0.5), log=lambda s: None)


def _torchrun(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += ["--standalone", "-m", "usdehaze", "run-many"]  # a free port, not a guessed one
    return subprocess.Popen(
        cmd + args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _done(out: Path) -> int:
    try:
        root = zarr.open_group(str(out), mode="r")
        return sum(int(np.asarray(root[f"scans/{i:03d}/done"][:]).sum()) for i in range(2))
    except Exception:
        return 0


def test_two_gloo_processes_killed_midway_then_resumed(tiny_priors, tmp_path):
    """torchrun with 2 CPU processes; kill the whole run once some frames are done; rerun."""
    a, b = _scan(tmp_path / "a.h5", 8, 3), _scan(tmp_path / "b.h5", 8, 4)
    out = tmp_path / "out.zarr"
    t, h = tiny_priors
    args = [str(a), str(b), "-o", str(out), "--steps", "60", "--batch", "1", "--device", "cpu"]
    args += ["--noise", "per-frame"]
    args += ["--tissue-prior", str(t), "--haze-prior", str(h), "--model", "logsum", "-q"]
    p = _torchrun(args, tmp_path)
    t0 = time.time()
    while _done(out) < 2 and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.2)
    kill_tree(p.pid)
    p.wait()
    first = _done(out)
    assert 2 <= first < 16, first  # killed midway
    p = _torchrun(args, tmp_path)
    log, _ = p.communicate(timeout=300)
    assert p.returncode == 0, log
    assert f"{first} already done, skipped" in log and "2 process(es)" in log, log
    assert _done(out) == 16
    # the resumed, two-process store equals a fresh single-process run
    ref = tmp_path / "ref.zarr"
    # in this process: batch 3 and this process's threads, not 2 processes of 1 frame, 1 thread
    cfg = _cfg(tiny_priors, steps=60, batch=3, noise="per-frame", threads=2)
    run_many([a, b], ref, cfg, log=lambda s: None)
    for i in range(2):
        with (
            load_result(out / f"scans/{i:03d}") as got,
            load_result(ref / f"scans/{i:03d}") as want,
        ):
            assert got.attrs["complete"]
            # a frame's result depends only on the seed, the frame and the settings, bit for
            # bit (issue 31 item 12: it was up to 59 dB off on 0.6 % of the pixels)
            for key in ("tissue", "haze"):
                np.testing.assert_array_equal(got.frames(key), want.frames(key))


def test_resume_identity_is_everything_but_the_runtime_settings():
    """run-many's resume identity: every DehazeConfig field but dehaze.RUNTIME_KEYS (device,
    batch, threads, precision, compile, channels_last, cuda_graphs), from that one list."""
    from dataclasses import replace

    from usdehaze.ultrasound.batch_run import _identity
    from usdehaze.ultrasound.dehaze_config import RUNTIME_KEYS

    assert set(RUNTIME_KEYS) == {
        "device", "batch", "threads", "precision", "compile", "channels_last", "cuda_graphs",
    }  # fmt: skip
    cfg = DehazeConfig()
    base = _identity(cfg, [Path("a.h5")], [range(2)])
    assert set(base["config"]) == set(DehazeConfig.settings()) - set(RUNTIME_KEYS)
    runtime = dict(device="cpu", batch=2, precision="bf16", compile=True, channels_last=False,
                   cuda_graphs=True)  # fmt: skip
    assert _identity(replace(cfg, **runtime), [Path("a.h5")], [range(2)]) == base
    for change in ({"steps": 3}, {"seed": 1}, {"model": "logsum"}, {"gamma": 2.0}, {"rho": 0.5}):
        assert _identity(replace(cfg, **change), [Path("a.h5")], [range(2)]) != base
