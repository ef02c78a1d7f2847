"""Random apical-view anatomy on an acquisition's grid: scatterer amplitude, coherent specular
reflectors, and the masks the metrics need (ventricle cavity, myocardium, tissue).

Sizes are in metres and scale with the imaging depth, so a 100 mm and a 160 mm scan both show a
whole heart. Every draw varies ventricle size, shape, tilt, wall thickness and brightness, the
chambers present, contraction, heterogeneity and bright specular structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from usdehaze.ultrasound.corpus.acquisition import Acquisition


@dataclass
class Anatomy:
    """Scatterer amplitude and specular field on the grid, with masks and the drawn values."""

    amplitude: np.ndarray  # r.m.s. scatterer amplitude per pixel
    specular: np.ndarray  # complex, coherent reflectors
    cavity: np.ndarray  # bool: left-ventricle blood pool (eroded: the contrast target)
    myocardium: np.ndarray  # bool: left-ventricle wall (its middle part: the background)
    tissue: np.ndarray  # bool: pixels of tissue (not blood): the median-level reference
    params: dict = field(default_factory=dict)


def _ellipse(x, z, cx, cz, a, b, phi):
    dx, dz = x - cx, z - cz
    u = (dx * np.cos(phi) + dz * np.sin(phi)) / a
    v = (-dx * np.sin(phi) + dz * np.cos(phi)) / b
    return np.sqrt(u * u + v * v)


@dataclass
class _Ventricle:
    """The left ventricle as drawn, in metres: centre, semi-axes (contracted), tilt, wall
    thickness, and the anatomy scale ``s`` (relative to a 130 mm scan)."""

    cx: float
    cz: float
    a: float
    b: float
    phi: float
    w: float
    s: float

    @property
    def base(self) -> float:
        """Depth of the ventricle's base."""
        return self.cz + self.b * np.cos(self.phi) + self.w

    def distance(self, x: np.ndarray, z: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """Elliptic distance of each pixel from the centre (< 1 inside), the semi-axes grown
        by ``grow`` metres."""
        return _ellipse(x, z, self.cx, self.cz, self.a + grow, self.b + grow, self.phi)


def draw_anatomy(acq: Acquisition, rng: np.random.Generator) -> Anatomy:
    """One random apical view on ``acq``'s grid (see module docstring)."""
    x, z = acq.grid()
    s = acq.r_max / 0.13  # anatomy scale relative to a 130 mm scan
    p = _draw_params(rng, acq.r_max, s)
    lv = _Ventricle(
        p["lv_cx"], p["lv_cz"], p["lv_a"] * p["contraction"], p["lv_b"] * p["contraction"],
        p["lv_phi"], p["wall"], s,
    )  # fmt: skip
    blood, walls = _chambers(x, z, lv, p, rng)
    r = np.hypot(x, z)
    amp = _amplitude(acq, r, blood, walls, p, rng)
    specular = _specular(acq, lv, p, rng)
    cavity = lv.distance(x, z) < 0.6
    inner = lv.distance(x, z, 0.2 * lv.w) >= 1
    outer = lv.distance(x, z, 0.8 * lv.w) < 1
    myocardium = inner & outer & ~blood
    tissue = ~blood & (r > 1.5 * p["chest_depth"])
    return Anatomy(amp.astype(np.float32), specular, cavity, myocardium, tissue, p)


def _draw_params(rng: np.random.Generator, depth: float, s: float) -> dict:
    """The drawn values: ventricle size, shape and tilt, contraction, wall, levels, chest wall,
    heterogeneity and which structures are present (in this order of draws)."""
    return {
        "lv_cx": rng.uniform(-0.012, 0.012) * s,
        "lv_cz": rng.uniform(0.42, 0.58) * depth,
        "lv_a": rng.uniform(0.011, 0.021) * s,
        "lv_b": rng.uniform(0.025, 0.042) * s,
        "lv_phi": rng.uniform(-0.3, 0.3),
        "contraction": rng.uniform(0.85, 1.1),
        "wall": rng.uniform(0.006, 0.014) * s,
        "wall_level": rng.uniform(0.5, 1.3),
        "tissue_level": rng.uniform(0.2, 0.6),
        "blood_level": 10 ** (rng.uniform(-60, -38) / 20),
        "chest_wall": rng.uniform(0.5, 1.5),
        "chest_depth": rng.uniform(0.012, 0.030),
        "heterogeneity": rng.uniform(0.1, 0.6),
        "rv": bool(rng.random() < 0.75),
        "la": bool(rng.random() < 0.7),
        "ra": bool(rng.random() < 0.4),
        "valve": bool(rng.random() < 0.6),
        "pericardium": bool(rng.random() < 0.6),
        "rv_side": float(rng.choice([-1.0, 1.0])),
    }


def _chambers(
    x: np.ndarray, z: np.ndarray, lv: _Ventricle, p: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(blood, walls) masks: the left ventricle and, when drawn present, the right ventricle
    beside it and the atria below the base."""
    a, b, phi, w, s = lv.a, lv.b, lv.phi, lv.w, lv.s
    blood = lv.distance(x, z) < 1
    walls = lv.distance(x, z, w) < 1
    if p["rv"]:
        ra_, rb_ = a * rng.uniform(0.6, 0.9), b * rng.uniform(0.7, 0.95)
        rcx = lv.cx + p["rv_side"] * (a + w + ra_ + rng.uniform(0.002, 0.006) * s)
        rcz = lv.cz + rng.uniform(0.0, 0.01) * s
        blood |= _ellipse(x, z, rcx, rcz, ra_, rb_, -phi) < 1
        walls |= _ellipse(x, z, rcx, rcz, ra_ + 0.4 * w, rb_ + 0.4 * w, -phi) < 1
    base = lv.base
    if p["la"]:
        la_a, la_b = a * rng.uniform(0.7, 1.0), rng.uniform(0.012, 0.02) * s
        la = _ellipse(x, z, lv.cx + b * np.sin(phi), base + la_b + 0.003 * s, la_a, la_b, phi)
        blood |= la < 1
        walls |= la < 1.25
    if p["ra"] and p["rv"]:
        ra_b = rng.uniform(0.010, 0.018) * s
        ra = _ellipse(x, z, rcx, base + ra_b + 0.004 * s, 0.8 * ra_, ra_b, -phi)
        blood |= ra < 1
        walls |= ra < 1.25
    return blood, walls


def _amplitude(
    acq: Acquisition,
    r: np.ndarray,
    blood: np.ndarray,
    walls: np.ndarray,
    p: dict,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scatterer amplitude: heterogeneous tissue and walls, dark blood, the bright chest wall
    at depth ``r`` ≈ chest_depth, lightly smoothed."""
    het = gaussian_filter(rng.standard_normal(acq.shape), (acq.shape[0] / 24, acq.shape[1] / 16))
    het = np.exp(p["heterogeneity"] * het / (het.std() + 1e-12))
    amp = p["tissue_level"] * het
    amp = np.where(walls, p["wall_level"] * het, amp)
    amp = np.where(blood, p["blood_level"], amp)
    amp = amp + p["chest_wall"] * np.exp(
        -(((r - p["chest_depth"]) / (0.35 * p["chest_depth"])) ** 2)
    )
    return gaussian_filter(amp, 0.6)


def _specular(acq: Acquisition, lv: _Ventricle, p: dict, rng: np.random.Generator) -> np.ndarray:
    """Coherent reflectors, when drawn present: the mitral leaflets and the pericardium."""
    a, b, cx, cz, phi, w, s = lv.a, lv.b, lv.cx, lv.cz, lv.phi, lv.w, lv.s
    specular = np.zeros(acq.shape, np.complex128)
    if p["valve"]:  # mitral leaflets: short bright lines across the ventricle's base
        for side in (-1.0, 1.0):
            t = np.linspace(0, 1, 40)
            lx = cx + b * np.sin(phi) + side * a * (0.1 + 0.8 * t)
            lz = lv.base - w + rng.uniform(-0.004, 0.004) * s - t * rng.uniform(0.0, 0.01) * s
            _stamp(specular, acq, lx, lz, rng.uniform(2.0, 6.0) * p["wall_level"], rng)
    if p["pericardium"]:  # a bright curve just outside the free wall
        ang = np.linspace(-0.8, 0.8, 120) + (0.0 if p["rv_side"] < 0 else np.pi)
        k = 1.0 + rng.uniform(0.1, 0.3)
        u, v = np.cos(ang) * (a + w) * k, np.sin(ang) * (b + w) * k
        _stamp(
            specular,
            acq,
            cx + u * np.cos(phi) - v * np.sin(phi),
            cz + u * np.sin(phi) + v * np.cos(phi),
            rng.uniform(1.5, 4.0),
            rng,
        )
    return specular


def _stamp(field: np.ndarray, acq: Acquisition, x, z, level: float, rng) -> None:
    """Add a coherent reflector along the polyline (x, z): scatterers in phase, one per pixel."""
    r_axis, th_axis = acq.axes()
    r, th = np.hypot(x, z), np.arctan2(x, z)
    i = np.round(np.interp(r, r_axis, np.arange(len(r_axis)))).astype(int)
    j = np.round(np.interp(th, th_axis, np.arange(len(th_axis)))).astype(int)
    ok = (r > r_axis[0]) & (r < r_axis[-1]) & (np.abs(th) < th_axis[-1])
    phase = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.2, len(x)))
    field[i[ok], j[ok]] = level * np.exp(1j * phase[ok])
