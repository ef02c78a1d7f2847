"""The quality table: held-out cases with truth, scoring against analytic extremes, every row."""

import dataclasses

import numpy as np

from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.evaluate import (
    HAZE_LEVELS,
    default_methods,
    eval_set,
    evaluate,
    markdown,
    markdown_by_level,
    score,
)
from usdehaze.ultrasound.logcomp import to_db


def test_eval_set_truth_and_score_extremes():
    cases = eval_set(2, shape=(96, 64))
    c = cases[0]
    np.testing.assert_allclose(c["input"], to_db(c["iq"][None])[0], atol=1e-4)
    assert c["target"].any() and c["background"].any() and not (c["target"] & c["background"]).any()
    clean = score(cases, [k["clean"] for k in cases], [k["haze"] for k in cases])
    hazy = score(cases, [k["input"] for k in cases])
    assert clean["psnr"] == np.inf and clean["myo_shift_db"] == 0 and clean["haze_corr"] == 1
    assert clean["gcnr"] > hazy["gcnr"] and clean["lv_db"] < hazy["lv_db"] - 10


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
    assert first == "joint (μ-law IQ, TMI, default)" and rows[first] is base
    joint = {k: v for k, v in rows.items() if k.startswith("joint")}
    assert sorted(v.model for v in joint.values()) == ["additive", "iq", "logsum"]
    assert all(v.steps == 7 for v in rows.values())
    for cfg in rows.values():
        cfg.validate()  # every row is a runnable config


def test_evaluate_runs_iq_and_db_rows(tiny_priors, tiny_iq_priors):
    def cfg(priors, **kw):
        t, h = priors
        return DehazeConfig(tissue_prior=str(t), haze_prior=str(h), steps=2, device="cpu", **kw)

    methods = {"joint iq": cfg(tiny_iq_priors, model="iq"), "dps": cfg(tiny_priors, method="dps")}
    methods["joint iq"] = dataclasses.replace(methods["joint iq"], batch=1)
    logs = []
    table = evaluate(methods, n=2, log=logs.append)
    assert list(table) == ["hazy input", "clean truth", "joint iq", "dps"]
    for name in ("joint iq", "dps"):
        assert 0 <= table[name]["gcnr"] <= 1 and np.isfinite(table[name]["haze_corr"])
    assert len(logs) == 2 and "| joint iq |" in markdown(table)
