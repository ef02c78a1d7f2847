"""``usdehaze bench dehaze`` with the fast method's rows (issue 17): fast at batch 1 and batched,
fp32 and bf16, beside the default sampler and the plain Algorithm 1 loop, in one run."""

from __future__ import annotations

import pytest

from usdehaze.cli._app import run_app
from usdehaze.ultrasound.dehaze import DehazeConfig


def _cfg(priors, student, **kw):
    t, h = priors
    return DehazeConfig(
        tissue_prior=str(t),
        haze_prior=str(h),
        model="iq",
        steps=3,
        device="cpu",
        student=str(student),
        **kw,
    )


def test_fast_rows_beside_the_default_and_the_plain_loop(tiny_iq_priors, tiny_student):
    from usdehaze.ultrasound.bench_dehaze import run

    lines = []
    rows = run(
        _cfg(tiny_iq_priors, tiny_student),
        frames=2,
        batches=(1,),
        shape=(32, 32),
        plain_steps=4,
        log=lines.append,
        fast_batches=(1, 4),
        fast_precisions=("fp32", "bf16"),
        fast_seconds=0.05,
    )
    names = [r["setting"] for r in rows]
    assert names == [
        "plain Algorithm 1, T=4",
        "default, batch 1",
        "fast fp32, batch 1",
        "fast bf16, batch 1",
        "fast fp32, batch 4",
        "fast bf16, batch 4",
    ]
    fast = [r for r in rows if r["method"] == "fast"]
    for r in fast:
        assert r["frames_per_s"] > 0 and r["ms_per_frame"] > 0 and r["steps"] == r["nfe"] == 1
        assert r["vs_default"] > 0 and r["speedup"] > 0
        assert r["ms_per_frame"] == pytest.approx(1e3 / r["frames_per_s"])
    assert [r["precision"] for r in fast] == ["fp32", "bf16"] * 2
    assert [r["batch"] for r in fast] == [1, 1, 4, 4]
    assert rows[1]["method"] == "joint" and "vs_default" not in rows[1]  # the reference
    assert "vs default" in lines[-1] and "vs plain" in lines[-1] and "1 pass" in lines[-1]
    # without fast rows the existing ones are unchanged
    rows = run(
        _cfg(tiny_iq_priors, tiny_student), frames=1, batches=(1,), shape=(32, 32), plain=False
    )
    assert [r["setting"] for r in rows] == ["default, batch 1"]


def test_cli_prints_fast_rows_and_refuses_a_missing_student(
    tiny_iq_priors, tiny_student, tmp_path, capsys
):
    t, h = tiny_iq_priors
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"tissue_prior: {t}\nhaze_prior: {h}\nmodel: iq\n")
    common = ["bench", "dehaze", "--config", str(cfg), "--frames", "1", "--steps", "2"]
    common += ["--batch", "1", "--no-plain", "--device", "cpu"]
    argv = [*common, "--fast-batch", "2", "--fast-precision", "fp32"]
    assert run_app([*argv, "--student", str(tiny_student)]) == 0
    out = capsys.readouterr().out
    assert "default, batch 1" in out and "fast fp32, batch 2" in out and "vs default" in out
    assert run_app([*argv, "--student", str(tmp_path / "nope.safetensors")]) == 2
    assert "--student" in capsys.readouterr().err
    assert run_app([*argv, "--fast-precision", "fp64", "--student", str(tiny_student)]) == 2
    assert "--fast-precision fp64" in capsys.readouterr().err
