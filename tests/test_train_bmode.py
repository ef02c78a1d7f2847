"""pipelines/train_priors.py --domain bmode: each prior is fine-tuned from a base prior's weights
within a time budget, resumes from its checkpoint and records the base prior in its JSON."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from usdehaze.core.priors import load_prior, sha256

ROOT = Path(__file__).resolve().parents[1]


def _pipeline():
    spec = importlib.util.spec_from_file_location(
        "train_priors", ROOT / "pipelines/train_priors.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_priors"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_finetune_starts_from_the_base_prior_and_records_it(tmp_path, tiny_bmode_priors):
    base = tiny_bmode_priors[0]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", images=rng.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32))
    cfg = yaml.safe_load((ROOT / "configs/prior_tissue_bmode.yaml").read_text())
    cfg |= {
        "data": {**cfg["data"], "path": str(tmp_path / "t.npz"), "patch": 16},
        "network": {"arch": "unet", "base": 8, "mults": [1, 2]},
        "steps": 2, "batch": 2, "checkpoint_every": 1, "lr": 1e-12, "warmup": 1,
        "out": str(tmp_path / "run"),
        "export": {**cfg["export"], "path": str(tmp_path / "export/tissue_bmode")},
    }  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    tp = _pipeline()
    tp.finetune(config, base, minutes=None, steps=None)
    out = load_prior(tmp_path / "export/tissue_bmode.safetensors")
    assert out.meta["normalisation"]["domain"] == "bmode-db"
    assert out.meta["training"]["base_prior"]["sha256"] == sha256(base)
    assert out.meta["training"]["steps"] == 2
    ref = load_prior(base).net.state_dict()  # lr ~ 0: the weights are the base's
    for k, v in out.net.state_dict().items():
        torch.testing.assert_close(v, ref[k], atol=1e-6, rtol=0)
    tp.finetune(config, base, minutes=None, steps=3)  # resumes at step 2, one more
    assert load_prior(tmp_path / "export/tissue_bmode.safetensors").meta["training"]["steps"] == 3
