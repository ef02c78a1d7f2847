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
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_inputs import GOOD_ROI, good_scan, refused  # GOOD_ROI: one pair in good_scan

from usdehaze.core.networks import build_network
from usdehaze.core.priors import load_prior, save_prior
from usdehaze.errors import UsageError


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


# -- 4. damaged results and run-many stores -----------------------------------------------------
DAMAGE_EXAMPLES = settings(
    max_examples=int(os.environ.get("USDEHAZE_DAMAGE_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not os.environ.get("USDEHAZE_FUZZ_RANDOM"),
    database=None,
)
ATTR_DAMAGE = {  # attribute: values a reader must refuse
    "complete": ["yes", [1, 2]],
    "grid": ["hexagonal", 3],
    "frames_done": [-1, "all"],
    "runs": ["not json {", "[1, 2]"],
    "identity": ["{", "[]"],
    "n_scans": ["x", 0],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_priors):
    """Finished results (HDF5, zarr) and a run-many store of two small scans, with the
    resume command that finds the store complete."""
    from test_run_many import _cfg, _scan

    from usdehaze.ultrasound.batch_run import run_many
    from usdehaze.ultrasound.dehaze import run_dehaze
    from usdehaze.ultrasound.io import load_scan

    d = tmp_path_factory.mktemp("finished")
    scans = [_scan(d / "a.h5", 3, 1), _scan(d / "b.h5", 2, 2)]
    cfg = _cfg(tiny_priors, steps=2)
    run_many(scans, d / "store.zarr", cfg, log=lambda s: None)
    for suffix in ("h5", "zarr"):
        with load_scan(scans[0]) as s:
            run_dehaze(s, d / f"r.{suffix}", cfg)
    roi = d / "roi.json"
    pair = {"target": {"shape": "rectangle", "min": [0, 0], "max": [15, 47]}}
    pair["background"] = {"shape": "rectangle", "min": [16, 0], "max": [31, 47]}
    roi.write_text(json.dumps({"version": 1, "units": "px", "pairs": [{"name": "a", **pair}]}))
    t, h = tiny_priors
    resume = ["run-many", *scans, "-o", "STORE", "--tissue-prior", t, "--haze-prior", h]
    resume += ["--steps", "2", "--model", "logsum", "--device", "cpu", "-q"]
    return {"dir": d, "roi": roi, "resume": resume}


def _cli(capsys, args: list) -> tuple[int, str, str]:
    from usdehaze.cli._app import run_app

    capsys.readouterr()
    code = run_app([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


def _readers(target: Path, roi: Path, work: Path) -> dict[str, list]:
    """The commands that read a result back (show writes its figure into ``work``)."""
    return {
        "info": ["info", target, "--json"],
        "gcnr": ["gcnr", target, "--roi", roi, "--json"],
        "show": ["show", target, "-o", work / "s.png"],
    }


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst


def _damage(target: Path, how: str, name: str, value: object = None) -> bool:
    from damage import DATASET_DAMAGE, set_attr

    if how == "attr":
        set_attr(target, name, value)
        return True
    return DATASET_DAMAGE[how](target, name) is not False


def _assert_refused_or_unchanged(code, out, err, want, named: Path) -> None:
    """Exit 2 with one line naming the file, or exactly what the undamaged file gives."""
    assert "Traceback" not in err + out, err
    if code == 2:
        assert len(err.splitlines()) == 1 and str(named) in err, err
    else:
        assert (code, out) == want, (code, err, out[-300:])


def _check_damaged(capsys, finished, kind: str, how: str, name: str, value, work: Path):
    from test_fuzz_inputs import snapshot

    src = finished["dir"] / kind
    group = "scans/000" if kind == "store.zarr" else ""
    clean = _copy(src, work / "clean" / kind)
    bad = _copy(src, work / "bad" / kind)
    if not _damage(bad / group if group else bad, how, name, value):
        return False
    before = snapshot(bad)
    for cmd, args in _readers(bad / group if group else bad, finished["roi"], work / "bad").items():
        want_args = _readers(clean / group if group else clean, finished["roi"], work / "clean")
        wcode, wout, _ = _cli(capsys, want_args[cmd])
        code, out, err = _cli(capsys, args)
        wout = wout.replace(str(work / "clean"), str(work / "bad"))
        _assert_refused_or_unchanged(code, out, err, (wcode, wout), bad)
        if cmd == "show" and code == 0:
            assert (work / "bad/s.png").read_bytes() == (work / "clean/s.png").read_bytes()
    assert snapshot(bad) == before, "a reader changed the damaged file"
    if kind == "store.zarr":
        info_code, _, err = _cli(capsys, ["info", bad])
        assert info_code in (0, 2) and "Traceback" not in err
        if how in ("corrupt_chunk", "delete_chunk") and name.endswith("_db"):
            assert info_code == 2 and str(bad) in err, err  # a frame's images lost: not fine
        args = [bad if a == "STORE" else a for a in finished["resume"]]
        code, out, err = _cli(capsys, args)
        assert "Traceback" not in err + out, err
        if code == 2:
            assert len(err.splitlines()) == 1 and str(bad) in err, err
            assert snapshot(bad) == before, "a refused resume changed the store"
        else:
            assert code == 0, err
    return True


@DAMAGE_EXAMPLES
@given(
    kind=st.sampled_from(["r.h5", "r.zarr", "store.zarr"]),
    how=st.sampled_from(
        ["remove", "flatten", "strings", "longer", "corrupt_chunk", "delete_chunk"]
        + ["break_metadata", "attr"]
    ),
    pick=st.integers(0, 1000),
)
def test_damaged_result_or_store_is_one_line_or_unchanged(capsys, finished, kind, how, pick):
    """Property: damage one dataset, chunk or attribute of a finished result or store at random;
    info, gcnr and show (and a run-many resume of the store) each either refuse it in one line
    naming the file (exit 2, the file unchanged) or give exactly what the undamaged copy gives."""
    from damage import datasets
    from hypothesis import assume

    src = finished["dir"] / kind
    group_dir = src / "scans/000" if kind == "store.zarr" else src
    value = None
    if how == "attr":
        keys = sorted(ATTR_DAMAGE) if kind == "store.zarr" else ["complete", "grid", "frames_done"]
        name = keys[pick % len(keys)]
        value = ATTR_DAMAGE[name][pick // len(keys) % len(ATTR_DAMAGE[name])]
    else:
        names = datasets(group_dir)
        name = names[pick % len(names)]
    with tempfile.TemporaryDirectory() as tmp:
        assume(_check_damaged(capsys, finished, kind, how, name, value, Path(tmp)))


@pytest.mark.parametrize(
    "kind, how, name",
    [
        ("r.h5", "remove", "tissue_db"),
        ("r.h5", "flatten", "tissue_db"),
        ("r.h5", "strings", "tissue_db"),
        ("r.h5", "longer", "axes_theta"),
        ("r.h5", "corrupt_chunk", "tissue_db"),
        ("r.zarr", "corrupt_chunk", "tissue_db"),
        ("r.zarr", "delete_chunk", "tissue_db"),
        ("r.zarr", "delete_chunk", "z"),
        ("r.zarr", "break_metadata", "tissue_db"),
        ("store.zarr", "delete_chunk", "tissue_db"),
        ("store.zarr", "corrupt_chunk", "tissue_db"),
        ("store.zarr", "corrupt_chunk", "haze_db"),
        ("store.zarr", "longer", "done"),
    ],
)
def test_issue_damages_are_one_line(capsys, finished, tmp_path, kind, how, name):
    """The damages the issue saw: info, gcnr and show refuse them (info called a store with
    a corrupt chunk fine: it read metadata only; it now decodes every frame done)."""
    src = finished["dir"] / kind
    bad = _copy(src, tmp_path / kind)
    target = bad / "scans/000" if kind == "store.zarr" else bad
    assert _damage(target, how, name)
    readers = _readers(target, finished["roi"], tmp_path)
    if kind == "store.zarr":  # info on the whole store names the damaged group and key
        readers["info store"] = ["info", bad]
    if name == "haze_db":  # gcnr and show read the tissue only
        readers = {k: v for k, v in readers.items() if k.startswith("info")}
    for cmd, args in readers.items():
        code, out, err = _cli(capsys, args)
        assert code == 2 and len(err.splitlines()) == 1, (cmd, code, err)
        assert str(target) in err and "Traceback" not in err, err
        assert f"'{name}'" in err, err  # the damaged key named


@pytest.mark.parametrize(
    "kind, group", [("r.zarr", ""), ("store.zarr", ""), ("store.zarr", "scans/000")]
)
def test_broken_group_metadata_is_one_line(capsys, finished, tmp_path, kind, group):
    """A result's or store's own zarr.json cut in half: one line naming the file, exit 2, for
    every reader and a resume, the store unchanged."""
    from test_fuzz_inputs import snapshot

    bad = _copy(finished["dir"] / kind, tmp_path / kind)
    meta = bad / group / "zarr.json"
    meta.write_text(meta.read_text()[: len(meta.read_text()) // 2])
    before = snapshot(bad)
    commands = list(_readers(bad, finished["roi"], tmp_path).values())
    if kind == "store.zarr":
        commands.append([bad if a == "STORE" else a for a in finished["resume"]])
    for args in commands:
        code, out, err = _cli(capsys, args)
        assert code == 2 and len(err.splitlines()) == 1, (args[0], code, err)
        assert str(bad) in err and "Traceback" not in err + out, err
    assert snapshot(bad) == before


@pytest.mark.parametrize("value", ["not json {", '{"a": 1}'])
def test_store_runs_attribute_not_a_json_list(capsys, finished, tmp_path, value):
    from damage import set_attr
    from test_fuzz_inputs import snapshot

    bad = _copy(finished["dir"] / "store.zarr", tmp_path / "store.zarr")
    set_attr(bad, "runs", value)
    before = snapshot(bad)
    for args in (["info", bad], [bad if a == "STORE" else a for a in finished["resume"]]):
        code, _, err = _cli(capsys, args)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "'runs'" in err and str(bad) in err
    assert snapshot(bad) == before


# -- 5. a resume checks content, not names ------------------------------------------------------
@pytest.mark.parametrize("changed", ["scan", "tissue prior"])
def test_resume_refuses_changed_content_under_the_same_names(
    capsys, tmp_path, tiny_priors, changed
):
    from test_fuzz_inputs import snapshot
    from test_run_many import _scan

    from usdehaze.ultrasound.batch_run import run_many
    from usdehaze.ultrasound.dehaze import DehazeConfig

    priors = tmp_path / "priors"
    priors.mkdir()
    for src in tiny_priors:
        for suffix in (".safetensors", ".json"):
            shutil.copy(src.with_suffix(suffix), priors / f"{src.stem}{suffix}")
    scan = _scan(tmp_path / "a.h5", 2, 1)
    out = tmp_path / "s.zarr"
    cfg = DehazeConfig(priors=str(priors), model="logsum", steps=2, device="cpu")
    run_many([scan], out, cfg, log=lambda s: None)
    args = ["run-many", scan, "-o", out, "--priors", priors, "--model", "logsum", "--steps", "2"]
    args += ["--device", "cpu", "-q"]
    assert _cli(capsys, args)[0] == 0  # unchanged: resumes (nothing left to do)
    if changed == "scan":
        _scan(tmp_path / "b.h5", 2, 7).replace(scan)  # another scan under the same name
        words = [str(scan), "changed since", str(out)]
    else:  # priors re-adapted in the same folder
        _rescaled_prior(tiny_priors[0], priors / "tissue", 0.5)
        words = [str(out), "other tissue weights"]
    before = snapshot(out)
    code, _, err = _cli(capsys, args)
    assert code == 2 and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    assert snapshot(out) == before
    assert _cli(capsys, [*args, "--overwrite"])[0] == 0  # starting over is still possible


# -- 6. more tracebacks, now one line (item 4) --------------------------------------------------
@pytest.mark.parametrize("value", ["", ".", ".."])
def test_prior_path_naming_no_file_is_one_line(capsys, tmp_path, value):
    """--tissue-prior '' (typer reads it as '.') ended in pathlib's 'has an empty name'."""
    out = tmp_path / "o.h5"
    refused(capsys, ["run", "--demo", "-o", out, "--tissue-prior", value, "-q"], "tissue_prior")
    assert not out.exists()


@pytest.mark.parametrize("value", ["60", [60], True])
def test_student_json_wrong_type_is_one_line(capsys, tmp_path, tiny_student, value):
    """A student whose JSON holds a string, list or boolean where dynamic_range's number belongs."""
    dst = tmp_path / "student_iq"
    shutil.copy(tiny_student.with_suffix(".safetensors"), dst.with_suffix(".safetensors"))
    meta = json.loads(tiny_student.with_suffix(".json").read_text())
    meta["dynamic_range"] = value
    dst.with_suffix(".json").write_text(json.dumps(meta))
    args = ["run", "--demo", "-o", tmp_path / "o.h5", "--method", "fast", "--student", dst, "-q"]
    refused(capsys, args, dst.with_suffix(".json"), "dynamic_range", inputs=(dst.parent,))


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_info_to_a_full_device_is_one_line(tmp_path, json_flag):
    """stdout on a full device (/dev/full): one line naming standard output, exit 2."""
    import subprocess
    import sys

    scan = good_scan(tmp_path / "s.h5")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [sys.executable, "-m", "usdehaze", "info", str(scan), *json_flag],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    err = p.stderr.strip()
    assert p.returncode == 2 and len(err.splitlines()) == 1, err
    assert "standard output" in err and "No space left" in err, err


def _train_yaml(tmp_path: Path, extra: str) -> Path:
    import numpy as np

    np.savez(tmp_path / "d.npz", images=np.zeros((4, 16, 16), np.float32))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {{path: {tmp_path / 'd.npz'}, key: images, patch: 16}}\n"
        f"steps: 1\nbatch: 2\nout: {tmp_path / 'out'}\n{extra}\n"
    )
    return cfg


@pytest.mark.parametrize(
    "extra, words",
    [
        ("network: {arch: unet, base: 0, mults: [1, 2]}", ["'network'", "no units"]),
        ("network: {arch: unet, base: 4, mults: [1, 0]}", ["'network'", "no units"]),
        ("export: {path: 5}", ["'export.path'", "5"]),
        ("export: {path: p, data: 3}", ["'export.data'"]),
        ("warmup: '10'", ["'warmup'", "integer"]),
    ],
)
def test_training_config_wrong_values_are_one_line(capsys, tmp_path, extra, words):
    cfg = _train_yaml(tmp_path, extra)
    refused(capsys, ["train", cfg], cfg.name, *words)
    assert not (tmp_path / "out").exists()


def experiment_config_with(tmp_path: Path, path: tuple[str, ...], value: Any) -> Path:
    """configs/natural_small.yaml with the key at ``path`` set to ``value`` and its output in
    ``tmp_path / "run"``, written to ``tmp_path / "e.yaml"``."""
    import yaml

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs/natural_small.yaml").read_text())
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    cfg["out"] = str(tmp_path / "run")
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


@pytest.mark.parametrize(
    "path, value, words",
    [
        (("signal", "test", "count"), -3, ["signal.test", "'count'"]),
        (("noise", "train", "count"), 1.5, ["noise.train", "'count'"]),
        (("figure", "rows"), -1, ["'figure.rows'"]),
        (("priors", "signal", "steps"), "3000", ["priors.signal", "'steps'"]),
        (("priors", "noise", "network", "base"), 0, ["priors.noise", "no units"]),
    ],
)
def test_experiment_config_wrong_values_refused_before_work(capsys, tmp_path, path, value, words):
    """Values used only after data loads or a prior trains are checked first: nothing made."""
    f = experiment_config_with(tmp_path, path, value)
    refused(capsys, ["experiment", f, "--quiet"], f.name, *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "env, words",
    [
        ({"DISPLAY": ":DEAD"}, ["no display server answers", "DISPLAY="]),
        ({"WAYLAND_DISPLAY": "usdehaze-no-such-wayland"}, ["no display server answers"]),
        ({"QT_QPA_PLATFORM": "offscreen"}, ["QT_QPA_PLATFORM=offscreen"]),
    ],
)
def test_view_with_a_display_nobody_serves_is_one_line(capsys, monkeypatch, tmp_path, env, words):
    """Qt aborted the whole process (or vispy crashed offscreen): refused before Qt loads."""
    import sys

    if sys.platform in ("darwin", "win32"):
        pytest.skip("Qt's own display there")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    if env.get("DISPLAY") == ":DEAD":  # a display number no X server listens on
        number = next(n for n in range(4000, 5000) if not Path(f"/tmp/.X11-unix/X{n}").exists())
        env = {"DISPLAY": f":{number}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    scan = good_scan(tmp_path / "s.h5")
    refused(capsys, ["view", scan], scan, "display", *words, inputs=(scan,))


def test_view_roi_broken_json_is_one_line(capsys, monkeypatch, tmp_path):
    from usdehaze.cli import view_cmd

    monkeypatch.setattr(view_cmd, "display_problem", lambda: None)
    scan = good_scan(tmp_path / "s.h5")
    roi = tmp_path / "r.json"
    roi.write_text('{"version": 1, "pairs": [')
    refused(capsys, ["view", scan, "--roi", roi], roi, inputs=(scan, roi))


# -- 7. wrong acceptances, now refused (item 6) -------------------------------------------------
@pytest.mark.parametrize("spec", ["٠:١", "１", "0:²"])
def test_frames_with_non_ascii_digits_refused(capsys, tmp_path, spec):
    """int() reads Arabic-Indic, full-width and superscript digits: only 0-9 are frame numbers."""
    scan = good_scan(tmp_path / "s.h5")
    out = tmp_path / "o.h5"
    refused(capsys, ["run", scan, "-o", out, "--frames", spec], "--frames", spec, inputs=(scan,))
    assert not out.exists()


NULL = ("expected a mapping", "empty section")


@pytest.mark.parametrize(
    "text, said",
    [
        ("sampler:\n  steps: 2\nsampler:\n  steps: 3\n", ("'sampler' given twice",)),
        ("sampler:\n  steps: 2\n  steps: 3\n", ("'steps' given twice",)),
        ("lam: 1.0\nlam: 2.0\n", ("'lam' given twice",)),
        ("sampler:\nsteps: 3\n", ("key 'sampler'", *NULL)),  # the settings lost their indent
        ("runtime: null\n", ("key 'runtime'", *NULL)),
        ("method: joint\nmodel:\n  gamma: 2\nsampler:\n", ("key 'sampler'", *NULL)),
    ],
)
def test_yaml_key_twice_or_null_section_refused(capsys, tmp_path, text, said):
    """PyYAML keeps the last of two equal keys silently, and a null section ran the defaults
    without a word (issue 31 item 6): a config doing either is refused, naming the key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    out = tmp_path / "o.h5"
    refused(capsys, ["run", "--demo", "-o", out, "--config", cfg], cfg, *said)
    assert not out.exists()


@pytest.mark.parametrize(
    "path", [("priors",), ("priors", "signal"), ("methods", "bm3d"), ("noise", "test"), ("paper",)]
)
def test_experiment_config_null_section_refused(capsys, tmp_path, path):
    """``priors:`` with nothing under it trained default priors without a word."""
    f = experiment_config_with(tmp_path, path, None)
    refused(
        capsys, ["experiment", f, "--quiet"], f.name, f"key '{'.'.join(path)}'", "empty section"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "script, text, words",
    [
        ("make_corpus.py", "out: x\ntrain:\nval: {}\n", ["'train'", "empty section"]),
        ("distil_student.py", "out: a\nout: b\n", ["'out' given twice"]),
        ("train_student_bmode.py", "out: a\ndistil: null\n", ["'distil'", "empty section"]),
    ],
)
def test_pipeline_config_twice_or_null_is_one_line(tmp_path, script, text, words):
    """The pipelines read their YAML with yaml.safe_load: a key twice kept the last silently."""
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    p = subprocess.run(
        [sys.executable, str(root / "pipelines" / script), str(cfg)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    err = p.stderr.strip()
    assert p.returncode == 2 and len(err.splitlines()) == 1, err
    assert str(cfg) in err and all(w in err for w in words), err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.yaml"]  # nothing made


def test_yaml_merge_key_may_still_be_overridden(tmp_path):
    from usdehaze.config import read_yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: &b {steps: 2, lam: 1.0}\nsampler:\n  <<: *b\n  steps: 3\n")
    assert read_yaml(cfg)["sampler"] == {"steps": 3, "lam": 1.0}


@pytest.mark.parametrize("value", [1e300, -1e7, 10**400])
def test_roi_with_absurd_coordinates_refused(capsys, tmp_path, value):
    """A region reaching 1e300 measured the clipped frame silently (exit 0)."""
    scan = good_scan(tmp_path / "s.h5")
    roi = json.loads(json.dumps(GOOD_ROI))
    roi["pairs"][0]["target"]["max"] = [value, 23]
    f = tmp_path / "r.json"
    f.write_text(json.dumps(roi))
    refused(capsys, ["gcnr", scan, "--roi", f], f, "target.max", inputs=(scan, f))


def test_swapped_tissue_and_haze_priors_refused(capsys, tmp_path):
    """A priors folder whose tissue file is the haze prior (and back): each JSON records what it
    was trained on (data.content), so the swap is one line naming the file, before any work."""
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    folder = tmp_path / "priors"
    folder.mkdir()
    for src, dst in (("tissue", "haze"), ("haze", "tissue")):
        for suffix in (".safetensors", ".json"):
            shutil.copy(WEIGHTS_DIR / f"{src}{suffix}", folder / f"{dst}{suffix}")
    out = tmp_path / "o.h5"
    args = ["run", "--demo", "-o", out, "--priors", folder, "--model", "logsum", "-q"]
    refused(capsys, args, folder / "tissue.json", "data.content", "swapped", inputs=(folder,))
    assert not out.exists()


# -- 8. every writer of a store takes its lock (item 8) -----------------------------------------
def test_run_refuses_a_store_another_process_is_writing(capsys, tmp_path, tiny_priors):
    """run -o X.zarr replaced a run-many store while the run-many was still writing it (which
    then died with KeyError 'input_db'): run's writer takes the store's lock too."""
    from test_fuzz_inputs import snapshot
    from test_run_many import _cfg, _scan

    from usdehaze.ultrasound.batch_run import run_many
    from usdehaze.ultrasound.results import store_lock

    scan = _scan(tmp_path / "a.h5", 2, 1)
    store = tmp_path / "s.zarr"
    run_many([scan], store, _cfg(tiny_priors, steps=2), log=lambda s: None)
    before = snapshot(store)
    t, h = tiny_priors
    args = ["run", scan, "-o", store, "--tissue-prior", t, "--haze-prior", h]
    args += ["--steps", "2", "--model", "logsum", "--device", "cpu", "-q"]
    with store_lock(store):  # as a run-many holds it for its whole run
        refused(capsys, args, store, "another usdehaze run-many", inputs=(scan,))
    assert snapshot(store) == before
    assert _cli(capsys, ["info", store])[0] == 0  # still the run-many store, whole


# -- 9. simulate keeps the user's regions (item 5) ----------------------------------------------
def test_simulate_keeps_a_roi_file_edited_since_it_wrote_it(capsys, tmp_path):
    """simulate X.h5 over its own earlier scan replaced X.roi.json even when the user had
    written their own regions there (keeping its marker); now only while it is unchanged."""
    from test_fuzz_inputs import snapshot

    out, roi = tmp_path / "sim.h5", tmp_path / "sim.roi.json"
    args = ["simulate", out, "--frames", "1"]
    assert _cli(capsys, args)[0] == 0
    assert _cli(capsys, args)[0] == 0  # unchanged since written: a rerun may replace both
    data = json.loads(roi.read_text())
    data["pairs"][0]["name"] = "my_region"  # the user's edit, marker kept
    roi.write_text(json.dumps(data))
    before = snapshot(out, roi)
    refused(capsys, args, roi, "changed since usdehaze simulate wrote it")
    assert snapshot(out, roi) == before  # neither the scan nor the user's regions replaced


@pytest.mark.parametrize("inside", ["", "sub"])
def test_train_into_its_own_data_folder_refused(capsys, tmp_path, inside):
    """out: the data folder itself (or a folder inside it): checkpoints among the data."""
    from test_fuzz_inputs import snapshot

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.png").write_bytes(b"not read: refused before loading")
    out = data / inside if inside else data
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {{path: {data}}}\nsteps: 1\nbatch: 2\nout: {out}\n"
        f"export: {{path: {tmp_path / 'prior'}}}\n"
    )
    before = snapshot(data)
    refused(capsys, ["train", cfg], "'out'", "training data folder")
    assert snapshot(data) == before


# -- 10. a second Ctrl-C during the partial save (item 6) ---------------------------------------
@pytest.mark.parametrize("gap", [0.02, 0.3])
def test_second_ctrl_c_during_the_save_still_exits_130(tmp_path, tiny_priors, gap):
    """Two SIGINTs ``gap`` s apart: the second tore the save (a traceback) or, arriving during
    the interpreter's exit, killed the process by SIGINT (exit -2). Now: 130, the partial
    result whole, no traceback."""
    import subprocess
    import sys
    import time

    from test_run_many import _scan

    from usdehaze.ultrasound.results import load_result

    scan = _scan(tmp_path / "a.h5", 60, 1)
    out = tmp_path / "r.h5"
    t, h = tiny_priors
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env["OMP_NUM_THREADS"] = "1"
    args = [sys.executable, "-m", "usdehaze", "run", str(scan), "-o", str(out), "--batch", "1"]
    args += [
        "--steps",
        "100",
        "--model",
        "logsum",
        "--tissue-prior",
        str(t),
        "--haze-prior",
        str(h),
    ]
    p = subprocess.Popen(args + ["-q"], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # loaded and dehazing (a few seconds a frame: 60 frames take minutes)
    p.send_signal(signal.SIGINT)
    time.sleep(gap)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err, err
    if out.exists():  # frames finished before the first Ctrl-C are kept, the file whole
        with load_result(out) as r:
            assert not r.attrs["complete"] and r.n_frames >= 1
            r.frames("tissue", 0, r.n_frames)


# -- 11. a checkpoint on a full disk (item 11) --------------------------------------------------
def test_train_checkpoint_on_a_full_disk_is_one_line(capsys, monkeypatch, tmp_path):
    """torch.save on a full disk raises RuntimeError('... file write failed') from inside torch:
    one line naming the checkpoint, no temporary left (the previous checkpoint kept)."""

    def full(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")  # torch had begun writing
        raise RuntimeError(
            "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
            "file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", full)
    cfg = _train_yaml(tmp_path, "checkpoint_every: 1")
    code, out_text, err = _cli(capsys, ["train", cfg])
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if "usdehaze: error" in ln]
    assert code == 2 and "Traceback" not in err + out_text, err  # (the progress bar aside)
    assert len(lines) == 1 and "checkpoint.pt" in lines[0] and "cannot write" in lines[0], err
    out = tmp_path / "out"
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name] if out.exists() else True


# -- 12. adapt's folders with symbolic links (item 7) -------------------------------------------
def test_adapt_folder_with_links_to_itself_is_one_line(capsys, tmp_path):
    """--tissue a folder holding two symlinks to itself never returned (each level doubled)."""
    folder = tmp_path / "scans"
    folder.mkdir()
    good_scan(folder / "a.h5")
    (folder / "self").symlink_to(".")
    (folder / "again").symlink_to("../scans")
    out = tmp_path / "adapted"
    with deadline(60):
        args = ["adapt", "--tissue", folder, "--haze", folder, "-o", out, "--steps", "1"]
        refused(capsys, args, "a cycle", inputs=(folder / "a.h5",))
    assert not out.exists()


def test_adapt_folder_reached_twice_is_read_once(tmp_path):
    """A link to a sibling folder (no cycle): its scans are listed once."""
    from usdehaze.ultrasound.adapt import expand_inputs

    (tmp_path / "d" / "real").mkdir(parents=True)
    good_scan(tmp_path / "d" / "real" / "a.h5")
    (tmp_path / "d" / "link").symlink_to("real")
    assert [p.name for p in expand_inputs([tmp_path / "d"], "--tissue")] == ["a.h5"]
