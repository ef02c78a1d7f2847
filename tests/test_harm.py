"""The do-no-harm check on a result (usdehaze.ultrasound.harm): regions found in the input, and a
warning exactly when the result separates them worse than the input did."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usdehaze.ultrasound.harm import (
    CONTRAST_GAIN_DB,
    CONTRAST_TOLERANCE_DB,
    GCNR_TOLERANCE,
    FrameHarm,
    HarmCheck,
    frame_harm,
    regions,
)


def _frame(seed: int = 0, cavity_db: float = -25.0) -> tuple[np.ndarray, np.ndarray]:
    """A speckled dB frame (128 × 64): tissue around -5 dB, an elliptic cavity at ``cavity_db``
    (Rayleigh speckle: 20 log10 of a Rayleigh envelope), and the cavity's mask."""
    rng = np.random.default_rng(seed)
    z, x = np.mgrid[0:128, 0:64]
    cavity = ((z - 64) / 30.0) ** 2 + ((x - 32) / 14.0) ** 2 <= 1
    speckle = 20 * np.log10(rng.rayleigh(1.0, (128, 64)) / np.sqrt(np.pi / 2))
    return np.where(cavity, cavity_db, -5.0) + speckle, cavity


def test_regions_find_the_cavity_and_the_tissue():
    db, cavity = _frame()
    dark, bright = regions(db)
    assert dark.sum() > 0.1 * db.size and bright.sum() > 0.3 * db.size
    assert (dark & cavity).sum() / dark.sum() > 0.95  # the darkest 15 % lie in the cavity
    assert (bright & cavity).sum() == 0
    sector = np.zeros(db.shape, bool)
    sector[:, :32] = True  # regions never leave the sector
    dark, bright = regions(db, sector)
    assert not (dark | bright)[:, 32:].any() and dark.any() and bright.any()


def test_unchanged_or_dehazed_results_do_no_harm():
    h = HarmCheck()
    dehazed = HarmCheck()
    for seed in range(3):
        db, cavity = _frame(seed)
        h.add([seed], db[None], db[None])
        dehazed.add([seed], db[None], np.where(cavity, db - 10.0, db)[None])  # haze taken out
    assert not h.warning and h.gcnr_change == 0 and h.contrast_change_db == 0
    assert not dehazed.warning
    assert dehazed.contrast_change_db > 8.0 and dehazed.gcnr_change > 0
    a = dehazed.attrs()
    assert a["harm_warning"] is False and a["harm_frames"] == [0, 1, 2]
    assert a["harm_contrast_out_db"] - a["harm_contrast_in_db"] == pytest.approx(
        dehazed.contrast_change_db
    )


@pytest.mark.parametrize("harm", ["haze added", "noisier"])
def test_results_that_separate_worse_warn(harm):
    h = HarmCheck()
    rng = np.random.default_rng(1)
    for seed in range(3):
        db, cavity = _frame(seed, cavity_db=-12.0)
        if harm == "haze added":  # the cavity brighter: contrast down by 3 dB
            out = np.where(cavity, db + 3.0, db)
        else:  # the same levels with twice the spread: the regions overlap more
            out = db + rng.normal(0.0, 6.0, db.shape)
        h.add([seed], db[None], out[None])
    assert h.warning
    if harm == "haze added":
        assert h.contrast_change_db < -CONTRAST_TOLERANCE_DB
    else:
        assert abs(h.contrast_change_db) < 1.0 and h.gcnr_change < -GCNR_TOLERANCE
    line = h.message("scan.h5")
    assert line.startswith("scan.h5: ") and "usdehaze adapt" in line and "\n" not in line
    assert "3 frame(s)" in line


def test_a_gcnr_fall_with_a_large_contrast_gain_is_haze_removed():
    """Haze out of the bright regions widens their spread: gCNR may fall while the contrast
    rises by several dB, as the clean truth does on some validation frames; not harm."""
    db, cavity = _frame(cavity_db=-25.0)
    rng = np.random.default_rng(3)
    out = np.where(cavity, db - 3.0, db + rng.normal(0.0, 12.0, db.shape))
    worse = HarmCheck()  # the same spread without the gain: harm
    worse.add([0], db[None], np.where(cavity, db, db + rng.normal(0.0, 12.0, db.shape))[None])
    assert worse.warning
    h = HarmCheck()
    h.add([0], db[None], out[None])
    assert h.gcnr_change < -GCNR_TOLERANCE and h.contrast_change_db >= CONTRAST_GAIN_DB
    assert not h.warning


def test_a_small_change_is_within_tolerance():
    db, cavity = _frame(cavity_db=-12.0)
    h = HarmCheck()
    h.add([0], db[None], np.where(cavity, db + 0.2, db)[None])  # 0.2 dB: sampling noise
    assert not h.warning and -CONTRAST_TOLERANCE_DB < h.contrast_change_db < 0


def test_frames_that_cannot_be_scored_are_left_out():
    db, _ = _frame()
    assert frame_harm(0, db, db[:, :10]) is None  # shapes differ
    bad = db.copy()
    bad[0, 0] = np.nan
    assert frame_harm(0, bad, db) is None
    assert frame_harm(0, db, db, np.zeros(db.shape, bool)) is None  # an empty sector
    h = HarmCheck()
    h.add([4], bad[None], db[None])
    assert not h.warning and h.frames == []
    a = h.attrs()
    assert a["harm_frames"] == [] and math.isnan(a["harm_gcnr_in"])


def test_result_check_attrs_join_both_checks():
    from usdehaze.ultrasound.driver import result_check_attrs
    from usdehaze.ultrasound.ood import OodCheck

    db, cavity = _frame(cavity_db=-12.0)
    worse, fine = HarmCheck(), HarmCheck()
    worse.add([0], db[None], np.where(cavity, db + 3.0, db)[None])
    fine.add([0], db[None], db[None])
    quiet, loud = OodCheck(0.01, 0.1), OodCheck(0.5, 0.1)
    assert result_check_attrs(fine, quiet, True)["ood_reasons"] == []
    a = result_check_attrs(worse, quiet, True)
    assert a["ood_warning"] is True and a["ood_reasons"] == ["result"] and a["harm_warning"]
    assert result_check_attrs(worse, loud, True)["ood_reasons"] == ["speckle", "result"]
    b = result_check_attrs(worse, quiet, False)  # a method without priors is not judged
    assert b["harm_warning"] is False and b["ood_warning"] is False


@pytest.fixture(scope="module")
def hazy_scan(tmp_path_factory):
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.simulate import simulate_cardiac

    sim = simulate_cardiac(3, seed=5, shape=(64, 32))
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    return write_scan(path, sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)


def _recomputed(inp: np.ndarray, out: np.ndarray, frames: list[int]) -> HarmCheck:
    h = HarmCheck()
    for k, f in enumerate(frames):
        h.add([f], inp[k : k + 1], out[k : k + 1])
    return h


def _tiny_run(tiny_iq_priors, tmp_path):
    """Options of a quick run (2 steps on the CPU with the tiny priors), a result file and a
    run-many store to write."""
    t, h = tiny_iq_priors
    common = ["--steps", "2", "--device", "cpu", "--tissue-prior", str(t), "--haze-prior", str(h)]
    return common, tmp_path / "r.h5", tmp_path / "many.zarr"


def test_run_and_run_many_record_the_check_of_what_they_wrote(
    hazy_scan, tiny_iq_priors, tmp_path, capsys
):
    """run and run-many score the frames they wrote (recomputed here from the files), under the
    source frame numbers, and say so in one line exactly when the check fires."""
    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound.results import load_result

    common, out, store = _tiny_run(tiny_iq_priors, tmp_path)
    capsys.readouterr()
    assert run_app(["run", str(hazy_scan), "-o", str(out), "--frames", "1:3", *common, "-q"]) == 0
    assert run_app(["run-many", str(hazy_scan), "-o", str(store), *common, "-q"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "dark and bright" in line]
    fired = 0
    for path, frames in ((out, [1, 2]), (store / "scans/000", [0, 1, 2])):
        with load_result(path) as r:
            a = r.attrs
            h = _recomputed(r.frames("input"), r.frames("tissue"), frames)
        assert a["harm_frames"] == frames
        assert a["harm_warning"] is h.warning
        assert a["harm_gcnr_out"] == pytest.approx(h.attrs()["harm_gcnr_out"], abs=1e-6)
        assert a["ood_warning"] is bool(a["ood_reasons"])
        assert ("result" in a["ood_reasons"]) is h.warning
        fired += h.warning
    assert len(said) == fired and all(str(hazy_scan) in line for line in said)


HARM_KEYS = (
    "harm_warning",
    "harm_little_effect",
    "harm_frames",
    "harm_gcnr_in",
    "harm_gcnr_out",
    "harm_contrast_in_db",
    "harm_contrast_out_db",
    "ood_warning",
    "ood_reasons",
)


def test_run_many_records_and_says_what_run_does_on_the_same_frames(
    hazy_scan, tiny_iq_priors, tmp_path, capsys
):
    """run-many's do-no-harm figures, verdicts and lines are run's on the same frames of the
    same scan and settings: the same frames written, scored under the same source numbers, the
    same wording (driver.harm_lines). A report had run-many warn (gCNR 0.857 -> 0.125) where
    run did not, on the demo scan; here both paths are held to one answer."""
    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound.results import load_result

    common, out, store = _tiny_run(tiny_iq_priors, tmp_path)
    capsys.readouterr()
    args = [str(hazy_scan), "--frames", "1:3", *common, "-q"]
    assert run_app(["run", "-o", str(out), *args]) == 0
    said_run = [ln for ln in capsys.readouterr().err.splitlines() if "the result" in ln]
    assert run_app(["run-many", "-o", str(store), *args]) == 0
    said_many = [ln for ln in capsys.readouterr().err.splitlines() if "the result" in ln]
    with load_result(out) as r, load_result(store / "scans/000") as m:
        for key in ("input", "tissue"):
            np.testing.assert_array_equal(m.frames(key), r.frames(key))
        got = {k: m.attrs[k] for k in HARM_KEYS}
        want = {k: r.attrs[k] for k in HARM_KEYS}
    assert want["harm_frames"] == [1, 2] and not math.isnan(want["harm_gcnr_out"])
    assert got == want
    harm = [ln for ln in said_run if "dark and bright" in ln or "little haze" in ln]
    assert harm and [ln for ln in said_many if ln in harm] == harm  # the same lines said


@pytest.mark.parametrize(
    "change, noted",
    [
        (-0.2, True),  # the README walkthrough's scan: nothing taken out
        (CONTRAST_GAIN_DB - 0.01, True),
        (CONTRAST_GAIN_DB, False),  # raised enough: no note
        (8.3, False),  # the demo scan
        (-3.0, False),  # harm: the warning says it, not the note
    ],
)
def test_little_effect_is_noted_without_harm(change, noted):
    """A result that barely raises the regions' contrast gets a note; harm gets the warning."""
    h = HarmCheck()
    for k, c in enumerate([change - 1.0, change, change + 5.0]):  # median: change
        h.frames.append(FrameHarm(k, 0.8, 0.8, 19.0, 19.0 + c))
    assert h.little_effect is noted and h.attrs()["harm_little_effect"] is noted
    assert not (h.little_effect and h.warning)
    assert h.warning is (change < -CONTRAST_TOLERANCE_DB)
    line = h.little_effect_message("scan.h5")
    assert line.startswith("scan.h5: the result takes little haze out") and "3 frame(s)" in line
    assert "\n" not in line and "usdehaze adapt" in line
    assert HarmCheck().little_effect is False  # unscored: no word


def test_run_and_run_many_note_little_effect_exactly_when_recorded(
    hazy_scan, tiny_iq_priors, tmp_path, capsys
):
    """run and run-many say the note in one line exactly when the file records it, and its
    figure is the file's own (recomputed from what they wrote)."""
    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound.results import load_result

    common, out, store = _tiny_run(tiny_iq_priors, tmp_path)
    capsys.readouterr()
    assert run_app(["run", str(hazy_scan), "-o", str(out), "--frames", "0:2", *common, "-q"]) == 0
    said_run = [ln for ln in capsys.readouterr().err.splitlines() if "little haze" in ln]
    assert run_app(["run-many", str(hazy_scan), "-o", str(store), *common, "-q"]) == 0
    said_many = [ln for ln in capsys.readouterr().err.splitlines() if "little haze" in ln]
    for path, frames, said in (
        (out, [0, 1], said_run),
        (store / "scans/000", [0, 1, 2], said_many),
    ):
        with load_result(path) as r:
            a = r.attrs
            h = _recomputed(r.frames("input"), r.frames("tissue"), frames)
        assert a["harm_little_effect"] is h.little_effect
        assert said == ([h.little_effect_message(str(hazy_scan))] if h.little_effect else [])


@pytest.mark.parametrize("fallback", ["none", "input"])
def test_run_many_flags_wrecked_frames_and_falls_back_as_run_does(
    hazy_scan, tiny_iq_priors, tmp_path, capsys, monkeypatch, fallback
):
    """run-many makes run's gross-failure check frame by frame (the frame driver's path):
    frame 1 flagged (its figures kept, a check made to fire on it) is recorded in the scan's
    group as run records it, said in run's words, and with --fallback input written as the
    input, as run writes it."""
    import dataclasses

    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound import wreck
    from usdehaze.ultrasound.results import load_result

    real = wreck.frame_wreck

    def fires_on_frame_1(frame, *args, **kwargs):
        f = real(frame, *args, **kwargs)
        if f is None or frame != 1:
            return f
        return dataclasses.replace(f, reasons=("bright_darkened",))

    monkeypatch.setattr(wreck, "frame_wreck", fires_on_frame_1)
    common, out, store = _tiny_run(tiny_iq_priors, tmp_path)
    args = [str(hazy_scan), *common, "-q", "--fallback", fallback]
    capsys.readouterr()
    assert run_app(["run", "-o", str(out), *args]) == 0
    said_run = [ln for ln in capsys.readouterr().err.splitlines() if "wrecks" in ln]
    assert run_app(["run-many", "-o", str(store), *args]) == 0
    said_many = [ln for ln in capsys.readouterr().err.splitlines() if "wrecks" in ln]
    keys = ("wreck_warning", "wreck_flagged_frames", "wreck_reasons", "fallback_frames")
    with load_result(out) as r, load_result(store / "scans/000") as m:
        for key in ("input", "tissue", "haze"):
            np.testing.assert_array_equal(m.frames(key), r.frames(key))
        got = {k: m.attrs[k] for k in keys}
        assert got == {k: r.attrs[k] for k in keys}
        assert m.attrs["fallback"] == fallback and 1 in got["wreck_flagged_frames"]
        assert got["wreck_reasons"]["1"] == ["bright_darkened"]
        as_input = np.array_equal(m.frames("tissue")[1], m.frames("input")[1])
        assert as_input is (fallback == "input")
        assert (1 in got["fallback_frames"]) is (fallback == "input")
    assert said_run and said_many == said_run  # the same line, run's wording


def test_strict_stops_run_and_run_many_at_a_wrecked_frame(
    hazy_scan, tiny_iq_priors, tmp_path, capsys, monkeypatch
):
    """--strict (its help: "stop at a frame whose result looks wrecked, the frames before it
    kept") in run and run-many alike: exit 2, one line naming the frame; run-many's store keeps
    the frame dehazed before it (batch 1) and not the wrecked one, and a rerun without --strict
    resumes and finishes."""
    import dataclasses

    import zarr

    from usdehaze.cli._app import run_app
    from usdehaze.ultrasound import ood, wreck

    real = wreck.frame_wreck

    def fires_on_frame_1(frame, *args, **kwargs):
        f = real(frame, *args, **kwargs)
        if f is None:  # the tiny random priors wreck every frame: quiet but on frame 1
            return f
        return dataclasses.replace(f, reasons=("order_inverted",) if frame == 1 else ())

    monkeypatch.setattr(wreck, "frame_wreck", fires_on_frame_1)
    # the tiny random priors score every scan out of distribution: --strict would refuse first
    monkeypatch.setattr(ood, "ood_threshold", lambda prior: (float("inf"), "prior"))
    common, out, store = _tiny_run(tiny_iq_priors, tmp_path)
    args = [str(hazy_scan), *common, "--batch", "1", "-q"]
    for cmd, dest in (("run", out), ("run-many", store)):
        capsys.readouterr()
        assert run_app([cmd, "-o", str(dest), *args, "--strict"]) == 2, cmd
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "frame 1" in err[0] and "looks wrecked" in err[0], (cmd, err)
    done = np.asarray(zarr.open_group(str(store), mode="r")["scans/000/done"][:])
    assert done.tolist() == [1, 0, 0]
    assert run_app(["run-many", "-o", str(store), *args]) == 0
    assert np.asarray(zarr.open_group(str(store), mode="r")["scans/000/done"][:]).all()


def test_run_many_refuses_an_unknown_fallback(hazy_scan, tiny_iq_priors, tmp_path, capsys):
    from usdehaze.cli._app import run_app

    common, _, store = _tiny_run(tiny_iq_priors, tmp_path)
    capsys.readouterr()
    code = run_app(["run-many", str(hazy_scan), "-o", str(store), *common, "--fallback", "stop"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "expected none or input" in err[0]
    assert not store.exists()
