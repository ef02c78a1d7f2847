"""`usdehaze experiment`: a tiny end-to-end run with the untrained baselines, and config errors."""

import csv

import numpy as np
import pytest
import yaml

from usdehaze.cli import main
from usdehaze.cli._app import run_app
from usdehaze.errors import UsageError


def _config(tmp_path, **over):
    cfg = {
        "name": "tiny",
        "out": str(tmp_path / "run"),
        "size": 16,
        "channels": 1,
        "threads": 1,
        "device": "cpu",
        "signal": {
            "train": {"kind": "photos", "count": 4},
            "test": {"kind": "photos", "split": "test", "count": 3, "seed": 1},
        },
        "noise": {
            "kind": "images",
            "train": {"kind": "digits", "count": 50},
            "test": {"kind": "digits", "offset": 50, "count": 20},
        },
        "task": {"kind": "blend"},
        "methods": {"bm3d": {}, "lasso": {"lam": 0.005, "iters": 30}},
        "figure": {"rows": 2},
    }
    cfg.update(over)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def test_tiny_experiment_writes_tables_and_figure(tmp_path, capsys):
    assert run_app(["experiment", str(_config(tmp_path)), "--quiet"]) == 0
    out = tmp_path / "run"
    rows = {r["method"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert set(rows) == {"noisy", "bm3d", "lasso"}
    # both know the digits' mean image: they must beat the raw blend by a wide margin
    assert float(rows["bm3d"]["psnr_mean"]) > float(rows["noisy"]["psnr_mean"]) + 5
    assert float(rows["lasso"]["psnr_mean"]) > float(rows["noisy"]["psnr_mean"]) + 5
    md = (out / "results.md").read_text()
    assert "| BM3D |" in md and "LPIPS" in md  # LPIPS used, or the note why not
    per = list(csv.DictReader(open(out / "per_image.csv")))
    assert len([r for r in per if r["method"] == "lasso" and r["metric"] == "psnr"]) == 3
    from PIL import Image

    w, h = Image.open(out / "figure.png").size
    assert w > h > 100  # 4 columns (noisy, 2 methods, truth) x 2 rows
    est = np.load(out / "estimates.npz")
    assert est["bm3d"].shape == (3, 1, 16, 16) and est["y"].shape == (3, 1, 16, 16)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "over, message",
    [
        ({"colour": 1}, "key 'colour': unknown"),
        ({"methods": {"bm4d": {}}}, "methods.bm4d': unknown method"),
        ({"task": {"kind": "cs"}, "noise": {"kind": "sine"}}, "BM3D is a denoiser"),
        (
            {
                "signal": {
                    "train": {"kind": "celeba", "path": "/nonexistent/celeba"},
                    "test": {"kind": "photos", "count": 1},
                }
            },
            "img_align_celeba",
        ),
        ({"noise": {"kind": "sine", "axis": "diag"}}, "key 'axis'"),
    ],
)
def test_config_mistakes_are_one_line_errors(tmp_path, capsys, over, message):
    assert run_app(["experiment", str(_config(tmp_path, **over))]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "--help"])
    assert exc.value.code == 0
    assert "results.md" in capsys.readouterr().out


def test_score_prior_trains_once_with_the_core_trainer_then_loads(tmp_path):
    import torch

    from usdehaze.natural.models import score_prior

    data = np.random.default_rng(0).uniform(-1, 1, (8, 1, 8, 8)).astype(np.float32)
    cfg = {
        "network": {"arch": "unet", "base": 8, "mults": [1, 2]},
        "steps": 3,
        "batch": 4,
        "ema": 0.5,
    }
    sde = {"kind": "ve", "sigma": 25.0}
    p1 = score_prior("noise", data, cfg, sde, tmp_path, "cpu", 1, progress=False)
    weights = tmp_path / "priors" / "noise.safetensors"
    assert weights.is_file() and (tmp_path / "train" / "noise" / "checkpoint.pt").is_file()
    stamp = weights.stat().st_mtime_ns
    p2 = score_prior("noise", data, {**cfg, "steps": 1000}, sde, tmp_path, "cpu", 1, progress=False)
    assert weights.stat().st_mtime_ns == stamp  # cached: not retrained
    x, t = torch.from_numpy(data[:2]), torch.tensor([0.3])
    torch.testing.assert_close(p1(x, t), p2(x, t))
    with pytest.raises(UsageError, match="priors.noise.stepz"):
        score_prior("noise", data, {"stepz": 1}, sde, tmp_path, "cpu", 1)
