"""usdehaze adapt: fine-tuned priors with provenance, resume, Ctrl-C, bad input; run --priors DIR."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rois import circle, mm_roi, px_roi, rect

from usdehaze.cli._app import run_app
from usdehaze.core.priors import load_prior, sha256
from usdehaze.errors import UsageError
from usdehaze.ultrasound.io import write_scan
from usdehaze.ultrasound.roi import save_roi
from usdehaze.ultrasound.simulate import simulate_cardiac

SHAPE = (48, 32)


def _write(path: Path, iq: np.ndarray, sim) -> Path:
    return write_scan(path, iq, sim.x, sim.z, grid="polar", axes=sim.axes)


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> dict[str, Path]:
    """A tissue-only and a haze-only file (simulated, written like usdehaze simulate writes)."""
    d = tmp_path_factory.mktemp("material")
    sim = simulate_cardiac(3, seed=1, shape=SHAPE)
    return {
        "tissue": _write(d / "tissue.h5", sim.tissue_iq, sim),
        "haze": _write(d / "haze.h5", sim.haze_iq, sim),
        "hazy": _write(d / "hazy.h5", sim.hazy_iq, sim),
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_iq_priors) -> Path:
    """A folder of tiny iq priors under the names --from and --priors look for."""
    d = tmp_path_factory.mktemp("base")
    for src, name in zip(tiny_iq_priors, ("tissue_iq", "haze_iq")):
        shutil.copy(src, d / f"{name}.safetensors")
        shutil.copy(src.with_suffix(".json"), d / f"{name}.json")
    return d


def _adapt(material, out, *extra: str, base: Path | None = None) -> list[str]:
    args = ["adapt", "--tissue", str(material["tissue"]), "--haze", str(material["haze"])]
    args += ["-o", str(out), "--device", "cpu", "-q", *extra]
    return args + (["--from", str(base)] if base else [])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_prior(path).net.state_dict()


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]


def test_adapt_writes_both_priors_with_provenance(material, base, tmp_path, capsys):
    out = tmp_path / "lab"
    assert run_app(_adapt(material, out, "--steps", "2", base=base)) == 0
    printed = capsys.readouterr().out
    for role in ("tissue", "haze"):
        path = out / f"{role}_iq.safetensors"
        assert str(path) in printed
        prior = load_prior(path)
        meta = prior.meta
        assert meta["data"]["source"] == "usdehaze adapt"
        assert meta["data"]["files"][0]["sha256"] == sha256(material[role])
        assert meta["data"]["files"][0]["path"] == str(material[role].resolve())
        assert meta["normalisation"]["domain"] == "iq-mulaw" and meta["usdehaze_version"]
        assert meta["training"]["steps"] == 2 and meta["training"]["minutes"] >= 0
        base_json = json.loads((base / f"{role}_iq.json").read_text())
        assert meta["training"]["base"]["sha256"] == base_json["sha256"]
        before = _weights(base / f"{role}_iq.safetensors")
        after = prior.net.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((out / "tissue_iq.json").read_text())["data"]["files"][0]["kind"] == (
        "tissue-only"
    )
    assert load_prior(out / "haze_iq.safetensors").meta["data"]["files"][0]["peaks_db"]
    manifest = json.loads((out / "adapt.json").read_text())
    assert manifest["priors"]["haze"]["steps"] == 2
    assert not _leftovers(out)


def test_material_is_encoded_as_the_sampler_encodes_frames(material, tmp_path):
    """Tissue: iq_to_mulaw by the frame's own max(|I|, |Q|), as Dehazer.dehaze_iq does; hazy
    scans with an ROI: the same, with the targets' union as the mask."""
    from usdehaze.ultrasound.adapt import haze_material, tissue_material
    from usdehaze.ultrasound.io import load_scan
    from usdehaze.ultrasound.logcomp import iq_reference, iq_to_mulaw
    from usdehaze.ultrasound.roi import rasterise

    with load_scan(material["tissue"]) as s:
        iq = s.frames()
    mat = tissue_material([material["tissue"]])
    np.testing.assert_array_equal(mat.arrays[0], iq_to_mulaw(iq, iq_reference(iq)))
    sim = simulate_cardiac(1, seed=1, shape=SHAPE)
    roi = px_roi(
        ("a", rect([2, 3], [12, 20]), rect([20, 20], [30, 40])),
        ("b", rect([20, 30], [28, 40]), rect([0, 0], [9, 9])),
    )
    save_roi(roi, tmp_path / "roi.json")
    haze = haze_material([material["hazy"]], tmp_path / "roi.json")
    with load_scan(material["hazy"]) as s:
        hazy = s.frames()
        want = np.zeros(SHAPE, bool)
        for p in roi["pairs"]:  # targets only: the backgrounds are tissue
            want |= rasterise(p["target"], s.x, s.z, "px")
    np.testing.assert_array_equal(haze.arrays[0], iq_to_mulaw(hazy, iq_reference(hazy)))
    np.testing.assert_array_equal(haze.masks[0], want)
    assert haze.files[0]["region_pixels"] == {"a": 11 * 18, "b": 9 * 11}
    assert haze.pixels == 3 * int(want.sum())
    del sim


def test_rerun_resumes_from_the_checkpoint(material, base, tmp_path, capsys):
    """2 steps, then the same command with --steps 4: 2 more steps from the checkpoint, the
    same weights as 4 steps at once; a third run has nothing left and writes nothing."""
    out, once = tmp_path / "lab", tmp_path / "once"
    assert run_app(_adapt(material, out, "--steps", "2", base=base)) == 0
    assert run_app(_adapt(material, out, "--steps", "4", base=base)) == 0
    assert run_app(_adapt(material, once, "--steps", "4", base=base)) == 0
    for role in ("tissue", "haze"):
        resumed = load_prior(out / f"{role}_iq.safetensors")
        assert resumed.meta["training"]["steps"] == 4
        straight = _weights(once / f"{role}_iq.safetensors")
        for k, v in resumed.net.state_dict().items():
            assert torch.equal(v, straight[k]), k
    stamp = (out / "haze_iq.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert run_app(_adapt(material, out, "--steps", "4", base=base)) == 0
    assert "unchanged" in capsys.readouterr().out
    assert (out / "haze_iq.safetensors").stat().st_mtime_ns == stamp


def test_other_material_needs_restart(material, base, tmp_path, capsys):
    out = tmp_path / "lab"
    assert run_app(_adapt(material, out, "--steps", "1", base=base)) == 0
    other = dict(material, tissue=material["hazy"])
    capsys.readouterr()
    assert run_app(_adapt(other, out, "--steps", "1", base=base)) == 2
    err = capsys.readouterr().err.strip()
    assert "other --tissue files" in err and "--restart" in err and len(err.splitlines()) == 1
    assert run_app(_adapt(other, out, "--steps", "1", "--restart", base=base)) == 0
    meta = load_prior(out / "tissue_iq.safetensors").meta
    assert meta["data"]["files"][0]["sha256"] == sha256(material["hazy"])


def test_adapt_from_the_shipped_priors(material, tmp_path):
    """Without --from: the package's iq priors are the base (one step on small frames)."""
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    out = tmp_path / "lab"
    assert run_app(_adapt(material, out, "--steps", "1")) == 0
    meta = load_prior(out / "tissue_iq.safetensors").meta
    shipped = json.loads((WEIGHTS_DIR / "tissue_iq.json").read_text())
    assert meta["training"]["base"]["sha256"] == shipped["sha256"]
    assert meta["network"] == shipped["network"]


def test_hazy_scans_with_a_haze_roi(tmp_path, base):
    """A hazy scan and the simulator's roi.json (its target is the ventricle): adapts, records
    the ROI and the region's pixels."""
    sim = simulate_cardiac(4, seed=2, shape=(128, 96))
    scan = _write(tmp_path / "hazy.h5", sim.hazy_iq, sim)
    roi = save_roi(sim.roi, tmp_path / "hazy.roi.json")
    tissue = _write(tmp_path / "tissue.h5", sim.tissue_iq, sim)
    out = tmp_path / "lab"
    args = ["adapt", "--tissue", str(tissue), "--haze", str(scan), "--haze-roi", str(roi)]
    assert (
        run_app(
            args + ["-o", str(out), "--steps", "1", "--device", "cpu", "-q", "--from", str(base)]
        )
        == 0
    )
    data = load_prior(out / "haze_iq.safetensors").meta["data"]
    assert data["haze_roi"]["sha256"] == sha256(roi)
    assert data["files"][0]["kind"] == "hazy, ROI targets"
    assert min(data["files"][0]["region_pixels"].values()) >= 64


def test_inputs_expand_folders_and_patterns(material, tmp_path):
    from usdehaze.ultrasound.adapt import expand_inputs

    folder = material["tissue"].parent
    found = expand_inputs([str(folder), str(folder / "t*.h5")], "--tissue")
    assert [p.name for p in found] == ["haze.h5", "hazy.h5", "tissue.h5"]  # each once


def test_run_with_priors_records_their_checksums(material, base, tmp_path, capsys):
    from usdehaze.ultrasound.results import load_result

    out = tmp_path / "lab"
    assert run_app(_adapt(material, out, "--steps", "1", base=base)) == 0
    res = tmp_path / "r.h5"
    argv = ["run", str(material["hazy"]), "-o", str(res), "--priors", str(out)]
    assert run_app(argv + ["--steps", "2", "--device", "cpu", "--frames", "0:1", "-q"]) == 0
    with load_result(res) as r:
        checksums = r.attrs["prior_checksums"]
        checksums = json.loads(checksums) if isinstance(checksums, str) else checksums
        assert r.attrs["config"]["priors"] == str(out)
    for role in ("tissue", "haze"):
        assert checksums[role] == json.loads((out / f"{role}_iq.json").read_text())["sha256"]
    store = tmp_path / "many.zarr"  # run-many takes the same folder
    argv = ["run-many", str(material["hazy"]), "-o", str(store), "--priors", str(out)]
    assert run_app(argv + ["--steps", "1", "--device", "cpu", "--frames", "0:1", "-q"]) == 0
    import zarr

    root = zarr.open_group(str(store), mode="r")
    assert json.loads(root.attrs["prior_checksums"]) == checksums
    assert json.loads(root.attrs["config"])["priors"] == str(out)


def _one_line_exit_2(argv: list[str], capsys, *words: str) -> str:
    capsys.readouterr()
    assert run_app(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_priors_folder_errors(material, base, tiny_priors, tmp_path, capsys):
    run = ["run", str(material["hazy"]), "-o", str(tmp_path / "r.h5"), "--steps", "1", "-q"]
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(base / "tissue_iq.safetensors", half)
    shutil.copy(base / "tissue_iq.json", half)
    _one_line_exit_2(run + ["--priors", str(half)], capsys, str(half), "haze_iq.safetensors")
    _one_line_exit_2(run + ["--priors", str(tmp_path / "none")], capsys, "no such folder")
    db = tmp_path / "db"  # dB-domain priors under the iq names
    db.mkdir()
    for src, name in zip(tiny_priors, ("tissue_iq", "haze_iq")):
        shutil.copy(src, db / f"{name}.safetensors")
        shutil.copy(src.with_suffix(".json"), db / f"{name}.json")
    _one_line_exit_2(run + ["--priors", str(db)], capsys, "normalisation.domain", "'db'")
    _one_line_exit_2(
        run + ["--model", "logsum", "--priors", str(base)], capsys, "tissue.safetensors"
    )


def test_bad_input_is_one_line_and_exit_2(material, base, tmp_path, capsys):
    """No material, magnitude-only files, too few pixels, ROI outside the scan, an unwritable or
    foreign output folder: each one line naming the file, exit 2, and nothing written."""
    import h5py

    t, h = str(material["tissue"]), str(material["haze"])
    common = ["--steps", "1", "--device", "cpu", "-q", "--from", str(base)]
    out = str(tmp_path / "out")

    def check(args: list[str], *words: str) -> None:
        _one_line_exit_2(["adapt", *args, *common], capsys, *words)

    check(["--haze", h, "-o", out], "no tissue material", "--tissue")
    check(["--tissue", t, "-o", out], "no haze material", "--haze")
    mag = tmp_path / "mag.h5"
    with h5py.File(mag, "w") as f:
        f["tracks/track_0/data/envelope_data/values"] = np.ones((2, *SHAPE), np.float32)
    check(["--tissue", str(mag), "--haze", h, "-o", out], str(mag), "magnitude-only")
    small = simulate_cardiac(1, seed=3, shape=(24, 16))
    tiny = _write(tmp_path / "tiny.h5", small.tissue_iq, small)
    check(["--tissue", str(tiny), "--haze", h, "-o", out], str(tiny), "usable tissue pixels")
    far = mm_roi(("moon", circle([0.0, 900.0], 5.0), circle([0.0, 60.0], 5.0)))
    roi = save_roi(far, tmp_path / "far.roi.json")
    check(["--tissue", t, "--haze", h, "--haze-roi", str(roi), "-o", out], "'moon'", "outside")
    check(["--tissue", t, "--haze", str(tmp_path / "nope.h5"), "-o", out], "nope.h5", "no such")
    check(["--tissue", str(tmp_path / "*.zarr"), "--haze", h, "-o", out], "matches no file")
    afile = tmp_path / "afile"
    afile.write_text("x")
    check(["--tissue", t, "--haze", h, "-o", str(afile / "sub")], "afile", "is a file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    check(["--tissue", t, "--haze", h, "-o", str(foreign)], "notes.txt", "did not write")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "out").exists()  # nothing created by a refused run


def test_messages_name_adapts_own_options(material, base, tmp_path, capsys):
    """adapt has --from, not --priors, and no --key: its messages name only options it has."""
    import h5py

    t, h = str(material["tissue"]), str(material["haze"])
    out = str(tmp_path / "out")
    common = ["--steps", "1", "--device", "cpu", "-q", "-o", out]
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "none", tmp_path / "empty"):  # missing; without the priors
        err = _one_line_exit_2(
            ["adapt", "--tissue", t, "--haze", h, "--from", str(folder), *common], capsys, "--from"
        )
        assert "--priors" not in err
    two = tmp_path / "two.h5"  # two plain complex datasets: the readers cannot pick one
    with h5py.File(two, "w") as f:
        f["a"] = f["b"] = np.ones((2, *SHAPE), np.complex64)
    err = _one_line_exit_2(
        ["adapt", "--tissue", str(two), "--haze", h, "--from", str(base), *common],
        capsys,
        str(two),
        "--tissue reads files with one IQ dataset",
    )
    assert "--key" not in err


def test_unwritable_folder(material, base, tmp_path, capsys):
    """A folder without write permission (root writes anywhere: then a file system that takes
    no files, /proc), refused before any scan is read."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "lab"
    elif Path("/proc/self").exists():
        locked, out = None, Path("/proc/usdehaze-adapt-test")
    else:
        pytest.skip("root, and no /proc to fail writing in")
    try:
        argv = _adapt(material, out, "--steps", "1", base=base)
        err = _one_line_exit_2(argv, capsys, str(out), "not writable")
        assert "tissue:" not in err
    finally:
        if locked is not None:
            locked.chmod(0o700)


def test_files_usdehaze_did_not_write_are_never_overwritten(material, base, tmp_path, capsys):
    out = tmp_path / "lab"
    assert run_app(_adapt(material, out, "--steps", "1", base=base)) == 0
    mine = b'{"note": "my own prior config"}'
    (out / "haze_iq.json").write_bytes(mine)
    _one_line_exit_2(_adapt(material, out, "--steps", "2", base=base), capsys, "haze_iq.json")
    assert (out / "haze_iq.json").read_bytes() == mine


def test_ctrl_c_exits_130_and_keeps_the_previous_priors(material, base, tmp_path):
    """A real SIGINT in the middle of a long adapt: exit 130, the earlier priors still load
    (unchanged), the checkpoint moved on, and no temporary file is left."""
    out = tmp_path / "lab"
    assert run_app(_adapt(material, out, "--steps", "1", base=base)) == 0
    before = {r: sha256(out / f"{r}_iq.safetensors") for r in ("tissue", "haze")}
    argv = _adapt(material, out, "--steps", "100000", base=base)
    argv.remove("-q")  # progress lines on stderr tell when training runs
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "usdehaze", *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for line in p.stderr:  # "tissue: resuming at step 1 ..." comes just before training
            if "resuming" in line:
                break
        time.sleep(3.0)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "rerun the same command" in err
    for role in ("tissue", "haze"):
        prior = load_prior(out / f"{role}_iq.safetensors")
        assert sha256(out / f"{role}_iq.safetensors") == before[role]
        assert prior.meta["training"]["steps"] == 1
    state = torch.load(out / "checkpoints" / "tissue" / "checkpoint.pt", weights_only=True)
    assert state["step"] > 1
    assert not _leftovers(out)


def test_adapt_refreshes_the_student_for_the_adapted_priors(
    material, base, tiny_student, tmp_path, monkeypatch
):
    """adapt --student: the adapted priors teach the base student; run --method fast --priors
    OUT then uses the refreshed one (its checksum in the result); with no student in --from nor
    in the package, adapt --student is refused before any work."""
    from usdehaze.core.student import load_student
    from usdehaze.ultrasound.adapt import adapt
    from usdehaze.ultrasound.adapt_student import StudentRefresh

    with_student = tmp_path / "base"
    shutil.copytree(base, with_student)
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_student.with_suffix(suffix), with_student / f"student_iq{suffix}")
    out = tmp_path / "out"
    refresh = StudentRefresh(frames=4, crop=24, batch=2, steps=3)
    files = {k: [material[k]] for k in ("tissue", "haze")}
    res = adapt(
        files["tissue"], files["haze"], out, _settings(), base=with_student, progress=False,
        log=lambda m: None, student=refresh,
    )  # fmt: skip
    s = load_student(res.student)
    assert res.student == out / "student_iq.safetensors"
    base_s = load_student(tiny_student)
    assert s.meta["base_student"]["checksum"] == base_s.checksum
    assert s.checksum != base_s.checksum  # fine-tuned
    assert s.meta["steps"] == 3 and s.meta["refresh"]["teacher_frames"] == 4
    adapted = {
        r: json.loads((out / f"{r}_iq.json").read_text())["sha256"] for r in ("tissue", "haze")
    }
    assert s.meta["teacher"]["checksums"] == adapted

    result = tmp_path / "r.h5"
    args = ["run", str(material["hazy"]), "--method", "fast", "--priors", str(out)]
    assert run_app(args + ["-o", str(result), "--device", "cpu", "-q"]) == 0
    import h5py

    with h5py.File(result) as f:
        assert json.loads(f.attrs["prior_checksums"])["student"] == s.checksum

    # no student in --from and none shipped: refused before any work
    import usdehaze.ultrasound.prior_files as prior_files

    monkeypatch.setattr(prior_files, "WEIGHTS_DIR", tmp_path / "no-weights")
    with pytest.raises(UsageError, match="no student to refresh"):
        adapt(
            files["tissue"], files["haze"], tmp_path / "o2", _settings(), base=base,
            progress=False, log=lambda m: None, student=refresh,
        )  # fmt: skip
    assert not (tmp_path / "o2" / "checkpoints").exists()


def _settings():
    from usdehaze.ultrasound.adapt import AdaptSettings

    return AdaptSettings(minutes=None, steps=1, device="cpu")


def test_hazy_material_without_haze_roi_is_warned(material, base, tmp_path, capsys):
    """Issue 32: a hazy scan given as haze-only (no --haze-roi) trains the haze prior on its
    tissue; the files' own signs (a ground-truth tissue stored beside the data, a region file
    beside it) give a warning line, also with --quiet; haze-only material and --haze-roi none."""
    from usdehaze.ultrasound.adapt import haze_material

    sim = simulate_cardiac(2, seed=3, shape=(96, 64))
    truth = write_scan(
        tmp_path / "sim.h5", sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes,
        extras={"tissue": sim.tissue_iq, "haze": sim.haze_iq},
    )  # fmt: skip
    drawn = _write(tmp_path / "drawn.h5", sim.hazy_iq, sim)
    roi = save_roi(sim.roi, tmp_path / "drawn.roi.json")
    assert haze_material([material["haze"]]).warnings == []
    assert haze_material([drawn], roi).warnings == []
    said = haze_material([truth, drawn]).warnings
    assert len(said) == 2 and "ground-truth tissue" in said[0] and "drawn.roi.json" in said[1]
    assert all("--haze-roi" in s for s in said)

    out = tmp_path / "lab"
    args = ["adapt", "--tissue", str(material["tissue"]), "--haze", str(truth), "-o", str(out)]
    assert run_app([*args, "--steps", "1", "--device", "cpu", "-q", "--from", str(base)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {truth}: --haze without --haze-roi")


def test_sigkill_then_rerun_resumes_and_stops_on_time(material, base, tmp_path):
    """Issue 31 item 7: an adapt killed with SIGKILL after its first checkpoint, rerun with
    the same command, resumes from that checkpoint (its step count goes on) and ends within
    its --minutes (the budget counts the training of both runs), leaving no temporary file."""
    out = tmp_path / "lab"
    minutes = 0.5  # 15 s per prior, over both runs
    argv = [sys.executable, "-m", "usdehaze", *_adapt(material, out, "--minutes", str(minutes))]
    argv += ["--from", str(base)]
    argv.remove("-q")  # its log says where it resumes
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt = out / "checkpoints" / "tissue" / "checkpoint.pt"
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        t0 = time.monotonic()
        while not ckpt.exists() and p.poll() is None and time.monotonic() - t0 < 240:
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()[0][-2000:]  # still training: killed midway
        time.sleep(0.3)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGKILL
    killed = torch.load(ckpt, weights_only=True)
    assert killed["step"] >= 1
    assert not (out / "tissue_iq.safetensors").exists()  # nothing exported by the killed run
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    wall = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"tissue: resuming at step {killed['step']}" in p.stdout + p.stderr
    # on time: the training left (at most the budget), plus loading, checks and exports
    assert wall < minutes * 60 + 90, wall
    for role in ("tissue", "haze"):
        prior = load_prior(out / f"{role}_iq.safetensors")
        training = prior.meta["training"]
        assert training["steps"] > (killed["step"] if role == "tissue" else 0)
        assert training["minutes"] <= minutes / 2 + 0.05, training  # its half of the budget
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == load_prior(out / "tissue_iq.safetensors").meta["training"]["steps"]
    assert not _leftovers(out)
