"""The CLI shell: version, help on every command, user errors as one line and exit 2."""

import subprocess
import sys

import pytest

from usdehaze import __version__
from usdehaze.cli import app, main  # noqa: F401
from usdehaze.cli._app import run_app


def test_version(capsys):
    assert run_app(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"usdehaze {__version__}"


def test_help_on_every_command(capsys):
    import typer.main

    group = typer.main.get_command(app)
    assert group.commands, "no commands registered"
    for name in group.commands:
        assert run_app([name, "--help"]) == 0, name
        out = capsys.readouterr().out
        assert "Usage" in out and name in out


def test_module_entry_point_runs():
    r = subprocess.run(
        [sys.executable, "-m", "usdehaze", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and __version__ in r.stdout


def test_import_is_light():
    code = (
        "import sys, usdehaze, usdehaze.cli; print('torch' in sys.modules, 'napari' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["gcnr", "image.h5"], "Missing option '--roi'"),
        (["run", "--steps", "abc", "scan.h5"], "Invalid value for '--steps'"),
        (["run", "--bogus"], "No such option: --bogus"),
    ],
)
def test_bad_options_are_a_usage_message_and_exit_code_2(argv, message, capsys):
    """Click's errors (also typer's vendored copy of click) print usage, not a traceback."""
    assert run_app(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_no_arguments_shows_the_help_without_an_error_line(capsys):
    from usdehaze.cli._app import run_app

    assert run_app([]) == 0
    out = capsys.readouterr()
    assert "run" in out.out + out.err and "error" not in out.err


def test_a_missing_scan_is_answered_before_torch_loads(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from usdehaze.cli._app import run_app; "
        "rc = run_app(['run', 'nothere.h5']); print(rc, 'torch' in sys.modules)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert p.stdout.split() == ["2", "False"], p.stdout + p.stderr
    assert p.stderr.strip() == "usdehaze: error: nothere.h5: no such file"
