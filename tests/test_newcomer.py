"""Issue 18, the newcomer path: the CLI with only the base dependencies (no click, no optional
extras), help text as written, std maps on their own scale, training never over shipped weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Modules the base install (`pip install -e .`) does not have: click (typer >= 0.29 vendors its
# own) and the optional extras' packages. Blocked as sys.modules[name] = None, so importing them
# fails just as in a venv made by the README's first command.
OPTIONAL = [
    "click",
    "bm3d",
    "pywt",
    "skimage",
    "sklearn",
    "napari",
    "magicgui",
    "npe2",
    "qtpy",
    "PyQt5",
    "zea",
    "pyuff_ustb",
    "pymust",
    "dask",
    "huggingface_hub",
]
BASE_ONLY = (
    "import sys\n"
    f"for _m in {OPTIONAL!r}:\n"
    "    sys.modules[_m] = None\n"
    "from usdehaze.cli import main\n"
    "sys.argv[0] = 'usdehaze'\n"
    "main(sys.argv[1:])\n"
)


def base_only(*argv: str, cwd: Path | None = None, timeout: float = 120):
    """Run the CLI in a subprocess where click and the optional extras cannot be imported."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-c", BASE_ONLY, *argv],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "argv,message",
    [
        (["gcnr", "scan.h5"], "Missing option '--roi'"),
        (["run", "scan.h5", "--steps", "abc"], "Invalid value for '--steps'"),
        (["bogus"], "No such command 'bogus'"),
        (["info"], "Missing argument"),
        (["run", "--bogus"], "No such option: --bogus"),
        (["bench", "sampler", "--size", "x"], "Invalid value for '--size'"),
    ],
)
def test_usage_errors_without_click_are_one_line_and_exit_2(argv, message):
    """typer >= 0.29 vendors click: its usage errors are caught without click installed."""
    r = base_only(*argv)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("usdehaze: error:")
    assert "--help" in lines[0]  # leads somewhere


def test_user_errors_without_extras_are_one_line():
    r = base_only("info", "no_such_scan.h5")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "no_such_scan.h5" in r.stderr
    r = base_only("--version")
    assert r.returncode == 0 and r.stdout.startswith("usdehaze ")


def test_help_keeps_brackets_and_renders_backticks():
    """Rich markup would eat "[napari]"; the help is Markdown, so ``x`` shows as x."""
    r = base_only("--help")
    assert r.returncode == 0 and "usdehaze[napari]" in r.stdout, r.stdout
    for argv in (["view", "--help"], ["run-many", "--help"], ["bench", "--help"]):
        r = base_only(*argv)
        assert r.returncode == 0 and "``" not in r.stdout, (argv, r.stdout)
    assert "usdehaze[napari]" in base_only("view", "--help").stdout
    # bench dehaze's two-line short help is one paragraph, not broken after "each"
    out = base_only("bench", "--help").stdout
    assert "each DC step" in " ".join(out.replace("│", " ").split())


def test_std_maps_get_their_own_colour_scale():
    """A std map (0..25 dB spread) is not drawn on the -60..0 dB level scale (all white)."""
    from usdehaze.ultrasound.plot import bmode_figure

    z, x = np.meshgrid(np.linspace(0.01, 0.05, 40), np.linspace(-0.02, 0.02, 30), indexing="ij")
    level = np.linspace(-60, 0, 40 * 30).reshape(40, 30)
    spread = np.linspace(0, 25, 40 * 30).reshape(40, 30)
    fig = bmode_figure(
        {"tissue": level, "tissue_std": spread}, x, z, "cartesian", {}, dynamic_range=50
    )
    lo, hi = fig.axes[0].images[0].get_clim()
    assert (lo, hi) == (-50, 0)
    lo, hi = fig.axes[1].images[0].get_clim()
    assert lo == 0 and 24 < hi <= 25
    labels = {a.get_ylabel() for a in fig.axes[2:]}  # the two colourbars
    assert labels == {"dB", "std (dB)"}


def _digests(folder: Path) -> dict[str, bytes]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).digest() for p in sorted(folder.iterdir())}


def test_training_never_writes_the_shipped_priors(tmp_path, monkeypatch, capsys):
    """`usdehaze train configs/prior_tissue_iq.yaml` exports into a run folder relative to the
    working directory; a working directory that would put it inside usdehaze/weights is refused."""
    from usdehaze.cli._app import run_app

    weights = ROOT / "usdehaze" / "weights"
    before = _digests(weights)
    config = str(ROOT / "configs" / "prior_tissue_iq.yaml")

    def train(*argv: str, cwd: Path) -> tuple[int, str]:
        monkeypatch.chdir(cwd)
        code = run_app(["train", config, *argv])
        return code, capsys.readouterr().err

    # missing data: names the recipe that makes it; --export-only without a checkpoint says so
    code, err = train("--steps", "1", "--device", "cpu", cwd=tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "training data not found" in err and str(tmp_path) in err
    assert "python pipelines/train_priors.py --domain iq" in err
    code, err = train("--export-only", cwd=tmp_path)
    assert code == 2 and "no checkpoint to export" in err and "training data" not in err, err
    # from the weights folder itself: refused before anything is written
    code, err = train("--steps", "1", cwd=weights)
    assert code == 2 and "inside the shipped priors' folder" in err, err
    assert "pipelines/ship_priors.py" in err
    code, err = train("--export", str(weights / "tissue_iq"), cwd=tmp_path)
    assert code == 2 and "inside the shipped priors' folder" in err, err
    # with data where the config says: trains and exports to ./runs/priors/export
    data = tmp_path / "runs" / "priors" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(data / "tissue_iq.npz", images=rng.uniform(-1, 1, (2, 2, 64, 64)).astype(np.float32))
    code, err = train("--steps", "1", "--device", "cpu", cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert (tmp_path / "runs/priors/export/tissue_iq.safetensors").is_file()
    assert _digests(weights) == before


def test_optional_packages_are_checked_before_any_work(tmp_path):
    """Without the baselines extra: experiment refuses at once, evaluate's BM3D row alone too."""
    r = base_only("experiment", "configs/natural_small.yaml")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "scikit-image" in r.stderr and "usdehaze[baselines]" in r.stderr
    r = base_only("evaluate", "--frames", "1", "--only", "BM3D")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "skipping row 'BM3D'" in lines[0], r.stderr
    assert lines[-1].startswith("usdehaze: error:") and "evaluate" in lines[-1]
    assert "simulating" not in r.stderr  # refused before any frame was made


def test_experiment_skips_methods_whose_package_is_missing(monkeypatch, capsys):
    from usdehaze.cli.experiment_cmd import _check_extras

    cfg = {
        "signal": {"train": {"kind": "npz"}, "test": {"kind": "npz"}},
        "noise": {"kind": "images", "train": {"kind": "npz"}},
        "methods": {"joint": {}, "bm3d": {}, "lasso": {}},
    }
    monkeypatch.setitem(sys.modules, "bm3d", None)
    assert _check_extras(cfg, Path("x.yaml"), None) == ["joint", "lasso"]
    err = capsys.readouterr().err
    assert "skipping method 'bm3d'" in err and "usdehaze[baselines]" in err
    assert _check_extras(cfg, Path("x.yaml"), ["joint"]) == ["joint"]
    from usdehaze.errors import UsageError

    with pytest.raises(UsageError, match="no method left"):
        _check_extras(cfg, Path("x.yaml"), ["bm3d"])
    cfg["noise"]["train"] = {"kind": "digits"}
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(UsageError, match="noise.train dataset 'digits' needs the scikit-learn"):
        _check_extras(cfg, Path("x.yaml"), None)
