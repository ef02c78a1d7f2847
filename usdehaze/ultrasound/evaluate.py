"""Dehazing quality on held-out simulated scans: gCNR/KS, tissue fidelity and haze recovery.

Every method sees the same frames (seeds below TRAIN_SEED_START, never used for training). The
clean truth is the tissue-only IQ log-compressed against the hazy frame's maximum, the same
reference the input uses, so dB levels compare directly.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from usdehaze import metrics
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.logcomp import envelope, to_db
from usdehaze.ultrasound.roi import pair_masks, roi_from_dict
from usdehaze.ultrasound.simulate import simulate_cardiac

HAZE_LEVELS = (-16.0, -12.0, -8.0)


def eval_set(
    n: int = 20, seed0: int = 0, shape: tuple[int, int] = (256, 128)
) -> list[dict[str, Any]]:
    """Held-out hazy frames with truth: input/clean/haze dB and ROI masks (one frame per seed)."""
    cases = []
    for k in range(n):
        sim = simulate_cardiac(
            1, seed=seed0 + k, haze_db=HAZE_LEVELS[k % len(HAZE_LEVELS)], shape=shape
        )
        ref = float(envelope(sim.hazy_iq).max())
        ((_, t, b),) = pair_masks(roi_from_dict(sim.roi, f"seed {seed0 + k}"), sim.x, sim.z)
        cases.append(
            {
                "seed": seed0 + k,
                "haze_level_db": HAZE_LEVELS[k % len(HAZE_LEVELS)],
                "iq": sim.hazy_iq[0],
                "input": to_db(sim.hazy_iq, normalise=ref)[0],
                "clean": to_db(sim.tissue_iq, normalise=ref)[0],
                "haze": to_db(sim.haze_iq, normalise=ref)[0],
                "target": t,
                "background": b,
            }
        )
    return cases


def score(
    cases: list[dict[str, Any]], images: list[np.ndarray], haze: list[np.ndarray] | None = None
) -> dict[str, float]:
    """Mean metrics of one method's tissue (and haze) images over the cases."""
    rows = []
    for i, (c, img) in enumerate(zip(cases, images)):
        t, b = img[c["target"]], img[c["background"]]
        row = {
            "gcnr": metrics.gcnr(t, b),
            "ks": metrics.ks(t, b),
            "psnr": metrics.psnr(img, c["clean"], 60.0),
            "myo_shift_db": float(np.mean(b) - np.mean(c["clean"][c["background"]])),
            "lv_db": float(np.mean(t)),
        }
        if haze is not None:
            row["haze_corr"] = float(np.corrcoef(haze[i].ravel(), c["haze"].ravel())[0, 1])
        rows.append(row)
    keys = rows[0].keys()
    levels = sorted({c["haze_level_db"] for c in cases if "haze_level_db" in c})
    by_level = {  # gCNR over the frames of each haze level: where haze removal matters most
        f"gcnr_at_{lv:g}dB": float(
            np.mean([r["gcnr"] for r, c in zip(rows, cases) if c.get("haze_level_db") == lv])
        )
        for lv in levels
    }
    return (
        {k: float(np.mean([r[k] for r in rows])) for k in keys}
        | {f"{k}_sd": float(np.std([r[k] for r in rows])) for k in ("gcnr",)}
        | by_level
    )


def evaluate(
    methods: dict[str, DehazeConfig], n: int = 20, log=print
) -> dict[str, dict[str, float]]:
    """Table rows: input, each method, clean truth."""
    cases = eval_set(n)
    table = {
        "hazy input": score(cases, [c["input"] for c in cases]),
        "clean truth": score(cases, [c["clean"] for c in cases]),
    }
    iq = np.stack([c["iq"] for c in cases])
    for name, cfg in methods.items():
        t0 = time.perf_counter()
        dehazer = Dehazer(cfg)
        tissue, hz = [], []
        for i in range(0, len(cases), cfg.batch):
            sel = range(i, min(i + cfg.batch, len(cases)))
            out = dehazer.dehaze_iq(iq[i : i + cfg.batch], frames=sel)
            tissue.extend(out["tissue"])
            hz.extend(out["haze"])
        row = score(cases, tissue, hz)
        row["s_per_frame"] = (time.perf_counter() - t0) / len(cases)
        table[name] = row
        log(
            f"{name}: gCNR {row['gcnr']:.3f}  KS {row['ks']:.3f}  PSNR {row['psnr']:.2f}  myo {row['myo_shift_db']:+.2f} dB  ({row['s_per_frame']:.1f} s/frame)"
        )
    return table


# the joint method under each data model: what a row changes in the base config
JOINT_MODELS = {
    "logsum": ("logsum", {"model": "logsum", "rule": "dps"}),
    "iq": ("μ-law IQ, TMI", {"model": "iq", "rule": "dps"}),
    "additive": ("additive, TMLR", {"model": "additive", "rule": "pigdm", "weighting": "paper"}),
}


def default_methods(base: DehazeConfig | None = None) -> dict[str, DehazeConfig]:
    """The table's rows: the joint method under each data model with the base config's sampler
    settings (the base's own model first, marked default), single-prior baselines and BM3D."""
    base = base or DehazeConfig(device="cpu")
    rows = {}
    for m in sorted(JOINT_MODELS, key=lambda m: m != base.model):
        label, change = JOINT_MODELS[m]
        own = m == base.model
        rows[f"joint ({label}{', default' if own else ''})"] = (
            base if own else replace(base, **change)
        )
    return rows | {
        "DPS, no haze prior": replace(base, method="dps"),
        "ΠGDM-Gauss, no haze prior": replace(base, method="pigdm-gauss"),
        "BM3D": replace(base, method="bm3d"),
    }


def markdown(table: dict[str, dict[str, float]]) -> str:
    cols = [
        ("gcnr", "gCNR ↑"),
        ("ks", "KS ↑"),
        ("psnr", "PSNR dB ↑"),
        ("myo_shift_db", "myocardium Δ dB"),
        ("lv_db", "LV mean dB ↓"),
        ("haze_corr", "haze corr ↑"),
        ("s_per_frame", "s/frame"),
    ]
    lines = ["| method | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.items():
        cells = []
        for k, _ in cols:
            v = row.get(k)
            cells.append(
                "–"
                if v is None
                else (
                    f"{v:.3f} ± {row['gcnr_sd']:.3f}"
                    if k == "gcnr"
                    else f"{v:.3f}"
                    if k in ("ks", "haze_corr")
                    else f"{v:+.2f}"
                    if k == "myo_shift_db"
                    else f"{v:.2f}"
                )
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_by_level(table: dict[str, dict[str, float]]) -> str:
    """gCNR per haze level (haze relative to the myocardium), one column per method."""
    levels = [k for k in next(iter(table.values())) if k.startswith("gcnr_at_")]
    names = [n for n in table if n != "clean truth"]
    lines = ["| haze | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in levels:
        label = k.removeprefix("gcnr_at_").removesuffix("dB") + " dB"
        lines.append(f"| {label} | " + " | ".join(f"{table[n][k]:.3f}" for n in names) + " |")
    return "\n".join(lines)
