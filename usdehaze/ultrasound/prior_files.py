"""Prior files: where a run's tissue and haze priors are (given files, a priors folder such as
``usdehaze adapt`` writes, or the package's shipped weights) and the names a data model gives
them there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usdehaze.errors import UsageError
from usdehaze.limits import not_special
from usdehaze.ultrasound.dehaze_config import DehazeConfig
from usdehaze.ultrasound.logcomp import IQ_MULAW
from usdehaze.ultrasound.methods import run_model
from usdehaze.ultrasound.models import data_model

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def prior_paths(cfg: Any, option: str = "--priors") -> tuple[Path, Path]:
    """The tissue and haze prior files of a config: ``tissue_prior`` / ``haze_prior`` when given,
    else the ``priors`` folder's or the shipped ones, named as its method's data model names them
    (the single-prior methods read a dB model's). A ``priors`` folder must hold both, weights and configs; messages
    name it as the command's ``option`` (``usdehaze adapt``: --from)."""
    names = run_model(cfg).prior_names()
    folder = Path(cfg.priors) if cfg.priors else WEIGHTS_DIR
    if cfg.priors:
        if not folder.is_dir():
            raise UsageError(f"{folder}: {option}: no such folder (expected a folder of priors)")
        files = [f for n in names for f in (folder / n, (folder / n).with_suffix(".json"))]
        for f in files:
            not_special(f, "prior file")
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UsageError(
                f"{folder}: {option}: no {', '.join(missing)} (expected {names[0]} and {names[1]} "
                f"with their .json, as usdehaze adapt writes for the {cfg.model} model)"
            )
    return (
        Path(cfg.tissue_prior) if cfg.tissue_prior else folder / names[0],
        Path(cfg.haze_prior) if cfg.haze_prior else folder / names[1],
    )


def check_prior_mu(meta: dict[str, Any]) -> None:
    """Refuse a μ-law I/Q prior whose JSON records another μ than the iq model's (it would see
    its data companded differently from what it learnt): one line naming the prior file."""
    if (meta.get("normalisation") or {}).get("domain") != IQ_MULAW:
        return
    for key in data_model("iq")(DehazeConfig()).prior_keys():
        if key.key == "normalisation.mu":
            key.check(meta, "iq")
