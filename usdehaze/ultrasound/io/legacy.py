"""zea legacy / usbmd (< 0.1): ``data/beamformed_data`` (frames, z, x, n_ch), n_ch 2 = I/Q or
1 = RF (made analytic along depth), parameters under ``scan/``, attributes ``probe`` and
``description``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io._common import cartesian_geometry, check_shape, to_complex
from usdehaze.ultrasound.scan import Scan

KEY = "data/beamformed_data"


def detect(f) -> bool:
    return KEY in f


def _scalar(g, name):
    if name in g:
        v = np.asarray(g[name][()]).reshape(-1)
        return float(v[0]) if v.size else None
    return None


def read(path: Path, f, key: str | None) -> Scan:
    key = key or KEY
    if key not in f:
        raise UsageError(f"{path}: key '{key}': not found")
    ds = f[key]
    if ds.ndim != 4 or ds.shape[-1] not in (1, 2):
        raise UsageError(
            f"{path}: key '{key}': expected (frames, z, x, n_ch) with n_ch 1 (RF) or 2 (I/Q), got {ds.shape}"
        )
    check_shape(ds.shape, path, key, "(frames, z, x, n_ch)")
    nz, nx = ds.shape[1:3]
    sg = f["scan"] if "scan" in f else {}
    grid, axes = "cartesian", {}
    if "x_axis" in sg and "z_axis" in sg:
        xs, zs = (
            np.asarray(sg["x_axis"][()], float).reshape(-1),
            np.asarray(sg["z_axis"][()], float).reshape(-1),
        )
        if xs.size == nx and zs.size == nz:
            z, x = np.meshgrid(zs, xs, indexing="ij")
            axes = {"x": xs, "z": zs}
    elif "theta_axis" in sg and "r_axis" in sg:
        th, r = (
            np.asarray(sg["theta_axis"][()], float).reshape(-1),
            np.asarray(sg["r_axis"][()], float).reshape(-1),
        )
        rr, tt = np.meshgrid(r, th, indexing="ij")
        x, z, grid, axes = (
            rr * np.sin(tt),
            rr * np.cos(tt),
            "polar",
            {"theta": th, "r": r, "origin": np.zeros(2)},
        )
    if not axes:
        x, z, axes = cartesian_geometry(nz, nx)
    rf = ds.shape[-1] == 1

    def read_frames(a: int, b: int) -> np.ndarray:
        block = ds[a:b]
        if rf:
            from scipy.signal import hilbert

            return to_complex(hilbert(np.asarray(block[..., 0], np.float64), axis=1), path, key)
        return to_complex(block, path, key)

    probe = f.attrs.get("probe")
    if isinstance(probe, bytes):
        probe = probe.decode()
    return Scan(
        path=path,
        layout="zea-legacy",
        key=key,
        n_frames=ds.shape[0],
        shape=(nz, nx),
        read=read_frames,
        x=x,
        z=z,
        grid=grid,
        axes=axes,
        probe=probe,
        center_frequency=_scalar(sg, "center_frequency"),
        sound_speed=_scalar(sg, "sound_speed"),
        dtype=str(ds.dtype),
        compression=str(ds.compression),
        datasets=[key],
        close=f.close,
        extra={"description": f.attrs.get("description")},
    )
