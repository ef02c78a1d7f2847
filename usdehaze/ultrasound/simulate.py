"""Fast simulator of hazy cardiac (apical-like) and cyst sector scans with ground truth.

A phased-array sector on its native polar grid (depth r × beam angle θ). Tissue is fully
developed speckle: circular complex Gaussian scatterers, one per pixel, weighted by an
echogenicity map and blurred by a separable Gaussian PSF (axial pulse envelope, lateral beam
constant in angle). Haze is multipath-like clutter, additive in IQ: its own, broader speckle
under a smooth, structured amplitude field (near-field decay, reverberation bands, blobs), so
it fills anechoic regions. ``hazy = tissue + haze`` exactly. One numpy Generator per call:
the same seed gives the same scan.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

DEFAULT_SHAPE = (256, 128)
R_RANGE = (0.01, 0.14)  # m
THETA_HALF = np.deg2rad(37.0)
CENTER_FREQUENCY = 3.0e6
SOUND_SPEED = 1540.0
AXIAL_PSF = 0.8  # samples (σ of the pulse envelope)
LATERAL_PSF = 1.1  # beams (σ of the beam profile)


@dataclass
class SimResult:
    """A simulated scan: complex64 IQ (frames, z, x) of tissue, haze and their sum, plus truth."""

    tissue_iq: np.ndarray
    haze_iq: np.ndarray
    x: np.ndarray
    z: np.ndarray
    axes: dict[str, Any]
    roi: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def hazy_iq(self) -> np.ndarray:
        return self.tissue_iq + self.haze_iq


def polar_grid(shape: tuple[int, int] = DEFAULT_SHAPE) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pixel positions x, z (m, shape (z, x)) and axes of the default sector."""
    nz, nx = shape
    r = np.linspace(*R_RANGE, nz)
    theta = np.linspace(-THETA_HALF, THETA_HALF, nx)
    rr, tt = np.meshgrid(r, theta, indexing="ij")
    axes = {"theta": theta, "r": r, "origin": np.array([0.0, 0.0])}
    return rr * np.sin(tt), rr * np.cos(tt), axes


def _speckle(rng: np.random.Generator, shape, psf: tuple[float, float]) -> np.ndarray:
    """Unit-power circular complex Gaussian speckle blurred by a Gaussian PSF (axial, lateral)."""
    w = rng.standard_normal((2, *shape), dtype=np.float32)
    w[0] = gaussian_filter(w[0], psf, mode="wrap")
    w[1] = gaussian_filter(w[1], psf, mode="wrap")
    s = w[0] + 1j * w[1]
    return (s / np.sqrt(np.mean(np.abs(s) ** 2))).astype(np.complex64)


def _correlated(rng, prev: np.ndarray | None, new: np.ndarray, rho: float) -> np.ndarray:
    return new if prev is None else (rho * prev + np.sqrt(1 - rho**2) * new).astype(np.complex64)


def _ellipse(x, z, cx, cz, a, b, phi):
    dx, dz = x - cx, z - cz
    u = (dx * np.cos(phi) + dz * np.sin(phi)) / a
    v = (-dx * np.sin(phi) + dz * np.cos(phi)) / b
    return u * u + v * v


def _draw_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """Random apical-view anatomy: left ventricle, its wall, right ventricle, atrium depth."""
    return {
        "lv_cx": rng.uniform(-0.012, 0.012),
        "lv_cz": rng.uniform(0.060, 0.080),
        "lv_a": rng.uniform(0.013, 0.019),  # lateral semi-axis
        "lv_b": rng.uniform(0.028, 0.038),  # axial semi-axis
        "lv_phi": rng.uniform(-0.25, 0.25),
        "wall": rng.uniform(0.007, 0.011),
        "wall_level": rng.uniform(0.8, 1.0),
        "tissue_level": rng.uniform(0.15, 0.35),
        "blood_level": rng.uniform(0.003, 0.008),
        "rv_side": float(rng.choice([-1.0, 1.0])),
        "rv_scale": rng.uniform(0.6, 0.9),
        "chest_wall": rng.uniform(0.4, 0.9),
        "heart_rate": rng.uniform(0.08, 0.15),  # cycles per frame
    }


def _echogenicity(x, z, p: dict[str, float], phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude map of the anatomy at cardiac phase ``phase`` and the LV cavity mask."""
    s = 1.0 + 0.08 * np.sin(2 * np.pi * phase)  # contraction
    a, b = p["lv_a"] * s, p["lv_b"] * s
    lv = _ellipse(x, z, p["lv_cx"], p["lv_cz"], a, b, p["lv_phi"])
    wall = _ellipse(x, z, p["lv_cx"], p["lv_cz"], a + p["wall"], b + p["wall"], p["lv_phi"])
    rv_cx = p["lv_cx"] + p["rv_side"] * (a + p["wall"] + p["rv_scale"] * a * 0.9 + 0.003)
    rv = _ellipse(
        x, z, rv_cx, p["lv_cz"] + 0.005, p["rv_scale"] * a, p["rv_scale"] * b * 0.9, -p["lv_phi"]
    )
    rv_wall = _ellipse(
        x,
        z,
        rv_cx,
        p["lv_cz"] + 0.005,
        p["rv_scale"] * a + 0.004,
        p["rv_scale"] * b * 0.9 + 0.004,
        -p["lv_phi"],
    )
    la = _ellipse(x, z, p["lv_cx"], p["lv_cz"] + b + p["wall"] + 0.018, a * 0.9, 0.014, 0.0)
    amp = np.full(x.shape, p["tissue_level"], np.float32)
    amp[(wall < 1) | (rv_wall < 1)] = p["wall_level"]
    amp[(lv < 1) | (rv < 1) | (la < 1)] = p["blood_level"]
    r = np.hypot(x, z)
    amp += p["chest_wall"] * np.exp(-(((r - 0.018) / 0.006) ** 2))
    return amp, lv < 1


def _haze_field(rng: np.random.Generator, x, z, r_axis, shape) -> tuple[np.ndarray, dict]:
    """Smooth, structured haze amplitude: near-field decay, reverberation bands and blobs."""
    r = np.hypot(x, z)
    decay = rng.uniform(0.02, 0.06)
    field_ = np.exp(-(r - R_RANGE[0]) / decay) * rng.uniform(0.5, 1.0)
    n_bands = int(rng.integers(1, 4))
    for _ in range(n_bands):  # reverberation: bands at multiples of a shallow reflector depth
        depth, width = rng.uniform(0.03, 0.10), rng.uniform(0.004, 0.012)
        lateral = rng.uniform(-0.03, 0.03)
        spread = rng.uniform(0.015, 0.04)
        field_ += rng.uniform(0.4, 1.0) * np.exp(
            -(((r - depth) / width) ** 2) - ((x - lateral) / spread) ** 2
        )
    n_blobs = int(rng.integers(1, 4))
    for _ in range(n_blobs):
        cx, cz = rng.uniform(-0.03, 0.03), rng.uniform(0.03, 0.11)
        sx, sz = rng.uniform(0.006, 0.02), rng.uniform(0.006, 0.02)
        field_ += rng.uniform(0.3, 1.0) * np.exp(-(((x - cx) / sx) ** 2) - ((z - cz) / sz) ** 2)
    lowfreq = gaussian_filter(
        rng.standard_normal(shape), (shape[0] / 16, shape[1] / 16), mode="wrap"
    )
    field_ *= np.exp(0.5 * lowfreq / (lowfreq.std() + 1e-12))
    params = {"haze_decay": decay, "haze_bands": n_bands, "haze_blobs": n_blobs}
    return field_.astype(np.float32), params


def cardiac_roi(p: dict[str, float]) -> dict[str, Any]:
    """ROI pair in mm: a disc inside the LV versus an arc of the lateral LV wall."""
    mm = 1e3
    cx, cz, a, b, phi, w = (p[k] for k in ("lv_cx", "lv_cz", "lv_a", "lv_b", "lv_phi", "wall"))
    s_min = 0.92  # smallest cavity scale over the cycle keeps the disc inside the blood
    radius = 0.55 * min(a, b) * s_min
    side = -p["rv_side"]  # the free wall, away from the right ventricle
    ang = np.linspace(-0.6, 0.6, 16) + (0.0 if side > 0 else np.pi)

    def ring(k: float) -> list[list[float]]:
        u, v = np.cos(ang) * (a + k * w), np.sin(ang) * (b + k * w)
        xs = cx + u * np.cos(phi) - v * np.sin(phi)
        zs = cz + u * np.sin(phi) + v * np.cos(phi)
        return [[float(xx * mm), float(zz * mm)] for xx, zz in zip(xs, zs)]

    inner, outer = ring(0.2), ring(0.8)
    return {
        "version": 1,
        "units": "mm",
        "pairs": [
            {
                "name": "lv_vs_myocardium",
                "target": {"shape": "circle", "center": [cx * mm, cz * mm], "radius": radius * mm},
                "background": {"shape": "polygon", "points": inner + outer[::-1]},
            }
        ],
    }


def _scale_haze(
    tissue: np.ndarray, haze: np.ndarray, wall: np.ndarray, haze_db: float
) -> np.ndarray:
    """Scale haze so its mean power is ``haze_db`` relative to the mean myocardium power."""
    p_t = np.mean(np.abs(tissue[:, wall]) ** 2)
    p_h = np.mean(np.abs(haze) ** 2)
    return (haze * np.sqrt(p_t / p_h * 10 ** (haze_db / 10))).astype(np.complex64)


HAZE_PSF = (2.0 * AXIAL_PSF, 2.5 * LATERAL_PSF)  # haze speckle: coarser than the tissue's


@dataclass
class _Scene:
    """What a simulated scene draws: tissue and haze frames, the pixels whose mean power the
    haze level is relative to, its ROI and its drawn parameters."""

    tissue: np.ndarray
    haze: np.ndarray
    reference: np.ndarray  # bool (z, x)
    roi: dict[str, Any]
    params: dict[str, Any]


def _simulate(
    kind: str,
    draw: Callable[[np.random.Generator, np.ndarray, np.ndarray, dict, int], _Scene],
    n_frames: int,
    seed: int,
    haze_db: float,
    shape: tuple[int, int],
) -> SimResult:
    """The seeded generator and the polar grid, the scene drawn on them, its haze scaled to
    ``haze_db`` relative to the scene's reference tissue."""
    rng = np.random.default_rng(seed)
    x, z, axes = polar_grid(shape)
    scene = draw(rng, x, z, axes, n_frames)
    haze = _scale_haze(scene.tissue, scene.haze, scene.reference, haze_db)
    params = {"kind": kind, "seed": seed, "haze_db": haze_db, "shape": list(shape)}
    tissue = scene.tissue.astype(np.complex64, copy=False)
    return SimResult(tissue, haze, x, z, axes, scene.roi, {**params, **scene.params})


def simulate_cardiac(
    n_frames: int = 8,
    seed: int = 0,
    haze_db: float = -12.0,
    shape: tuple[int, int] = DEFAULT_SHAPE,
) -> SimResult:
    """A hazy apical-like cine loop with ground truth (see module docstring)."""
    return _simulate("cardiac", _cardiac_scene, n_frames, seed, haze_db, shape)


def _cardiac_scene(
    rng: np.random.Generator, x: np.ndarray, z: np.ndarray, axes: dict, n_frames: int
) -> _Scene:
    """A beating left ventricle in temporally correlated speckle, haze correlated longer; haze
    scaled against the myocardium."""
    shape = x.shape
    p = _draw_anatomy(rng)
    haze_amp, hp = _haze_field(rng, x, z, axes["r"], shape)
    tissue = np.empty((n_frames, *shape), np.complex64)
    haze = np.empty_like(tissue)
    sp_t = sp_h = None
    phase0 = rng.uniform(0, 1)
    for f in range(n_frames):
        amp, _ = _echogenicity(x, z, p, phase0 + f * p["heart_rate"])
        amp = gaussian_filter(amp, 0.7)
        sp_t = _correlated(rng, sp_t, _speckle(rng, shape, (AXIAL_PSF, LATERAL_PSF)), 0.85)
        sp_h = _correlated(rng, sp_h, _speckle(rng, shape, HAZE_PSF), 0.95)
        tissue[f] = amp * sp_t
        haze[f] = haze_amp * sp_h
    return _Scene(tissue, haze, _wall_mask(x, z, p), cardiac_roi(p), {**p, **hp})


def _wall_mask(x, z, p) -> np.ndarray:
    lv = _ellipse(x, z, p["lv_cx"], p["lv_cz"], p["lv_a"], p["lv_b"], p["lv_phi"])
    wall = _ellipse(
        x, z, p["lv_cx"], p["lv_cz"], p["lv_a"] + p["wall"], p["lv_b"] + p["wall"], p["lv_phi"]
    )
    return (wall < 1) & (lv >= 1)


def simulate_cyst(
    n_frames: int = 4,
    seed: int = 0,
    haze_db: float = -12.0,
    shape: tuple[int, int] = DEFAULT_SHAPE,
) -> SimResult:
    """Anechoic cysts in homogeneous speckle, with haze; ROI: the largest cyst vs a ring around it."""
    return _simulate("cyst", _cyst_scene, n_frames, seed, haze_db, shape)


def _cyst_scene(
    rng: np.random.Generator, x: np.ndarray, z: np.ndarray, axes: dict, n_frames: int
) -> _Scene:
    """Three anechoic cysts in homogeneous speckle, then haze; haze scaled against the speckle."""
    shape = x.shape
    amp = np.ones(shape, np.float32)
    cysts = []
    for depth in (0.045, 0.075, 0.105):
        cx, rad = rng.uniform(-0.015, 0.015), rng.uniform(0.005, 0.009)
        amp[np.hypot(x - cx, z - depth) < rad] = 0.003
        cysts.append((cx, depth, rad))
    amp = gaussian_filter(amp, 0.7)
    haze_amp, hp = _haze_field(rng, x, z, axes["r"], shape)
    tissue = np.stack(
        [amp * _speckle(rng, shape, (AXIAL_PSF, LATERAL_PSF)) for _ in range(n_frames)]
    )
    haze = np.stack([haze_amp * _speckle(rng, shape, HAZE_PSF) for _ in range(n_frames)])
    cx, cz, rad = cysts[1]
    roi = {
        "version": 1,
        "units": "mm",
        "pairs": [
            {
                "name": "cyst_vs_background",
                "target": {
                    "shape": "circle",
                    "center": [cx * 1e3, cz * 1e3],
                    "radius": 0.7 * rad * 1e3,
                },
                "background": {
                    "shape": "annulus",
                    "center": [cx * 1e3, cz * 1e3],
                    "inner": 1.4 * rad * 1e3,
                    "outer": 2.2 * rad * 1e3,
                },
            }
        ],
    }
    return _Scene(tissue, haze, amp > 0.5, roi, {"cysts": cysts, **hp})


def demo_scan_path() -> Path:
    """Path of the embedded demo scan (simulated hazy cardiac loop) shipped with the package."""
    return Path(str(importlib.resources.files("usdehaze") / "data" / "demo_scan.h5"))


# -- writing simulated scans (usdehaze simulate, pipelines/make_demo_scan.py) ----------------
def write_simulation(
    out: Path, kind: str = "cardiac", frames: int = 8, seed: int = 0, haze_db: float = -12.0
) -> tuple[Path, Path]:
    """Simulate and write OUT (zea layout; extras 'tissue' and 'haze') and OUT.roi.json."""
    from usdehaze.errors import UsageError
    from usdehaze.outputs import check_output

    out = Path(out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise UsageError(f"{out}: simulate writes an HDF5 file (zea layout); give NAME.h5")
    roi_path = out.with_suffix(".roi.json")
    check_output(out, scans=True)  # both before any work: never over a file not ours
    if not _legacy_pair(out, roi_path):
        check_output(roi_path, [out], option="the ROI file")
        _unchanged_since_written(roi_path)
    if kind not in ("cardiac", "cyst"):
        raise UsageError(f"--kind {kind}: expected cardiac or cyst")
    from usdehaze import limits

    if not 1 <= frames <= limits.MAX_SIMULATE_FRAMES:
        raise UsageError(
            f"--frames {frames}: expected 1 to {limits.MAX_SIMULATE_FRAMES} (the limit)"
        )
    if not (math.isfinite(haze_db) and abs(haze_db) <= limits.MAX_HAZE_DB):
        raise UsageError(
            f"--haze-db {haze_db}: expected a finite number of dB between -{limits.MAX_HAZE_DB:g} and {limits.MAX_HAZE_DB:g}"
        )
    limits.seed(seed, "--seed")
    sim = (simulate_cardiac if kind == "cardiac" else simulate_cyst)(
        frames, seed=seed, haze_db=haze_db
    )
    path = write_simulated(
        out,
        roi_path,
        sim.tissue_iq,
        sim.haze_iq,
        sim.x,
        sim.z,
        sim.axes,
        sim.roi,
        probe="simulated phased array",
        center_frequency=CENTER_FREQUENCY,
        sound_speed=SOUND_SPEED,
        params=sim.params,
    )
    return path, roi_path


def write_simulated(
    out: Path,
    roi_path: Path,
    tissue: np.ndarray,
    haze: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    axes: dict,
    roi: dict,
    *,
    probe: str,
    center_frequency: float,
    sound_speed: float,
    params: dict,
) -> Path:
    """Write a simulated polar scan (zea layout: tissue + haze, with 'tissue' and 'haze' extras
    and the simulation's parameters) and its ROI file, both marked as usdehaze's; used by
    ``usdehaze simulate`` and pipelines/make_demo_scan.py. No output checks: callers make them."""
    from usdehaze import __version__
    from usdehaze.atomic import atomic_path
    from usdehaze.outputs import MARKER, writing
    from usdehaze.ultrasound.io import write_scan
    from usdehaze.ultrasound.roi import roi_from_dict

    with writing(out):
        path = write_scan(
            out,
            tissue + haze,
            x,
            z,
            grid="polar",
            axes=axes,
            probe=probe,
            center_frequency=center_frequency,
            sound_speed=sound_speed,
            extras={"tissue": tissue, "haze": haze},
            attrs={
                "usdehaze_version": __version__,
                MARKER: "simulate",
                "simulation": json.dumps(params, default=float),
            },
        )
    # validated like save_roi, marked as usdehaze's with the sha256 of its regions so that a
    # rerun may replace it while it is unchanged (never once the user edited the regions)
    regions = roi_from_dict(roi, str(roi_path)).to_dict()
    marked = {MARKER: "simulate", REGIONS_SHA256: _regions_sha256(regions), **regions}
    with writing(roi_path), atomic_path(roi_path) as tmp:
        tmp.write_text(json.dumps(marked, indent=2))
    return path


REGIONS_SHA256 = "usdehaze_regions_sha256"  # roi.json key: its regions as simulate wrote them


def _regions_sha256(regions: dict) -> str:
    """sha256 of a ROI's regions (version, units, pairs) in one canonical JSON form."""
    import hashlib

    return hashlib.sha256(json.dumps(regions, sort_keys=True).encode()).hexdigest()


def _unchanged_since_written(roi_path: Path) -> None:
    """A simulate-written roi.json may be replaced only while its regions are those simulate
    wrote (sha256 recorded beside them): the user's own regions there are never lost."""
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.roi import roi_from_dict

    if not roi_path.exists():
        return
    try:
        data = json.loads(roi_path.read_text())
        regions = roi_from_dict(
            {k: v for k, v in data.items() if k in ("version", "units", "pairs")}, str(roi_path)
        ).to_dict()
        same = data.get(REGIONS_SHA256) == _regions_sha256(regions)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, UsageError):
        same = False
    if not same:
        raise UsageError(
            f"{roi_path}: the ROI file beside the scan was changed since usdehaze simulate wrote "
            "it (its regions are not those written, or it is older than this check); it is left "
            "alone: move it aside or choose another name"
        )


def _legacy_pair(out: Path, roi_path: Path) -> bool:
    """A ROI file an older usdehaze simulate wrote (no marker yet): exactly the ROI keys, beside
    the scan of the same name that usdehaze wrote."""
    from usdehaze.outputs import is_usdehaze_output

    try:
        keys = set(json.loads(roi_path.read_text()))
    except (OSError, ValueError, TypeError):
        return False
    return keys == {"version", "units", "pairs"} and is_usdehaze_output(out)
