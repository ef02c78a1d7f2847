"""Data models as registered pieces (usdehaze.ultrasound.models.DATA_MODELS): every model gets an
encode/decode round trip and a check of its priors' JSON; the rules each allows come from the DC
rules' declared needs; adding one is one module (docs/architecture.md's example, run here)."""

import dataclasses
import json
import pkgutil
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from usdehaze.core.dc_rules import DC_RULES
from usdehaze.core.domains import BMODE_DB
from usdehaze.core.sampler import SampleResult
from usdehaze.errors import UsageError
from usdehaze.ultrasound import models as models_pkg
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.logcomp import DB, to_db
from usdehaze.ultrasound.methods import for_magnitude_data
from usdehaze.ultrasound.models import DATA_MODELS
from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

MODELS = sorted(DATA_MODELS)


def _iq(n=2, z=40, x=32, seed=0):
    rng = np.random.default_rng(seed)
    depth = np.linspace(1.0, 0.05, z)[None, :, None]
    return (depth * (rng.normal(size=(n, z, x)) + 1j * rng.normal(size=(n, z, x)))).astype(
        np.complex64
    )


def _frames(model, iq):
    """What ``model`` reads: complex IQ, or dB images."""
    return iq if model.needs_phase else to_db(iq, model.cfg.dynamic_range, normalise="frame")


def _wrong(want):
    """Another valid value: another model's domain, or another number."""
    if isinstance(want, str):
        return next(d for d in {m.domain for m in DATA_MODELS.values()} if d != want)
    return float(want) + 1


def _result(x, n):
    """A sampler result of one draw per frame: x, n (B, C, z, x)."""
    return SampleResult(x=x, n=n, x_samples=x[:, None], n_samples=n[:, None], samples=1)


@pytest.mark.parametrize("name", MODELS)
def test_encode_decode_round_trip(name):
    """The input as tissue decodes to the input's dB image; the model's operator measures it
    alone (noiseless) as the input itself; the start decodes to finite dB in [-DR, 0]. (iq: the
    sample decoded as drawn, residual keep; split would hand the start's haze its share of the
    input, tests/test_residual.py.)"""
    cfg = DehazeConfig(model=name, residual="keep")
    model = DATA_MODELS[name](cfg)
    iq = _iq()
    frames = _frames(model, iq)
    m = model.encode(frames, torch.device("cpu"))
    assert m.y.dtype == torch.float32 and m.y.shape[0] == len(iq) and m.y.shape[-2:] == iq.shape[1:]
    assert m.x_init.shape == m.y.shape and m.n_init.shape == m.y.shape
    out = model.decode(_result(m.y, m.n_init), m)
    db = to_db(iq, cfg.dynamic_range, normalise="frame")
    shown = db > -cfg.dynamic_range + 1  # the clip floor aside
    np.testing.assert_allclose(out["tissue"][shown], db[shown], atol=1e-3)
    for k in ("tissue", "haze"):
        assert out[k].shape == iq.shape and out[k].dtype == np.float32
        assert np.isfinite(out[k]).all()
        assert out[k].min() >= -cfg.dynamic_range - 1e-4 and out[k].max() <= 1e-4
    op = model.operator()
    torch.testing.assert_close(op.noiseless(m.y), m.y, atol=1e-4, rtol=0)
    measured = op.measure(m.x_init, m.n_init)  # the start is a hazier version of the input
    assert measured.shape == m.y.shape and torch.isfinite(measured).all()


@pytest.mark.parametrize("name", MODELS)
def test_decode_gives_std_with_samples(name):
    cfg = DehazeConfig(model=name, samples=2)
    model = DATA_MODELS[name](cfg)
    m = model.encode(_frames(model, _iq(1)), torch.device("cpu"))
    draws = torch.stack([m.y, m.y * 0.9], 1)
    res = SampleResult(
        x=draws.mean(1), n=m.n_init, x_std=draws.std(1), n_std=torch.zeros_like(m.y),
        x_samples=draws, n_samples=torch.stack([m.n_init, m.n_init], 1), samples=2,
    )  # fmt: skip
    out = model.decode(res, m)
    assert {"tissue_std", "haze_std"} <= set(out) and out["tissue_std"].max() > 0


@pytest.mark.parametrize("name", MODELS)
def test_every_key_of_its_priors_json_is_checked(name, tmp_path):
    """A prior whose JSON has a wrong value at one of the model's keys is refused in one line
    naming the file and the key; the right value (or an older JSON without it) passes."""
    model = DATA_MODELS[name](DehazeConfig(model=name))
    keys = model.prior_keys()
    assert keys[0].key == "normalisation.domain" and keys[0].want == model.domain
    for key in keys:
        path = tmp_path / "tissue.json"
        meta = {"path": str(path), "normalisation": {}}
        node = meta
        parts = key.key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        model.check_prior(meta)  # without the key: accepted
        node[parts[-1]] = key.want
        model.check_prior(meta)
        node[parts[-1]] = _wrong(key.want)
        with pytest.raises(UsageError) as e:
            model.check_prior(meta)
        msg = str(e.value)
        assert msg.startswith(f"{path}: key '{key.key}': ") and "\n" not in msg


@pytest.mark.parametrize("name", MODELS)
def test_a_dehazer_refuses_a_prior_with_a_wrong_key(name, request, tmp_path):
    """End to end: a copy of the tiny prior whose JSON disagrees at each of the model's keys."""
    fixture = {DB: "tiny_priors", BMODE_DB: "tiny_bmode_priors"}.get(
        DATA_MODELS[name].domain, "tiny_iq_priors"
    )
    pair = request.getfixturevalue(fixture)
    cfg = DehazeConfig(
        model=name, rule=DATA_MODELS[name].rules()[0], tissue_prior=str(pair[0]),
        haze_prior=str(pair[1]), steps=1, device="cpu",
    )  # fmt: skip
    Dehazer(cfg)  # the tiny priors fit
    for key in DATA_MODELS[name](cfg).prior_keys():
        t = tmp_path / key.key / pair[0].name
        t.parent.mkdir()
        shutil.copy(pair[0], t)
        meta = json.loads(pair[0].with_suffix(".json").read_text())
        node = meta
        parts = key.key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _wrong(key.want)
        t.with_suffix(".json").write_text(json.dumps(meta))
        with pytest.raises(UsageError) as e:
            Dehazer(dataclasses.replace(cfg, tissue_prior=str(t)))
        msg = str(e.value)  # the prior named (as loaded: its weights file), then the key
        assert msg.startswith(f"{t}: key '{key.key}': ") and "\n" not in msg


@pytest.mark.parametrize("name", MODELS)
def test_declarations(name):
    """Rules: those whose declared needs its operator declares (the rest refused in one line);
    prior names and domain; a model that needs phase falls back to one that does not."""
    cls = DATA_MODELS[name]
    op = cls(DehazeConfig(model=name)).operator()
    assert isinstance(op, cls.operator_type())
    for rule, rule_cls in DC_RULES.items():
        allowed = not op.missing(rule_cls.needs)
        assert (rule in cls.rules()) == allowed
        if allowed:
            DehazeConfig(model=name, rule=rule).validate()
        else:
            with pytest.raises(UsageError, match=f"rule '{rule}': the {name} model") as e:
                DehazeConfig.from_dict({"model": name, "rule": rule})
            assert "\n" not in str(e.value)
    assert all(p in DehazeConfig.__dataclass_fields__ for p in cls.params)
    if cls.settings:
        DehazeConfig(model=name, **cls.settings).validate()
    if cls.needs_phase:
        fallback = DATA_MODELS[cls.fallback]
        assert not fallback.needs_phase
        cfg, note = for_magnitude_data(DehazeConfig(model=name))
        assert cfg.model == cls.fallback and note
    else:
        assert for_magnitude_data(DehazeConfig(model=name)) == (DehazeConfig(model=name), None)
    for f in cls.prior_names():  # the shipped models' priors are shipped
        assert (WEIGHTS_DIR / f).is_file() and (WEIGHTS_DIR / f).with_suffix(".json").is_file()


def test_every_module_of_the_package_registers_a_model():
    """A new model is one new module: the package imports every module in it."""
    modules = {m.name for m in pkgutil.iter_modules(models_pkg.__path__)} - {"base"}
    registered = {cls.__module__.rsplit(".", 1)[1] for cls in DATA_MODELS.values()}
    assert modules <= registered
    assert list(DATA_MODELS)[:3] == ["logsum", "additive", "iq"]


def test_the_architecture_docs_example_model_runs(tiny_priors):
    """docs/architecture.md's example of adding a data model: registered, read by the config,
    the evaluate table and the Dehazer, its rule refusal one line."""
    from usdehaze.ultrasound.evaluate import default_methods

    doc = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    code = doc.split("<!-- example: data model -->\n```python\n")[1].split("```")[0]
    try:
        exec(code, {})
        assert "ampsum" in DATA_MODELS and DATA_MODELS["ampsum"].rules() == ("dps",)
        with pytest.raises(UsageError, match="rule 'pigdm': the ampsum model is nonlinear"):
            DehazeConfig.from_dict({"model": "ampsum", "rule": "pigdm"})
        rows = default_methods(DehazeConfig(device="cpu"))
        assert rows["joint (amplitudes add)"].model == "ampsum"
        t, h = tiny_priors
        d = Dehazer(DehazeConfig(model="ampsum", tissue_prior=str(t), haze_prior=str(h),
                                 steps=2, device="cpu"))  # fmt: skip
        out = d.dehaze_iq(_iq(1), frames=[0])
        assert out["tissue"].shape == (1, 40, 32) and np.isfinite(out["haze"]).all()
        assert d.nfe == 2 * 2  # two priors, one evaluation each per em step
    finally:
        DATA_MODELS.pop("ampsum", None)


def test_the_iq_domain_is_named_once_and_the_iq_model_declares_it():
    """One name for one idea: the normalisation domain "iq-mulaw" (what the shipped priors' JSON
    records) is a string literal in one module of the package; the iq data model, the prior
    checks and the ultrasound code all take it from there."""
    import ast

    import usdehaze
    from usdehaze.core import domains
    from usdehaze.core.priors import DOMAINS
    from usdehaze.ultrasound import logcomp

    root = Path(usdehaze.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if "iq-mulaw" in node.value:
                    found.append(path.relative_to(root).as_posix())
    assert found == ["core/domains.py"]
    assert DATA_MODELS["iq"].domain is domains.IQ_MULAW is logcomp.IQ_MULAW
    assert DATA_MODELS["iq"].domain in DOMAINS
    meta = json.loads((WEIGHTS_DIR / "tissue_iq.json").read_text())
    assert meta["normalisation"]["domain"] == domains.IQ_MULAW


def test_the_bmode_model_runs_logsum_on_grey_levels_at_any_dynamic_range(tiny_bmode_priors):
    """bmode: logsum's operator, its own priors (domain bmode-db, names *_bmode), and priors of
    one unit range whatever the run's dynamic range (only the domain is checked); dB priors
    and logsum runs refuse each other's priors."""
    from usdehaze.ultrasound.measurement import LogPowerSum

    cls = DATA_MODELS["bmode"]
    assert cls.domain == BMODE_DB == "bmode-db" and not cls.needs_phase
    assert cls.prior_names() == ("tissue_bmode.safetensors", "haze_bmode.safetensors")
    assert cls.operator_type() is LogPowerSum and cls.rules() == ("dps",)
    t, h = tiny_bmode_priors
    for dr in (45.0, 60.0, 80.0):
        d = Dehazer(DehazeConfig(model="bmode", tissue_prior=str(t), haze_prior=str(h),
                                 steps=2, device="cpu", dynamic_range=dr))  # fmt: skip
        out = d(np.full((1, 32, 32), -dr / 2, np.float32))
        assert out["tissue"].shape == (1, 32, 32) and np.isfinite(out["haze"]).all()
    with pytest.raises(UsageError, match="'bmode-db' data, the logsum run needs 'db'"):
        Dehazer(DehazeConfig(model="logsum", tissue_prior=str(t), haze_prior=str(h), device="cpu"))
