"""Replace the shipped priors with the ones a training run exported (an explicit, separate step).

    python pipelines/ship_priors.py [--domain iq|db|bmode] [--from runs/priors/export]

Both priors must load (weights matching their JSON's sha256) and carry the data domain that the
shipped ones of ``--domain`` have; then each file is replaced atomically, and the loss curves
go to docs/img/loss_{tissue,haze}[_iq|_bmode].png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "usdehaze/weights"


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` onto ``dst`` through a temporary sibling (usdehaze.atomic)."""
    from usdehaze.atomic import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def main() -> int:
    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.models import DATA_MODELS

    # --domain names the prior pair by its data model: iq (μ-law I/Q), db (the logsum model's)
    # or bmode (exported B-mode grey levels)
    domains = {
        "iq": DATA_MODELS["iq"].domain,
        "db": DATA_MODELS["logsum"].domain,
        "bmode": DATA_MODELS["bmode"].domain,
    }

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--domain", choices=sorted(domains), default="iq")
    ap.add_argument("--from", dest="src", type=Path, default=ROOT / "runs/priors/export")
    args = ap.parse_args()
    suffix = "" if args.domain == "db" else f"_{args.domain}"
    names = [f"tissue{suffix}", f"haze{suffix}"]
    for n in names:  # check both before touching either
        path = args.src / f"{n}.safetensors"
        if not path.is_file() or not path.with_suffix(".json").is_file():
            print(
                f"{path}: missing (train first: python pipelines/train_priors.py)", file=sys.stderr
            )
            return 2
        prior = load_prior(path)
        domain = prior.meta.get("normalisation", {}).get("domain")
        if domain != domains[args.domain]:
            print(f"{path}: domain {domain!r}, expected {domains[args.domain]!r}", file=sys.stderr)
            return 2
    for n in names:
        for ext in (".safetensors", ".json"):
            copy_atomic(args.src / f"{n}{ext}", WEIGHTS / f"{n}{ext}")
        curve = ROOT / "runs/priors" / n / "loss.png"
        if curve.is_file():
            copy_atomic(curve, ROOT / "docs/img" / f"loss_{n}.png")
        print(f"shipped {n} -> {WEIGHTS / n}.safetensors")
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
