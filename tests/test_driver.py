"""One frame driver (usdehaze.ultrasound.driver.FrameDriver) and one provenance record for run,
run-many, napari and evaluate: blank frames, the result check, the network evaluations run."""

from pathlib import Path

import numpy as np
import pytest

from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer, run_dehaze
from usdehaze.ultrasound.driver import PROVENANCE_KEYS, FrameDriver, provenance
from usdehaze.ultrasound.results import load_result


def _cfg(priors, **kw):
    t, h = priors
    kw.setdefault("model", "logsum")
    return DehazeConfig(tissue_prior=str(t), haze_prior=str(h), steps=3, device="cpu", **kw)


def _iq(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 32, 32)) + 1j * rng.normal(size=(n, 32, 32))).astype(np.complex64)


def test_driver_notes_blank_frames_counts_nfe_and_checks_the_result(tiny_priors):
    said = []
    d = Dehazer(_cfg(tiny_priors))
    driver = FrameDriver(d, warn=said.append, name="scan.h5")
    iq = _iq()
    iq[1] = 0
    got = list(driver.run([([4, 5], iq[:2]), ([6], iq[2:])]))
    assert [i for i, _ in got] == [[4, 5], [6]] and got[0][1]["tissue"].shape == (2, 32, 32)
    assert (got[0][1]["tissue"][1] == -60).all()  # blank in, blank out
    assert driver.blank == [5]
    assert said == ["scan.h5: frame(s) [5] are all zeros; written as blank frames"]
    assert driver.nfe == d.sampler().planned_nfe() == 6  # 3 em steps × 2 priors
    a = driver.attrs()
    assert a["nfe"] == 6 and a["blank_frames"] == [5]
    assert {"harm_warning", "ood_warning", "ood_reasons"} <= set(a)
    assert driver.frames_done == 3


@pytest.mark.parametrize("method", ["dps", "pigdm-gauss"])
def test_baselines_report_the_nfe_their_sampler_ran(tiny_priors, method):
    """A baseline runs its own settings (DDIM, one network): the count is what ran."""
    d = Dehazer(DehazeConfig(method=method, tissue_prior=str(tiny_priors[0]), device="cpu"))
    driver = FrameDriver(d)
    driver.dehaze([0], _iq(1))
    assert d.cfg.solver == "ddim" and driver.nfe == d.nfe == d.sampler().planned_nfe() == 5


def test_db_frames_drive_like_iq_frames(tiny_priors):
    d = Dehazer(_cfg(tiny_priors))
    iq = _iq(2)
    a = FrameDriver(d).dehaze([0, 1], iq)
    b = FrameDriver(d).dehaze([0, 1], a["input"], db=True)
    for k in ("input", "tissue", "haze"):
        np.testing.assert_array_equal(a[k], b[k])


def test_every_result_carries_the_provenance_record(tiny_priors, tmp_path):
    from tests.conftest import memory_scan

    cfg = _cfg(tiny_priors, method="dps")
    run_dehaze(memory_scan(), tmp_path / "r.h5", cfg)
    d = Dehazer(cfg)
    want = provenance(d)
    assert set(want) == set(PROVENANCE_KEYS)
    with load_result(tmp_path / "r.h5") as r:
        for k in ("usdehaze_version", "method", "seed", "precision", "dynamic_range"):
            assert r.attrs[k] == want[k], k
        assert r.attrs["method"] == "dps" and r.attrs["config"]["solver"] == "ddim"
        assert r.attrs["nfe"] == 3 and r.attrs["prior_checksums"] == d.checksums
        assert r.attrs["operator"] == {"kind": "Identity", "noise_scale": 1.0}


@pytest.mark.parametrize("model", ["logsum", "additive", "iq"])
def test_the_record_names_the_measurement_model_the_sampler_ran(model):
    from usdehaze.ultrasound.methods import METHODS, run_model

    d = Dehazer.__new__(Dehazer)  # no priors needed to say which operator it would run
    d.cfg = DehazeConfig(method="joint", model=model, gamma=2.0)
    d.method, d.model = METHODS[d.cfg.method](d.cfg), run_model(d.cfg)
    cfg = d.operator().config()
    assert cfg["kind"] == model and cfg.get("gamma", 2.0) == 2.0


def test_no_module_writes_the_result_writers_private_attributes():
    """Attributes go through ResultWriter.update_attrs; only results.py touches ``_attrs``."""
    root = Path(__file__).parents[1] / "usdehaze"
    found = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "results.py" and "._attrs" in p.read_text()
    ]
    assert found == []


def test_blank_frames_are_found_once_per_batch(tiny_priors, monkeypatch):
    """The driver scans a batch for all-zero frames once and tells the Dehazer (which would
    otherwise scan it again, and once more for the frames it keeps)."""
    from usdehaze.ultrasound import dehaze, driver, scan

    calls = []

    def counted(a):
        calls.append(len(a))
        return scan.blank_frames(a)

    monkeypatch.setattr(driver, "blank_frames", counted)
    monkeypatch.setattr(dehaze, "blank_frames", counted)
    iq = _iq()
    iq[1] = 0
    res = FrameDriver(Dehazer(_cfg(tiny_priors))).dehaze([0, 1, 2], iq)
    assert calls == [3] and (res["tissue"][1] == -60).all()


def test_read_frames_is_the_runs_one_frame_source():
    """Frames in any order, runs of neighbours read as one block: the same frames either way."""
    from tests.conftest import memory_scan
    from usdehaze.ultrasound.scan import read_frames

    scan = memory_scan(4)
    every = scan.frames(0, 4)
    for index in ([1, 2, 3], [3, 0], [2]):
        np.testing.assert_array_equal(read_frames(scan, index), every[index])
    assert [i for i, _ in scan.batches(range(4), 3)] == [[0, 1, 2], [3]]
