"""Calibrate the gross-failure check (usdehaze.ultrasound.wreck) on good and wrecked results.

    python pipelines/calibrate_checks.py DIR --make [--result R.h5 ...] [--mild R.h5 ...]
    python pipelines/calibrate_checks.py DIR                      # print the table of DIR
    python pipelines/calibrate_checks.py DIR --write-display display_scan.h5   # for usdehaze run

A case is an HDF5 file with ``input_db``, ``tissue_db``, ``haze_db`` (frames, z, x; dB on one
scale), an optional ``mask`` (z, x) of the pixels to judge, and attributes ``label`` ("helped",
"harmed" or "not gross"), ``expect`` (the check that must fire on a harmed case, "any" for any),
``what`` and ``group`` (the summary's row). ``usdehaze run`` result files given with ``--result``
are copied in as "helped" cases (the shipped default on the demo scan helps: docs/results.md),
those given with ``--mild`` as "not gross" (results that change little or harm a little).

``--make`` builds the material this session could make, all of it constructed, none of it
independent physics (issue 28's calibration on a full-wave simulator is still to do):

- good: clean truth as the result (tissue and haze truth, on the input's dB scale) on the demo
  scan, on the demo scan made a display image (scan-converted to a Cartesian fan on black with
  a burned-in label and a grey bar outside it; judged inside the fan's mask), and on ``usdehaze
  simulate``-style frames (three seeds, haze -12, -6 and 0 dB against the myocardium); the
  input itself as the result; mild dehazing (the input's darkest 30 % lowered by 10 or 20 dB,
  the rest moved by a smooth field within ±1 dB);
- harmed, on the demo inputs and the -12 dB simulator frames, placed on the true tissue: its
  brightest structures (smoothed truth ≥ its 85th percentile) 6 or 12 dB darker; the dark/bright
  order inverted (the smoothed input mirrored about its median); the brightest true tissue moved
  into the haze estimate (haze 1 dB under the input there, tissue kept); 20 dB dark blobs on
  10 % or 25 % of the true tissue; and issue 28's wreck all at once (bright −12 dB, order
  inverted, blobs).

The haze estimate of a constructed result is the input minus the tissue in power (the ``logsum``
split), floored at the dynamic range, except where said.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
from scipy.ndimage import gaussian_filter

from usdehaze.ultrasound.wreck import CHECKS, WreckCheck

DR = 60.0
DISPLAY = "demo as a display image (fan on black, overlays; judged in the fan)"
SMOOTH_FRACTION = 1 / 40


def residual_haze(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Haze dB of a logsum split: input power minus tissue power, floored at -DR."""
    p = 10 ** (x / 10) - 10 ** (np.minimum(t, x) / 10)
    return np.clip(10 * np.log10(np.maximum(p, 10 ** (-DR / 10))), -DR, 0).astype(np.float32)


def smooth(x: np.ndarray) -> np.ndarray:
    """Each frame smoothed by a Gaussian of 1/40 of its size (as harm.py's regions)."""
    sigma = [max(n * SMOOTH_FRACTION, 1.0) for n in x.shape[1:]]
    return np.stack([gaussian_filter(f.astype(np.float64), sigma) for f in x])


def _pct(xs: np.ndarray, q: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Each frame's q-th percentile over ``mask`` (default all pixels), shaped (n, 1, 1)."""
    flat = xs.reshape(len(xs), -1) if mask is None else xs[:, mask]
    return np.percentile(flat, q, axis=1)[:, None, None]


def truth_db(hazy: np.ndarray, tissue: np.ndarray, haze: np.ndarray) -> tuple[np.ndarray, ...]:
    """Input, tissue and haze IQ → dB on the input frame's scale (as dehaze_iq writes them)."""
    from usdehaze.ultrasound.logcomp import reference, to_db

    ref = reference(np.abs(hazy), "frame")
    return tuple(to_db(a, DR, normalise=ref) for a in (hazy, tissue, haze))


def to_fan(polar: np.ndarray, coords: np.ndarray, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Polar dB frames (frames, r, θ) on ``coords`` (r, θ, 3: x, y, z) → a display image: an
    n × n Cartesian fan on black (-DR), and the fan's mask."""
    from scipy.ndimage import map_coordinates

    x, z = coords[..., 0], coords[..., 2]
    r, th = np.hypot(x, z), np.arctan2(x, z)
    r0, r1, t0, t1 = r.min(), r.max(), th.min(), th.max()
    half = r1 * np.sin(max(-t0, t1))
    zz, xx = np.meshgrid(np.linspace(0, r1, n), np.linspace(-half, half, n), indexing="ij")
    ri = (np.hypot(xx, zz) - r0) / (r1 - r0) * (polar.shape[1] - 1)
    ti = (np.arctan2(xx, zz) - t0) / (t1 - t0) * (polar.shape[2] - 1)
    fan = (ri >= 0) & (ri <= polar.shape[1] - 1) & (ti >= 0) & (ti <= polar.shape[2] - 1)
    out = np.stack([map_coordinates(f, [ri, ti], order=1, mode="nearest") for f in polar])
    return np.where(fan, out, -DR).astype(np.float32), fan


def overlays(img: np.ndarray) -> np.ndarray:
    """Burned-in overlays outside the fan, as B-mode screens have: a white label, a grey bar."""
    img = img.copy()
    n = img.shape[-1]
    img[:, n // 32 : n // 12, n // 32 : n // 4] = 0.0
    bar = np.linspace(0, -DR, n // 5, dtype=np.float32)[None, :, None]
    img[:, n - n // 32 - n // 5 : n - n // 32, n - n // 16 : n - n // 32] = bar
    return img


def constructed(
    x: np.ndarray, t0: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None
) -> dict[str, tuple]:
    """Constructed results on input frames x (n, z, x) whose true tissue is t0 (dB): name →
    (label, expect, tissue, haze). Harm is placed on the true tissue (its brightest structures,
    blobs where it is at tissue level), so that "harmed" means tissue lost, as truth says.
    Levels are percentiles over ``mask`` (z, x) (default all pixels): a fan's black is not a
    cavity."""
    inside = np.ones(x.shape[1:], bool) if mask is None else mask
    xs, ts = smooth(x), smooth(t0)
    n, nz, nx = x.shape
    out: dict[str, tuple] = {}

    def put(name, label, expect, t, h=None):
        t = np.clip(t, -DR, 0).astype(np.float32)
        out[name] = (label, expect, t, residual_haze(x, t) if h is None else h)

    put("input as result", "helped", "", x.copy(), np.full_like(x, -DR))
    dark = (xs <= _pct(xs, 30, mask)) & inside
    jitter = smooth(rng.normal(size=x.shape) * 20)
    jitter = jitter / np.abs(jitter).max(axis=(1, 2), keepdims=True)  # smooth, within ±1 dB
    soft = smooth(dark.astype(float))  # a soft cavity edge
    for d in (10.0, 20.0):
        t = x - d * soft + jitter * (1 - soft)
        put(f"mild dehazing: darkest 30 % -{d:.0f} dB", "helped", "", t)
    bright = smooth(
        ((ts >= _pct(ts, 85, mask)) & inside).astype(float)
    )  # the brightest true tissue
    for d in (6.0, 12.0):
        put(f"brightest tissue -{d:.0f} dB", "harmed", "bright_darkened", x - d * bright)
    med = _pct(xs, 50, mask)
    put("order inverted", "harmed", "order_inverted", x - 2 * (xs - med))
    h = np.where(bright > 0.5, x - 1.0, -DR).astype(np.float32)
    put("brightest tissue moved into the haze", "harmed", "moved_to_haze", x.copy(), h)
    zz, xx = np.mgrid[0:nz, 0:nx]
    for share in (0.10, 0.25):
        blobs = np.zeros(x.shape, bool)
        for k in range(n):
            tissue = (ts[k] >= np.median(ts[k][inside])) & inside
            cand = np.argwhere(tissue)
            while blobs[k][tissue].mean() < share:
                cz, cx = cand[rng.integers(len(cand))]
                blobs[k] |= ((zz - cz) / (nz / 14)) ** 2 + ((xx - cx) / (nx / 14)) ** 2 <= 1
        put(
            f"dark blobs (-20 dB) on {share:.0%} of the tissue",
            "harmed",
            "invented_dark",
            x - 20.0 * blobs,
        )
    issue = x - 12.0 * bright - 2 * (xs - med) * (1 - bright) - 20.0 * blobs
    put("issue 28's wreck (all at once)", "harmed", "any", issue)
    return out


def write_case(
    path: Path, x, t, h, label: str, expect: str, what: str, group: str = "", mask=None
) -> None:
    with h5py.File(path, "w") as f:
        for k, a in (("input_db", x), ("tissue_db", t), ("haze_db", h)):
            f[k] = np.asarray(a, np.float32)
        if mask is not None:
            f["mask"] = np.asarray(mask, bool)
        f.attrs.update(label=label, expect=expect, what=what, group=group or label)


def demo_sources() -> tuple[dict[str, tuple], np.ndarray]:
    """The demo scan's (input, tissue truth, haze truth) dB, plain and as a display image (fan
    on black with overlays), and the fan's mask."""
    from usdehaze.ultrasound.simulate import demo_scan_path

    with h5py.File(demo_scan_path()) as f:

        def iq(a):
            return a[..., 0] + 1j * a[..., 1]

        hazy = iq(f["tracks/track_0/data/beamformed_data/values"][()])
        coords = f["tracks/track_0/data/beamformed_data/coordinates"][()]
        tis = iq(f["usdehaze/extras/tissue/values"][()])
        hz = iq(f["usdehaze/extras/haze/values"][()])
    plain = truth_db(hazy, tis, hz)
    fans = [to_fan(a, coords) for a in plain]
    fan = fans[0][1]
    x_fan = overlays(fans[0][0])
    t_fan = np.where(fan, fans[1][0], x_fan)  # outside the fan: whatever the method wrote
    display = (x_fan, t_fan, np.where(fan, fans[2][0], -DR))
    return {"demo": plain, DISPLAY: display}, fan


def write_display_scan(path: Path) -> None:
    """The demo's display image as a zea file holding only ``image`` (dB), as issue 28's cine
    was given: ``usdehaze run`` on it is magnitude-only (logsum)."""
    sources, _ = demo_sources()
    with h5py.File(path, "w") as f:
        f["tracks/track_0/data/image/values"] = sources[DISPLAY][0]
    print(f"{path}: the demo scan as a display image (4 frames), image only")


def make(folder: Path, results: list[Path], mild: list[Path]) -> None:
    """Write the constructed cases (and copies of the given run results) into ``folder``."""
    from usdehaze.ultrasound.simulate import simulate_cardiac

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(28)
    sources, fan = demo_sources()
    for seed in (0, 1, 2):
        for haze_db in (-12.0, -6.0, 0.0):
            sim = simulate_cardiac(4, seed=seed, haze_db=haze_db)
            sources[f"sim s{seed} {haze_db:+.0f}dB"] = truth_db(
                sim.tissue_iq + sim.haze_iq, sim.tissue_iq, sim.haze_iq
            )
    k = 0
    for src, (x, t, h) in sources.items():
        heavy = src.startswith("sim") and not src.endswith("-12dB")
        group = "helped, heavy haze (-6, 0 dB)" if heavy else "helped"
        mask = fan if src == DISPLAY else None
        write_case(
            folder / f"{k:03d}.h5", x, t, h, "helped", "", f"{src}: clean truth", group, mask
        )
        k += 1
        if src.startswith("sim") and not src.endswith("-12dB"):
            continue  # constructed results on one haze level per simulated anatomy
        for name, (label, expect, tc, hc) in constructed(x, t, rng, mask).items():
            group = f"harmed: {name}" if label == "harmed" else "helped"
            what = f"{src}: {name}"
            write_case(folder / f"{k:03d}.h5", x, tc, hc, label, expect, what, group, mask)
            k += 1
    for r, label in [(r, "helped") for r in results] + [(r, "not gross") for r in mild]:
        from usdehaze.ultrasound.results import load_result

        with load_result(r) as res:
            x, t, h = (res.frames(n) for n in ("input", "tissue", "haze"))
            method = res.attrs.get("method", "?")
        write_case(folder / f"{k:03d}.h5", x, t, h, label, "", f"{r.name}: run ({method})")
        k += 1
    print(f"{k} cases written to {folder}")


def score(path: Path) -> tuple[dict, WreckCheck]:
    with h5py.File(path) as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        w = WreckCheck()
        n = f["input_db"].shape[0]
        mask = f["mask"][()] if "mask" in f else None
        w.add(list(range(n)), f["input_db"][()], f["tissue_db"][()], f["haze_db"][()], mask)
    return a, w


def table(folder: Path) -> int:
    """Print one row per case and the false-alarm / miss counts per check; 1 on none found."""
    files = sorted(folder.glob("*.h5"))
    if not files:
        print(f"{folder}: no cases (*.h5)", file=sys.stderr)
        return 1
    print(
        "| case | label | must fire | frames flagged | bright drop dB | contrast in → out dB "
        "| haze share | dark share | fired |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    groups: dict[str, dict[str, int]] = {}
    for p in files:
        a, w = score(p)
        fs = w.frames

        def span(vals, fmt="{:.2f}"):
            vals = [v for v in vals if np.isfinite(v)]
            if not vals:
                return "–"
            lo, hi = min(vals), max(vals)
            return fmt.format(lo) if lo == hi else f"{fmt.format(lo)} … {fmt.format(hi)}"

        cin = span([f.contrast_in_db for f in fs], "{:.1f}")
        cout = span([f.contrast_out_db for f in fs], "{:.1f}")
        fired = sorted({r for f in fs for r in f.reasons})
        expect = a.get("expect") or ""
        print(
            f"| {a.get('what', p.name)} | {a.get('label')} | {expect or '–'} "
            f"| {len(w.flagged)}/{len(fs)} | {span([f.bright_drop_db for f in fs])} "
            f"| {cin} → {cout} | {span([f.haze_share for f in fs])} "
            f"| {span([f.dark_share for f in fs])} | {', '.join(fired) or '–'} |"
        )
        key = a.get("group", a.get("label", "?")) + (f" (must fire: {expect})" if expect else "")
        g = groups.setdefault(key, {"frames": 0, "flagged": 0, "expected fired": 0})
        g["frames"] += len(fs)
        g["flagged"] += len(w.flagged)
        g["expected fired"] += sum(
            f.flagged if expect == "any" else expect in f.reasons for f in fs
        )
        for f in fs:
            for r in f.reasons:
                g[r] = g.get(r, 0) + 1
    print()
    print(
        "| material | frames | flagged (any check) | the check that must fire | "
        + " | ".join(CHECKS)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(CHECKS))
    for key, g in groups.items():
        must = f"{g['expected fired']}/{g['frames']}" if "must fire" in key else "–"
        print(
            f"| {key} | {g['frames']} | {g['flagged']} | {must} | "
            + " | ".join(str(g.get(c, 0)) for c in CHECKS)
            + " |"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--make", action="store_true", help="write the constructed cases first")
    ap.add_argument("--result", type=Path, nargs="*", default=[], help="run results that help")
    ap.add_argument(
        "--mild", type=Path, nargs="*", default=[], help="run results that harm a little"
    )
    ap.add_argument(
        "--write-display", type=Path, help="write the demo's display image (zea, image only)"
    )
    args = ap.parse_args(argv)
    if args.write_display:
        write_display_scan(args.write_display)
    if args.make:
        make(args.folder, args.result, args.mild)
    return table(args.folder)


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
