"""Issue 32 items 4 and 6: ``--help`` shows every run setting's default (with its unit, and the
baseline methods' own), flags without a type, list options that say to repeat them; typos in a
file name answered before torch loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from usdehaze.cli import app
from usdehaze.cli._app import run_app
from usdehaze.ultrasound.dehaze_config import DehazeConfig, setting_default
from usdehaze.ultrasound.methods import METHODS


def _help(capsys, monkeypatch, *argv: str) -> list[str]:
    """The rendered ``--help`` of a command, one option per line (a wide terminal)."""
    monkeypatch.setenv("COLUMNS", "1000")
    assert run_app([*argv, "--help"]) == 0
    return capsys.readouterr().out.splitlines()


def _line(lines: list[str], option: str) -> str:
    """The help line of ``option`` (its first name), box characters removed."""
    found = [ln for ln in lines if ln.strip("│ ").split(" ")[0] == option]
    assert len(found) == 1, (option, found)
    return " ".join(found[0].replace("│", " ").split())


def _commands():
    """Every command (click objects), sub-commands included, with its argv."""
    import typer.main

    todo = [((), typer.main.get_command(app))]
    while todo:
        path, cmd = todo.pop()
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            todo.append(((*path, name), sub))


@pytest.mark.parametrize("command", ["run", "run-many"])
def test_every_setting_shows_its_default(capsys, monkeypatch, command):
    lines = _help(capsys, monkeypatch, command)
    for f in DehazeConfig.settings().values():
        line = _line(lines, "--" + f.name.replace("_", "-"))
        assert f"[default: {setting_default(f.name)}]" in line, line


def test_numbers_say_their_unit(capsys, monkeypatch):
    """Every float setting declares a unit, and --help shows it (issue 32: --start-sigma and
    --noise-sigma gave a bare number)."""
    lines = _help(capsys, monkeypatch, "run")
    floats = [f for f in DehazeConfig.settings().values() if isinstance(f.default, float)]
    assert {"start_sigma", "noise_sigma", "dynamic_range"} <= {f.name for f in floats}
    for f in floats:
        unit = f.metadata.get("unit")
        assert unit, f"{f.name}: no unit declared"
        assert unit in _line(lines, "--" + f.name.replace("_", "-"))
    assert "dB" in _line(lines, "--dynamic-range") and "σ" in _line(lines, "--start-sigma")


def test_baselines_own_sampler_settings_are_named(capsys, monkeypatch):
    lines = _help(capsys, monkeypatch, "run")
    method = _line(lines, "--method")
    joint = DehazeConfig().flat()  # a method's own setting equal to the joint default goes unsaid
    own = {
        n: {k: v for k, v in m.own_settings().items() if v != joint[k]} for n, m in METHODS.items()
    }
    own = {n: settings for n, settings in own.items() if settings}
    assert own, "no method with its own sampler settings"
    for name, settings in own.items():
        for key, value in settings.items():
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert f"{key.replace('_', '-')} {shown}" in method, (key, method)
            assert f"{name}" in _line(lines, "--" + key.replace("_", "-"))
    assert "[default: 25; dps, pigdm-gauss: 5; refine: 4]" in _line(lines, "--steps")


def test_flags_show_no_type_and_lists_say_repeat(capsys, monkeypatch):
    """A flag takes no value (``<bool>`` read as one: "--demo true" → "true: no such file");
    an option taking several values says to repeat it; checked on every command."""
    import typer.main

    ctx_cls = typer.main.get_command(app).context_class
    flags = lists = 0
    for path, cmd in _commands():
        ctx = ctx_cls(cmd, info_name=" ".join(path) or "usdehaze")
        for p in cmd.get_params(ctx):
            if getattr(p, "is_flag", False) and not p.count:
                flags += 1
                assert p.display_type_rich(ctx) is None, (path, p.opts)
            if getattr(p, "multiple", False):
                lists += 1
                assert "repeat" in (p.help or ""), (path, p.opts)
                assert "list[" not in p.display_type_rich(ctx), (path, p.opts)
    assert flags > 10 and lists > 5
    for argv in (["run"], ["bench", "dehaze"], ["adapt"]):
        out = "\n".join(_help(capsys, monkeypatch, *argv))
        assert "<bool>" not in out and "list[" not in out, argv
    assert "repeat the option" in _line(_help(capsys, monkeypatch, "bench", "dehaze"), "--batch")


def test_demo_with_a_value_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_app(["run", "--demo", "true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--demo is a flag" in err and "'true'" in err


@pytest.mark.parametrize("command", ["info", "run"])
def test_a_missing_file_is_answered_before_torch_loads(tmp_path, command):
    code = (
        "import sys, time; t = time.perf_counter(); from usdehaze.cli._app import run_app; "
        f"rc = run_app([{command!r}, 'nothere.h5']); "
        "print(rc, 'torch' in sys.modules, time.perf_counter() - t)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    rc, torch_loaded, seconds = p.stdout.split()
    assert (rc, torch_loaded) == ("2", "False"), p.stdout + p.stderr
    assert p.stderr.strip() == "usdehaze: error: nothere.h5: no such file"
    assert float(seconds) < 10  # ~0.5 s measured here under load 4 on 2 cores; torch is 15-50 s
