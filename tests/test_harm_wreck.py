"""The gross-failure check (usdehaze.ultrasound.wreck): each failure issue 28 saw on a real cine,
built on frames with known truth, fires its named check; truth itself, mild dehazing and
depth-wide clutter removal fire nothing; the mask keeps a fan's black and overlays out."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from usdehaze.ultrasound.wreck import (
    BRIGHT_DROP_DB,
    CHECKS,
    DARK_SHARE,
    HAZE_SHARE,
    THRESHOLDS,
    WreckCheck,
    frame_wreck,
    judged_mask,
)

ROOT = Path(__file__).resolve().parents[1]


def _frame(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A speckled dB frame (160 × 120): tissue at -20 dB, an elliptic cavity at -45 dB, a bright
    vertical wall (a septum) at -5 dB; with the cavity and septum masks."""
    rng = np.random.default_rng(seed)
    z, x = np.mgrid[0:160, 0:120]
    cavity = ((z - 90) / 40.0) ** 2 + ((x - 40) / 22.0) ** 2 <= 1
    septum = (np.abs(x - 75) <= 6) & (z > 30) & (z < 150)
    level = np.where(cavity, -45.0, np.where(septum, -5.0, -20.0))
    speckle = 20 * np.log10(rng.rayleigh(1.0, level.shape) / np.sqrt(np.pi / 2))
    return np.clip(level + speckle, -60, 0), cavity, septum


def _haze(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The logsum split's haze: input minus tissue power, floored at -60 dB."""
    p = 10 ** (x / 10) - 10 ** (np.minimum(t, x) / 10)
    return np.clip(10 * np.log10(np.maximum(p, 1e-6)), -60, 0)


def _check(x: np.ndarray, t: np.ndarray, h: np.ndarray | None = None, mask=None):
    f = frame_wreck(0, x, t, _haze(x, t) if h is None else h, mask)
    assert f is not None
    return f


def test_the_input_and_mild_dehazing_fire_nothing():
    x, cavity, _ = _frame()
    assert _check(x, x, np.full_like(x, -60.0)).reasons == ()
    jitter = np.random.default_rng(1).uniform(-1, 1, x.shape)  # tissue within ±1 dB
    for d in (10.0, 20.0):
        t = np.where(cavity, x - d, x + jitter)
        f = _check(x, t)
        assert f.reasons == (), (d, f)
        assert f.contrast_out_db > f.contrast_in_db + 5  # dehazing raises the contrast


def test_removing_clutter_across_its_depth_is_not_a_wreck():
    """Near-field clutter lifts whole depths: taking 12 dB out of the top rows, the brightest
    of the input, darkens no structure beyond its depth."""
    t, _, _ = _frame()
    x = t.copy()
    x[:24] += 12.0  # a clutter band over the near field, as bright as the septum
    f = _check(x, t)
    assert "bright_darkened" not in f.reasons and f.bright_drop_db < 1.0
    assert "moved_to_haze" not in f.reasons


@pytest.mark.parametrize("drop", [6.0, 12.0])
def test_a_darkened_septum_fires_bright_darkened(drop):
    x, _, septum = _frame()
    f = _check(x, np.where(septum, x - drop, x))
    assert "bright_darkened" in f.reasons
    assert f.bright_drop_db == pytest.approx(drop, abs=1.0) and f.bright_drop_db > BRIGHT_DROP_DB


def test_the_dark_bright_order_inverted_fires():
    x, cavity, septum = _frame()
    t = np.where(cavity, x + 30.0, np.where(septum, x - 20.0, x))  # cavity brighter than wall
    f = _check(x, t)
    assert "order_inverted" in f.reasons and f.contrast_out_db < 0 < f.contrast_in_db


def test_bright_structures_in_the_haze_fire_moved_to_haze():
    x, _, septum = _frame()
    h = np.where(septum, x - 1.0, -60.0)  # the septum explained as haze, tissue kept
    f = _check(x, x, h)
    assert f.reasons == ("moved_to_haze",) and f.haze_share > HAZE_SHARE
    assert math.isnan(frame_wreck(0, x, x).haze_share)  # no haze estimate: not measured
    assert frame_wreck(0, x, x).reasons == ()


def test_dark_blobs_painted_on_tissue_fire_invented_dark():
    x, cavity, septum = _frame()
    z, xx = np.mgrid[0:160, 0:120]
    blobs = np.zeros(x.shape, bool)
    for cz, cx in ((18, 25), (55, 100), (105, 100), (150, 30)):  # one per depth band
        blobs |= ((z - cz) / 18.0) ** 2 + ((xx - cx) / 14.0) ** 2 <= 1
    f = _check(x, np.where(blobs & ~cavity, x - 20.0, x))
    assert "invented_dark" in f.reasons and f.dark_share > DARK_SHARE
    one = ((z - 20) / 6.0) ** 2 + ((xx - 20) / 5.0) ** 2 <= 1  # one small blob: under the share
    assert "invented_dark" not in _check(x, np.where(one, x - 20.0, x)).reasons


def test_the_mask_keeps_the_fan_black_and_overlays_out():
    """A display frame: the scan on black, a burned-in white bar beside it (a grey-scale bar); a
    result that darkens the bar and paints the black is judged only inside the mask."""
    x, cavity, _ = _frame()
    canvas = np.full((200, 170), -60.0)
    canvas[20:180, 20:140] = x
    canvas[20:180, 150:165] = 0.0  # the overlay, white
    mask = np.zeros(canvas.shape, bool)
    mask[20:180, 20:140] = True
    out = canvas.copy()
    out[20:180, 20:140] = np.where(cavity, x - 15.0, x)  # good dehazing inside
    out[20:180, 150:165] = -50.0  # the overlay darkened by 50 dB
    out[:20] = -30.0  # the black above the scan painted grey
    h = _haze(canvas, out)
    w = WreckCheck()
    w.add([0], canvas[None], out[None], h[None], mask)
    assert len(w.frames) == 1 and not w.warning
    whole = frame_wreck(0, canvas, out, h)  # unmasked, the overlay is a bright structure
    assert whole is not None and "bright_darkened" in whole.reasons


def test_the_judged_pixels_are_a_scans_sector_without_its_overlays():
    sector = np.zeros((4, 5), bool)
    sector[1:, 1:] = True
    overlay = np.zeros((4, 5), bool)
    overlay[3, 3:] = True
    assert judged_mask({}) is None
    assert (judged_mask({"sector": sector}) == sector).all()
    assert (judged_mask({"overlay": overlay}) == ~overlay).all()
    both = judged_mask({"sector": sector, "overlay": overlay})
    assert both.sum() == sector.sum() - 2 and not both[3, 3:].any()


def test_frames_that_cannot_be_scored_are_left_out():
    x, _, _ = _frame()
    assert frame_wreck(0, x, x[:, :10]) is None
    assert frame_wreck(0, x, x, None, np.zeros(x.shape, bool)) is None
    assert frame_wreck(0, x, x, None, np.ones((3, 3), bool)) is None
    bad = x.copy()
    bad[:80] = np.nan  # non-finite pixels are left out as if masked
    f = frame_wreck(0, bad, bad)
    assert f is not None and f.reasons == ()


def test_attrs_say_which_frames_and_why_and_survive_a_result_file(tmp_path):
    from usdehaze.ultrasound.results import _attr, set_attrs

    x, cavity, septum = _frame()
    good = np.where(cavity, x - 15.0, x)
    bad = np.where(septum, x - 12.0, x)
    w = WreckCheck()
    w.add([3, 4, 5], np.stack([x, x, x]), np.stack([good, bad, good]), None)
    a = w.attrs()
    assert a["wreck_warning"] is True and a["wreck_frames"] == [3, 4, 5]
    assert a["wreck_flagged_frames"] == [4] and w.flagged == [4]
    assert "bright_darkened" in a["wreck_reasons"]["4"] and set(a["wreck_reasons"]) == {"4"}
    assert len(a["wreck_bright_drop_db"]) == 3 and a["wreck_bright_drop_db"][1] > BRIGHT_DROP_DB
    assert all(math.isnan(v) for v in a["wreck_haze_share"])  # no haze given
    json.dumps(a)  # JSON-able as it stands
    with h5py.File(tmp_path / "r.h5", "w") as f:
        set_attrs(f, a)
    with h5py.File(tmp_path / "r.h5") as f:
        back = {k: _attr(v) for k, v in f.attrs.items()}
    assert back["wreck_reasons"] == a["wreck_reasons"]
    assert back["wreck_thresholds"] == THRESHOLDS
    assert list(back["wreck_flagged_frames"]) == [4] and bool(back["wreck_warning"])
    line = w.message("cine.h5")
    assert line.startswith("cine.h5: ") and "1 of 3" in line and "[4]" in line
    assert "bright darkened (1)" in line and "\n" not in line
    quiet = WreckCheck()
    quiet.add([0], x[None], good[None])
    assert quiet.attrs()["wreck_reasons"] == {} and not quiet.warning
    assert set(CHECKS) == {"bright_darkened", "order_inverted", "moved_to_haze", "invented_dark"}


def _calibration():
    spec = importlib.util.spec_from_file_location(
        "calibrate_checks", ROOT / "pipelines/calibrate_checks.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_calibration_material_simulated_truth_is_quiet_and_wrecks_fire():
    """The calibration's claims on one simulated anatomy (docs/results.md): clean truth and mild
    dehazing fire nothing; each constructed wreck fires its check on every frame."""
    from usdehaze.ultrasound.simulate import simulate_cardiac

    cal = _calibration()
    sim = simulate_cardiac(3, seed=0, haze_db=-12.0)
    x, t, h = cal.truth_db(sim.tissue_iq + sim.haze_iq, sim.tissue_iq, sim.haze_iq)
    w = WreckCheck()
    w.add([0, 1, 2], x, t, h)
    assert not w.warning, w.attrs()
    must = {
        "brightest tissue -12 dB": "bright_darkened",
        "order inverted": "order_inverted",
        "brightest tissue moved into the haze": "moved_to_haze",
        "dark blobs (-20 dB) on 25% of the tissue": "invented_dark",
    }
    cases = cal.constructed(x, t, np.random.default_rng(0))
    for name, (label, expect, tc, hc) in cases.items():
        w = WreckCheck()
        w.add([0, 1, 2], x, tc, hc)
        if label == "helped":
            assert not w.warning, (name, w.attrs())
        elif name in must:
            assert expect == must[name]
            assert all(expect in f.reasons for f in w.frames), (name, w.attrs())


def test_calibrate_checks_prints_the_table_of_a_folder(tmp_path, capsys):
    """pipelines/calibrate_checks.py reads case files and counts, per material, the frames
    flagged and those where the check that must fire did."""
    cal = _calibration()
    x, cavity, septum = _frame()
    good = np.where(cavity, x - 15.0, x)
    bad = np.where(septum, x - 12.0, x)
    for k, (t, label, expect) in enumerate(
        ((good, "helped", ""), (bad, "harmed", "bright_darkened"))
    ):
        cal.write_case(
            tmp_path / f"{k}.h5", x[None], t[None], _haze(x, t)[None], label, expect, f"c{k}"
        )
    assert cal.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| helped | 1 | 0 | – |" in out
    assert "| harmed (must fire: bright_darkened) | 1 | 1 | 1/1 |" in out
    assert cal.main([str(tmp_path / "none")]) == 1
