"""Train-or-load every learned model an experiment needs, cached in its run folder.

Score priors train with the core's DSM trainer (``usdehaze.core.training``) on arrays written to
``OUT/data/*.npz``; GAN and Glow train with :mod:`usdehaze.natural.baselines.fit`. A model whose
files exist is loaded, not retrained; an interrupted training resumes from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
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
    from usdehaze.natural.baselines.glow import GlowConfig, build_glow, glow_config_dict, train_glow

    def train() -> tuple[Any, dict[str, Any]]:
        """A Glow trained from ``methods.flow``'s model and train settings, and its config."""
        c, h, w = data.shape[1:]
        height = h if h != w else None
        gcfg = _model_config(GlowConfig, "flow", cfg, channels=c, size=w, height=height)
        settings = _train_settings(cfg, steps=1000, batch=32, lr=1e-3, dequant=2 / 256, seed=0)
        checkpoint = out / "train" / f"glow_{name}.pt"
        model, _ = train_glow(
            data, gcfg, **settings, checkpoint=checkpoint, progress=progress, desc=f"glow {name}"
        )
        return model, glow_config_dict(gcfg)

    return _trained_or_loaded(out / "baselines" / f"glow_{name}.safetensors", build_glow, train)


def gan_model(data: np.ndarray, cfg: dict[str, Any], out: Path, progress: bool = True):
    """DCGAN generator trained on the signal data, cached."""
    from usdehaze.natural.baselines.gan import (
        GANConfig,
        build_generator,
        gan_config_dict,
        train_gan,
    )

    def train() -> tuple[Any, dict[str, Any]]:
        """A generator trained from ``methods.gan``'s model and train settings, and its config."""
        c, _, w = data.shape[1:]
        gcfg = _model_config(GANConfig, "gan", cfg, channels=c, size=w)
        settings = _train_settings(cfg, steps=2000, batch=64, lr=2e-4, seed=0)
        checkpoint = out / "train" / "gan.pt"
        G, _ = train_gan(data, gcfg, **settings, checkpoint=checkpoint, progress=progress)
        return G, gan_config_dict(gcfg)

    return _trained_or_loaded(
        out / "baselines" / "gan_generator.safetensors", build_generator, train
    )


def _trained_or_loaded(
    path: Path, build: Callable[[dict[str, Any]], Any], train: Callable[[], tuple[Any, dict]]
):
    """The baseline network saved at ``path``; when missing, ``train()`` it and save it there."""
    from usdehaze.natural.baselines.fit import load_model, save_model

    if path.is_file():
        return load_model(path, build)[0]
    model, config = train()
    save_model(path, model, config)
    return model


def _model_config(make: Callable[..., Any], method: str, cfg: dict[str, Any], **shape: Any):
    """The network's config from the data's shape and ``methods.METHOD.model`` (an unknown
    key is one line)."""
    try:
        return make(**shape, **dict(cfg.get("model", {})))
    except TypeError as exc:
        raise UsageError(f"config: key 'methods.{method}.model': {exc}") from None


def _train_settings(cfg: dict[str, Any], **defaults: float) -> dict[str, Any]:
    """The ``train`` settings named by ``defaults``, each of its default's type."""
    given = dict(cfg.get("train", {}))
    return {k: type(v)(given.get(k, v)) for k, v in defaults.items()}
