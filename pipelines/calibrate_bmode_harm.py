"""Calibrate the do-no-harm check on B-mode (issue 28): helped and harmed results of rendered
display frames, labelled from their truth, threshold chosen on some acquisitions, rates on the
others.

    python pipelines/calibrate_bmode_harm.py --shards runs/bmode_checks/val      # 4 more probes
    python pipelines/calibrate_bmode_harm.py runs/corpus/val runs/bmode_checks/val \\
        [--seeds 0,1,2] [--joint runs/bmode_checks/joint_logsum.json] [--out runs/bmode_checks]
    python pipelines/calibrate_bmode_harm.py runs/fullwave --seeds 0,1 --test --out runs/bc_fw
        # material of other physics used as a test only: rates at the shipped thresholds

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

The check is the display do-no-harm rule (usdehaze.ultrasound.harm, ``HarmCheck(display=True)``):
it warns when ``ring_bright_db`` (the input's brightest pixels' change against their depth
ring's mean change, 10th percentile over the rings) or ``bright_db`` (the same over the frame)
falls below minus its threshold; both thresholds are chosen together on the calibration
acquisitions (the first half of the sorted list, or ``--calibrate NAME,...``) as the pair with
the fewest errors of the larger kind (max of false-alarm and miss rate; 0.1 dB and 0.5 dB
steps), and the rates are reported on the other acquisitions, and the other way round, per
check (the global do-no-harm figure and the depth rings' contrast change ``ring_change_db``,
each with its own threshold chosen the same way: the checks before; the gross-failure check
usdehaze.ultrasound.wreck) and combined (the rule or gross failure). Also: the thresholds the
same choice makes on all acquisitions (harm.py ships these), the held-out rates over every
choice of half the acquisitions as calibration, and per acquisition and per result at the
shipped thresholds.
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
    from usdehaze.ultrasound.harm import depth_rings, ring_figures
    from usdehaze.ultrasound.ood import check_frames

    student = Dehazer(replace(DehazeConfig(device="cpu"), method="fast", model="bmode"))
    prior, at = student.priors["tissue"], student.precision()  # the OOD check a run makes
    rng = np.random.default_rng(28)
    recs = []
    for folder in folders:
        for seed in seeds:
            cases = bmode_cases(folder, seed=seed, limit=limit)
            for k, c in enumerate(cases):
                rings = depth_rings(c["sector"])
                x = c["input"]
                st = student(c["input"][None].astype(np.float32), frames=[k])["tissue"][0]
                ood = check_frames(x[None], prior, student.model, db=True, precision=at).score
                made = results(c, st, rng)
                for j in (joint or {}).get(f"{c['name']}@{seed}", {}):
                    made[j["result"]] = np.asarray(j["tissue"], np.float32)
                for name, img in made.items():
                    v, figures = label(c, img)
                    ring, ring_bright, bright = ring_figures(x, img, c["sector"], rings)
                    recs.append(
                        {
                            "acquisition": c["name"].split("/")[0],
                            "frame": c["name"],
                            "seed": seed,
                            "result": name,
                            "label": v,
                            **figures,
                            "ring_change_db": ring,
                            "ring_bright_db": ring_bright,
                            "bright_db": bright,
                            "ood_score": ood,  # the input's, as a run scores a one-frame scan
                        }
                    )
            print(f"{folder}: seed {seed}, {len(cases)} frames, {len(recs)} results", flush=True)
    return recs


CHECKS = ("global", "ring", "bright", "wreck", "any_ring", "any")
RING_STEPS = np.round(np.arange(0.0, 8.01, 0.1), 1)  # ring_change_db thresholds tried (dB)
RING_BRIGHT_STEPS = np.round(np.arange(0.0, 4.01, 0.1), 1)  # ring_bright_db thresholds tried
BRIGHT_STEPS = np.round(np.arange(1.0, 12.01, 0.5), 1)  # bright_db thresholds tried (dB)
TARGET = 0.10  # issue 28: false alarms and misses at most 10 %


def _fired(
    ring: np.ndarray,
    rb: np.ndarray,
    b: np.ndarray,
    w: np.ndarray,
    g: np.ndarray,
    check: str,
    threshold: Any,
) -> np.ndarray:
    """fired() on arrays of the records' figures (NaN: not scored)."""
    nan = np.float64("nan")
    if check == "global":
        return g
    if check == "wreck":
        return w
    if check == "ring":
        return np.where(np.isfinite(ring), (ring < -threshold).astype(float), nan)
    t1, t2 = threshold
    if check == "bright":  # the shipped B-mode rule: either figure beyond its threshold
        ok = np.isfinite(rb) | np.isfinite(b)
        return np.where(ok, ((rb < -t1) | (b < -t2)).astype(float), nan)
    raise ValueError(check)


def fired(r: dict[str, Any], check: str, threshold: Any) -> float:
    """1.0 / 0.0 whether ``check`` fired on record r (NaN: not scored): "ring" (the depth rings'
    contrast change, before) at ``threshold`` dB; "bright" (the shipped rule: ring_bright_db or
    bright_db beyond their thresholds) at ``threshold`` = (ring dB, frame dB); "wreck" the
    gross-failure check, "global" the global do-no-harm check; "any_ring": ring or wreck,
    "any": bright or wreck (``threshold``: (ring dB, (ring bright dB, frame dB)) for these)."""
    if check in ("any", "any_ring"):
        t_ring, t_bright = threshold
        a = fired(r, "ring", t_ring) if check == "any_ring" else fired(r, "bright", t_bright)
        b = r["wreck"]
        if not (np.isfinite(a) or np.isfinite(b)):
            return float("nan")
        return float(a == 1.0 or b == 1.0)
    v = _fired(*(np.array([r.get(k, np.nan)], np.float64) for k in _KEYS), check, threshold)
    return float(v[0])


_KEYS = ("ring_change_db", "ring_bright_db", "bright_db", "wreck", "global")


def _arrays(recs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out = {k: np.array([r.get(k, np.nan) for r in recs], np.float64) for k in _KEYS}
    out["label"] = np.array([r["label"] for r in recs])
    out["acquisition"] = np.array([r["acquisition"] for r in recs])
    return out


def _fired_all(a: dict[str, np.ndarray], check: str, threshold: Any) -> np.ndarray:
    figures = [a[k] for k in _KEYS]
    if check in ("any", "any_ring"):
        t_ring, t_bright = threshold
        x = _fired(*figures, *(("ring", t_ring) if check == "any_ring" else ("bright", t_bright)))
        w = a["wreck"]
        ok = np.isfinite(x) | np.isfinite(w)
        return np.where(ok, ((x == 1.0) | (w == 1.0)).astype(float), np.nan)
    return _fired(*figures, check, threshold)


def _rates(a: dict[str, np.ndarray], sel: np.ndarray, hits: np.ndarray) -> dict[str, list[int]]:
    out = {}
    for lab, key, bad in (("helped", "false_alarms", 1.0), ("harmed", "misses", 0.0)):
        h = hits[sel & (a["label"] == lab) & np.isfinite(hits)]
        out[key] = [int((h == bad).sum()), int(h.size)]
    return out


def rates(recs: list[dict[str, Any]], check: str, threshold: Any) -> dict[str, list[int]]:
    """False alarms on helped and misses on harmed records: [count, scored]."""
    a = _arrays(recs)
    return _rates(a, np.ones(len(recs), bool), _fired_all(a, check, threshold))


def _worst(r: dict[str, list[int]]) -> float:
    return max(k / n if n else 0.0 for k, n in r.values())


def _grid(check: str) -> list[Any]:
    if check == "ring":
        return [float(t) for t in RING_STEPS]
    return [(float(t1), float(t2)) for t1 in RING_BRIGHT_STEPS for t2 in BRIGHT_STEPS]


def choose(recs: list[dict[str, Any]], check: str = "ring") -> Any:
    """The threshold(s) with the smallest larger-of-two error rate on recs (first in the grid on
    ties): "ring" 0.1 dB steps; "bright" (ring_bright_db in 0.1 dB, bright_db in 0.5 dB steps)."""
    a = _arrays(recs)
    return _choose(a, np.ones(len(recs), bool), check)


def _choose(a: dict[str, np.ndarray], sel: np.ndarray, check: str) -> Any:
    best = None
    for t in _grid(check):
        w = _worst(_rates(a, sel, _fired_all(a, check, t)))
        if best is None or w < best[0] - 1e-12:
            best = (w, t)
    return best[1]


def partitions(recs: list[dict[str, Any]], check: str) -> dict[str, Any]:
    """Every split of the acquisitions into two halves, each half calibrating in turn: the held-
    out larger-of-two error rate of ``check`` with its threshold chosen on the other half, and
    how many splits meet issue 28's target (both rates ≤ 10 %) held out."""
    from itertools import combinations

    a = _arrays(recs)
    acqs = sorted(set(a["acquisition"]))
    hits = {t: _fired_all(a, check, t) for t in _grid(check)}
    worst = []
    for cal in combinations(acqs, len(acqs) // 2):
        cs = np.isin(a["acquisition"], cal)
        best = min(hits, key=lambda t: round(_worst(_rates(a, cs, hits[t])), 9))
        worst.append(_worst(_rates(a, ~cs, hits[best])))
    return {
        "splits": len(worst),
        "met": int(sum(w <= TARGET + 1e-12 for w in worst)),
        "worst_median": float(np.median(worst)),
        "worst_max": float(max(worst)),
    }


def share(kn: list[int]) -> str:
    k, n = kn
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "–"


def report(recs: list[dict[str, Any]], calibrate: list[str] | None) -> dict[str, Any]:
    """Thresholds on the calibration acquisitions, rates on the rest (and the reverse split),
    per check; the thresholds the same rule picks on all acquisitions; every split's held-out
    worst rate (partitions)."""
    a = _arrays(recs)
    acqs = sorted(set(a["acquisition"]))
    cal = calibrate or acqs[: len(acqs) // 2]
    out: dict[str, Any] = {"acquisitions": acqs, "labels": Counter(r["label"] for r in recs)}
    for name, part in (("split", cal), ("reverse", [x for x in acqs if x not in cal])):
        cs = np.isin(a["acquisition"], part)
        t = (_choose(a, cs, "ring"), _choose(a, cs, "bright"))
        hits = {k: _fired_all(a, k, t if k.startswith("any") else t[k == "bright"]) for k in CHECKS}
        out[name] = {
            "calibration": part,
            "threshold_db": t[0],
            "bright_thresholds_db": list(t[1]),
            "calibration_rates": {k: _rates(a, cs, hits[k]) for k in CHECKS},
            "held_out_rates": {k: _rates(a, ~cs, hits[k]) for k in CHECKS},
        }
    every = np.ones(len(recs), bool)
    out["all"] = {
        "threshold_db": _choose(a, every, "ring"),
        "bright_thresholds_db": list(_choose(a, every, "bright")),
    }
    out["partitions"] = {k: partitions(recs, k) for k in ("ring", "bright")}
    return out


def shipped() -> tuple[float, tuple[float, float]]:
    """The thresholds usdehaze.ultrasound.harm ships: ring_change_db's (before) and the rule's."""
    from usdehaze.ultrasound import harm

    return harm.DISPLAY_CONTRAST_FALL_DB, (
        harm.DISPLAY_RING_BRIGHT_FALL_DB,
        harm.DISPLAY_BRIGHT_FALL_DB,
    )


HEADS = {
    "global": "do-no-harm, global (before)",
    "ring": "do-no-harm, depth rings' contrast (before)",
    "bright": "**do-no-harm, brightest pixels kept (B-mode)**",
    "wreck": "gross failure",
    "any_ring": "any (rings' contrast or gross failure, before)",
    "any": "any (brightest kept or gross failure)",
}


def print_report(rep: dict[str, Any], recs: list[dict[str, Any]]) -> None:
    t_ring, t_bright = shipped()
    print(f"labels: {dict(rep['labels'])}")
    for name in ("split", "reverse"):
        s = rep[name]
        tb = s["bright_thresholds_db"]
        print(
            f"\n{name}: chosen on {', '.join(s['calibration'])}: depth rings' contrast "
            f"{s['threshold_db']:.1f} dB; brightest kept: ring {tb[0]:.1f} dB, frame {tb[1]:.1f} dB"
        )
        print(
            "| check | false alarms (calibration) | misses (calibration) | false alarms (held out) | misses (held out) |"
        )
        print("|---|---|---|---|---|")
        for k in CHECKS:
            c, h = s["calibration_rates"][k], s["held_out_rates"][k]
            print(
                f"| {HEADS[k]} | {share(c['false_alarms'])} | {share(c['misses'])} | {share(h['false_alarms'])} | {share(h['misses'])} |"
            )
    al = rep["all"]
    print(
        f"\nchosen on all acquisitions: depth rings' contrast {al['threshold_db']:.1f} dB; "
        f"brightest kept: ring {al['bright_thresholds_db'][0]:.1f} dB, frame "
        f"{al['bright_thresholds_db'][1]:.1f} dB"
    )
    for k, p in rep["partitions"].items():
        print(
            f"every choice of half the acquisitions to calibrate ({p['splits']}): {HEADS[k]}: "
            f"held out both ≤ 10 % on {p['met']}; larger held-out rate median "
            f"{100 * p['worst_median']:.1f} %, "
            f"max {100 * p['worst_max']:.1f} %"
        )
    a = _arrays(recs)
    ring = _fired_all(a, "ring", t_ring)
    new = _fired_all(a, "bright", t_bright)
    anyn = _fired_all(a, "any", (t_ring, t_bright))
    print(
        f"\nper acquisition at the shipped thresholds (rings' contrast {t_ring:.1f} dB; brightest "
        f"kept {t_bright[0]:.1f} / {t_bright[1]:.1f} dB): false alarms on helped, misses on harmed"
    )
    print(
        "| acquisition | false alarms (rings, before) | misses (rings, before) | false alarms | misses | misses (any) |"
    )
    print("|---|---|---|---|---|---|")
    for acq in rep["acquisitions"]:
        sel = a["acquisition"] == acq
        r0, r1, r2 = (_rates(a, sel, h) for h in (ring, new, anyn))
        print(
            f"| {acq} | {share(r0['false_alarms'])} | {share(r0['misses'])} | "
            f"{share(r1['false_alarms'])} | {share(r1['misses'])} | {share(r2['misses'])} |"
        )
    print("\nper result at the shipped thresholds (all acquisitions):")
    print(
        "| result | helped | warned (rings, before) | warned | harmed | flagged (rings, before) "
        "| flagged | flagged (or gross) | ring contrast dB | ring bright dB | frame bright dB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    res = np.array([r["result"] for r in recs])
    for name in dict.fromkeys(res):
        sel = res == name
        hl, hm = sel & (a["label"] == "helped"), sel & (a["label"] == "harmed")
        med = [np.nanmedian(a[k][sel]) for k in _KEYS[:3]]
        print(
            f"| {name} | {hl.sum()} | {int((ring[hl] == 1).sum())} | {int((new[hl] == 1).sum())} "
            f"| {hm.sum()} | {int((ring[hm] == 1).sum())} | {int((new[hm] == 1).sum())} "
            f"| {int((anyn[hm] == 1).sum())} | {med[0]:+.1f} | {med[1]:+.1f} | {med[2]:+.1f} |"
        )


def print_test(recs: list[dict[str, Any]]) -> None:
    """Material used as a test only (``--test``: no threshold chosen on it): every check's false
    alarms on helped and misses on harmed results at the shipped thresholds, and the labels."""
    t_ring, t_bright = shipped()
    a = _arrays(recs)
    every = np.ones(len(recs), bool)
    print(f"labels: {dict(Counter(r['label'] for r in recs))}")
    print(
        f"at the shipped thresholds (rings' contrast {t_ring:.1f} dB; brightest kept "
        f"{t_bright[0]:.1f} / {t_bright[1]:.1f} dB):"
    )
    print("| check | false alarms | misses |")
    print("|---|---|---|")
    for k in CHECKS:
        t = (t_ring, t_bright) if k.startswith("any") else t_bright if k == "bright" else t_ring
        r = _rates(a, every, _fired_all(a, k, t))
        print(f"| {HEADS[k]} | {share(r['false_alarms'])} | {share(r['misses'])} |")


def ood_threshold() -> tuple[float, str]:
    """The B-mode tissue prior's OOD threshold as a run uses it (its JSON's, else the fallback)."""
    from types import SimpleNamespace

    from usdehaze.ultrasound.ood import ood_threshold as of_prior
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    meta = json.loads((WEIGHTS_DIR / "tissue_bmode.json").read_text())  # no network loaded
    t, source = of_prior(SimpleNamespace(meta=meta))
    return t, "calibrated" if source == "prior" else source


def print_ood(recs: list[dict[str, Any]]) -> None:
    """The OOD check (the input's score, one per rendered frame) as a warning on the default's
    result, the B-mode student: false alarms on frames it helped, misses on frames it harmed,
    alone and with the result checks (brightest kept or gross failure), per acquisition and
    over all; records made before the OOD score was kept have none (skipped)."""
    t, source = ood_threshold()
    st = [
        r for r in recs if r.get("result") == "student" and np.isfinite(r.get("ood_score", np.nan))
    ]
    if not st:
        return
    a = _arrays(st)
    scores = np.array([r["ood_score"] for r in st])
    ood = (scores > t).astype(float)
    both = np.maximum(ood, np.nan_to_num(_fired_all(a, "any", shipped())))
    print(f"\nOOD check on the student's results (threshold {t:.4f}, {source}):")
    print(
        "| acquisition | scores (min–median–max) | helped | harmed | false alarms: OOD | misses: OOD | false alarms: OOD or result checks | misses: OOD or result checks |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for acq in [*sorted(set(a["acquisition"])), "all"]:
        sel = np.ones(len(st), bool) if acq == "all" else a["acquisition"] == acq
        r1, r2 = _rates(a, sel, ood), _rates(a, sel, both)
        q = np.quantile(scores[sel], [0, 0.5, 1])
        n = [int((sel & (a["label"] == lab)).sum()) for lab in ("helped", "harmed")]
        print(
            f"| {acq} | {q[0]:.3f}–{q[1]:.3f}–{q[2]:.3f} | {n[0]} | {n[1]} | "
            f"{share(r1['false_alarms'])} | {share(r1['misses'])} | "
            f"{share(r2['false_alarms'])} | {share(r2['misses'])} |"
        )


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
    ap.add_argument(
        "--test",
        action="store_true",
        help="material used as a test only: rates at the shipped thresholds, none chosen on it",
    )
    args = ap.parse_args(argv)
    if args.shards:
        make_shards(args.shards)
    cal = args.calibrate.split(",") if args.calibrate else None
    if args.records:
        recs = [r for p in args.records for r in json.loads(p.read_text())]
        return _print(recs, cal, args)
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
    return _print(recs, cal, args)


def _print(recs: list[dict[str, Any]], cal: list[str] | None, args: argparse.Namespace) -> int:
    """The test table (``--test``) or the calibration report, then the OOD check's rates."""
    rc = 0
    if args.test:
        print_test(recs)
    else:
        rc = _report(recs, cal, args.out)
    print_ood(recs)
    return rc


def _report(recs: list[dict[str, Any]], cal: list[str] | None, out: Path) -> int:
    rep = report(recs, cal)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    print_report(rep, recs)
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
