"""Hostile inputs, second pass (issue 31): weights finite but scaled, special files, a
rendezvous with no partner, damaged results and run-many stores, resumes over changed content
and small wrong acceptances. Each is one line naming the file (or option), exit 2, no traceback,
no hang, inputs unchanged."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest
import torch
from test_fuzz_inputs import good_scan, refused

from usdehaze.core.networks import build_network
from usdehaze.core.priors import load_prior, save_prior
from usdehaze.errors import UsageError

GOOD_ROI = {  # one pair in pixels, inside the (24, 16) frames of good_scan
    "version": 1,
    "units": "px",
    "pairs": [
        {
            "name": "a",
            "target": {"shape": "rectangle", "min": [0, 0], "max": [7.5, 23]},
            "background": {"shape": "rectangle", "min": [8, 0], "max": [15, 23]},
        }
    ],
}


# -- 1. weights finite but scaled ---------------------------------------------------------------
def _rescaled_prior(src: Path, dst: Path, scale: float, only: str | None = None) -> Path:
    """A copy of prior ``src`` at ``dst`` with its weights (or those whose name starts with
    ``only``) multiplied by ``scale``, saved with a matching checksum, as a careless hand could."""
    prior = load_prior(src)
    net = build_network(prior.meta["network"])
    state = {
        k: v * scale if (only is None or k.startswith(only)) and v.is_floating_point() else v
        for k, v in prior.net.state_dict().items()
    }
    net.load_state_dict(state)
    assert all(torch.isfinite(v).all() for v in state.values())
    return save_prior(
        dst,
        net,
        network=prior.meta["network"],
        sde=prior.sde,
        normalisation=prior.meta.get("normalisation"),
    )


@pytest.mark.parametrize("scale, only", [(1e30, None), (1e12, "out.")])
def test_prior_with_scaled_weights_refused_at_load(tiny_priors, tmp_path, scale, only):
    bad = _rescaled_prior(tiny_priors[0], tmp_path / "tissue", scale, only)
    with pytest.raises(UsageError, match="probe input") as e:
        load_prior(bad)
    assert str(bad) in str(e.value) and len(str(e.value).splitlines()) == 1
    load_prior(tiny_priors[0])  # the original still loads


def test_run_with_a_scaled_priors_folder_is_one_line(tiny_iq_priors, tmp_path, capsys):
    folder = tmp_path / "priors"
    folder.mkdir()
    for src, name in zip(tiny_iq_priors, ("tissue_iq", "haze_iq")):
        if name == "haze_iq":
            _rescaled_prior(src, folder / name, 1e30)
        else:
            shutil.copy(src, folder / f"{name}.safetensors")
            shutil.copy(src.with_suffix(".json"), folder / f"{name}.json")
    scan = good_scan(tmp_path / "scan.h5")
    out = tmp_path / "r.h5"
    args = ["run", scan, "-o", out, "--priors", folder, "--steps", "2", "-q"]
    refused(capsys, args, "haze_iq.safetensors", "probe input", inputs=(scan, folder))
    assert not out.exists()


def _scaled_student(src: Path, dst: Path, scale: float, only: str | None = None) -> Path:
    from safetensors.torch import load_file

    from usdehaze.core.student import OnePassUNet, StudentNet, save_student
    from usdehaze.jsonio import read_json

    meta = read_json(src.with_suffix(".json"), "student", 1 << 20)
    net = OnePassUNet(StudentNet(**meta["network"]))
    state = load_file(str(src))
    net.load_state_dict(
        {k: v * scale if only is None or k.startswith(only) else v for k, v in state.items()}
    )
    extra = {k: v for k, v in meta.items() if k not in ("format", "network", "checksum", "bytes")}
    return save_student(dst, net, extra)


@pytest.mark.parametrize("scale, only", [(1e30, None), (1e12, "head.")])
def test_student_with_scaled_weights_refused_at_load(tiny_student, tmp_path, scale, only):
    from usdehaze.core.student import load_student

    bad = _scaled_student(tiny_student, tmp_path / "student_iq", scale, only)
    with pytest.raises(UsageError, match="probe input") as e:
        load_student(bad)
    assert str(bad) in str(e.value) and len(str(e.value).splitlines()) == 1
    load_student(tiny_student)


def test_run_fast_with_a_scaled_student_is_one_line(tiny_student, tmp_path, capsys):
    bad = _scaled_student(tiny_student, tmp_path / "student_iq", 1e30)
    scan = good_scan(tmp_path / "scan.h5")
    out = tmp_path / "r.h5"
    args = ["run", scan, "-o", out, "--method", "fast", "--student", bad, "-q"]
    refused(capsys, args, "student_iq.safetensors", "probe input", inputs=(scan, tmp_path))
    assert not out.exists()


# -- 2. special files ---------------------------------------------------------------------------
@contextlib.contextmanager
def deadline(seconds: int = 30):
    """Fail (not hang) when the block takes longer than ``seconds`` (SIGALRM, main thread)."""

    def alarm(signum, frame):
        raise TimeoutError(f"still waiting after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _special(kind: str, path: Path) -> Path:
    """A FIFO or a listening unix socket at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        _SOCKETS.append(sock)
    return path


_SOCKETS: list[socket.socket] = []


@pytest.mark.parametrize("kind, what", [("fifo", "FIFO"), ("socket", "socket")])
@pytest.mark.parametrize(
    "command",
    [
        ["info", "IN"],
        ["run", "IN", "-o", "OUT/r.h5", "-q"],
        ["gcnr", "IN", "--roi", "ROI"],
        ["show", "IN", "-o", "OUT/s.png"],
        ["adapt", "--tissue", "IN", "-o", "OUT/adapted", "-q"],
        ["run-many", "IN", "-o", "OUT/s.zarr", "-q"],
    ],
    ids=lambda c: c[0] if isinstance(c, list) else None,
)
def test_special_file_as_input_refused_without_opening(capsys, tmp_path, command, kind, what):
    src = _special(kind, tmp_path / "scan.h5")
    roi = tmp_path / "roi.json"
    roi.write_text(json.dumps(GOOD_ROI))
    out = tmp_path / "out"
    args = [{"IN": src, "ROI": roi}.get(a, a.replace("OUT", str(out))) for a in command]
    with deadline():
        line = refused(capsys, args, str(src), what)
    assert "expected a regular file" in line
    assert not out.exists()


@pytest.mark.parametrize("which", ["roi", "weights", "config", "student"])
def test_special_file_as_a_side_input_refused(capsys, tmp_path, tiny_priors, tiny_student, which):
    scan = good_scan(tmp_path / "scan.h5")
    out = tmp_path / "r.h5"
    if which == "roi":
        fifo = _special("fifo", tmp_path / "roi.json")
        args = ["gcnr", scan, "--roi", fifo]
    elif which == "student":
        folder = tmp_path / "student"
        folder.mkdir()
        shutil.copy(tiny_student.with_suffix(".json"), folder / "student_iq.json")
        fifo = _special("fifo", folder / "student_iq.safetensors")
        args = ["run", scan, "-o", out, "--method", "fast", "--student", fifo, "-q"]
    else:
        folder = tmp_path / "priors"
        folder.mkdir()
        special = "haze.safetensors" if which == "weights" else "haze.json"
        for src in tiny_priors:
            for suffix in (".safetensors", ".json"):
                name = f"{src.stem}{suffix}"
                if name == special:
                    fifo = _special("fifo", folder / name)
                else:
                    shutil.copy(src.with_suffix(suffix), folder / name)
        args = ["run", scan, "-o", out, "--model", "logsum", "--priors", folder, "--steps", "1"]
        args.append("-q")
    with deadline():
        refused(capsys, args, str(fifo), "FIFO", inputs=(scan,))
    assert not out.exists()


def test_large_sparse_weights_refused_before_hashing(tiny_priors, tmp_path):
    """A weights file far larger than its network could need is refused by size, unread."""
    import time

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_priors[0].with_suffix(suffix), tmp_path / f"tissue{suffix}")
    weights = tmp_path / "tissue.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(64 << 30)  # 64 GiB, sparse: hashing it would take minutes
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match="larger than") as e:
        load_prior(weights)
    assert time.perf_counter() - t0 < 10 and str(weights) in str(e.value)


# -- 3. a rendezvous with no partner ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_world_size_left_in_the_environment_times_out_in_one_line(tmp_path, rank):
    """WORLD_SIZE=2 with no second process: run-many waits USDEHAZE_RENDEZVOUS_TIMEOUT seconds,
    then says what it waited for (rank 0 hosts the store, rank 1 looks for it)."""
    import subprocess
    import sys
    import time

    scan = good_scan(tmp_path / "scan.h5")
    port = _free_port()
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": rank, "MASTER_ADDR": "127.0.0.1"}
    env.update(MASTER_PORT=str(port), USDEHAZE_RENDEZVOUS_TIMEOUT="2", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "usdehaze", "run-many", str(scan), "-o", "s.zarr", "-q"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    err = p.stderr.strip()
    assert p.returncode == 2, (p.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in ("WORLD_SIZE=2", f"RANK={rank}", f"127.0.0.1:{port}", "waited 2 s", "torchrun"):
        assert word in err, (word, err)
    assert took < 60, took
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize(
    "env, words",
    [
        ({"WORLD_SIZE": "abc"}, ["WORLD_SIZE='abc'", "integer"]),
        ({"WORLD_SIZE": "0"}, ["WORLD_SIZE='0'"]),
        ({"WORLD_SIZE": "٢"}, ["WORLD_SIZE="]),  # an Arabic-Indic two
        ({"WORLD_SIZE": "2", "RANK": "2"}, ["RANK='2'", "0 to 1"]),
        ({"WORLD_SIZE": "2", "RANK": "0"}, ["MASTER_ADDR"]),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "x"},
            ["MASTER_PORT='x'"],
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
            | {"USDEHAZE_RENDEZVOUS_TIMEOUT": "-1"},
            ["USDEHAZE_RENDEZVOUS_TIMEOUT='-1'"],
        ),
    ],
)
def test_broken_torchrun_environment_is_one_line(capsys, monkeypatch, tmp_path, env, words):
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT", "USDEHAZE_RENDEZVOUS_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    scan = good_scan(tmp_path / "scan.h5")
    with deadline():
        refused(capsys, ["run-many", scan, "-o", tmp_path / "s.zarr", "-q"], *words)
    assert not (tmp_path / "s.zarr").exists()
    assert not torch.distributed.is_initialized()
