"""End-to-end CLI: simulate → info → gcnr → show → run, and user errors as one line with exit 2."""

import json

import numpy as np
import pytest

from usdehaze.cli._app import run_app
from usdehaze.ultrasound.results import load_result


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    out = d / "sim.h5"
    assert run_app(["simulate", str(out), "--frames", "2", "--seed", "4"]) == 0
    return out, d / "sim.roi.json"


def test_info(sim, capsys):
    scan, _ = sim
    capsys.readouterr()
    assert run_app(["info", str(scan), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (
        d["layout"] == "zea"
        and d["frames"] == 2
        and d["shape"] == [256, 128]
        and d["grid"] == "polar"
    )
    assert d["extent_mm"][3] > 130
    assert run_app(["info", str(scan)]) == 0
    assert "layout" in capsys.readouterr().out


def test_gcnr_json_and_truth_is_better(sim, capsys):
    scan, roi = sim
    capsys.readouterr()
    rows = {}
    for key in ("beamformed_data", "tissue"):
        assert run_app(["gcnr", "--roi", str(roi), str(scan), "--key", key, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert len(out["pairs"]) == 2 and {
            "gcnr",
            "ks",
            "cnr",
            "cnr_db",
            "contrast_db",
            "n_target",
            "n_background",
        } <= set(out["pairs"][0])
        rows[key] = np.mean([p["gcnr"] for p in out["pairs"]])
    assert rows["tissue"] > rows["beamformed_data"] + 0.05  # haze lowers contrast
    assert run_app(["gcnr", "--roi", str(roi), str(scan), "--frames", "1"]) == 0
    assert "lv_vs_myocardium" in capsys.readouterr().out


def test_show_writes_png(sim, tmp_path):
    scan, roi = sim
    png = tmp_path / "fig.png"
    assert run_app(["show", str(scan), "--roi", str(roi), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_run_then_score_the_result(sim, tmp_path, tiny_iq_priors, capsys):
    scan, roi = sim
    before = scan.read_bytes()
    out = tmp_path / "r.h5"
    t, h = tiny_iq_priors  # the default iq model
    code = run_app(
        [
            "run",
            str(scan),
            "-o",
            str(out),
            "--steps",
            "2",
            "--device",
            "cpu",
            "--tissue-prior",
            str(t),
            "--haze-prior",
            str(h),
            "--frames",
            "0:2",
            "-q",
        ]
    )
    assert code == 0
    assert scan.read_bytes() == before  # input untouched
    with load_result(out) as r:
        assert r.n_frames == 2 and r.attrs["config"]["steps"] == 2
    capsys.readouterr()
    assert run_app(["gcnr", "--roi", str(roi), str(out), "--key", "tissue", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == "tissue"
    png = tmp_path / "r.png"
    assert run_app(["show", str(out), "-o", str(png)]) == 0 and png.stat().st_size > 1000
    capsys.readouterr()
    assert run_app(["info", str(out), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    with load_result(out) as r:  # the checks' record, as the result holds it
        assert said["nfe"] == r.attrs["nfe"] and said["warnings"]["harm"] == r.attrs["harm_warning"]
        assert ("flicker_db" in said) == ("flicker_tissue_db" in r.attrs)


def test_run_and_run_many_take_the_dynamic_range(sim, tmp_path, tiny_priors, capsys):
    """--dynamic-range reaches DehazeConfig.dynamic_range (and the result's clip); the refusal
    of dB priors trained with another range names the option, and that option exists."""
    scan, _ = sim
    t, h = tiny_priors  # dB priors trained with dynamic_range 60
    common = ["--model", "logsum", "--tissue-prior", str(t), "--haze-prior", str(h)]
    common += ["--steps", "1", "--device", "cpu", "--frames", "0", "-q"]
    capsys.readouterr()
    assert (
        run_app(["run", str(scan), "-o", str(tmp_path / "a.h5"), "--dynamic-range", "40", *common])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "use --dynamic-range 60" in err and len(err.splitlines()) == 1
    out = tmp_path / "b.h5"
    assert run_app(["run", str(scan), "-o", str(out), "--dynamic-range", "60", *common]) == 0
    with load_result(out) as r:
        assert r.attrs["config"]["dynamic_range"] == 60.0 and r.attrs["dynamic_range"] == 60.0
    # the iq model's priors carry no dB range: 30 dB runs and clips the result there
    out = tmp_path / "c.h5"
    iq = ["--steps", "1", "--device", "cpu", "--frames", "0", "-q", "--dynamic-range", "30"]
    assert run_app(["run", str(scan), "-o", str(out), *iq]) == 0
    with load_result(out) as r:
        assert r.attrs["config"]["dynamic_range"] == 30.0
        assert r.frames("tissue").min() >= -30 and r.frames("input").min() == -30
    store = tmp_path / "m.zarr"
    assert run_app(["run-many", str(scan), "-o", str(store), *iq]) == 0
    from usdehaze.ultrasound.batch_run import describe_store

    assert json.loads(describe_store(store)["config"])["dynamic_range"] == 30.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "/nonexistent.h5"], "no such file"),
        (["gcnr", "--roi", "/nonexistent.json", "SCAN"], "no such ROI file"),
        (["gcnr", "--roi", "ROI", "SCAN", "--frames", "5:9"], "out of range"),
        (["gcnr", "--roi", "ROI", "SCAN", "--domain", "x"], "--domain x"),
        (["run", "SCAN", "--method", "magic"], "method 'magic'"),
        (["run", "SCAN", "-o", "SCAN"], "overwrite the input"),
        (["simulate", "/tmp/x.h5", "--kind", "spleen"], "--kind spleen"),
        (["train", "/nonexistent.yaml"], "no such config file"),
    ],
)
def test_user_errors_are_one_line_exit_2(sim, capsys, args, message):
    scan, roi = sim
    args = [str(scan) if a == "SCAN" else str(roi) if a == "ROI" else a for a in args]
    capsys.readouterr()
    assert run_app(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
