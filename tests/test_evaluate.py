"""The quality table: held-out cases with truth, scoring against analytic extremes, every row."""

import dataclasses

import numpy as np
import pytest

from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.evaluate import (
    HAZE_LEVELS,
    VERDICTS,
    _batches,
    default_methods,
    eval_set,
    evaluate,
    markdown,
    markdown_by_level,
    score,
)
from usdehaze.ultrasound.logcomp import to_db
from usdehaze.ultrasound.roi import pair_masks, roi_from_dict
from usdehaze.ultrasound.simulate import simulate_cardiac


def test_eval_set_truth_and_score_extremes():
    cases = eval_set(2, shape=(96, 64))
    c = cases[0]
    np.testing.assert_allclose(c["input"], to_db(c["iq"][None])[0], atol=1e-4)
    assert c["target"].any() and c["background"].any() and not (c["target"] & c["background"]).any()
    clean = score(cases, [k["clean"] for k in cases], [k["haze"] for k in cases])
    hazy = score(cases, [k["input"] for k in cases])
    assert clean["psnr"] == np.inf and clean["myo_shift_db"] == 0 and clean["haze_corr"] == 1
    assert clean["gcnr"] > hazy["gcnr"] and clean["lv_db"] < hazy["lv_db"] - 10
    # the truth takes all the haze out and keeps the tissue; the input takes none out
    assert clean["haze_removed"] == 1 and clean["haze_removed_median"] == 1
    assert clean["tissue_kept_db"] == 0 and hazy["haze_removed"] == 0
    assert np.isfinite(hazy["psnr"]) and "haze_corr" not in hazy
    assert c["sector"].all() and c["sector"].shape == c["clean"].shape


def test_gcnr_per_haze_level_averages_the_frames_of_that_level():
    cases = eval_set(4, shape=(96, 64))
    assert [c["haze_level_db"] for c in cases] == [*HAZE_LEVELS, HAZE_LEVELS[0]]
    hazy = score(cases, [k["input"] for k in cases])
    per = [score([c], [c["input"]])["gcnr"] for c in cases]
    assert np.isclose(hazy["gcnr_at_-16dB"], (per[0] + per[3]) / 2)
    assert np.isclose(hazy["gcnr_at_-8dB"], per[2])
    text = markdown_by_level(
        {"hazy input": hazy, "clean truth": score(cases, [c["clean"] for c in cases])}
    )
    assert "| -8 dB |" in text and "clean truth" not in text


def test_every_data_model_gets_a_row_with_the_base_settings():
    base = DehazeConfig(steps=7, model="iq")
    rows = default_methods(base)
    first = next(iter(rows))
    assert first == "joint (μ-law IQ, TMI)" and rows[first] == dataclasses.replace(
        base, method="joint"
    )
    # "default" marks what auto runs on beamformed I/Q: refine with the shipped priors, the
    # joint sampler with priors of one's own
    marked = [k for k in rows if "default" in k]
    assert marked == ["refine (student + 7 joint steps from σ = 0.25, default)"]
    own = default_methods(dataclasses.replace(base, priors="lab_priors"))
    assert next(iter(own)) == "joint (μ-law IQ, TMI, default)"
    assert [k for k in own if "default" in k] == ["joint (μ-law IQ, TMI, default)"]
    joint = {k: v for k, v in rows.items() if k.startswith("joint")}
    assert sorted(v.model for v in joint.values()) == ["additive", "iq", "logsum"]
    # each runs the joint sampler, not what auto would pick for its model (refine on iq)
    assert all(v.method == "joint" for v in joint.values())
    assert all(v.method == "joint" for k, v in own.items() if k.startswith("joint"))
    assert all(v.steps == 7 for v in rows.values())
    for cfg in rows.values():
        cfg.validate()  # every row is a runnable config


def test_evaluate_runs_iq_and_db_rows(tiny_priors, tiny_iq_priors):
    def cfg(priors, **kw):
        t, h = priors
        return DehazeConfig(tissue_prior=str(t), haze_prior=str(h), steps=2, device="cpu", **kw)

    methods = {"joint iq": cfg(tiny_iq_priors, model="iq"), "dps": cfg(tiny_priors, method="dps")}
    methods["joint iq"] = dataclasses.replace(methods["joint iq"], batch=1)
    # explicit cases of two frame sizes (as another data source may give): each batch one size
    cases = eval_set(2, shape=(96, 64)) + eval_set(1, seed0=5, shape=(64, 64))
    logs = []
    table = evaluate(methods, log=logs.append, cases=cases)
    assert list(table) == ["hazy input", "clean truth", "joint iq", "dps"]
    keys = {"gcnr", "ks", "haze_removed", "haze_removed_median", "tissue_kept_db", "psnr"}
    keys |= {"lv_db", "myo_shift_db", "s_per_frame"}
    for name, row in table.items():
        assert keys <= set(row), name
        assert 0 <= row["gcnr"] <= 1 and np.isfinite(row["haze_removed"])
    for name in ("joint iq", "dps"):
        assert np.isfinite(table[name]["haze_corr"]) and table[name]["s_per_frame"] > 0
    assert len(logs) == 2 and "| joint iq |" in markdown(table)
    assert "haze removed" in logs[0] and "tissue kept" in logs[0]


def _case(k_db: float, seed: int, shape=(40, 30)) -> dict:
    """A hand-built case: speckle tissue with a cavity 30 dB down; haze lifts the cavity by k dB
    (and the far rows, outside the myocardium, by 1 dB)."""
    rng = np.random.default_rng(seed)
    clean = 20 * np.log10(rng.rayleigh(0.1, shape))
    target = np.zeros(shape, bool)
    target[10:25, 8:22] = True
    background = np.zeros(shape, bool)
    background[5:30, 2:28] = True
    background &= ~target
    clean[target] -= 30
    hazy = clean + k_db * target
    hazy[32:] += 1.0
    return {"input": hazy, "clean": clean, "target": target, "background": background}


def test_haze_removed_pools_frames_and_tissue_kept_uses_the_median_reference():
    ks_db, taken = (
        (12.0, 4.0),
        (6.0, 3.0),
    )  # haze of each frame, and how much of it an output removes
    cases = [_case(k, i) for i, k in enumerate(ks_db)]
    out = [c["input"] - r * c["target"] for c, r in zip(cases, taken)]
    row = score(cases, out)
    assert row["haze_removed"] == pytest.approx(sum(taken) / sum(ks_db))  # 9/16, not mean 0.625
    assert row["haze_removed_median"] == pytest.approx(np.median(np.divide(taken, ks_db)))
    # a global gain moves neither the haze contrast nor the median-referenced tissue level
    gained = score(cases, [o - 5.0 for o in out])
    assert gained["haze_removed"] == pytest.approx(row["haze_removed"])
    assert gained["tissue_kept_db"] == pytest.approx(row["tissue_kept_db"])
    assert gained["myo_shift_db"] == pytest.approx(row["myo_shift_db"] - 5.0)
    # myocardium 2 dB up: against a reference that holds no myocardium, tissue kept is +2 exactly;
    # against the default (sector without the cavity, myocardium included) the median moves too
    far = np.zeros(cases[0]["clean"].shape, bool)
    far[32:] = True
    brighter = [c["clean"] + 2.0 * c["background"] for c in cases]
    assert score([c | {"tissue": far} for c in cases], brighter)["tissue_kept_db"] == pytest.approx(
        2.0
    )
    assert 0 < score(cases, brighter)["tissue_kept_db"] < 1.9
    # no haze anywhere: nothing to take out, so no share (NaN, shown as "–")
    flat = [c | {"input": c["clean"]} for c in cases]
    none = score(flat, [c["clean"] for c in flat])
    assert np.isnan(none["haze_removed"]) and np.isnan(none["haze_removed_median"])
    assert "| x | " in markdown({"x": none}) and "| – |" in markdown({"x": none})


def test_psnr_is_inside_the_sector():
    cases = [_case(10.0, 3)]
    sector = np.ones(cases[0]["clean"].shape, bool)
    sector[:, :3] = False
    out = cases[0]["clean"] + 1.5 * sector  # 1.5 dB off inside, garbage outside
    out[~sector] = 0.0
    inside = score([cases[0] | {"sector": sector}], [out])
    assert inside["psnr"] == pytest.approx(20 * np.log10(60 / 1.5))
    assert score(cases, [out])["psnr"] < inside["psnr"] - 1


def test_batches_keep_one_shape_and_the_batch_size():
    cases = [{"iq": np.zeros(s)} for s in [(4, 4)] * 3 + [(6, 4)] * 2 + [(4, 4)]]
    assert _batches(cases, 2) == [range(0, 2), range(2, 3), range(3, 5), range(5, 6)]
    assert _batches(cases, 8) == [range(0, 3), range(3, 5), range(5, 6)]


def test_each_frame_gets_a_verdict_from_its_truth_and_the_checks_rates():
    """Truth as the result is helped, the input itself neither, haze poured into a small cavity
    and the input's order inverted harmed. An OOD warning on the helped frame is a false alarm,
    none on the harmed ones two misses; the do-no-harm and gross-failure checks catch the
    inversion, but neither sees the cavity (their regions are the frame's darkest and brightest
    15 %, elsewhere): one miss for "any"."""
    from usdehaze.ultrasound.evaluate import check_rates, markdown_checks, markdown_scans, verdict
    from usdehaze.ultrasound.ood import OodCheck

    cases = eval_set(4, shape=(96, 64))
    filled = cases[2]["input"] + 20.0 * cases[2]["target"]
    inverted = 2 * np.median(cases[3]["input"]) - cases[3]["input"]
    images = [cases[0]["clean"], cases[1]["input"], filled, inverted]
    ood = [OodCheck(0.3, 0.1), OodCheck(0.3, 0.1), OodCheck(0.01, 0.1), OodCheck(0.01, 0.1)]
    row = score(cases, images, ood=ood)
    frames = row["frames"]
    assert [f["verdict"] for f in frames] == ["helped", "neither", "harmed", "harmed"]
    assert [f["ood"] for f in frames] == [1.0, 1.0, 0.0, 0.0]
    assert [(f["harm"], f["wreck"]) for f in frames] == [(0, 0), (0, 0), (0, 0), (1, 1)]
    r = check_rates(row)
    assert (r["helped"], r["harmed"], r["neither"]) == (1, 2, 1)
    assert r["false_alarms_ood"] == (1, 1) and r["misses_ood"] == (2, 2)
    assert r["misses_harm"] == r["misses_wreck"] == r["misses_any"] == (1, 2)
    assert r["false_alarms_any"] == (1, 1) and row["ood_warned"] == 0.5
    # without an OOD score (the input and truth rows, bm3d) the check is unscored, not quiet
    plain = check_rates(score(cases, images))
    assert plain["false_alarms_ood"] == (0, 0) and plain["misses_any"] == (1, 2)
    table = {"hazy input": score(cases, [c["input"] for c in cases]), "m": row}
    text = markdown_checks(table)
    assert "| m | 1 | 2 | 1 | 1/1 |" in text and "hazy input" not in text  # nothing to judge
    scans = markdown_scans(table)
    assert "| 3 | harmed " in scans and "· harm+wreck |" in scans and "· ood |" in scans
    # the thresholds: tissue 1.5 dB off is neither helped nor harmed; 3 dB off (input 0) harmed
    base = {"haze_removed": 0.5, "psnr": 20.0, "psnr_in": 18.0, "tissue_kept_in_db": 0.0}
    assert verdict(base | {"tissue_kept_db": 0.5}) == "helped"
    assert verdict(base | {"tissue_kept_db": 1.5}) == "neither"
    assert verdict(base | {"tissue_kept_db": -3.0}) == "harmed"
    assert verdict(base | {"tissue_kept_db": 0.0, "psnr": 16.5}) == "harmed"


def test_evaluate_cases_prints_the_checks_beside_the_table(tmp_path, capsys):
    """``usdehaze evaluate --cases DIR`` on two corpus frames: after the quality table, the checks'
    rates per method and each scan's verdict and checks (the --json rows hold them per frame)."""
    import json

    from usdehaze.cli import run_app
    from usdehaze.ultrasound.corpus.store import write_shard

    samples = []
    for seed in (0, 1):
        sim = simulate_cardiac(1, seed=seed, haze_db=-12.0, shape=(128, 64))
        ((_, t, b),) = pair_masks(roi_from_dict(sim.roi, "sim"), sim.x, sim.z)
        samples.append(
            {
                "tissue": sim.tissue_iq[0],
                "haze": sim.haze_iq[0],
                "cavity": t,
                "myocardium": b,
                "tissue_mask": ~t,
                "params": {"haze_db": -12.0, "seed": seed},
            }
        )
    split = tmp_path / "val"
    split.mkdir()
    write_shard(split / "a.npz", {}, samples)
    out = tmp_path / "t.json"
    code = run_app(["evaluate", "--cases", str(split), "--only", "fast", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    checks = text.split("The checks against the truth")[1]
    assert "| clean truth | 2 | 0 | 0 |" in checks  # the truth helps every frame
    assert "| fast (one-pass student of the joint sampler) |" in checks
    assert "| a/0 | helped " in checks and "| a/1 |" in checks
    frames = json.loads(out.read_text())["fast (one-pass student of the joint sampler)"]["frames"]
    assert [f["name"] for f in frames] == ["a/0", "a/1"]
    assert all(np.isfinite(f["ood_score"]) and f["verdict"] in VERDICTS for f in frames)
