"""Quality against network evaluations: gCNR gain of the joint dehazer per solver and step count.

    python pipelines/steps_sweep.py [--frames 6] [--out runs/steps_sweep] [--plot docs/img/steps_sweep.png]
    python pipelines/steps_sweep.py --start-sigma 3 --only ddim --max-steps 20 --out runs/sweep_s3
    python pipelines/steps_sweep.py --model iq --only ddim --max-steps 20 --out runs/sweep_iq

Frames are validation frames (simulation seeds 5000+: neither training seeds, which start at
10 000, nor the 0–19 of `usdehaze evaluate`'s test table). Each setting's row is appended to
OUT/rows.json as soon as it is done, so a stopped sweep resumes where it was; the reference is
Euler–Maruyama with T = 600 steps from the same late start. Prints a table; writes a PNG.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.evaluate import eval_set, score
from usdehaze.ultrasound.models import DATA_MODELS

VALIDATION_SEED0 = 5000

# (name, solver, eta, schedule, steps)
SETTINGS = [
    ("em", "em", 1.0, "linear", 5),
    ("em", "em", 1.0, "linear", 10),
    ("em", "em", 1.0, "linear", 20),
    ("em", "em", 1.0, "linear", 40),
    ("ddim η=0", "ddim", 0.0, "linear", 5),
    ("ddim η=0", "ddim", 0.0, "linear", 10),
    ("ddim η=0", "ddim", 0.0, "linear", 20),
    ("ddim η=0", "ddim", 0.0, "linear", 40),
    ("ddim η=1", "ddim", 1.0, "linear", 5),
    ("ddim η=1", "ddim", 1.0, "linear", 10),
    ("ddim η=1", "ddim", 1.0, "linear", 20),
    ("ddim η=1", "ddim", 1.0, "linear", 40),
    ("heun (karras)", "heun", 1.0, "karras", 5),  # heun has no η: the setting stays at its default
    ("heun (karras)", "heun", 1.0, "karras", 10),
    ("em, T = 600", "em", 1.0, "linear", 600),
]


def run_setting(cases, cfg: DehazeConfig) -> dict:
    iq = np.stack([c["iq"] for c in cases])
    d = Dehazer(cfg)
    t0 = time.perf_counter()
    out = d.dehaze_iq(iq, frames=range(len(cases)))
    sec = (time.perf_counter() - t0) / len(cases)
    row = score(cases, list(out["tissue"]), list(out["haze"]))
    # the network evaluations each frame got, as the sampler counted them: a baseline's own
    # settings and its single prior included (dps: 5 DDIM steps on one network = 5)
    return row | {"nfe": d.nfe, "s_per_frame": sec}


def plot(
    rows: list[dict], base_gcnr: float, path: Path, start_sigma: float, title: str = "Joint"
) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["name"] for r in rows):
        rs = sorted((r for r in rows if r["name"] == name), key=lambda r: r["nfe"])
        gains = [r["gcnr"] - base_gcnr for r in rs]
        if name.startswith("em, T"):
            ax.axhline(gains[0], color="k", ls="--", lw=1, label=f"{name} ({rs[0]['nfe']} NFE)")
        else:
            ax.plot([r["nfe"] for r in rs], gains, "o-", label=name)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xticks([10, 20, 40, 80])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("network evaluations per frame (both priors)")
    ax.set_ylabel("gCNR gain over the hazy input")
    ax.set_title(f"{title}: quality against steps (late start σ = {start_sigma:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("runs/steps_sweep"))
    ap.add_argument("--plot", type=Path, default=Path("docs/img/steps_sweep.png"))
    ap.add_argument("--max-steps", type=int, default=600, help="skip settings with more steps")
    ap.add_argument("--start-sigma", type=float, default=2.0, help="late start noise level")
    ap.add_argument("--only", default=None, help="run only settings whose name contains this")
    ap.add_argument(
        "--model",
        default=DehazeConfig.model,
        choices=list(DATA_MODELS),
        help="data model (usdehaze.ultrasound.models)",
    )
    ap.add_argument("--gamma", type=float, default=DehazeConfig.gamma, help="dehazing strength")
    ap.add_argument("--haze-init-db", type=float, default=DehazeConfig.haze_init_db)
    ap.add_argument("--lam", type=float, default=DehazeConfig.lam, help="tissue DC weight λ")
    ap.add_argument("--kappa", type=float, default=DehazeConfig.kappa, help="haze DC weight κ")
    ap.add_argument(
        "--jacobian",
        default=DehazeConfig.jacobian,
        help="networks back-propagated in the DC step: both, haze, tissue, none",
    )
    args = ap.parse_args()

    cases = eval_set(args.frames, seed0=VALIDATION_SEED0)
    base = DehazeConfig(
        device="cpu",
        batch=args.frames,
        start_sigma=args.start_sigma,
        model=args.model,
        gamma=args.gamma,
        haze_init_db=args.haze_init_db,
        lam=args.lam,
        kappa=args.kappa,
        jacobian=args.jacobian,
    ).validate("options")
    base_gcnr = score(cases, [c["input"] for c in cases])["gcnr"]
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else []
    done = {(r["name"], r["steps"]) for r in rows}
    print(
        f"{args.frames} validation frames; hazy input gCNR {base_gcnr:.3f}; start σ {args.start_sigma}",
        flush=True,
    )
    for name, solver, eta, schedule, steps in SETTINGS:
        if (name, steps) in done or steps > args.max_steps or (args.only or "") not in name:
            continue
        cfg = replace(base, solver=solver, eta=eta, schedule=schedule, steps=steps)
        row = {"name": name, "steps": steps} | run_setting(cases, cfg)
        rows.append(row)
        rows_path.write_text(json.dumps(rows, indent=1))
        print(
            f"{name:16s} {steps:4d} steps {row['nfe']:5d} NFE  gCNR {row['gcnr']:.3f} "
            f"(gain {row['gcnr'] - base_gcnr:+.3f})  myo {row['myo_shift_db']:+.2f} dB  "
            f"{row['s_per_frame']:.1f} s/frame",
            flush=True,
        )
    print("\n| solver | steps | NFE | gCNR | gain | myocardium Δ dB | s/frame |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['steps']} | {r['nfe']} | {r['gcnr']:.3f} | "
            f"{r['gcnr'] - base_gcnr:+.3f} | {r['myo_shift_db']:+.2f} | {r['s_per_frame']:.1f} |"
        )
    plot(rows, base_gcnr, args.plot, args.start_sigma, f"Joint ({args.model} model)")
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
