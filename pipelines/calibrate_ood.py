"""Calibrate the out-of-distribution threshold of a tissue prior and write it into its JSON.

    python pipelines/calibrate_ood.py                         # shipped iq prior, simulated scans
    python pipelines/calibrate_ood.py --prior usdehaze/weights/tissue.safetensors   # the dB one
    python pipelines/calibrate_ood.py --in runs/corpus/val --group 1 --write        # a corpus split
    python pipelines/calibrate_ood.py --in a.h5 b.h5 --mismatched other_probe.h5 --write
    python pipelines/calibrate_ood.py --display runs/corpus/val --write   # the B-mode prior

In-distribution scans: ``--in`` files (scans in any layout the readers read, corpus shards
``.npz`` with tissue + haze I/Q, or ``.npz`` arrays of hazy IQ frames; a folder means its
``.npz`` and ``.h5`` files), else ``--simulate N`` loops of ``usdehaze simulate``'s cardiac
model (seeds from 7000: never used to train the shipped priors nor to evaluate them), the data
the shipped priors were trained on. Each file is one scan, or groups of ``--group`` frames; a
scan is scored as ``usdehaze run`` scores it (usdehaze.ultrasound.ood: up to 4 frames spread
over it). Mismatched scans: ``--mismatched`` files, plus every in-distribution scan with its
speckle deliberately altered (MISMATCHES: IQ resampled along depth or lateral by 0.5 or 2, blurred
by a wider PSF, demodulated off baseband; the last only for iq priors, as it leaves the
envelope a dB prior sees unchanged).

``--display FOLDER``: the B-mode tissue prior (``tissue_bmode``, the default with it) on exported
B-mode, whose in-distribution scans are corpus shards rendered as display frames (one frame a
scan, dB through the 60 dB display map, as a B-mode reader gives ``usdehaze run`` a cine), each
with its own near-field clutter, once through a training display chain and once through the
held-out one per ``--seeds`` (usdehaze.ultrasound.corpus.bmode.render_sample: a scanner's chain is
unknown, so both are the priors' domain); the alterations act on the dB image.

A fixed-seed share ``--holdout`` of both sets is kept out of the calibration and only scored:
the false-alarm and miss rates printed for it are the honest ones. The threshold is the
``--quantile`` of the calibration part's in-distribution scores (``--rule quantile``, default
0.99), or the one that minimises false-alarm rate + miss rate (``--rule balanced``). With
``--write`` it goes into the prior's JSON as ``"ood": {"threshold", "measure", "calibration"}``;
nothing else in the JSON changes and the weights' sha256 stays valid (checked before writing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from usdehaze.errors import UsageError

CALIBRATION_SEED0 = 7000
HAZE_DB = (-22.0, -4.0)  # the shipped priors' training range of haze levels
Frames = np.ndarray  # complex IQ (n, z, x)


def _per_part(f: Callable[[np.ndarray], np.ndarray], a: Frames) -> Frames:
    """``f`` applied to I and Q of complex IQ, or to a real (dB display) image as it is."""
    if not np.iscomplexobj(a):
        return f(a).astype(np.float32)
    return (f(a.real) + 1j * f(a.imag)).astype(np.complex64)


def _resample(fz: float, fx: float) -> Callable[[Frames], Frames]:
    """Frames resampled by (fz, fx) with linear interpolation: speckle narrower (< 1) or wider
    (> 1) in pixels, as on a grid sampled coarser or finer than the training data's."""
    return lambda a: _per_part(lambda p: zoom(p, (1, fz, fx), order=1), a)


def _blur(a: Frames) -> Frames:
    """I and Q (or the dB image) blurred by a 1-pixel Gaussian: a wider point-spread function."""
    return _per_part(lambda p: gaussian_filter(p, (0, 1.0, 1.0)), a)


def _off_baseband(iq: Frames) -> Frames:
    """A residual carrier of 0.25 cycles per depth sample: IQ demodulated at another frequency."""
    z = np.arange(iq.shape[1])[None, :, None]
    return (iq * np.exp(2j * np.pi * 0.25 * z)).astype(np.complex64)


MISMATCHES: dict[str, Callable[[Frames], Frames]] = {
    "depth x0.5": _resample(0.5, 1.0),
    "lateral x0.5": _resample(1.0, 0.5),
    "depth x2": _resample(2.0, 1.0),
    "lateral x2": _resample(1.0, 2.0),
    "both x1.5": _resample(1.5, 1.5),
    "blur 1 px": _blur,
    "off baseband": _off_baseband,
}
# alterations of the phase only: the envelope a dB prior sees is unchanged, no mismatch for it
PHASE_ONLY = ("off baseband",)


def _npz_frames(path: Path, key: str | None) -> Frames:
    """Hazy IQ frames of an .npz: a corpus shard's tissue + haze, ``key``, or its complex array."""
    with np.load(path, allow_pickle=False) as z:
        if key is None and {"tissue", "haze"} <= set(z.files):
            return z["tissue"] + z["haze"]
        names = [key] if key else [k for k in z.files if np.iscomplexobj(z[k])]
        if not names or names[0] not in z.files:
            raise UsageError(
                f"{path}: no {'key ' + repr(key) if key else 'complex IQ array'} (keys: {z.files})"
            )
        a = z[names[0]]
    return a[None] if a.ndim == 2 else a


def _files(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted([*p.glob("*.npz"), *p.glob("*.h5")])
            if not found:
                raise UsageError(f"{p}: no .npz or .h5 files in this folder")
            out += found
        elif not p.exists():
            raise UsageError(f"{p}: no such file")
        else:
            out.append(p)
    return out


def file_scans(paths: list[Path], key: str | None, group: int) -> list[tuple[str, Frames]]:
    """(name, frames) of every scan in the files: each file, or groups of ``group`` frames;
    only the frames a run would score are read (usdehaze.ultrasound.ood.sample_frames)."""
    from usdehaze.ultrasound.io import load_scan
    from usdehaze.ultrasound.ood import sample_frames

    out = []
    for p in _files(paths):
        if p.suffix == ".npz":
            a = _npz_frames(p, key)
            n, read = len(a), (lambda i, a=a: a[i : i + 1])
            scan = None
        else:
            scan = load_scan(p, key)
            n, read = scan.n_frames, (lambda i, s=scan: s.frames(i, i + 1))
        try:
            step = group if group > 0 else n
            for k in range(0, n, step):
                picked = sample_frames(range(k, min(k + step, n)))
                name = str(p) if step >= n else f"{p}[{k}:{min(k + step, n)}]"
                out.append((name, np.concatenate([read(i) for i in picked])))
        finally:
            if scan is not None:
                scan.close()
    return out


def simulated_scans(n: int, seed0: int = CALIBRATION_SEED0) -> list[tuple[str, Frames]]:
    """``n`` hazy cardiac loops of 4 frames from the training simulator, haze levels drawn over
    the priors' training range."""
    from usdehaze.ultrasound.simulate import simulate_cardiac

    out = []
    for k in range(n):
        rng = np.random.default_rng(seed0 + k)
        sim = simulate_cardiac(4, seed=seed0 + k, haze_db=float(rng.uniform(*HAZE_DB)))
        out.append((f"simulate_cardiac seed {seed0 + k}", sim.hazy_iq))
    return out


def display_scans(
    folders: list[Path], seeds: list[int], dynamic_range: float = 60.0
) -> list[tuple[str, Frames]]:
    """Every frame of the corpus shards in ``folders`` rendered as exported B-mode (dB frames
    (1, z, x) through the display map), through a training and the held-out display chain per
    seed: ``(frame@chain seed, frames)`` each."""
    from usdehaze.ultrasound.corpus.bmode import render_sample
    from usdehaze.ultrasound.corpus.store import iter_samples, shards
    from usdehaze.ultrasound.display import DisplayMap

    dmap = DisplayMap(dynamic_range)
    out = []
    for folder in folders:
        if not shards(folder):
            raise UsageError(f"{folder}: no corpus shards (*.npz) to render")
        for chain in ("train", "val"):
            for seed in seeds:
                rng = np.random.default_rng(seed)
                for s in iter_samples(folder):
                    b = render_sample(s, rng, chain)
                    db = dmap.to_db(b["hazy"])[None].astype(np.float32)
                    out.append((f"{s['name']}@{chain}{seed}", db))
    return out


def pick_threshold(inside: np.ndarray, outside: np.ndarray, rule: str, quantile: float) -> float:
    """The threshold: a quantile of the in-distribution scores, or the one that minimises
    false-alarm rate + miss rate (the middle of the best range)."""
    if rule == "quantile" or not len(outside):
        return float(np.quantile(inside, quantile))
    s = np.unique(np.concatenate([inside, outside]))
    cand = np.concatenate([[s[0] - 1e-9], (s[1:] + s[:-1]) / 2, [s[-1] + 1e-9]])
    cost = [rates(inside, outside, t)[0] + rates(inside, outside, t)[1] for t in cand]
    best = cand[np.isclose(cost, min(cost))]
    return float(best[len(best) // 2])


def rates(inside: np.ndarray, outside: np.ndarray, t: float) -> tuple[float, float]:
    """(false-alarm rate, miss rate) of the warning ``score > t``."""
    fa = float(np.mean(inside > t)) if len(inside) else float("nan")
    miss = float(np.mean(outside <= t)) if len(outside) else float("nan")
    return fa, miss


def write_block(prior_path: Path, block: dict) -> Path:
    """Set the ``"ood"`` block of a prior's JSON (nothing else), after checking that the weights
    still match the JSON's sha256."""
    from usdehaze.atomic import atomic_path
    from usdehaze.core.priors import sha256

    cfg_path = prior_path.with_suffix(".json")
    cfg = json.loads(cfg_path.read_text())
    weights = cfg_path.with_suffix(".safetensors")
    if sha256(weights) != cfg.get("sha256"):
        raise UsageError(f"{weights}: does not match the sha256 in {cfg_path.name}; not writing")
    cfg["ood"] = block
    with atomic_path(cfg_path) as tmp:
        from usdehaze.jsonio import dumps

        tmp.write_text(dumps(cfg, indent=2))  # valid JSON: the prior loader refuses NaN
    return cfg_path


def _summary(x: np.ndarray) -> dict:
    if not len(x):
        return {"n": 0}
    q = np.quantile(x, [0, 0.5, 0.99, 1])
    return {"n": int(len(x)), "min": q[0], "median": q[1], "p99": q[2], "max": q[3]}


def _fmt(inside: np.ndarray, outside: np.ndarray, t: float) -> str:
    """False alarms and misses at ``t``, as counts and rates."""
    fa, miss = (int(np.sum(inside > t)), len(inside)), (int(np.sum(outside <= t)), len(outside))
    return ", ".join(
        f"{what} {k}/{n} ({100 * k / n:.1f} %)" if n else f"{what}: none scored"
        for what, (k, n) in (("false alarms", fa), ("misses", miss))
    )


Row = tuple[str, str, bool, float]  # (kind, scan, held out, score)


def _arguments() -> argparse.Namespace:
    """The command line."""
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--prior", type=Path, default=None, help="default: tissue_iq, with --display tissue_bmode"
    )
    ap.add_argument("--in", dest="inside", type=Path, nargs="*", default=[])
    ap.add_argument("--display", type=Path, nargs="*", default=[], help="corpus splits as B-mode")
    ap.add_argument("--seeds", default="0,1", help="--display: rendering seeds")
    ap.add_argument("--mismatched", type=Path, nargs="*", default=[])
    ap.add_argument("--simulate", type=int, default=40, help="simulated scans when no --in")
    ap.add_argument("--key", default=None, help="dataset or .npz key of the hazy IQ frames")
    ap.add_argument("--group", type=int, default=0, help="frames per scan (0: a file is a scan)")
    ap.add_argument("--no-transforms", action="store_true", help="only --mismatched files")
    ap.add_argument("--holdout", type=float, default=0.3, help="share scored, not calibrated on")
    ap.add_argument("--rule", choices=["quantile", "balanced"], default="quantile")
    ap.add_argument("--quantile", type=float, default=0.99)
    ap.add_argument("--dynamic-range", type=float, default=60.0, help="dB priors only")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--write", action="store_true", help="write the threshold into the JSON")
    args = ap.parse_args()
    if args.prior is None:
        args.prior = WEIGHTS_DIR / f"tissue_{'bmode' if args.display else 'iq'}.safetensors"
    return args


def _load(args: argparse.Namespace) -> tuple[Any, Any, list, list]:
    """The prior, the data model it sees frames through, the in-distribution scans and the
    mismatched files' scans (``(name, frames)`` each)."""
    from usdehaze.core.device import resolve_device
    from usdehaze.core.priors import load_prior
    from usdehaze.ultrasound.ood import model_for_prior

    prior = load_prior(args.prior, resolve_device(args.device))
    model = model_for_prior(prior, args.dynamic_range)  # how the prior sees frames
    if args.display:
        seeds = [int(k) for k in args.seeds.split(",")]
        inside_scans = display_scans(args.display, seeds, args.dynamic_range)
    elif args.inside:
        inside_scans = file_scans(args.inside, args.key, args.group)
    else:
        inside_scans = simulated_scans(args.simulate)
    outside_files = file_scans(args.mismatched, args.key, args.group) if args.mismatched else []
    return prior, model, inside_scans, outside_files


def _score_all(
    score: Callable[[Frames], float],
    inside_scans: list,
    outside_files: list,
    kinds: list[str],
    holdout: float,
) -> list[Row]:
    """Every scan's score: each in-distribution scan and its alterations ``kinds`` (held out
    together, a fixed-seed share ``holdout``), then the mismatched files; finite ones only."""
    rng = np.random.default_rng(0)
    held = rng.random(len(inside_scans)) < holdout  # a scan and its alterations stay together
    rows: list[Row] = []
    for k, (name, frames) in enumerate(inside_scans):
        rows.append(("in-distribution", name, bool(held[k]), score(frames)))
        for kind in kinds:
            rows.append((kind, name, bool(held[k]), score(MISMATCHES[kind](frames))))
        print(f"\r{k + 1}/{len(inside_scans)} scans scored", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    held_files = rng.random(len(outside_files)) < holdout
    for (name, frames), h in zip(outside_files, held_files):
        rows.append(("mismatched files", name, bool(h), score(frames)))
    return [r for r in rows if np.isfinite(r[3])]


def _pick(rows: list[Row], part: bool | None, inside: bool) -> np.ndarray:
    """The scores of the in-distribution (``inside``) or mismatched scans of the held-out part
    (``part`` True), the calibration part (False) or all (None)."""
    return np.array(
        [
            r[3]
            for r in rows
            if (r[0] == "in-distribution") == inside and (part is None or r[2] == part)
        ]
    )


def _print_table(rows: list[Row], kinds: list[str], t: float) -> None:
    """The scores per kind of scan, and how many of them threshold ``t`` flags, as Markdown."""
    print("| scans | n | min | median | max | flagged at threshold |")
    print("|---|---|---|---|---|---|")
    for kind in ["in-distribution", *kinds, "mismatched files"]:
        v = np.array([r[3] for r in rows if r[0] == kind])
        if len(v):
            print(
                f"| {kind} | {len(v)} | {v.min():.4f} | {np.median(v):.4f} | {v.max():.4f} | "
                f"{int((v > t).sum())}/{len(v)} |"
            )


def _rates_by_part(rows: list[Row], t: float) -> dict:
    """False-alarm and miss rates at ``t`` of the calibration part, the held-out part and all,
    each printed as a line too."""
    parts = {"calibration": False, "held-out": True, "all": None}
    figures = {}
    for label, part in parts.items():
        i, o = _pick(rows, part, True), _pick(rows, part, False)
        if len(i) or len(o):
            figures[label] = {
                "false_alarm_rate": rates(i, o, t)[0],
                "miss_rate": rates(i, o, t)[1],
                "n_in": int(len(i)),
                "n_mismatched": int(len(o)),
            }
            print(f"  {label:12s} {_fmt(i, o, t)}")
    return figures


def _other_rule(rows: list[Row], args: argparse.Namespace) -> None:
    """One line: the threshold the rule not chosen would give and its rates (held out, else all)."""
    other = "balanced" if args.rule == "quantile" else "quantile"
    t2 = pick_threshold(_pick(rows, False, True), _pick(rows, False, False), other, args.quantile)
    part = True if len(_pick(rows, True, True)) else None  # held out, else all
    shown = _fmt(_pick(rows, part, True), _pick(rows, part, False), t2)
    print(f"(rule {other}: threshold {t2:.4f}; {'held-out' if part else 'all'} {shown})")


def _block(
    args: argparse.Namespace, t: float, rule: str, kinds: list[str], rows: list[Row], figures: dict
) -> dict:
    """The prior JSON's ``"ood"`` block: the threshold, the measure and how it was calibrated."""
    from usdehaze import __version__
    from usdehaze.ultrasound.ood import MAX_FRAMES, MAX_SIDE, MEASURE, OOD_SIGMAS, SEED

    shown = [
        f"{p} rendered as B-mode (training and held-out chains, seeds {args.seeds})"
        for p in args.display
    ]
    sources = (
        shown
        or [str(p) for p in args.inside]
        or [
            f"simulate_cardiac, {args.simulate} loops of 4 frames, seeds {CALIBRATION_SEED0}+, "
            f"haze {HAZE_DB[0]:g} to {HAZE_DB[1]:g} dB"
        ]
    )
    return {
        "threshold": t,
        "measure": MEASURE,
        "calibration": {
            "rule": rule,
            "in_distribution": {"sources": sources, **_summary(_pick(rows, None, True))},
            "mismatched": {
                "files": [str(p) for p in args.mismatched],
                "alterations": kinds,
                **_summary(_pick(rows, None, False)),
            },
            "group": args.group,
            "holdout": args.holdout,
            "rates": figures,
            "sigmas": list(OOD_SIGMAS),
            "frames_per_scan": MAX_FRAMES,
            "max_side": MAX_SIDE,
            "seed": SEED,
            "date": time.strftime("%Y-%m-%d"),
            "usdehaze_version": __version__,
        },
    }


def main() -> int:
    from usdehaze.ultrasound.ood import MEASURE, OOD_SIGMAS, check_frames

    args = _arguments()
    try:
        prior, model, inside_scans, outside_files = _load(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not inside_scans:
        print("no in-distribution scans (--in or --simulate N)", file=sys.stderr)
        return 2

    def score(frames: Frames) -> float:
        return check_frames(frames, prior, model, db=bool(args.display)).score

    t0 = time.perf_counter()
    iq = model.needs_phase
    kinds = [] if args.no_transforms else [k for k in MISMATCHES if iq or k not in PHASE_ONLY]
    rows = _score_all(score, inside_scans, outside_files, kinds, args.holdout)
    cal_in, cal_out = _pick(rows, False, True), _pick(rows, False, False)
    if not len(cal_in):
        print("no in-distribution scan left for calibration (lower --holdout)", file=sys.stderr)
        return 2
    t = pick_threshold(cal_in, cal_out, args.rule, args.quantile)
    domain = "iq (μ-law I/Q)" if iq else "B-mode display dB" if args.display else "dB"
    print(
        f"prior {args.prior} ({domain}); measure {MEASURE}, σ = {', '.join(map(str, OOD_SIGMAS))}"
    )
    print(f"{len(rows)} scans scored in {time.perf_counter() - t0:.0f} s\n")
    _print_table(rows, kinds, t)
    rule = f"quantile {args.quantile}" if args.rule == "quantile" else "balanced"
    print(f"\nthreshold {t:.4f} ({rule} of the calibration part)")
    figures = _rates_by_part(rows, t)
    _other_rule(rows, args)
    if not args.write:
        print("\n(not written; add --write to store it in the prior's JSON)")
        return 0
    try:
        path = write_block(args.prior, _block(args, t, rule, kinds, rows, figures))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"\nwrote the 'ood' block (threshold {t:.4f}) into {path}")
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
