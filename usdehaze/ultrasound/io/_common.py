"""Helpers shared by the readers: opening files read-only, lazy frame access, checks, geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdehaze.errors import UsageError

DEFAULT_PITCH = 1e-4  # m, for plain arrays without coordinates


def open_h5(path: Path):
    """Open an HDF5 file read-only (Blosc and other zea filters registered)."""
    import h5py

    try:
        import hdf5plugin  # noqa: F401  (registers Blosc for zea files)
    except ImportError:
        pass
    try:
        return h5py.File(path, "r")
    except OSError:
        raise UsageError(f"{path}: not an HDF5 file (or unreadable)") from None


def to_complex(block: np.ndarray, path: Path, key: str) -> np.ndarray:
    """(..., 2) I/Q float → complex64, checking for NaN/Inf."""
    out = (
        (block[..., 0] + 1j * block[..., 1]).astype(np.complex64)
        if block.shape[-1] == 2
        else block.astype(np.complex64)
    )
    check_finite(out, path, key)
    return out


def check_finite(arr: np.ndarray, path: Path, key: str) -> None:
    if not np.isfinite(arr).all():
        raise UsageError(f"{path}: key '{key}': contains NaN or Inf values")


def check_shape(shape: tuple[int, ...], path: Path, key: str, what: str) -> None:
    if any(s == 0 for s in shape):
        raise UsageError(f"{path}: key '{key}': empty dataset (shape {shape}), expected {what}")


def cartesian_geometry(nz: int, nx: int, pitch: float = DEFAULT_PITCH, z0: float = 0.0):
    """Pixel positions (z, x) for a plain grid centred laterally, starting at depth z0."""
    xs = (np.arange(nx) - (nx - 1) / 2) * pitch
    zs = z0 + np.arange(nz) * pitch
    z, x = np.meshgrid(zs, xs, indexing="ij")
    return x, z, {"x": xs, "z": zs}


def geometry_from_coordinates(coords: np.ndarray):
    """(x, z, grid, axes) from per-pixel [x, y, z] positions: cartesian when rows and columns
    are axis-aligned, else polar about the origin (sector scans)."""
    c = np.asarray(coords, np.float64)
    if c.ndim == 4:  # (frames, z, x, 3): one grid for all frames
        c = c[0]
    x, z = c[..., 0], c[..., 2]
    if np.allclose(z, z[:, :1], atol=1e-9) and np.allclose(x, x[:1, :], atol=1e-9):
        return x, z, "cartesian", {"x": x[0].copy(), "z": z[:, 0].copy()}
    r, th = np.hypot(x, z), np.arctan2(x, z)
    axes = {"theta": th[0].copy(), "r": r[:, 0].copy(), "origin": np.zeros(2)}
    return x, z, "polar", axes
