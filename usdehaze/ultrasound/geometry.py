"""Scan conversion: sector (polar) frames to a Cartesian image for display, vectorised over frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ScanConverter:
    """Precomputed bilinear map from a polar grid (r × θ) to a Cartesian grid; reused per frame."""

    x: np.ndarray  # (nx,) metres
    z: np.ndarray  # (nz,) metres
    rows: np.ndarray
    cols: np.ndarray
    inside: np.ndarray

    @classmethod
    def for_axes(
        cls, theta: np.ndarray, r: np.ndarray, origin=(0.0, 0.0), pixel: float | None = None
    ) -> ScanConverter:
        """Cartesian grid covering the sector, with ``pixel`` (m) spacing (default: the axial step)."""
        theta, r = np.asarray(theta, float), np.asarray(r, float)
        ox, oz = float(origin[0]), float(origin[1])
        pixel = pixel or float(np.median(np.diff(r)))
        xs = np.concatenate([r.max() * np.sin(theta), r.min() * np.sin(theta)]) + ox
        zs = np.concatenate([r.max() * np.cos(theta), r.min() * np.cos(theta)]) + oz
        x = np.arange(xs.min(), xs.max() + pixel / 2, pixel)
        z = np.arange(min(zs.min(), oz + r.min()), zs.max() + pixel / 2, pixel)
        X, Z = np.meshgrid(x, z)
        rr = np.hypot(X - ox, Z - oz)
        tt = np.arctan2(X - ox, Z - oz)
        rows = np.interp(rr, r, np.arange(r.size), left=-1, right=-1)
        cols = np.interp(tt, theta, np.arange(theta.size), left=-1, right=-1)
        inside = (rows >= 0) & (cols >= 0)
        return cls(x, z, rows, cols, inside)

    def __call__(self, frames: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """(frames, r, θ) or (r, θ) → (frames, nz, nx) or (nz, nx); outside the sector = ``fill``."""
        from scipy.ndimage import map_coordinates

        single = frames.ndim == 2
        f = frames[None] if single else frames
        n = f.shape[0]
        coords = np.stack(
            [
                np.broadcast_to(np.arange(n)[:, None, None], (n, *self.rows.shape)),
                np.broadcast_to(np.clip(self.rows, 0, None), (n, *self.rows.shape)),
                np.broadcast_to(np.clip(self.cols, 0, None), (n, *self.rows.shape)),
            ]
        )
        out = map_coordinates(np.asarray(f, np.float32), coords, order=1, mode="nearest")
        out[:, ~self.inside] = fill
        return out[0] if single else out

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) for imshow with depth increasing downwards."""
        return (self.x[0] * 1e3, self.x[-1] * 1e3, self.z[-1] * 1e3, self.z[0] * 1e3)
