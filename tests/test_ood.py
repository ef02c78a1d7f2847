"""Out-of-distribution score: the Tweedie consistency check of a prior on data, the ultrasound
score of scans with the shipped priors, and its warning in ``usdehaze run`` and ``run-many``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from usdehaze.core.priors import GaussianPrior, denoising_check
from usdehaze.core.sde import VESDE, VPSDE

sys.path.insert(0, str(Path(__file__).parent))
from gaussian_truth import random_cov  # noqa: E402


@pytest.mark.parametrize("sde", [VESDE(), VPSDE()])
def test_denoising_check_is_one_on_the_priors_own_data_only(sde):
    """Exact Gaussian prior: ⟨ε̂, ε⟩/‖ε̂‖² ≈ 1 on its own data; data at twice or half the scale
    pulls it below or above 1, although half-scale data has the *lower* denoising error."""
    cov = random_cov(16, 0, scale=0.1)
    prior = GaussianPrior(torch.zeros(16), cov, sde)
    z = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = (z @ torch.linalg.cholesky(cov).T).float().reshape(2000, 1, 4, 4)
    sigmas = [0.05, 0.1, 0.2]
    same, wide, narrow = (denoising_check(prior, s * x, sigmas) for s in (1.0, 2.0, 0.5))
    assert all(abs(c.log_ratio) < 0.05 for c in same)
    assert all(c.log_ratio < -0.5 for c in wide) and all(c.log_ratio > 0.4 for c in narrow)
    assert all(n.error < s.error for n, s in zip(narrow, same))  # why the error alone is no test
    again = denoising_check(prior, x, sigmas)
    assert again == same  # seeded: the same noise every time
    assert denoising_check(prior, x, sigmas, seed=1) != same


class _Blind:
    """A prior whose score is always zero: it explains nothing."""

    sde = VESDE()

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x_t)


def test_denoising_check_of_a_blind_prior_is_infinitely_off():
    (c,) = denoising_check(_Blind(), torch.zeros(2, 1, 4, 4), [0.1])
    assert c.ratio == 0.0 and math.isinf(c.log_ratio) and c.error == pytest.approx(1.0, abs=0.2)


# -- the ultrasound score with the shipped priors ------------------------------------------------
@pytest.fixture(scope="module")
def shipped_iq_tissue():
    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    return load_prior(WEIGHTS_DIR / "tissue_iq.safetensors")


def _crop(iq, size=64):
    z0, x0 = (iq.shape[1] - size) // 2, (iq.shape[2] - size) // 2
    return iq[:, z0 : z0 + size, x0 : x0 + size]


def test_score_is_seeded_and_higher_for_foreign_speckle(shipped_iq_tissue):
    """4 frames of 64 x 64 pixels, 3 network evaluations each: frames of usdehaze simulate (a
    speckle within the corpus's range) against the same frames decimated by 2 in both directions
    (aliased) and laterally (speckle finer than any training acquisition's). Off-baseband I/Q is
    no longer foreign: the corpus varies the demodulation offset."""
    from usdehaze.ultrasound.ood import ood_score
    from usdehaze.ultrasound.simulate import simulate_cardiac

    iq = simulate_cardiac(4, seed=5003).hazy_iq
    own = ood_score(_crop(iq), shipped_iq_tissue)
    assert own == ood_score(_crop(iq), shipped_iq_tissue)  # deterministic
    assert own != ood_score(_crop(iq), shipped_iq_tissue, seed=1)
    coarser = ood_score(_crop(iq[:, ::2, ::2]), shipped_iq_tissue)
    finer_laterally = ood_score(_crop(iq[:, :, ::2]), shipped_iq_tissue)
    assert 0 <= own < 0.1 and coarser > 2 * own + 0.1 and finer_laterally > 2 * own + 0.1


def test_score_in_bf16_is_within_a_hundredth_of_fp32(shipped_iq_tissue):
    """auto runs the check at the run's precision (bf16 for the student on CPUs with AMX): the
    score moves by far less than the distance to any threshold (about 0.14)."""
    from usdehaze.ultrasound.ood import ood_score
    from usdehaze.ultrasound.simulate import simulate_cardiac

    iq = _crop(simulate_cardiac(4, seed=5003).hazy_iq)
    for frames in (iq, _crop(simulate_cardiac(4, seed=5003).hazy_iq[:, ::2, ::2])):
        full = ood_score(frames, shipped_iq_tissue)
        half = ood_score(frames, shipped_iq_tissue, precision="bf16")
        assert half != full and abs(half - full) < 0.01


def test_threshold_from_the_prior_json_else_fallback(shipped_iq_tissue):
    from usdehaze.ultrasound.ood import FALLBACK_THRESHOLD, MEASURE, OodCheck, ood_threshold

    class P:
        meta: dict = {}

    p = P()
    assert ood_threshold(p) == (FALLBACK_THRESHOLD, "fallback")
    p.meta = {"ood": {"threshold": 0.07, "measure": MEASURE}}
    assert ood_threshold(p) == (0.07, "prior")
    p.meta = {"ood": {"threshold": 0.07, "measure": "another/2"}}  # made for another score
    assert ood_threshold(p) == (FALLBACK_THRESHOLD, "fallback")
    t, _ = ood_threshold(shipped_iq_tissue)
    assert 0 < t < 1
    nan = OodCheck(float("nan"), 0.1)
    assert not nan.warning and OodCheck(0.2, 0.1).warning and not OodCheck(0.05, 0.1).warning


# -- in runs -------------------------------------------------------------------------------------
def _with_threshold(prior, threshold: float, folder: Path) -> Path:
    """A copy of a prior whose JSON carries an "ood" threshold (weights and sha256 unchanged)."""
    import json
    import shutil

    from usdehaze.ultrasound.ood import MEASURE

    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / Path(prior).name
    shutil.copy(prior, dst)
    cfg = json.loads(Path(prior).with_suffix(".json").read_text())
    cfg["ood"] = {"threshold": threshold, "measure": MEASURE, "calibration": {"test": True}}
    dst.with_suffix(".json").write_text(json.dumps(cfg))
    return dst


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.simulate import simulate_cardiac

    sim = simulate_cardiac(2, seed=3, shape=(48, 32))
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    return write_scan(path, sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)


def _run_args(scan, out, tissue, haze, *extra):
    return ["run", str(scan), "-o", str(out), "--steps", "1", "--device", "cpu"] + [
        "--tissue-prior",
        str(tissue),
        "--haze-prior",
        str(haze),
        *extra,
    ]


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_run_records_the_score_and_warns_in_one_line(
    scan_file, tiny_iq_priors, tmp_path, capsys, suffix
):
    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR
    from usdehaze.ultrasound.results import load_result

    t, h = tiny_iq_priors  # a random network explains nothing: its score is +inf
    shipped = WEIGHTS_DIR / "tissue_iq.safetensors"  # a finite score on simulator frames
    for prior, threshold, fires in ((t, -1.0, True), (shipped, 10.0, False)):
        tissue = _with_threshold(prior, threshold, tmp_path / f"p{threshold}")
        out = tmp_path / f"r{threshold}{suffix}"
        capsys.readouterr()
        assert run_app(_run_args(scan_file, out, tissue, h, "-q")) == 0
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        err = [line for line in lines if "ood_score" in line]  # the speckle check's line
        with load_result(out) as r:
            assert isinstance(r.attrs["ood_score"], float) and r.attrs["ood_score"] >= 0
            assert fires or 0 <= r.attrs["ood_score"] < 1
            harm = r.attrs["harm_warning"]  # the result check (test_harm), with a random haze prior
            assert (
                r.attrs["ood_warning"] is (fires or harm) and r.attrs["ood_threshold"] == threshold
            )
            assert r.attrs["ood_reasons"] == [
                n for n, on in (("speckle", fires), ("result", harm)) if on
            ]
            # the gross-failure check (test_harm_wreck) and the little-effect note (test_harm)
            # also say their line when they fire
            said = harm + r.attrs["wreck_warning"] + r.attrs["harm_little_effect"]
            assert len(lines) == len(err) + said
            assert r.attrs["ood_frames"] == [0, 1] and r.attrs["ood_threshold_from"] == "prior"
        if fires:
            assert len(err) == 1 and str(scan_file) in err[0] and "usdehaze adapt" in err[0]
            assert f"{r.attrs['ood_score']:.3f}" in err[0] and "-1.000" in err[0]
        else:
            assert err == []


def test_strict_refuses_in_one_line_and_writes_nothing(scan_file, tiny_iq_priors, tmp_path, capsys):
    from usdehaze.cli._app import run_app

    t, h = tiny_iq_priors
    tissue = _with_threshold(t, -1.0, tmp_path / "p")
    before = scan_file.read_bytes()
    out = tmp_path / "r.h5"
    capsys.readouterr()
    assert run_app(_run_args(scan_file, out, tissue, h, "--strict")) == 2  # bar on: still one line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--strict" in err and "usdehaze adapt" in err and str(scan_file) in err
    assert not out.exists() and list(tmp_path.glob("r.h5*")) == []
    assert scan_file.read_bytes() == before
    store = tmp_path / "many.zarr"
    args = ["run-many", str(scan_file), "-o", str(store), "--steps", "1", "--device", "cpu"]
    args += ["--tissue-prior", str(tissue), "--haze-prior", str(h), "--strict"]
    assert run_app(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--strict" in err and not store.exists()
    assert run_app(_run_args(scan_file, out, tissue, h, "-q")) == 0  # without: a warning only


def test_run_many_records_the_score_per_scan_and_warns(scan_file, tiny_iq_priors, tmp_path, capsys):
    import json

    import zarr

    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound.results import load_result

    t, h = tiny_iq_priors
    tissue = _with_threshold(t, -1.0, tmp_path / "p")
    store = tmp_path / "many.zarr"
    args = ["run-many", str(scan_file), "-o", str(store), "--steps", "1", "--device", "cpu"]
    capsys.readouterr()
    assert run_app([*args, "--tissue-prior", str(tissue), "--haze-prior", str(h), "-q"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "ood_score" in line]
    assert len(err) == 1 and "usdehaze adapt" in err[0]
    with load_result(store / "scans/000") as r:
        assert r.attrs["ood_warning"] is True and isinstance(r.attrs["ood_score"], float)
    root = zarr.open_group(str(store), mode="r")
    assert root.attrs["ood_warning"] is True and root.attrs["ood_score"] == r.attrs["ood_score"]
    assert "ood" not in json.loads(root.attrs["identity"])


def test_bm3d_gets_no_score(small_scan, tmp_path):
    import math

    pytest.importorskip("bm3d")
    from usdehaze.ultrasound.dehaze import DehazeConfig, run_dehaze
    from usdehaze.ultrasound.results import load_result

    warned: list[str] = []
    out = run_dehaze(small_scan, tmp_path / "b.h5", DehazeConfig(method="bm3d"), warn=warned.append)
    with load_result(out) as r:
        assert math.isnan(r.attrs["ood_score"]) and r.attrs["ood_warning"] is False
        assert "no prior" in r.attrs["ood_note"]
    assert warned == []


@pytest.mark.gui
def test_napari_dehaze_widget_warns_from_the_worker(
    make_napari_viewer, qtbot, tiny_iq_priors, tmp_path, monkeypatch
):
    """The Dehaze widget scores in its worker thread, notifies on the GUI thread, and its
    result layers (hence a result file the napari writer saves) carry the score."""
    import threading

    pytest.importorskip("napari")
    from napari.utils.notifications import notification_manager

    from usdehaze.napari._widget import DehazeWidget
    from usdehaze.ultrasound import harm, ood
    from usdehaze.ultrasound.simulate import demo_scan_path

    monkeypatch.setattr(harm, "GCNR_TOLERANCE", -1.0)  # the result check fires on any result
    threads = []
    score = ood.score_encoded
    monkeypatch.setattr(
        ood,
        "score_encoded",
        lambda *a, **k: threads.append(threading.current_thread()) or score(*a, **k),
    )
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(demo_scan_path()), plugin="usdehaze")
    w = DehazeWidget(viewer)
    w.model.setCurrentText("iq")
    w.steps.setValue(1)
    w.device.setCurrentText("cpu")
    w.tissue_prior.setText(str(_with_threshold(tiny_iq_priors[0], -1.0, tmp_path / "p")))
    w.haze_prior.setText(str(tiny_iq_priors[1]))
    before = len(notification_manager.records)
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["done"]
    assert threads and all(t is not threading.main_thread() for t in threads)
    msgs = [str(n.message) for n in notification_manager.records[before:]]
    assert any("ood_score" in m and "usdehaze adapt" in m and "demo_scan" in m for m in msgs), msgs
    (tissue,) = [ly for ly in viewer.layers if ly.name.startswith("demo_scan tissue (frame ")]
    attrs = tissue.metadata["usdehaze"].attrs
    assert attrs["ood_warning"] is True and attrs["ood_score"] > attrs["ood_threshold"]
    assert any("dark and bright regions" in m and "demo_scan" in m for m in msgs), msgs
    assert attrs["harm_warning"] is True and attrs["ood_reasons"] == ["speckle", "result"]
    assert attrs["harm_frames"] == attrs["source_frames"]  # scored under their own numbers
    assert attrs["nfe"] == 2  # one step, two networks: what ran, as usdehaze run records it


def test_calibrate_ood_writes_only_the_threshold(tmp_path):
    """pipelines/calibrate_ood.py on a corpus shard (.npz of tissue + haze IQ) and a scan file:
    the threshold lands in a copy of the shipped prior's JSON, which still loads (sha256 valid)."""
    import json
    import subprocess

    import numpy as np

    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.ood import ood_threshold
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR
    from usdehaze.ultrasound.simulate import simulate_cardiac

    prior = _with_threshold(WEIGHTS_DIR / "tissue_iq.safetensors", 1.0, tmp_path / "p")
    before = json.loads(prior.with_suffix(".json").read_text())
    sim = simulate_cardiac(3, seed=8, shape=(64, 64))
    np.savez(tmp_path / "shard.npz", tissue=sim.tissue_iq, haze=sim.haze_iq)
    scan = write_scan(tmp_path / "s.h5", sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "pipelines/calibrate_ood.py"), "--prior", str(prior)]
    cmd += ["--in", str(tmp_path / "shard.npz"), str(scan), "--group", "1", "--holdout", "0"]
    done = subprocess.run([*cmd, "--write"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| lateral x0.5 | 6 |" in done.stdout and "false alarms" in done.stdout
    after = json.loads(prior.with_suffix(".json").read_text())
    assert {k: v for k, v in after.items() if k != "ood"} == {
        k: v for k, v in before.items() if k != "ood"
    }
    block = after["ood"]
    assert block["calibration"]["in_distribution"]["n"] == 6  # 3 frames of 2 files, one by one
    t, source = ood_threshold(load_prior(prior))
    assert source == "prior" and t == block["threshold"] and 0 < t < 1


def test_calibrate_ood_on_display_frames_rendered_from_corpus_shards(tmp_path):
    """--display: the B-mode tissue prior on corpus shards rendered as exported B-mode (each
    frame through a training and the held-out chain per seed), the alterations on the dB image
    (no off-baseband: there is no phase); the block records where its scans came from."""
    import json
    import subprocess

    from test_display_chain import _sample

    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.corpus.store import write_shard
    from usdehaze.ultrasound.ood import ood_threshold
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    prior = _with_threshold(WEIGHTS_DIR / "tissue_bmode.safetensors", 1.0, tmp_path / "p")
    keys = ("tissue", "haze", "cavity", "myocardium", "tissue_mask", "params")
    frames = [{k: _sample(seed=s)[k] for k in keys} for s in (0, 1)]
    write_shard(tmp_path / "shards" / "a.npz", _sample()["acquisition"], frames)
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "pipelines/calibrate_ood.py"), "--prior", str(prior)]
    cmd += ["--display", str(tmp_path / "shards"), "--seeds", "0", "--holdout", "0", "--write"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "B-mode display dB" in done.stdout
    assert "| lateral x0.5 | 4 |" in done.stdout and "off baseband" not in done.stdout
    block = json.loads(prior.with_suffix(".json").read_text())["ood"]
    assert block["calibration"]["in_distribution"]["n"] == 4  # 2 frames, 2 chains, 1 seed
    assert "rendered as B-mode" in block["calibration"]["in_distribution"]["sources"][0]
    t, source = ood_threshold(load_prior(prior))
    assert source == "prior" and t == block["threshold"] and 0 < t < 1


@pytest.mark.parametrize("name", ["logsum", "additive", "iq", "dps"])
def test_the_ood_input_is_what_the_sampler_gets(name, tiny_priors, tiny_iq_priors, monkeypatch):
    """For every registered data model (and the single-prior methods' dB model), the frames the
    out-of-distribution check scores are the measurement y the sampler runs on (the tissue
    prior's input), as ``Dehazer.dehaze_iq`` hands it: one encoding, the data model's."""
    import numpy as np

    from usdehaze.core.sampler import JointSampler
    from usdehaze.ultrasound import ood
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer

    method, model = ("dps", "iq") if name == "dps" else ("joint", name)
    t, h = tiny_iq_priors if model == "iq" and method == "joint" else tiny_priors
    cfg = DehazeConfig(method=method, model=model, tissue_prior=str(t), haze_prior=str(h),
                       steps=1, device="cpu")  # fmt: skip
    d = Dehazer(cfg)
    rng = np.random.default_rng(3)
    iq = (rng.normal(size=(2, 40, 32)) + 1j * rng.normal(size=(2, 40, 32))).astype(np.complex64)
    seen: dict = {"y": []}
    call = JointSampler.__call__
    monkeypatch.setattr(
        JointSampler,
        "__call__",
        lambda s, y, **k: seen["y"].append(y.numpy()) or call(s, y, **k),
    )
    monkeypatch.setattr(
        ood, "score_encoded", lambda x, prior, *a, **k: seen.setdefault("ood", x) is None or 0.0
    )
    d.dehaze_iq(iq, frames=[0, 1])
    ood.check_frames(iq, d.priors["tissue"], d.model)
    # on CPU each frame is sampled alone (in any order): the frames the sampler got, as a set
    got = sorted(np.concatenate(seen["y"]), key=lambda f: float(np.sum(f)))
    want = sorted(seen["ood"], key=lambda f: float(np.sum(f)))
    assert len(got) == len(want) == 2
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_model_for_prior_follows_the_priors_domain(tiny_priors, tiny_iq_priors):
    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.ood import model_for_prior

    assert model_for_prior(load_prior(tiny_iq_priors[0])).name == "iq"
    assert model_for_prior(load_prior(tiny_priors[0])).domain == "db"


# -- beside the frames (issue 29: the run's frames do not wait for the check) --------------------
def _scan_and_cfg(tiny_iq_priors, scan_file):
    from usdehaze.ultrasound.dehaze import DehazeConfig
    from usdehaze.ultrasound.io import load_scan

    t, h = tiny_iq_priors
    cfg = DehazeConfig(tissue_prior=str(t), haze_prior=str(h), steps=1, device="cpu", batch=1)
    return load_scan(scan_file), cfg


def test_the_check_beside_the_frames_records_what_check_run_gives(
    scan_file, tiny_iq_priors, tmp_path
):
    from usdehaze.ultrasound.dehaze import Dehazer, run_dehaze
    from usdehaze.ultrasound.ood import check_run
    from usdehaze.ultrasound.results import load_result

    scan, cfg = _scan_and_cfg(tiny_iq_priors, scan_file)
    with scan:
        warned: list[str] = []
        run_dehaze(scan, tmp_path / "r.h5", cfg, warn=warned.append)
        before = check_run(scan, range(scan.n_frames), Dehazer(cfg)).attrs()
    with load_result(tmp_path / "r.h5") as r:
        assert {k: r.attrs[k] for k in before} == before and "ood_note" not in r.attrs
    assert sum("ood_score" in w for w in warned) == (1 if before["ood_warning"] else 0)


def test_a_run_stopped_before_the_check_finished_says_so(
    scan_file, tiny_iq_priors, tmp_path, monkeypatch
):
    import threading

    from usdehaze.ultrasound import ood
    from usdehaze.ultrasound.dehaze import run_dehaze
    from usdehaze.ultrasound.results import load_result

    release = threading.Event()
    real = ood.PendingCheck._run
    monkeypatch.setattr(ood.PendingCheck, "_run", lambda self, f: (release.wait(), real(self, f)))

    def stop(done, total, seconds):
        raise KeyboardInterrupt

    scan, cfg = _scan_and_cfg(tiny_iq_priors, scan_file)
    try:
        with scan, pytest.raises(KeyboardInterrupt):
            run_dehaze(scan, tmp_path / "r.h5", cfg, progress=stop)
    finally:
        release.set()
    with load_result(tmp_path / "r.h5") as r:
        assert r.attrs["complete"] is False and r.n_frames == 1
        assert math.isnan(r.attrs["ood_score"]) and r.attrs["ood_warning"] is False
        assert "the run stopped first" in r.attrs["ood_note"] and r.attrs["ood_frames"] == []


def test_an_error_of_the_check_beside_the_frames_reaches_the_run(
    scan_file, tiny_iq_priors, tmp_path, monkeypatch
):
    from usdehaze.ultrasound import ood
    from usdehaze.ultrasound.dehaze import run_dehaze

    def broken(*a, **k):
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(ood, "check_frames", broken)
    scan, cfg = _scan_and_cfg(tiny_iq_priors, scan_file)
    with scan, pytest.raises(RuntimeError, match="scoring failed"):
        run_dehaze(scan, tmp_path / "r.h5", cfg)
