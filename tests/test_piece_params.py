"""Pieces own their parameters (issue 26 item 3): a DC rule or solver with a parameter of its own
is one class (tests/toy_pieces.py), and its parameter is then a setting of the config (flat, in
its section, bounded by its declared range), an option of ``usdehaze run`` with its help, reaches
the piece the run builds and is recorded in the result. Old spellings of a config keep loading
with one line saying the new one."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import toy_pieces

from usdehaze.cli._app import run_app
from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze_config import DehazeConfig, build_config, setting_default

ROOT = Path(__file__).parents[1]


@pytest.fixture
def toys():
    toy_pieces.register()
    yield
    toy_pieces.unregister()


def _scan(tmp_path: Path) -> Path:
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.simulate import simulate_cardiac

    sim = simulate_cardiac(1, seed=3, shape=(48, 32))
    return write_scan(tmp_path / "s.h5", sim.hazy_iq, sim.x, sim.z, grid="polar", axes=sim.axes)


def test_a_pieces_parameter_is_a_setting_of_its_section(toys):
    assert DehazeConfig.keys("rule") == ("rule", "weighting", "rho", "gain")
    assert DehazeConfig.keys("solver") == ("solver", "eta", "shrink")
    cfg = DehazeConfig()
    assert (cfg.gain, cfg.shrink) == (1.0, 1.0) and cfg.nested()["rule"]["gain"] == 1.0
    assert setting_default("gain") == "1 (a factor)"
    assert replace(cfg, gain=2.0).gain == 2.0
    with pytest.raises(UsageError, match=r"^c.yaml: key 'gain': expected a number <= 10"):
        DehazeConfig.from_dict({"rule": {"gain": 11.0}}, "c.yaml")
    with pytest.raises(
        UsageError, match=r"key 'solver.gain': a rule setting \(write it under rule"
    ):
        DehazeConfig.from_dict({"solver": {"gain": 2.0}}, "c.yaml")


def test_the_config_path_builds_each_piece_with_its_own_parameter(toys, tiny_iq_priors, tmp_path):
    """A nested YAML naming the toys and their parameters → build_config → the Dehazer's
    sampler (built by pieces.build_pieces) → usdehaze run's result, which records them."""
    from usdehaze.ultrasound.dehaze import Dehazer

    t, h = tiny_iq_priors
    y = tmp_path / "c.yaml"
    y.write_text(
        "method: joint\nsampler: {steps: 2}\nrule: {rule: toy-gain, gain: 0.5}\n"
        f"solver: {{solver: toy-shrink, shrink: 0.9}}\npriors: {{tissue_prior: {t}, haze_prior: {h}}}\n"
    )
    cfg = build_config(y, {"device": "cpu"})
    s = Dehazer(cfg).sampler()
    assert (s.dc.name, s.dc.params.gain, s.dc.params.rho) == ("toy-gain", 0.5, 1.0)
    assert (s.prior_step.name, s.prior_step.params.shrink) == ("toy-shrink", 0.9)
    with pytest.raises(
        UsageError, match="gain 0.5: a setting of rule toy-gain; this run's rule is dps"
    ):
        Dehazer(replace(cfg, rule="dps", solver="em"))  # the toys' values, unused: refused
    other = Dehazer(replace(cfg, rule="dps", solver="em", gain=1.0, shrink=1.0)).sampler()
    assert not hasattr(other.dc.params, "gain") and vars(other.prior_step.params) == {}
    out = tmp_path / "o.h5"
    assert run_app(["run", str(_scan(tmp_path)), "-o", str(out), "--config", str(y), "-q"]) == 0
    from usdehaze.ultrasound.results import load_result

    with load_result(out) as r:
        got = r.attrs["config"]
    assert (got["rule"], got["gain"], got["solver"], got["shrink"]) == (
        "toy-gain",
        0.5,
        "toy-shrink",
        0.9,
    )


@pytest.mark.slow
def test_the_cli_has_the_options_the_pieces_declare(tiny_iq_priors, tmp_path):
    """In a process where the toys are registered before the CLI is built: --gain and --shrink
    are options in the rule's and solver's help panels, and a run records them."""
    t, h = tiny_iq_priors
    boot = (
        "import sys; sys.path.insert(0, 'tests'); import toy_pieces; toy_pieces.register(); "
        "from usdehaze.cli._app import run_app; sys.exit(run_app(sys.argv[1:]))"
    )

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", boot, *args]
        env = {**os.environ, "COLUMNS": "200"}  # --help's panels unwrapped
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    got = cli("run", "--help")
    assert got.returncode == 0, got.stderr
    text = " ".join(got.stdout.replace("│", " ").split())
    assert (
        "--gain <float> The toy rule's step scale (rule toy-gain). [default: 1 (a factor)]" in text
    )
    assert "--shrink" in text and "toy-shrink" in text
    out = tmp_path / "o.h5"
    args = ["--method", "joint", "--rule", "toy-gain", "--gain", "0.25", "--solver", "toy-shrink"]
    args += ["--shrink", "0.5", "--steps", "1", "--device", "cpu", "-q", "-o", str(out)]
    args += ["--tissue-prior", str(t), "--haze-prior", str(h)]
    got = cli("run", str(_scan(tmp_path)), *args)
    assert got.returncode == 0, got.stderr
    from usdehaze.ultrasound.results import load_result

    with load_result(out) as r:
        rec = r.attrs["config"]
    assert (rec["gain"], rec["shrink"], rec["rule"], rec["solver"]) == (
        0.25,
        0.5,
        "toy-gain",
        "toy-shrink",
    )


@pytest.mark.parametrize(
    "text, moved",
    [
        (
            "steps: 7\nweighting: paper\nsolver: ddim\neta: 0.5\ndevice: cpu\n",
            "sampler: steps; rule: weighting; solver: eta; runtime: device",
        ),
        (
            "sampler:\n  steps: 7\n  weighting: paper\n  solver: ddim\n",
            "rule: weighting; solver: solver",
        ),
    ],
)
def test_an_old_spelling_loads_with_one_line_saying_the_new_one(tmp_path, capsys, text, moved):
    """A flat file (every config before the sections) and the rule and solver settings under
    sampler (where they were before their own sections) load as before, with one line."""
    y = tmp_path / "old.yaml"
    y.write_text(text)
    cfg = build_config(y, {})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "old spelling" in err[0] and moved in err[0], err
    assert cfg.steps == 7 and cfg.weighting == "paper"
    y.write_text(
        "sampler: {steps: 7}\nrule: {weighting: paper}\nsolver: {solver: ddim, eta: 0.5}\n"
        "runtime: {device: cpu}\n"
    )
    build_config(y, {})
    assert capsys.readouterr().err == ""  # the new spelling: nothing said


def test_a_config_recorded_before_loads():
    """A result's recorded config from before the pieces declared their settings (flat, no
    rho) reads back as the config that ran."""
    old = {k: v for k, v in DehazeConfig().flat().items() if k != "rho"}
    assert DehazeConfig.from_dict(old, "result.h5") == DehazeConfig()


@pytest.mark.parametrize(
    "given, words",
    [
        ({"eta": 0.5}, ["eta 0.5", "solver ddim", "solver is em", "--solver ddim"]),
        (
            {"model": "additive", "rule": "pigdm", "rho": 0.3},
            ["rho 0.3", "rule dps", "rule is pigdm", "--rule dps"],
        ),
        ({"method": "pigdm-gauss", "rho": 0.3}, ["rule is pigdm (method pigdm-gauss's)"]),
    ],
)
def test_a_parameter_the_runs_pieces_do_not_use_is_one_line(given, words):
    """``--eta`` with solver em, ``--rho`` with rule pigdm: refused, naming the piece that uses
    it, instead of a setting silently unused; the same value with that piece runs."""
    with pytest.raises(UsageError) as e:
        DehazeConfig(device="cpu", **given).validate("options")
    assert all(w in str(e.value) for w in words), str(e.value)
    assert len(str(e.value).splitlines()) == 1
    if "method" not in given:  # with the piece that declares it: valid
        piece = {"eta": {"solver": "ddim"}, "rho": {"rule": "dps"}}
        fix = next(v for k, v in piece.items() if k in given)
        DehazeConfig(device="cpu", **{**given, **fix}).validate("options")


def test_the_single_prior_baselines_own_solver_takes_eta():
    """dps runs its own solver (ddim) when the config keeps the joint default (em): its η is
    a setting the run uses, not refused."""
    DehazeConfig(device="cpu", method="dps", eta=0.5).validate("options")
    with pytest.raises(UsageError, match="solver is heun"):
        DehazeConfig(device="cpu", method="dps", solver="heun", eta=0.5).validate("options")
