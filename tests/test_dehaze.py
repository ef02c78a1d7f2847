"""Dehazing pipeline behaviour with tiny priors (quality is measured by `usdehaze evaluate`)."""

import dataclasses

import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer, run_dehaze
from usdehaze.ultrasound.models import haze_from_power
from usdehaze.ultrasound.results import load_result


def _cfg(tiny_priors, **kw):
    """Tiny priors with a log-domain model unless told (tiny_iq_priors need model="iq")."""
    t, h = tiny_priors
    kw.setdefault("model", "logsum")
    return DehazeConfig(tissue_prior=str(t), haze_prior=str(h), steps=3, device="cpu", **kw)


def test_joint_outputs_db_images_and_is_seeded(tiny_priors):
    db = np.random.default_rng(0).uniform(-60, 0, (2, 40, 24)).astype(np.float32)
    d = Dehazer(_cfg(tiny_priors))
    a, b = d(db, seed=1), d(db, seed=1)
    assert a["tissue"].shape == db.shape and a["haze"].shape == db.shape
    for k in ("tissue", "haze"):
        assert a[k].dtype == np.float32 and a[k].min() >= -60 and a[k].max() <= 0
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(d(db, seed=2)["tissue"], a["tissue"])


@pytest.mark.parametrize("method", ["dps", "pigdm-gauss", "bm3d"])
def test_baselines_run(tiny_priors, method):
    db = np.random.default_rng(1).uniform(-60, 0, (1, 32, 32)).astype(np.float32)
    out = Dehazer(_cfg(tiny_priors, method=method))(db)
    assert out["tissue"].shape == db.shape and np.isfinite(out["haze"]).all()


def test_samples_give_std(tiny_priors):
    db = np.random.default_rng(2).uniform(-60, 0, (1, 32, 32)).astype(np.float32)
    out = Dehazer(_cfg(tiny_priors, samples=3))(db)
    assert out["tissue_std"].shape == db.shape and out["tissue_std"].mean() > 0


@pytest.mark.parametrize("solver", ["ddim", "heun"])
def test_frame_results_do_not_depend_on_batching(tiny_priors, solver):
    """Per-frame noise: each frame draws from seed + its index: batch 1 and batch 3 give the
    same frames, another index another result."""
    db = np.random.default_rng(3).uniform(-60, 0, (3, 32, 32)).astype(np.float32)
    cfg = _cfg(tiny_priors, solver=solver, schedule="karras", channels_last=True, noise="per-frame")
    d = Dehazer(cfg)
    together = d(db, frames=[4, 5, 6])  # batch 3 vs 1: float sums differ by ~1e-4 dB
    alone = d(db[1:2], frames=[5])
    np.testing.assert_allclose(together["tissue"][1:2], alone["tissue"], atol=1e-2)
    other = d(db[1:2], frames=[6])
    assert not np.allclose(other["tissue"], alone["tissue"])


def test_shared_noise_gives_a_repeated_frame_the_same_result_at_any_index(tiny_priors):
    """noise shared (the default): every frame draws the seed's noise, so a still stored as a
    cine comes back as a still (no flicker made by the sampler), in any batch."""
    frame = np.random.default_rng(4).uniform(-60, 0, (1, 32, 32)).astype(np.float32)
    d = Dehazer(_cfg(tiny_priors))
    assert d.cfg.noise == "shared"
    cine = d(np.repeat(frame, 3, axis=0), frames=[0, 7, 8])
    alone = d(frame, frames=[5])
    for k in range(3):
        np.testing.assert_allclose(cine["tissue"][k], alone["tissue"][0], atol=1e-2)
    other = Dehazer(_cfg(tiny_priors, seed=1))(frame, frames=[5])
    assert not np.allclose(other["tissue"], alone["tissue"])
    with pytest.raises(UsageError, match="noise 'fresh': expected one of shared, per-frame"):
        _cfg(tiny_priors, noise="fresh").validate()


def test_haze_from_power_inverts_the_power_sum():
    t, h = np.array([-20.0, -40.0]), np.array([-30.0, -25.0])
    y = 10 * np.log10(10 ** (t / 10) + 10 ** (h / 10))
    np.testing.assert_allclose(haze_from_power(y, t, 60), h, atol=1e-4)


def test_bad_inputs(tiny_priors):
    d = Dehazer(_cfg(tiny_priors))
    with pytest.raises(UsageError, match="smaller than the priors' minimum"):
        d(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(UsageError, match="dynamic_range"):
        Dehazer(_cfg(tiny_priors, dynamic_range=40))
    with pytest.raises(UsageError, match="method 'nope'"):
        DehazeConfig.from_dict({"method": "nope"})
    with pytest.raises(UsageError, match="key 'stepz'"):
        DehazeConfig.from_dict({"stepz": 3})
    with pytest.raises(UsageError, match="solver 'rk4'"):
        DehazeConfig.from_dict({"solver": "rk4"})
    with pytest.raises(UsageError, match="iq model is nonlinear"):
        DehazeConfig.from_dict({"rule": "pigdm"})  # the default model
    with pytest.raises(UsageError, match="logsum model is nonlinear"):
        DehazeConfig.from_dict({"rule": "pigdm", "model": "logsum"})
    with pytest.raises(UsageError, match="missing prior"):
        Dehazer(dataclasses.replace(_cfg(tiny_priors), tissue_prior="/nonexistent/p.safetensors"))


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_run_dehaze_writes_a_reproducible_result(tiny_priors, small_scan, tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    cfg = _cfg(tiny_priors, batch=2)
    seen = []
    run_dehaze(small_scan, out, cfg, range(0, 3), progress=lambda d, t, s: seen.append(d))
    assert seen == [2, 3]
    with load_result(out) as r:
        assert r.n_frames == 3 and r.attrs["complete"]
        assert r.attrs["config"]["steps"] == 3 and r.attrs["seed"] == 0
        assert set(r.attrs["prior_checksums"]) == {"tissue", "haze"} and r.attrs["usdehaze_version"]
        assert r.attrs["source_frames"] == [0, 1, 2]
        assert r.attrs["nfe"] == 6  # 3 steps × 2 priors, as the sampler counted them
        inp = r.frames("input")
        assert inp.max() == 0 and inp.min() >= -60


@pytest.mark.parametrize(
    "kw, nfe",
    [
        ({}, 6),  # joint: 3 steps × 2 networks
        ({"samples": 2}, 12),  # each frame: 2 draws
        ({"solver": "heun"}, 10),  # Heun: a second evaluation on all but the last step
        ({"method": "dps"}, 5),  # the baseline's own 5 DDIM steps on one network, not 2 × 40
        ({"method": "pigdm-gauss", "steps": 4, "solver": "em"}, 4),
        ({"method": "bm3d"}, 0),
    ],
)
def test_nfe_is_what_the_sampler_ran_per_frame(tiny_priors, kw, nfe):
    db = np.random.default_rng(7).uniform(-60, 0, (2, 32, 32)).astype(np.float32)
    kw = dict(kw)
    steps = kw.pop("steps", 3)
    cfg = dataclasses.replace(_cfg(tiny_priors, **kw), steps=steps)
    if kw.get("method") == "dps":  # the joint default's steps: the baseline takes its own
        cfg = dataclasses.replace(cfg, steps=DehazeConfig().steps)
    d = Dehazer(cfg)
    assert d.nfe == 0
    d(db)
    assert d.nfe == nfe
    if nfe:
        d.dehaze_iq(np.zeros((1, 32, 32), np.complex64))  # a blank frame: nothing runs
        assert d.nfe == 0


def test_interrupted_run_keeps_finished_frames(tiny_priors, small_scan, tmp_path):
    out = tmp_path / "r.h5"

    def stop(done, total, seconds):
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dehaze(small_scan, out, _cfg(tiny_priors, batch=1), range(1, 3), progress=stop)
    with load_result(out) as r:
        assert r.n_frames == 1 and not r.attrs["complete"]
        # issue 32: the frames it holds, not the ones the run was asked for
        assert list(r.attrs["source_frames"]) == [1]
        assert list(r.attrs["source_frames_requested"]) == [1, 2]


def test_bench_dehaze_rows(tiny_priors):
    from usdehaze.ultrasound.bench_dehaze import run

    lines = []
    rows = run(
        _cfg(tiny_priors), frames=2, batches=(2,), shape=(32, 32), plain_steps=6, log=lines.append
    )
    assert [r["setting"] for r in rows] == ["plain Algorithm 1, T=6", "default, batch 2"]
    assert rows[0]["steps"] == 6 and rows[1]["steps"] == 3
    # timed through the frame driver, which counts the sampler's evaluations: two priors, one
    # each per EM step (the plain loop evaluates them again after each DC step)
    assert rows[1]["nfe"] == 2 * 3 and rows[0]["nfe"] == 2 * 2 * 6
    assert all(r["frames_per_s"] > 0 for r in rows) and "speedup" in rows[1]
    assert "vs plain" in lines[-1]


def test_bench_dehaze_refine_row_runs_refines_steps(tiny_iq_priors, tiny_student):
    """--variant refine: a row of the refine method at its own steps, timed in the same run as
    the default (its ratio beside it), its NFE the sampler's steps x 2 priors + the student."""
    from usdehaze.ultrasound.bench_dehaze import run

    t, h = tiny_iq_priors
    cfg = DehazeConfig(
        tissue_prior=str(t), haze_prior=str(h), model="iq", device="cpu", student=str(tiny_student)
    )  # fmt: skip  (the default's steps: 25)
    rows = run(cfg, frames=2, batches=(2,), variants=("refine",), shape=(32, 32), plain=False,
               log=lambda s: None)  # fmt: skip
    assert [r["setting"] for r in rows] == ["default, batch 2", "refine, batch 2"]
    assert rows[1]["method"] == "refine" and rows[1]["steps"] == 4
    assert rows[1]["nfe"] == 2 * 4 + 1 and rows[0]["nfe"] == 2 * 25
    assert rows[1]["vs_default"] == rows[1]["frames_per_s"] / rows[0]["frames_per_s"]


def _iq_frames(n=2, shape=(40, 24), seed=0):
    from usdehaze.ultrasound.simulate import simulate_cardiac

    return simulate_cardiac(n, seed=seed, shape=shape).hazy_iq


def test_iq_model_separates_complex_frames_into_db_images(tiny_iq_priors):
    from usdehaze.ultrasound.logcomp import to_db

    iq = _iq_frames()
    d = Dehazer(_cfg(tiny_iq_priors, model="iq", samples=2))
    out = d.dehaze_iq(iq, frames=[0, 1])
    np.testing.assert_array_equal(out["input"], to_db(iq))
    for k in ("tissue", "haze", "tissue_std", "haze_std"):
        assert out[k].shape == iq.shape and out[k].dtype == np.float32 and np.isfinite(out[k]).all()
    assert out["tissue"].min() >= -60 and out["tissue"].max() <= 0 and out["haze_std"].mean() > 0
    again = d.dehaze_iq(iq[1:], frames=[1])  # a frame's result depends on seed and frame only
    np.testing.assert_allclose(again["tissue"], out["tissue"][1:], atol=1e-2)


def test_iq_model_refuses_db_images_magnitudes_and_db_priors(tiny_priors, tiny_iq_priors):
    d = Dehazer(_cfg(tiny_iq_priors, model="iq"))
    with pytest.raises(UsageError, match="needs complex IQ frames"):
        d(np.zeros((1, 32, 32), np.float32))
    with pytest.raises(UsageError, match="these are magnitudes"):
        d.dehaze_iq(np.abs(_iq_frames()))
    bad = _iq_frames()
    bad[0, 3, 3] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        d.dehaze_iq(bad)
    with pytest.raises(UsageError, match="normalisation.domain.*'db'.*needs 'iq-mulaw'"):
        Dehazer(_cfg(tiny_priors, model="iq"))
    with pytest.raises(UsageError, match="normalisation.domain.*'iq-mulaw'.*needs 'db'"):
        Dehazer(_cfg(tiny_iq_priors))
    with pytest.raises(UsageError, match="iq model is nonlinear"):
        DehazeConfig.from_dict({"model": "iq", "rule": "projection"})


def test_iq_model_refuses_a_prior_companded_with_another_mu(tiny_iq_priors, tmp_path):
    """A μ-law prior trained with μ = 100 would misread μ = 255 data: one line naming its JSON."""
    import json
    import shutil

    t, h = tiny_iq_priors
    for p in (t, t.with_suffix(".json")):
        shutil.copy(p, tmp_path / p.name)
    meta = json.loads(t.with_suffix(".json").read_text())
    meta["normalisation"]["mu"] = 100
    (tmp_path / t.with_suffix(".json").name).write_text(json.dumps(meta))
    other = tmp_path / t.name
    with pytest.raises(
        UsageError, match=r"normalisation\.mu.*μ = 100, the iq model uses μ = 255"
    ) as e:
        Dehazer(dataclasses.replace(_cfg(tiny_iq_priors, model="iq"), tissue_prior=str(other)))
    assert str(e.value).startswith(str(other)) and "\n" not in str(e.value)
    meta["normalisation"]["mu"] = 255.0  # the same μ written as a float is accepted
    (tmp_path / t.with_suffix(".json").name).write_text(json.dumps(meta))
    Dehazer(dataclasses.replace(_cfg(tiny_iq_priors, model="iq"), tissue_prior=str(other)))


def test_magnitude_only_scans_run_the_iq_model_in_the_log_domain(tiny_priors, tmp_path):
    from tests.conftest import memory_scan
    from usdehaze.ultrasound.methods import for_magnitude_data

    assert for_magnitude_data(DehazeConfig(model="additive")) == (
        DehazeConfig(model="additive"),
        None,
    )
    with pytest.raises(UsageError, match="magnitude-only"):
        for_magnitude_data(_cfg(tiny_priors, model="iq"))  # given iq priors cannot be swapped
    scan = memory_scan()
    read = scan.read
    scan.read = lambda a, b: np.abs(read(a, b))
    scan.magnitude_only = True
    # shipped priors: the iq pair is swapped for the shipped dB pair, and the output says so
    run_dehaze(scan, tmp_path / "m.h5", DehazeConfig(model="iq", steps=1, device="cpu"))
    with load_result(tmp_path / "m.h5") as r:
        assert r.attrs["magnitude_only"] and r.attrs["config"]["model"] == "logsum"
        assert "model logsum" in r.attrs["note"] and r.attrs["complete"]


def test_precision_autocasts_the_networks_only(tiny_priors):
    """bf16 networks (autocast works on CPU too) change results a little, fp32 is the default."""
    db = np.random.default_rng(6).uniform(-60, 0, (1, 32, 32)).astype(np.float32)
    full = Dehazer(_cfg(tiny_priors))
    assert full.precision() == "fp32" and full.sampler().precision == "fp32"
    half = Dehazer(_cfg(tiny_priors, precision="bf16"))
    assert half.sampler().precision == "bf16"
    a, b = full(db, seed=0)["tissue"], half(db, seed=0)["tissue"]
    assert a.dtype == b.dtype == np.float32 and not np.array_equal(a, b)
    assert np.abs(a - b).mean() < 0.5  # dB
    with pytest.raises(UsageError, match="precision 'fp8'"):
        DehazeConfig.from_dict({"precision": "fp8"})


@pytest.mark.parametrize("model", ["logsum", "iq"])
def test_all_zero_frames_stay_blank_and_are_reported(tiny_priors, tiny_iq_priors, model, tmp_path):
    from tests.conftest import memory_scan

    cfg = _cfg(tiny_iq_priors if model == "iq" else tiny_priors, model=model)
    iq = _iq_frames(3)
    iq[1] = 0
    d = Dehazer(cfg)
    out = d.dehaze_iq(iq, frames=[0, 1, 2])
    for k in ("input", "tissue", "haze"):
        assert (out[k][1] == -60).all() and (out[k][[0, 2]] > -60).any()
    alone = d.dehaze_iq(iq[2:], frames=[2])  # the others are dehazed as if the blank were absent
    np.testing.assert_allclose(out["tissue"][2:], alone["tissue"], atol=1e-2)
    scan = memory_scan(shape=(40, 24))
    read = scan.read
    scan.read = lambda a, b: np.where(np.arange(a, b)[:, None, None] == 2, 0, read(a, b))
    said = []
    run_dehaze(scan, tmp_path / "b.h5", dataclasses.replace(cfg, batch=2), warn=said.append)
    blank = [m for m in said if "all zeros" in m]  # random priors also warn: unfamiliar data
    assert blank == ["memory.h5: frame(s) [2] are all zeros; written as blank frames"]
    with load_result(tmp_path / "b.h5") as r:
        assert r.attrs["blank_frames"] == [2] and (r.frames("tissue")[2] == -60).all()
        assert r.attrs["ood_frames"] == [0, 1]  # the blank frame is not scored either


def test_cuda_graphs_setting_compiles_and_keeps_results(tiny_priors):
    """cuda_graphs compiles the networks in torch's reduce-overhead mode (CUDA graphs on CUDA,
    a plain compile here) and the sampler clones each score: results match the eager run."""
    db = np.random.default_rng(7).uniform(-60, 0, (2, 32, 32)).astype(np.float32)
    eager = Dehazer(_cfg(tiny_priors))
    graphed = Dehazer(_cfg(tiny_priors, cuda_graphs=True))
    for p in graphed.priors.values():
        assert p.cuda_graphs and hasattr(p.net, "_orig_mod")  # torch.compile's wrapper
    assert not any(p.cuda_graphs for p in eager.priors.values())
    a, b = eager(db, seed=3)["tissue"], graphed(db, seed=3)["tissue"]
    np.testing.assert_allclose(a, b, atol=0.05)  # dB; compiled kernels reorder float sums


def test_baselines_take_their_own_settings_unless_given():
    from usdehaze.ultrasound.dehaze_config import method_settings
    from usdehaze.ultrasound.methods import METHODS

    dps = method_settings(DehazeConfig(method="dps"))
    assert (dps.solver, dps.steps, dps.lam) == ("ddim", 5, 1.0)
    assert method_settings(dps) == dps  # idempotent
    given = method_settings(DehazeConfig(method="pigdm-gauss", steps=12, lam=0.5))
    assert (given.steps, given.lam, given.solver) == (12, 0.5, "ddim")
    assert method_settings(DehazeConfig()) == DehazeConfig()  # the joint method keeps its own
    own = {n for n, m in METHODS.items() if m.own_settings()}  # their Params
    assert own == {"dps", "pigdm-gauss", "refine", "bm3d"}
    assert METHODS["bm3d"].defaults(DehazeConfig(method="bm3d")) == DehazeConfig(method="bm3d")


@pytest.mark.parametrize(
    "key,value,kind",
    [
        ("lam", "abc", "number"),
        ("jacobian_variance", "abc", "number"),
        ("steps", 40.5, "integer"),
        ("channels_last", "yes", "boolean"),
        ("jacobian", 2, "str"),
        ("tissue_prior", 3, "string"),
    ],
)
def test_config_values_of_the_wrong_type_are_one_line(key, value, kind):
    with pytest.raises(UsageError, match=f"cfg.yaml: key '{key}': expected a {kind}"):
        DehazeConfig.from_dict({key: value}, "cfg.yaml")
    assert DehazeConfig.from_dict({"lam": 2, "steps": 10}).lam == 2  # an integer is a number


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_bf16_for_the_student_on_cpus_with_amx_only(
    tiny_priors, tiny_student, tiny_iq_priors, monkeypatch, amx
):
    """auto: the fast method (checked to score as fp32 on validation) runs bf16 where the CPU
    has AMX bf16 tiles; the sampler stays fp32; a CPU without them runs everything in fp32
    (emulated bf16 ran the student about 100x slower)."""
    import torch

    from usdehaze.core.device import native_bf16

    caps = dict(torch.cpu.get_capabilities(), amx_bf16=amx)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert native_bf16(torch.device("cpu")) is amx
    t, h = tiny_iq_priors
    iq = {"tissue_prior": str(t), "haze_prior": str(h), "device": "cpu"}
    fast = Dehazer(DehazeConfig(**iq, method="fast", student=str(tiny_student)))
    assert fast.precision() == ("bf16" if amx else "fp32")
    assert Dehazer(_cfg(tiny_priors)).precision() == "fp32"
    given = Dehazer(DehazeConfig(**iq, method="fast", student=str(tiny_student), precision="fp32"))
    assert given.precision() == "fp32"
