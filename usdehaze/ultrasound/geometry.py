"""Scan conversion: sector (polar) frames to a Cartesian image, vectorised over frames.

A polar grid stores row i at radius ``r[i]`` and column j at angle ``theta[j]`` about ``origin``;
the pixel sits at x = x0 + r·sin θ (lateral), z = z0 + r·cos θ (depth), metres, as ``Scan.x`` and
``Scan.z`` say. The bilinear map (4 source indices and weights per output pixel) is computed
once and applied to any number of frames; pixels outside the sector get ``fill`` (NaN).
Cartesian scans pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SIZE = 1024  # default cap on the output's larger side (pixels)


def _fractional_index(values: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Fractional index of ``values`` along a strictly monotonic ``axis``; -1 outside its range."""
    steps = np.diff(axis)
    idx = np.arange(axis.size, dtype=np.float64)
    if np.all(steps > 0):
        return np.interp(values, axis, idx, left=-1.0, right=-1.0)
    if np.all(steps < 0):
        return np.interp(values, axis[::-1], idx[::-1], left=-1.0, right=-1.0)
    raise ValueError("scan conversion needs strictly monotonic theta and r axes")


@dataclass
class ScanConverter:
    """Precomputed bilinear map from a polar grid (r × θ) to a Cartesian grid; reused per frame."""

    x: np.ndarray  # (nx,) output pixel centres, metres
    z: np.ndarray  # (nz,) output pixel centres, metres
    src_shape: tuple[int, int]  # (n_r, n_theta) of the input frames
    inside: np.ndarray  # (nz, nx) bool: output pixels inside the sector
    index: np.ndarray  # (4, n_inside) flat source indices of the 4 neighbours
    weight: np.ndarray  # (4, n_inside) bilinear weights (sum to 1)

    @classmethod
    def for_axes(
        cls,
        theta: np.ndarray,
        r: np.ndarray,
        origin: Any = (0.0, 0.0),
        pixel: float | None = None,
        max_size: int = MAX_SIZE,
    ) -> ScanConverter:
        """Cartesian grid covering the sector with square ``pixel`` (m) spacing.

        Default spacing: the radial sample step, coarsened so that neither side exceeds
        ``max_size`` pixels (a fine axial sampling would otherwise make huge images).
        """
        theta, r = np.asarray(theta, np.float64).ravel(), np.asarray(r, np.float64).ravel()
        if theta.size < 2 or r.size < 2:
            raise ValueError("scan conversion needs at least 2 angles and 2 radii")
        ox, oz = (float(v) for v in np.asarray(origin, np.float64).ravel()[:2])
        # sector bounding box: arc ends, the arc's widest/deepest points, the apex region
        th = np.concatenate([theta, [0.0, np.pi / 2, -np.pi / 2]])
        th = th[(th >= theta.min()) & (th <= theta.max())]
        rs = np.array([r.min(), r.max()])
        xs = ox + np.outer(rs, np.sin(th)).ravel()
        zs = oz + np.outer(rs, np.cos(th)).ravel()
        span = max(xs.max() - xs.min(), zs.max() - zs.min())
        if pixel is None:
            pixel = max(float(np.median(np.abs(np.diff(r)))), span / max(int(max_size) - 1, 1))
        x = np.arange(xs.min(), xs.max() + pixel / 2, pixel)
        z = np.arange(zs.min(), zs.max() + pixel / 2, pixel)
        X, Z = np.meshgrid(x, z)
        rows = _fractional_index(np.hypot(X - ox, Z - oz), r)
        cols = _fractional_index(np.arctan2(X - ox, Z - oz), theta)
        inside = (rows >= 0) & (cols >= 0)
        ri, ci = rows[inside], cols[inside]
        r0 = np.minimum(np.floor(ri).astype(np.int64), r.size - 2)
        c0 = np.minimum(np.floor(ci).astype(np.int64), theta.size - 2)
        fr, fc = ri - r0, ci - c0
        n_theta = theta.size
        index = np.stack(
            [
                r0 * n_theta + c0,
                r0 * n_theta + c0 + 1,
                (r0 + 1) * n_theta + c0,
                (r0 + 1) * n_theta + c0 + 1,
            ]
        )
        weight = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
        return cls(x, z, (r.size, theta.size), inside, index, weight.astype(np.float32))

    def __call__(self, frames: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """(frames, r, θ) or (r, θ) → (frames, nz, nx) or (nz, nx) float32; outside = ``fill``."""
        f = np.asarray(frames)
        single = f.ndim == 2
        f = f[None] if single else f
        if f.shape[1:] != self.src_shape:
            raise ValueError(
                f"frames have shape {f.shape[1:]}, the converter expects {self.src_shape}"
            )
        flat = f.reshape(f.shape[0], -1).astype(np.float32, copy=False)
        out = np.full((f.shape[0], *self.inside.shape), fill, np.float32)
        vals = np.zeros((f.shape[0], self.index.shape[1]), np.float32)
        for k in range(4):
            vals += self.weight[k] * flat[:, self.index[k]]
        out[:, self.inside] = vals
        return out[0] if single else out

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) pixel edges in mm for imshow, depth increasing downwards."""
        return extent_mm(self.x, self.z)


def extent_mm(x: np.ndarray, z: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent (pixel edges, mm) of an image with 1-D pixel-centre axes x, z in metres."""
    dx = float(x[1] - x[0]) if x.size > 1 else 1e-3
    dz = float(z[1] - z[0]) if z.size > 1 else 1e-3
    return (
        (x[0] - dx / 2) * 1e3,
        (x[-1] + dx / 2) * 1e3,
        (z[-1] + dz / 2) * 1e3,
        (z[0] - dz / 2) * 1e3,
    )


def scan_convert(
    frames: np.ndarray,
    grid: str,
    axes: Mapping[str, Any],
    x: np.ndarray | None = None,
    z: np.ndarray | None = None,
    pixel: float | None = None,
    fill: float = np.nan,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, x axis, z axis): polar frames converted, Cartesian frames passed through.

    ``frames`` is (z, x) or (n, z, x); ``grid``/``axes`` are a Scan's (polar: ``theta``, ``r``,
    ``origin``; Cartesian: ``x`` and ``z``, or else the per-pixel ``x``/``z`` arrays are used).
    The axes returned are 1-D pixel centres in metres.
    """
    if grid == "polar":
        conv = ScanConverter.for_axes(axes["theta"], axes["r"], axes.get("origin", (0, 0)), pixel)
        return conv(frames, fill), conv.x, conv.z
    if grid != "cartesian":
        raise ValueError(f"grid must be 'polar' or 'cartesian', got {grid!r}")
    if "x" in axes and "z" in axes:
        xa, za = np.asarray(axes["x"], np.float64), np.asarray(axes["z"], np.float64)
    elif x is not None and z is not None:
        xa, za = np.asarray(x, np.float64)[0], np.asarray(z, np.float64)[:, 0]
    else:
        raise ValueError("a Cartesian scan needs axes 'x' and 'z' or the per-pixel x, z arrays")
    return np.asarray(frames, np.float32), xa, za
