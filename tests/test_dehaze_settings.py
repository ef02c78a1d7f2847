"""DehazeConfig's sections and the options made from them (docs/architecture.md, *Dehazing
settings*): every field is an option of run and run-many, flat and nested configs are the same
config, a disagreeing pair is one line, the resume identity is everything but the runtime
section."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

import usdehaze.ultrasound.dehaze as dehaze
from usdehaze.cli._app import run_app
from usdehaze.core.dc_rules import DC_RULES
from usdehaze.core.solvers import SOLVERS
from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze_config import (
    RUNTIME_KEYS,
    SECTIONS,
    DehazeConfig,
    build_config,
)
from usdehaze.ultrasound.methods import METHODS, Method
from usdehaze.ultrasound.models import DATA_MODELS

FIELDS = tuple(DehazeConfig.settings().values())  # the fields and the pieces' declared settings
COMMANDS = {
    "run": ["run", "scan.h5"],
    "run-many": ["run-many", "scan.h5", "-o", "out.zarr"],
}


def _given(f):
    """Command-line arguments setting field ``f`` to a value other than its default, and that
    value as the command hands it on."""
    flag = "--" + f.name.replace("_", "-")
    if isinstance(f.default, bool):
        return ([f"--no-{flag[2:]}"] if f.default else [flag]), not f.default
    if f.default is None:  # the priors section: paths
        return [flag, "some/where.safetensors"], "some/where.safetensors"
    if isinstance(f.default, int):
        return [flag, str(f.default + 1)], f.default + 1
    if isinstance(f.default, float):
        return [flag, str(f.default + 0.5)], f.default + 0.5
    return [flag, "other"], "other"


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """What run / run-many hand to build_config (the command stops there); the scan they name
    exists (run answers a missing one before building the config)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scan.h5").write_bytes(b"")
    got = {}

    def capture(config, settings):
        got.update(settings, _config=config)
        raise UsageError("captured")

    monkeypatch.setattr(dehaze, "build_config", capture)
    return got


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_every_setting_is_an_option_of_run_and_run_many(command, f, captured, capsys):
    args, value = _given(f)
    assert run_app([*COMMANDS[command], *args]) == 2
    assert "captured" in capsys.readouterr().err
    settings = {k: v for k, v in captured.items() if k != "_config"}
    assert set(settings) == {g.name for g in FIELDS}
    assert settings[f.name] == value and type(settings[f.name]) is type(value)
    assert all(v is None for k, v in settings.items() if k != f.name)  # not given: None
    # and the value is what the config then holds
    assert getattr(replace(DehazeConfig(), **{f.name: value}), f.name) == value


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_setting_under_its_section_with_its_fields_help(command):
    """One help text per setting (the field's), each option in its section's panel."""
    import typer

    from usdehaze.cli import app
    from usdehaze.cli._options import PANELS, option_name
    from usdehaze.ultrasound.dehaze_config import setting_default

    cmd = typer.main.get_command(app).commands[command]
    params = {p.name: p for p in cmd.params}
    for f in FIELDS:
        p = params[f.name]
        assert "/".join(p.opts + p.secondary_opts) == option_name(f)
        text = f.metadata["help"]
        assert p.help.startswith(text() if callable(text) else text)
        assert p.help.endswith(f"[default: {setting_default(f.name)}]")
        assert p.rich_help_panel == PANELS[f.metadata["section"]]


def test_sections_cover_every_field_once():
    named = [k for s in (None, *SECTIONS) for k in DehazeConfig.keys(s)]
    assert sorted(named) == sorted(f.name for f in FIELDS)
    assert DehazeConfig.keys(None) == ("method",)
    for f in FIELDS:
        assert f.metadata["help"], f.name


def test_models_read_settings_of_the_model_section():
    """What each registered data model declares it reads (``params``) is in the model section."""
    for name, cls in DATA_MODELS.items():
        assert set(cls.params) <= set(DehazeConfig.keys("model")), name


def test_nested_and_flat_give_the_same_config():
    cfg = DehazeConfig(model="logsum", steps=7, lam=2.0, device="cpu", priors="lab/", gamma=2.0)
    nested = cfg.nested()
    assert set(nested) == {"method", *SECTIONS}
    assert nested["sampler"]["steps"] == 7 and nested["model"]["model"] == "logsum"
    assert nested["priors"]["priors"] == "lab/"
    assert DehazeConfig.from_dict(nested) == DehazeConfig.from_dict(cfg.flat()) == cfg
    # both forms at once, agreeing; and the default config's nested form
    mixed = {**nested, "steps": 7, "model": {"model": "logsum"}, "gamma": 2.0}
    assert DehazeConfig.from_dict(mixed) == cfg
    assert DehazeConfig.from_dict(DehazeConfig().nested()) == DehazeConfig()
    # model and priors: a string (or null: priors unset) is the field, a mapping the section
    assert DehazeConfig.from_dict({"model": "logsum"}).model == "logsum"
    assert DehazeConfig.from_dict({"priors": None}).priors is None


@pytest.mark.parametrize(
    "d, message",
    [
        ({"steps": 3, "sampler": {"steps": 4}}, "key 'steps' given twice"),
        ({"runtime": {"compile": True}, "compile": 1}, "key 'compile' given twice"),
        (
            {"model": {"model": "iq"}, "priors": {"priors": "a"}, "sampler": {"device": "cpu"}},
            "key 'sampler.device': a runtime setting (write it under runtime)",
        ),
        ({"sampler": {"method": "dps"}}, "key 'sampler.method': a top-level setting"),
        ({"sampler": {"stepz": 3}}, "key 'sampler.stepz': unknown (section sampler has steps"),
        ({"rule": {"eta": 0.5}}, "key 'rule.eta': a solver setting (write it under solver)"),
        ({"runtime": 3}, "key 'runtime': expected a mapping of runtime settings"),
        # a null section (issue 31 item 6): its settings lost their indent, or were never written
        ({"runtime": None}, "key 'runtime': expected a mapping of runtime settings"),
        ({"sampler": None, "steps": 3}, "got nothing (an empty section"),
        ({"sampler": {"steps": "x"}}, "key 'steps': expected a"),
    ],
)
def test_a_bad_or_disagreeing_pair_is_one_line(d, message):
    with pytest.raises(UsageError) as e:
        DehazeConfig.from_dict(d, "c.yaml")
    text = str(e.value)
    assert text.startswith("c.yaml: ") and message in text and "\n" not in text


def test_a_nested_yaml_with_options_over_it(tmp_path, capsys):
    """build_config reads a sectioned YAML; a command-line option overrides the file's value
    (not a disagreement); the disagreement inside one file is one line from the CLI too."""
    y = tmp_path / "c.yaml"
    y.write_text("method: joint\nsampler:\n  steps: 9\n  lam: 2.0\nruntime:\n  batch: 2\n")
    cfg = build_config(y, {"steps": 4, "lam": None})
    assert (cfg.steps, cfg.lam, cfg.batch) == (4, 2.0, 2)
    y.write_text("steps: 9\nsampler:\n  steps: 8\n")
    scan = tmp_path / "scan.h5"  # it exists: run answers a missing scan first
    scan.write_bytes(b"")
    assert run_app(["run", str(scan), "--config", str(y)]) == 2
    err = capsys.readouterr().err.strip()
    assert "key 'steps' given twice" in err and len(err.splitlines()) == 1


def test_resume_identity_ignores_exactly_the_runtime_section():
    from usdehaze.ultrasound.batch_run import _identity

    assert RUNTIME_KEYS == DehazeConfig.keys("runtime")
    where = ([Path("a.h5")], [range(2)])
    base = _identity(DehazeConfig(), *where)
    for f in FIELDS:
        _, value = _given(f)
        changed = _identity(replace(DehazeConfig(), **{f.name: value}), *where)
        assert (changed == base) == (f.metadata["section"] == "runtime"), f.name


def test_new_options_reach_the_recorded_config(tiny_iq_priors, tmp_path):
    """Options that had no command-line form before (and a sectioned --config) end in the
    store's recorded config, flat as stores always recorded it."""
    from usdehaze.ultrasound.batch_run import describe_store
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.simulate import simulate_cardiac

    sim = simulate_cardiac(1, seed=3, shape=(48, 32))
    scan = write_scan(tmp_path / "s.h5", sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)
    t, h = tiny_iq_priors
    y = tmp_path / "c.yaml"
    y.write_text(f"sampler:\n  steps: 1\npriors:\n  tissue_prior: {t}\n  haze_prior: {h}\n")
    store = tmp_path / "m.zarr"
    args = ["--lam", "2", "--kappa", "2.5", "--jacobian", "haze", "--haze-init-db", "-15"]
    args += ["--weighting", "paper", "--device", "cpu", "-q", "--config", str(y)]
    assert run_app(["run-many", str(scan), "-o", str(store), *args]) == 0
    got = json.loads(describe_store(store)["config"])
    assert set(got) == {f.name for f in FIELDS}  # flat
    want = {"lam": 2.0, "kappa": 2.5, "jacobian": "haze", "haze_init_db": -15.0}
    assert {k: got[k] for k in want} == want
    assert (got["weighting"], got["steps"], got["tissue_prior"]) == ("paper", 1, str(t))


def _help_words(name: str) -> set[str]:
    """The words of DehazeConfig field ``name``'s help, as the CLI makes it."""
    text = DehazeConfig.settings()[name].metadata["help"]
    return set(re.findall(r"[a-z][a-z0-9-]*", text() if callable(text) else text))


@pytest.mark.parametrize(
    "name, registered",
    [("method", METHODS), ("rule", DC_RULES), ("solver", SOLVERS)],
)
def test_the_help_of_a_choice_names_every_registered_choice(name, registered):
    """--method, --rule and --solver's help is made from their registries (which import no
    torch, so the CLI makes it without loading torch): a piece registered later is in it."""
    assert set(registered) <= _help_words(name)

    class Later(Method):  # a method's declarations; a rule's or solver's read the same way
        name, summary, weightings = "later-one", "a piece registered later", {"later-w": ""}

    registered["later-one"] = Later
    try:
        assert "later-one" in _help_words(name)
        if name == "rule":
            assert "later-w" in _help_words("weighting")
    finally:
        registered.pop("later-one")


def test_the_help_of_weighting_names_every_weighting_of_every_rule():
    for name, rule in DC_RULES.items():
        missing = set(rule.weightings) - _help_words("weighting")
        assert not missing, f"rule {name}: --weighting's help does not name {sorted(missing)}"
