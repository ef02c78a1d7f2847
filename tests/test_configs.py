"""Shipped configs stay in step with the code."""

from pathlib import Path

import yaml

from usdehaze.core.training import config_from_dict
from usdehaze.ultrasound.dehaze import DehazeConfig

ROOT = Path(__file__).resolve().parents[1]


def test_dehaze_default_yaml_matches_the_defaults():
    """The default config lists every setting but the priors, in the sections of the new
    spelling (no old-spelling note: nothing flat, nothing under another section)."""
    d = yaml.safe_load((ROOT / "configs/dehaze_default.yaml").read_text())
    old: list = []
    flat = DehazeConfig.flatten(d, "dehaze_default.yaml", old)
    defaults = DehazeConfig().flat()
    assert flat == {k: v for k, v in defaults.items() if k not in DehazeConfig.keys("priors")}
    assert old == [] and DehazeConfig.from_dict(d) == DehazeConfig()


def test_dehaze_presets_are_valid_and_change_settings():
    presets = sorted((ROOT / "configs").glob("dehaze_*.yaml"))
    assert {p.stem for p in presets} >= {"dehaze_quality", "dehaze_exact"}
    for path in presets:
        old: list = []
        d = DehazeConfig.flatten(yaml.safe_load(path.read_text()), path.name, old)
        cfg = DehazeConfig.from_dict(d, path.name).validate(path.name)
        assert old == [], path.name  # written in the new spelling
        if path.stem != "dehaze_default":
            assert any(getattr(cfg, k) != v for k, v in DehazeConfig().flat().items() if k in d)


def test_prior_configs_are_valid():
    names = ("prior_tissue", "prior_haze", "prior_tissue_iq", "prior_haze_iq")
    for name in names + ("prior_tissue_bmode", "prior_haze_bmode"):
        cfg = config_from_dict(yaml.safe_load((ROOT / f"configs/{name}.yaml").read_text()), name)
        # training never writes over the shipped priors: pipelines/ship_priors.py does, on purpose
        assert cfg.export["path"] == "runs/priors/export/" + name.removeprefix("prior_")
        domain = cfg.export["normalisation"]["domain"]
        want = {"_iq": "iq-mulaw", "_bmode": "bmode-db"}.get("_" + name.rsplit("_", 1)[1], "db")
        assert domain == want


def test_shipped_priors_load_and_match_their_checksums():
    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.dehaze import DehazeConfig
    from usdehaze.ultrasound.models import DATA_MODELS
    from usdehaze.ultrasound.prior_files import prior_paths

    for name in ("tissue", "haze"):
        p = load_prior(ROOT / f"usdehaze/weights/{name}.safetensors")
        assert (
            p.meta["normalisation"]["dynamic_range"] == 60 and p.meta["training"]["steps"] >= 1000
        )
    # the default model's priors: 2-channel μ-law I/Q, trained as long as the dB ones
    cfg = DehazeConfig()
    for path in prior_paths(cfg):
        p = load_prior(path)
        assert p.meta["normalisation"]["domain"] == DATA_MODELS[cfg.model].domain == "iq-mulaw"
        assert p.meta["network"]["channels"] == 2 and p.meta["training"]["steps"] >= 6000
