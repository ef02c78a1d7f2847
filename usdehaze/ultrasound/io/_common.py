"""Helpers shared by the readers: opening files read-only, lazy frame access, checks, geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError, first_line
from usdehaze.hdf5 import only_inside
from usdehaze.ultrasound.scan import Scan

DEFAULT_PITCH = 1e-4  # m, for plain arrays without coordinates
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def optional_import(path: Path, needs: str, extra: str, *modules: str) -> Any:
    """The last of ``modules``, imported in order; one missing: one line, ``needs`` (what
    reading ``path`` needs) and the pip extra that installs it."""
    import importlib

    try:
        for name in modules:
            module = importlib.import_module(name)
    except ImportError:
        raise UsageError(f"{path}: {needs}: pip install 'usdehaze[{extra}]'") from None
    return module


def open_h5(path: Path):
    """Open an HDF5 file read-only (Blosc and other zea filters registered)."""
    import h5py

    try:
        import hdf5plugin  # noqa: F401  (registers Blosc for zea files)
    except ImportError:
        pass
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UsageError(f"{path}: not an HDF5 file (or unreadable)") from None
    try:
        only_inside(f, path)
    except BaseException:
        f.close()
        raise
    return f


def to_complex(block: np.ndarray, path: Path, key: str, iq_axis: bool = True) -> np.ndarray:
    """(..., 2) I/Q float → complex64 (filled in place, no complex128 temporary), checking for
    NaN/Inf. Complex input, or real input with ``iq_axis=False`` (a magnitude), is cast."""
    if iq_axis and block.shape[-1] == 2 and not np.iscomplexobj(block):
        out = np.empty(block.shape[:-1], np.complex64)
        out.real, out.imag = block[..., 0], block[..., 1]
    else:
        out = np.asarray(block).astype(np.complex64, copy=False)
    check_finite(out, path, key)
    return out


def analytic_iq(rf: np.ndarray, path: Path, key: str) -> np.ndarray:
    """RF frames (n, z, x) → complex64 analytic signal along depth (the IQ of RF data)."""
    from scipy.signal import hilbert

    return to_complex(hilbert(np.asarray(rf, np.float64), axis=1), path, key)


def iq_is_complex(ds, path: Path, key: str) -> bool:
    """Whether dataset ``ds`` (frames, z, x, n_ch) stores complex values; complex values with
    an I/Q axis of 2 are refused (each pixel would count twice)."""
    complex_ = np.dtype(ds.dtype).kind == "c"
    if complex_ and ds.shape[-1] != 1:
        raise UsageError(
            f"{path}: key '{key}': complex values with an I/Q axis of {ds.shape[-1]} (each pixel "
            f"would count twice); expected real (frames, z, x, 2) I/Q or complex (frames, z, x, 1)"
        )
    return complex_


def iq_block(block: np.ndarray, complex_: bool, path: Path, key: str) -> np.ndarray:
    """Complex64 IQ of a (n, z, x, n_ch) block: complex with n_ch 1, RF with n_ch 1 (made
    analytic along depth) or I/Q with n_ch 2."""
    if complex_:
        return to_complex(block[..., 0], path, key, iq_axis=False)
    if block.shape[-1] == 1:
        return analytic_iq(block[..., 0], path, key)
    return to_complex(block, path, key)


def dataset_scan(
    path: Path, ds, layout: str, key: str, read, shape: tuple, geometry: tuple, **fields: Any
) -> Scan:
    """A Scan of (z, x) ``shape`` whose frames ``read`` takes from HDF5 dataset ``ds`` (its
    dtype and compression recorded; frames along its first axis unless ``n_frames`` is given),
    on ``geometry``: (x, z, grid, axes)."""
    x, z, grid, axes = geometry
    fields.setdefault("n_frames", ds.shape[0])
    return Scan(
        path=path,
        layout=layout,
        key=key,
        shape=shape,
        read=read,
        x=x,
        z=z,
        grid=grid,
        axes=axes,
        dtype=str(ds.dtype),
        compression=str(ds.compression),
        **fields,
    )


def check_finite(arr: np.ndarray, path: Path, key: str) -> None:
    if not np.isfinite(arr).all():
        raise UsageError(f"{path}: key '{key}': contains NaN or Inf values")


def check_shape(shape: tuple[int, ...], path: Path, key: str, what: str) -> None:
    if any(s == 0 for s in shape):
        raise UsageError(f"{path}: key '{key}': empty dataset (shape {shape}), expected {what}")


def number(value, where: str, *, positive: bool = False) -> float:
    """A metadata value (attribute or scalar dataset, first element of an array) as a finite
    float; text, empty arrays, NaN or (with ``positive``) values <= 0 are one UsageError
    starting with ``where`` (the file and the key or attribute)."""
    v = np.asarray(value).reshape(-1)
    try:
        f = float(v[0]) if v.size and v.dtype.kind in "iuf" else None
    except (TypeError, ValueError):
        f = None
    if f is None or not np.isfinite(f) or (positive and f <= 0):
        what = "a positive number" if positive else "a finite number"
        shown = v[0].item() if v.size == 1 else value
        raise UsageError(f"{where}: expected {what}, got {shown!r}")
    return f


def vector(ds, path: Path, key: str) -> np.ndarray:
    """A numeric dataset as a finite 1-D float64 array (text, compound types, NaN: UsageError)."""
    try:
        v = np.asarray(ds[()] if hasattr(ds, "shape") else ds)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: key '{key}': unreadable ({first_line(exc)})") from None
    if v.dtype.kind not in "iuf":
        raise UsageError(f"{path}: key '{key}': expected numbers, got {v.dtype} values")
    v = v.astype(np.float64).reshape(-1)
    if not np.isfinite(v).all():
        raise UsageError(f"{path}: key '{key}': contains NaN or Inf values")
    return v


def check_frame(path: Path, key: str, nz: int, nx: int) -> None:
    """A declared frame size must fit in memory (see :func:`usdehaze.limits.check_frame_size`)."""
    from usdehaze.limits import check_frame_size

    check_frame_size(f"{path}: key '{key}'", nz, nx)


def assumed_grid_note(pitch: float = DEFAULT_PITCH) -> str:
    """Scan.geometry_note of a file without pixel coordinates on the default grid."""
    return (
        f"no pixel coordinates in the file: a Cartesian grid of {pitch * 1e3:g} mm pixels is "
        "assumed (sizes and positions in mm are not physical)"
    )


def cartesian_geometry(nz: int, nx: int, pitch: float = DEFAULT_PITCH, z0: float = 0.0):
    """Pixel positions (z, x) for a plain grid centred laterally, starting at depth z0."""
    xs = (np.arange(nx) - (nx - 1) / 2) * pitch
    zs = z0 + np.arange(nz) * pitch
    z, x = np.meshgrid(zs, xs, indexing="ij")
    return x, z, {"x": xs, "z": zs}


def sector_origin(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Apex [x0, z0] of a sector grid: the least-squares intersection of its columns (rays).

    Curved and phased-array probes fan their rays out from an apex that may lie behind the
    transducer surface (zea puts it at z = -distance_to_apex); assuming [0, 0] would bend r and
    theta. Parallel columns (no apex) give [0, 0]."""
    p0 = np.stack([x[0], z[0]], -1)  # (nx, 2) first pixel of each column
    d = np.stack([x[-1] - x[0], z[-1] - z[0]], -1)
    d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-30)
    proj = np.eye(2)[None] - d[:, :, None] * d[:, None, :]  # (nx, 2, 2) off-ray projectors
    a, b = proj.sum(0), np.einsum("nij,nj->i", proj, p0)
    if not np.isfinite(a).all() or np.linalg.cond(a) > 1e8:
        return np.zeros(2)
    return np.linalg.solve(a, b)


def geometry_from_coordinates(coords: np.ndarray, path: Path | str = "", key: str = ""):
    """(x, z, grid, axes) from per-pixel [x, y, z] positions: cartesian when rows and columns
    are axis-aligned, else polar about the rays' apex (sector scans). Coordinates must be
    finite numbers (``path`` and ``key`` name them in the error)."""
    c = np.asarray(coords)
    if c.dtype.kind not in "iuf":
        raise UsageError(f"{path}: key '{key}': expected numbers, got {c.dtype} values")
    c = c.astype(np.float64)
    if c.ndim == 4:  # (frames, z, x, 3): one grid for all frames
        c = c[0]
    if not np.isfinite(c).all():
        raise UsageError(f"{path}: key '{key}': pixel coordinates contain NaN or Inf values")
    x, z = c[..., 0], c[..., 2]
    if np.allclose(z, z[:, :1], atol=1e-9) and np.allclose(x, x[:1, :], atol=1e-9):
        return x, z, "cartesian", {"x": x[0].copy(), "z": z[:, 0].copy()}
    origin = sector_origin(x, z) if x.shape[0] > 1 else np.zeros(2)
    dx, dz = x - origin[0], z - origin[1]
    r, th = np.hypot(dx, dz), np.arctan2(dx, dz)
    axes = {"theta": th[-1].copy(), "r": r[:, r.shape[1] // 2].copy(), "origin": origin}
    return x, z, "polar", axes
