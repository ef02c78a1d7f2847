"""Train-or-load every learned model an experiment needs, cached in its run folder.

Score priors train with the core's DSM trainer (``usdehaze.core.training``) on arrays written to
``OUT/data/*.npz``; GAN and Glow train with :mod:`usdehaze.natural.baselines.fit`. A model whose
files exist is loaded, not retrained; an interrupted training resumes from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError

PRIOR_KEYS = {
    "path",
    "network",
    "steps",
    "batch",
    "lr",
    "ema",
    "warmup",
    "grad_clip",
    "flips",
    "seed",
}


def _real(v: Any) -> Any:
    """An integer written for a float setting (``lr: 1``) as that float; anything else as is."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def prior_train_config(
    name: str, cfg: dict[str, Any], sde_cfg: dict, out: Path, threads: int | None
) -> dict[str, Any]:
    """The training config of prior ``name`` (signal or noise) from its experiment section, the
    values as written (``core.training.config_from_dict`` checks their types and ranges)."""
    unknown = set(cfg) - PRIOR_KEYS
    if unknown:
        raise UsageError(
            f"config: key 'priors.{name}.{sorted(unknown)[0]}': unknown (expected {sorted(PRIOR_KEYS)})"
        )
    return {
        "data": {
            "path": str(out / "data" / f"{name}_train.npz"),
            "key": "images",
            "patch": None,
            "flips": cfg.get("flips", name == "signal"),
        },
        "network": cfg.get("network", {"arch": "unet", "base": 16, "mults": [1, 2, 2]}),
        "sde": sde_cfg,
        "steps": cfg.get("steps", 2000),
        "batch": cfg.get("batch", 16),
        "lr": _real(cfg.get("lr", 5e-4)),
        "ema": _real(cfg.get("ema", 0.999)),
        "warmup": cfg.get("warmup", 100),
        "grad_clip": _real(cfg.get("grad_clip", 1.0)),
        "seed": cfg.get("seed", 0),
        "checkpoint_every": 250,
        "threads": threads,
        "out": str(out / "train" / name),
        "export": {
            "path": str(out / "priors" / name),
            "normalisation": {"range": [-1, 1]},
            "data": {"role": name},
        },
    }


def score_prior(
    name: str,
    data: np.ndarray,
    cfg: dict[str, Any],
    sde_cfg: dict,
    out: Path,
    device,
    threads: int | None,
    progress: bool = True,
):
    """The prior ``name`` (signal or noise): ``cfg['path']`` if given, else trained on ``data``."""
    from usdehaze.core.priors import load_prior

    tcfg = prior_train_config(name, cfg, sde_cfg, out, threads)
    if cfg.get("path"):
        return load_prior(cfg["path"], device)
    target = out / "priors" / name
    if not target.with_suffix(".safetensors").is_file():
        from usdehaze.core.training import config_from_dict, train

        checked = config_from_dict(tcfg, f"priors.{name}")
        data_path = Path(tcfg["data"]["path"])
        data_path.parent.mkdir(parents=True, exist_ok=True)
        if not data_path.is_file():
            from usdehaze.atomic import atomic_path

            with atomic_path(data_path) as tmp:
                np.savez(tmp, images=data)
        ckpt = Path(tcfg["out"]) / "checkpoint.pt"
        train(
            checked,
            device=str(device),
            resume=ckpt.is_file(),
            progress=progress,
            resume_hint="rerun the same usdehaze experiment command",
            desc=f"{name} prior",
        )
    return load_prior(target, device)


def glow_model(name: str, data: np.ndarray, cfg: dict[str, Any], out: Path, progress: bool = True):
    """Glow for ``name`` (signal or noise) trained on ``data`` (N, C, H, W), cached."""
    from usdehaze.natural.baselines.fit import load_model, save_model
    from usdehaze.natural.baselines.glow import GlowConfig, build_glow, glow_config_dict, train_glow

    path = out / "baselines" / f"glow_{name}.safetensors"
    if path.is_file():
        return load_model(path, build_glow)[0]
    c, h, w = data.shape[1:]
    model_cfg = dict(cfg.get("model", {}))
    try:
        gcfg = GlowConfig(channels=c, size=w, height=h if h != w else None, **model_cfg)
    except TypeError as exc:
        raise UsageError(f"config: key 'methods.flow.model': {exc}") from None
    tr = dict(cfg.get("train", {}))
    model, _ = train_glow(
        data,
        gcfg,
        steps=int(tr.get("steps", 1000)),
        batch=int(tr.get("batch", 32)),
        lr=float(tr.get("lr", 1e-3)),
        dequant=float(tr.get("dequant", 2 / 256)),
        seed=int(tr.get("seed", 0)),
        checkpoint=out / "train" / f"glow_{name}.pt",
        progress=progress,
        desc=f"glow {name}",
    )
    save_model(path, model, glow_config_dict(gcfg))
    return model


def gan_model(data: np.ndarray, cfg: dict[str, Any], out: Path, progress: bool = True):
    """DCGAN generator trained on the signal data, cached."""
    from usdehaze.natural.baselines.fit import load_model, save_model
    from usdehaze.natural.baselines.gan import (
        GANConfig,
        build_generator,
        gan_config_dict,
        train_gan,
    )

    path = out / "baselines" / "gan_generator.safetensors"
    if path.is_file():
        return load_model(path, build_generator)[0]
    c, h, w = data.shape[1:]
    try:
        gcfg = GANConfig(channels=c, size=w, **dict(cfg.get("model", {})))
    except TypeError as exc:
        raise UsageError(f"config: key 'methods.gan.model': {exc}") from None
    tr = dict(cfg.get("train", {}))
    G, _ = train_gan(
        data,
        gcfg,
        steps=int(tr.get("steps", 2000)),
        batch=int(tr.get("batch", 64)),
        lr=float(tr.get("lr", 2e-4)),
        seed=int(tr.get("seed", 0)),
        checkpoint=out / "train" / "gan.pt",
        progress=progress,
    )
    save_model(path, G, gan_config_dict(gcfg))
    return G
