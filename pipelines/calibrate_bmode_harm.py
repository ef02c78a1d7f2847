"""Calibrate the do-no-harm check on B-mode (issue 28): helped and harmed results of rendered
display frames, labelled from their truth, threshold chosen on some acquisitions, rates on the
others.

    python pipelines/calibrate_bmode_harm.py --shards runs/bmode_checks/val      # 4 more probes
    python pipelines/calibrate_bmode_harm.py runs/corpus/val runs/bmode_checks/val \\
        [--seeds 0,1,2] [--joint runs/bmode_checks/joint_logsum.json] [--out runs/bmode_checks]

Material: each acquisition's frames (the corpus's two validation acquisitions, made by
``python pipelines/make_corpus.py --only val``, and the four of ``EXTRA``, probes outside the
training ranges, made by ``--shards``), with near-field clutter, rendered as exported B-mode
through the held-out display chain (3×3 median filter then JPEG) and read through the 60 dB
display map (usdehaze.ultrasound.corpus.bmode.bmode_cases), once per rendering seed (each draws
its own chain settings, clutter and motion). Results per frame (:func:`results`): the clean
truth, the shipped B-mode student's result (``--method fast``, the default on B-mode), half
the truth's change, uniform gains of -3 and -6 dB on the truth and on the student's result,
the student's gain doubled, tripled and flipped upside down (darkening the wrong depths); and
harm as a real failure looks, on the input, the truth and the student's result: the brightest
true structures -10 and -16 dB, the dark/bright order inverted, dark blobs (-20 dB) on 15 % of
the tissue, issue 28's real-cine wreck all at once, bright input structures taken out into the
haze (-12 dB). ``--joint FILE``: results of the joint sampler run elsewhere (``--run-joint``
makes them: the ``logsum`` dB priors on B-mode, the case that wrecked a real cine; a few frames,
minutes each on a CPU).

Each result is labelled from its truth by usdehaze.ultrasound.evaluate.verdict ("helped",
"harmed", "neither": haze removed, tissue kept, PSNR) and, since evaluate's tissue figure is the
myocardium's alone, also "harmed" when the truth's brightest structures (smoothed clean ≥ its
85th percentile) end more than 2 dB off against the tissue median, and 1 dB beyond the input's
own error (issue 28's "bright structures darkened"; :func:`label`). "neither" is left out.

The statistic is the display do-no-harm figure (usdehaze.ultrasound.harm, ``HarmCheck(display=
True)``: ``ring_change_db``); the threshold is chosen on the calibration acquisitions (the
first half of the sorted list, or ``--calibrate NAME,...``) as the one with the fewest errors
of the larger kind (max of false-alarm and miss rate), rounded to 0.1 dB, and the rates are
reported on the other acquisitions, per check (the old, global do-no-harm figure, the new one,
the gross-failure check usdehaze.ultrasound.wreck) and combined (new or gross failure).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

ROOT = Path(__file__).resolve().parents[1]
DR = 60.0
BRIGHT_KEPT_DB = 2.0  # the truth's brightest structures off by more than this: harmed

# Probes outside the training draws (2–5 MHz, 64–128 elements, 60–90° sectors): what the
# corpus's physics does not make. (name, fc Hz, elements, pitch m, bandwidth %, sector °,
# r_min m, r_max m, transmit, focus m, receive apodisation, attenuation dB/cm/MHz, grid)
EXTRA = (
    ("x_p2_focused", 1.8e6, 48, 4.3e-4, 60.0, 90.0, 0.01, 0.16, "focused", 0.09, "hann", 0.6),
    ("x_p5_diverging", 5.5e6, 96, 1.5e-4, 80.0, 70.0, 0.008, 0.10, "diverging", 0.0, "none", 0.4),
    ("x_p3_wide", 3.2e6, 48, 2.6e-4, 65.0, 100.0, 0.012, 0.14, "diverging", 0.0, "hann", 0.5),
    ("x_p4_focused", 3.8e6, 80, 2.1e-4, 70.0, 80.0, 0.01, 0.12, "focused", 0.06, "none", 0.7),
)
GRIDS = {"x_p2_focused": (256, 128), "x_p5_diverging": (256, 144), "x_p3_wide": (256, 160)}
HAZE_LEVELS = (-18.0, -12.0, -6.0)  # as the corpus's validation split


def make_shards(folder: Path, samples: int = 12) -> None:
    """The EXTRA acquisitions' shards (validation haze and reverberation) in ``folder``."""
    from usdehaze.ultrasound.corpus.acquisition import Acquisition
    from usdehaze.ultrasound.corpus.build import Task, run_task

    for k, row in enumerate(EXTRA):
        acq = Acquisition(*row, GRIDS.get(row[0], (256, 128)))
        levels = tuple(HAZE_LEVELS[i % len(HAZE_LEVELS)] for i in range(samples))
        # the seeds these shards were first made with (two worker processes, k // 2 each)
        path = run_task(
            Task("val", acq.to_dict(), levels, 300_000 + 7 * (k // 2) + k % 2), folder.parent
        )
        print(path, flush=True)


def smooth(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """A dB frame smoothed inside ``m`` by a Gaussian of 1/40 of its size (as harm.py)."""
    s = [max(n / 40, 1.0) for n in f.shape]
    w = gaussian_filter(m.astype(np.float64), s)
    return gaussian_filter(np.where(m, f.astype(np.float64), 0.0), s) / np.maximum(w, 1e-6)


def results(
    case: dict[str, Any], student: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The results judged for one case (name → tissue dB (z, x)); outside the sector each is
    the input, as usdehaze run writes it."""
    x, t0, m = case["input"], case["clean"], case["sector"]
    out: dict[str, np.ndarray] = {}

    def put(name: str, t: np.ndarray) -> None:
        out[name] = np.where(m, np.clip(t, -DR, 0), x).astype(np.float32)

    put("truth", t0)
    put("student", student)
    g = student - x
    put("student gain x2", x + 2 * g)
    put("student gain x3", x + 3 * g)
    put("student gain flipped", x + g[::-1])
    put("half truth", x + 0.5 * (t0 - x))
    xs, ts = smooth(x, m), smooth(t0, m)
    bright = smooth(((ts >= np.percentile(ts[m], 85)) & m).astype(np.float64), m) * m
    med = np.median(xs[m])
    nz, nx = x.shape
    zz, xx = np.mgrid[0:nz, 0:nx]
    tissue = (ts >= np.median(ts[m])) & m
    cand = np.argwhere(tissue)
    for base_name, base in (("input", x), ("truth", t0), ("student", student)):
        for d in (10.0, 16.0):
            put(f"{base_name}: bright -{d:.0f} dB", base - d * bright)
        put(f"{base_name}: order inverted", base - 2 * (xs - med))
        blobs = np.zeros(x.shape, bool)
        while blobs[tissue].mean() < 0.15:
            cz, cx = cand[rng.integers(len(cand))]
            blobs |= ((zz - cz) / (nz / 14)) ** 2 + ((xx - cx) / (nx / 14)) ** 2 <= 1
        put(f"{base_name}: dark blobs", base - 20.0 * blobs)
        wreck = base - 12.0 * bright - 2 * (xs - med) * (1 - bright) - 20.0 * blobs
        put(f"{base_name}: issue 28's wreck", wreck)
        if base_name != "input":
            put(f"{base_name}: -3 dB", base - 3.0)
            put(f"{base_name}: -6 dB", base - 6.0)
    bright_in = smooth(((xs >= np.percentile(xs[m], 80)) & m).astype(np.float64), m) * m
    put("input: bright into the haze", x - 12 * bright_in)
    put("student: bright into the haze", student - 12 * bright_in)
    return out


def bright_kept(img: np.ndarray, case: dict[str, Any]) -> float:
    """The truth's brightest structures (smoothed clean ≥ its 85th percentile) in ``img`` minus
    in the truth, against the same over its tissue-level pixels (≥ its median): dB."""
    clean, m = case["clean"], case["sector"]
    if "_bright" not in case:  # the truth's regions, once per case
        sc = smooth(clean, m)
        case["_bright"] = (sc >= np.percentile(sc[m], 85)) & m
        case["_level"] = (sc >= np.percentile(sc[m], 50)) & m
    d = img.astype(np.float64) - clean
    return float(d[case["_bright"]].mean() - np.median(d[case["_level"]]))


def label(case: dict[str, Any], img: np.ndarray) -> tuple[str, dict[str, float]]:
    """A result's label from its truth (see the module's note), the figures it rests on, and
    the checks evaluate makes on it: the global do-no-harm verdict (``global``, the check before
    the display one) and the gross-failure verdict (``wreck``; 1.0 fired, 0.0 quiet, NaN
    unscored)."""
    from usdehaze.ultrasound.evaluate import _frame_scores, verdict

    row = _frame_scores({**case, "display": False}, img)  # result_check: the global check
    v = verdict(row)
    bk, bk_in = bright_kept(img, case), bright_kept(case["input"], case)
    if v != "harmed" and abs(bk) > max(BRIGHT_KEPT_DB, abs(bk_in) + 1):
        v = "harmed"
    figures = {k: float(row[k]) for k in ("haze_removed", "tissue_kept_db", "psnr", "psnr_in")}
    return v, {
        **figures,
        "bright_kept_db": bk,
        "bright_kept_in_db": bk_in,
        "global": float(row["result_check"]),
        "wreck": float(row["wreck_check"]),
    }


def collect(
    folders: list[Path], seeds: list[int], joint: dict | None, limit: int | None = None
) -> list[dict[str, Any]]:
    """One record per (acquisition, seed, frame, result): label, its figures and the checks."""
    from dataclasses import replace

    from usdehaze.ultrasound.corpus.bmode import bmode_cases
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
    from usdehaze.ultrasound.harm import depth_rings, ring_contrast_change

    student = Dehazer(replace(DehazeConfig(device="cpu"), method="fast", model="bmode"))
    rng = np.random.default_rng(28)
    recs = []
    for folder in folders:
        for seed in seeds:
            cases = bmode_cases(folder, seed=seed, limit=limit)
            for k, c in enumerate(cases):
                rings = depth_rings(c["sector"])
                x = c["input"]
                st = student(c["input"][None].astype(np.float32), frames=[k])["tissue"][0]
                made = results(c, st, rng)
                for j in (joint or {}).get(f"{c['name']}@{seed}", {}):
                    made[j["result"]] = np.asarray(j["tissue"], np.float32)
                for name, img in made.items():
                    v, figures = label(c, img)
                    recs.append(
                        {
                            "acquisition": c["name"].split("/")[0],
                            "frame": c["name"],
                            "seed": seed,
                            "result": name,
                            "label": v,
                            **figures,
                            "ring_change_db": ring_contrast_change(x, img, c["sector"], rings),
                        }
                    )
            print(f"{folder}: seed {seed}, {len(cases)} frames, {len(recs)} results", flush=True)
    return recs


def fired(r: dict[str, Any], check: str, threshold: float) -> float:
    """1.0 / 0.0 whether ``check`` fired on record r (NaN: not scored); "ring" at ``threshold``,
    "any": ring or wreck."""
    if check == "ring":
        v = r["ring_change_db"]
        return float("nan") if not np.isfinite(v) else float(v < -threshold)
    if check == "any":
        a, b = fired(r, "ring", threshold), r["wreck"]
        if not (np.isfinite(a) or np.isfinite(b)):
            return float("nan")
        return float(a == 1.0 or b == 1.0)
    return r[check]


def rates(recs: list[dict[str, Any]], check: str, threshold: float) -> dict[str, list[int]]:
    """False alarms on helped and misses on harmed records: [count, scored]."""
    out = {}
    for lab, key, bad in (("helped", "false_alarms", 1.0), ("harmed", "misses", 0.0)):
        hits = [fired(r, check, threshold) for r in recs if r["label"] == lab]
        hits = [h for h in hits if np.isfinite(h)]
        out[key] = [int(sum(h == bad for h in hits)), len(hits)]
    return out


def choose(recs: list[dict[str, Any]]) -> float:
    """The threshold (dB, 0.1 dB steps) with the smallest larger-of-two error rate on recs."""
    best = None
    for t in np.round(np.arange(0.0, 8.01, 0.1), 1):
        r = rates(recs, "ring", float(t))
        worst = max(k / n if n else 0.0 for k, n in r.values())
        if best is None or worst < best[0] - 1e-12:
            best = (worst, float(t))
    return best[1]


def share(kn: list[int]) -> str:
    k, n = kn
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "–"


def report(recs: list[dict[str, Any]], calibrate: list[str] | None) -> dict[str, Any]:
    """Threshold on the calibration acquisitions, rates on the rest (and the reverse split)."""
    acqs = sorted({r["acquisition"] for r in recs})
    cal = calibrate or acqs[: len(acqs) // 2]
    out: dict[str, Any] = {"acquisitions": acqs, "labels": Counter(r["label"] for r in recs)}
    for name, part in (("split", cal), ("reverse", [a for a in acqs if a not in cal])):
        c = [r for r in recs if r["acquisition"] in part]
        h = [r for r in recs if r["acquisition"] not in part]
        t = choose(c)
        out[name] = {
            "calibration": part,
            "threshold_db": t,
            "calibration_rates": {k: rates(c, k, t) for k in ("ring", "global", "wreck", "any")},
            "held_out_rates": {k: rates(h, k, t) for k in ("ring", "global", "wreck", "any")},
        }
    return out


def print_report(rep: dict[str, Any], recs: list[dict[str, Any]], threshold: float) -> None:
    print(f"labels: {dict(rep['labels'])}")
    heads = (
        "do-no-harm (global, before)",
        "do-no-harm (depth rings, B-mode)",
        "gross failure",
        "any (rings or gross)",
    )
    for name in ("split", "reverse"):
        s = rep[name]
        print(
            f"\n{name}: threshold {s['threshold_db']:.1f} dB chosen on {', '.join(s['calibration'])}"
        )
        print(
            "| check | false alarms (calibration) | misses (calibration) | false alarms (held out) | misses (held out) |"
        )
        print("|---|---|---|---|---|")
        for k, head in zip(("global", "ring", "wreck", "any"), heads):
            c, h = s["calibration_rates"][k], s["held_out_rates"][k]
            print(
                f"| {head} | {share(c['false_alarms'])} | {share(c['misses'])} | {share(h['false_alarms'])} | {share(h['misses'])} |"
            )
    print(f"\nper result at the shipped threshold {threshold:.1f} dB (all acquisitions):")
    print(
        "| result | helped | warned | harmed | flagged (rings) | flagged (any) | ring change dB (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["result"] for r in recs):
        sel = [r for r in recs if r["result"] == name]
        hl = [r for r in sel if r["label"] == "helped"]
        hm = [r for r in sel if r["label"] == "harmed"]
        warned = sum(fired(r, "ring", threshold) == 1.0 for r in hl)
        caught = sum(fired(r, "ring", threshold) == 1.0 for r in hm)
        any_ = sum(fired(r, "any", threshold) == 1.0 for r in hm)
        med = np.nanmedian([r["ring_change_db"] for r in sel])
        print(f"| {name} | {len(hl)} | {warned} | {len(hm)} | {caught} | {any_} | {med:+.1f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("folders", type=Path, nargs="*", help="corpus split folders (shards)")
    ap.add_argument("--shards", type=Path, help="make the EXTRA acquisitions' shards here")
    ap.add_argument("--seeds", default="0,1,2", help="rendering seeds")
    ap.add_argument("--limit", type=int, default=None, help="at most N frames per folder")
    ap.add_argument("--joint", type=Path, help="joint-sampler results (--run-joint writes them)")
    ap.add_argument("--run-joint", default=None, metavar="FRAME@SEED,...", help="with --joint")
    ap.add_argument("--model", default="logsum", help="--run-joint's data model")
    ap.add_argument("--steps", type=int, default=25, help="--run-joint's sampler steps")
    ap.add_argument("--calibrate", default=None, help="calibration acquisitions (NAME,...)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs/bmode_checks")
    ap.add_argument(
        "--records", type=Path, nargs="+", help="report on these records.json files only"
    )
    args = ap.parse_args(argv)
    if args.shards:
        make_shards(args.shards)
    cal = args.calibrate.split(",") if args.calibrate else None
    if args.records:
        recs = [r for p in args.records for r in json.loads(p.read_text())]
        return _report(recs, cal, args.out)
    if not args.folders:
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.run_joint:
        run_joint(args.folders, args.run_joint, args.model, args.joint, args.steps)
    joint = None
    if args.joint and args.joint.is_file():
        joint = read_joint(args.joint)
    args.out.mkdir(parents=True, exist_ok=True)
    recs = collect(args.folders, seeds, joint, args.limit)
    (args.out / "records.json").write_text(json.dumps(recs))
    return _report(recs, cal, args.out)


def _report(recs: list[dict[str, Any]], cal: list[str] | None, out: Path) -> int:
    from usdehaze.ultrasound.harm import DISPLAY_CONTRAST_FALL_DB

    rep = report(recs, cal)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    print_report(rep, recs, DISPLAY_CONTRAST_FALL_DB)
    return 0


def run_joint(folders: list[Path], which: str, model: str, out: Path, steps: int = 25) -> None:
    """The joint sampler (``model``'s priors, ``steps`` steps, CPU) on the frames named FRAME@SEED
    (e.g. val_p4_diverging/0@0), appended to ``out`` (JSON; frames already there skipped)."""
    import time
    from dataclasses import replace

    from usdehaze.ultrasound.corpus.bmode import bmode_cases
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer

    done = json.loads(out.read_text()) if out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    d = Dehazer(replace(DehazeConfig(device="cpu", steps=steps), method="joint", model=model))
    want = [w.rsplit("@", 1) for w in which.split(",")]
    for seed in sorted({int(s) for _, s in want}):
        for folder in folders:
            cases = {c["name"]: (k, c) for k, c in enumerate(bmode_cases(folder, seed=seed))}
            for name, s in want:
                key = f"{name}@{seed}"
                if (
                    int(s) != seed
                    or name not in cases
                    or any(j["result"] == f"joint ({model})" for j in done.get(key, []))
                ):
                    continue
                k, c = cases[name]
                t0 = time.perf_counter()
                o = d(c["input"][None].astype(np.float32), frames=[k])
                done.setdefault(key, []).append(
                    {"result": f"joint ({model})", "tissue": np.round(o["tissue"][0], 2).tolist()}
                )
                out.write_text(json.dumps(done))
                print(f"{key}: joint ({model}) {time.perf_counter() - t0:.0f} s", flush=True)


def read_joint(path: Path) -> dict:
    return json.loads(path.read_text())


if __name__ == "__main__":
    sys.exit(main())
