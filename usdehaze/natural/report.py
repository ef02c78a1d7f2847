"""Results of one experiment: per-image metrics, a summary table (Markdown + CSV), a figure grid.

LPIPS is used only when the ``lpips`` package and its AlexNet weights are already on this machine
(nothing is downloaded); otherwise the column says why it is missing.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.atomic import atomic_path


def lpips_scorer() -> tuple[Any, str]:
    """(callable(x, ref) -> per-image LPIPS, note); the callable is None when unavailable."""
    try:
        import lpips  # noqa: F401
        import torch
    except ImportError:
        return None, "LPIPS skipped: the 'lpips' package is not installed"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(hub.glob("alexnet-*.pth")):
        return None, f"LPIPS skipped: AlexNet weights not found in {hub} (nothing is downloaded)"
    import lpips

    model = lpips.LPIPS(net="alex", verbose=False).eval()

    def score(x, ref):
        with torch.no_grad():
            xx, rr = (torch.as_tensor(a) for a in (x, ref))
            if xx.shape[1] == 1:
                xx, rr = xx.repeat(1, 3, 1, 1), rr.repeat(1, 3, 1, 1)
            return model(xx.float(), rr.float()).reshape(-1).numpy()

    return score, "LPIPS (AlexNet)"


def image_metrics(x: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """PSNR and SSIM per image from usdehaze.metrics, images (B, C, H, W) in [-1, 1] (range 2)."""
    from usdehaze.metrics import psnr, ssim

    out = {"psnr": [], "ssim": []}
    for a, r in zip(x, ref):
        if a.shape[0] == 1:  # grey: 2-D images; colour stays channel-first
            a, r = a[0], r[0]
        out["psnr"].append(psnr(a, r, data_range=2.0))
        out["ssim"].append(ssim(a, r, data_range=2.0))
    return {k: np.asarray(v) for k, v in out.items()}


def summarise(
    per_image: dict[str, dict[str, np.ndarray]], seconds: dict[str, float]
) -> list[dict[str, Any]]:
    """One row per method: mean and std of each metric, seconds per image."""
    rows = []
    for name, mets in per_image.items():
        row: dict[str, Any] = {"method": name}
        for k, v in mets.items():
            row[f"{k}_mean"] = float(np.mean(v)) if len(v) else math.nan
            row[f"{k}_std"] = float(np.std(v)) if len(v) else math.nan
        row["seconds_per_image"] = seconds.get(name, math.nan)
        rows.append(row)
    return rows


def write_tables(
    out: Path,
    rows: list[dict[str, Any]],
    per_image: dict[str, dict[str, np.ndarray]],
    labels: dict[str, str],
    header: str,
    notes: list[str],
) -> tuple[Path, Path]:
    """``results.csv`` (one row per method), ``per_image.csv`` and ``results.md``."""
    keys = sorted({k for r in rows for k in r if k != "method"})
    csv_path, md_path = out / "results.csv", out / "results.md"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", *keys])
        for r in rows:
            w.writerow([r["method"], *(f"{r.get(k, math.nan):.6g}" for k in keys)])
    with atomic_path(out / "per_image.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "image", "metric", "value"])
        for name, mets in per_image.items():
            for k, v in mets.items():
                for i, val in enumerate(v):
                    w.writerow([name, i, k, f"{val:.6g}"])
    metrics = [m for m in ("psnr", "ssim", "lpips") if any(f"{m}_mean" in r for r in rows)]
    arrows = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
    lines = [
        header,
        "",
        "| method | " + " | ".join(arrows[m] for m in metrics) + " | s / image |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for r in rows:
        cells = [
            f"{r[f'{m}_mean']:.2f} ± {r[f'{m}_std']:.2f}"
            if m == "psnr"
            else f"{r[f'{m}_mean']:.3f} ± {r[f'{m}_std']:.3f}"
            for m in metrics
            if f"{m}_mean" in r
        ]
        sec = r.get("seconds_per_image", math.nan)
        lines.append(
            f"| {labels.get(r['method'], r['method'])} | "
            + " | ".join(cells)
            + f" | {'' if math.isnan(sec) else f'{sec:.2f}'} |"
        )
    lines += [""] + [f"- {n}" for n in notes]
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return md_path, csv_path


def _show(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    img = np.clip((img + 1) / 2, 0, 1)
    return (img[0], "gray") if img.shape[0] == 1 else (img.transpose(1, 2, 0), None)


def figure_grid(
    path: Path,
    columns: list[tuple[str, np.ndarray]],
    psnrs: dict[str, np.ndarray],
    rows: int,
    title: str,
) -> Path:
    """A grid like the paper's figure 2: one row per test image, one column per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(rows, len(columns[0][1]))
    ncol = len(columns)
    fig, axes = plt.subplots(rows, ncol, figsize=(1.45 * ncol, 1.5 * rows + 0.4), squeeze=False)
    for j, (name, imgs) in enumerate(columns):
        for i in range(rows):
            ax = axes[i, j]
            im, cmap = _show(imgs[i])
            ax.imshow(im, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if name in psnrs:
                ax.text(
                    0.03,
                    0.03,
                    f"{psnrs[name][i]:.1f}",
                    color="yellow",
                    fontsize=6.5,
                    transform=ax.transAxes,
                    va="bottom",
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0},
                )
            if i == 0:
                ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=8, y=0.995)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.3 / (1.5 * rows + 0.4)))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return path
