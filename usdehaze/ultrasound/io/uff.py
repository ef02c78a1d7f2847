"""USTB UFF: ``beamformed_data`` with ``data/real``, ``data/imag`` (pixels, channels, waves, frames)
and a ``scan`` of class ``uff.linear_scan`` (x_axis, z_axis) or ``uff.sector_scan``
(azimuth_axis, depth_axis, origin).

Pixel order differs by scan class (pyuff-ustb: linear scans run depth fastest, sector scans
azimuth fastest); when the file stores per-pixel ``scan/x`` and ``scan/z`` the order is taken
from them. Files written by MATLAB have the axes reversed (frames, waves, channels, pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io._common import (
    check_frame,
    check_shape,
    dataset_scan,
    number,
    to_complex,
    vector,
)
from usdehaze.ultrasound.io.registry import HDF5Reader, register_reader
from usdehaze.ultrasound.scan import Scan

GROUP = "beamformed_data"


def _cls(obj) -> str:
    c = obj.attrs.get("class", b"")
    return c.decode() if isinstance(c, bytes) else str(c)


def groups(f) -> list[str]:
    """Top-level groups holding UFF beamformed data: class ``uff.beamformed_data`` under any
    name (USTB scripts often call it ``b_data``), or a ``beamformed_data`` group with data/real."""
    import h5py

    out = [
        n
        for n, o in f.items()
        if isinstance(o, h5py.Group) and _cls(o) == "uff.beamformed_data" and "data" in o
    ]
    if not out and f"{GROUP}/data/real" in f and f"{GROUP}/scan" in f:
        out = [GROUP]
    return out


def detect(f) -> bool:
    return bool(groups(f))


def owns(f, key: str | None) -> bool:
    """Whether ``key`` (None, a group name, or a path inside one) points at UFF data."""
    return key is None or key.strip("/").split("/")[0] in groups(f)


def _vec(g, name: str, path: Path) -> np.ndarray:
    if name not in g:
        raise UsageError(f"{path}: key '{g.name}/{name}': missing from the UFF scan")
    v = vector(g[name], path, f"{g.name.strip('/')}/{name}")
    if not v.size:
        raise UsageError(f"{path}: key '{g.name.strip('/')}/{name}': empty axis")
    return v


def _group(path: Path, f, key: str | None, found: list[str]) -> str:
    """The UFF group to read (``key``'s first part, or the only one), checked to hold data and a scan."""
    if key is None and len(found) > 1:
        raise UsageError(f"{path}: several UFF beamformed data groups {found}; pick one with --key")
    group = found[0] if key is None else key.strip("/").split("/")[0]
    if f"{group}/data/real" not in f:
        raise UsageError(f"{path}: key '{group}': no UFF beamformed data (data/real) there")
    if f"{group}/scan" not in f:
        raise UsageError(
            f"{path}: key '{group}/scan': missing, expected a uff linear or sector scan"
        )
    return group


def _scan_axes(path: Path, scan, group: str) -> tuple[str, np.ndarray, np.ndarray, bool]:
    """(class, rows, columns, whether columns run fastest in the pixel order) of a UFF scan."""
    kind = _cls(scan)
    if kind == "uff.linear_scan":
        cols, rows = _vec(scan, "x_axis", path), _vec(scan, "z_axis", path)
        col_fastest = False  # depth runs fastest
    elif kind == "uff.sector_scan":
        cols, rows = _vec(scan, "azimuth_axis", path), _vec(scan, "depth_axis", path)
        col_fastest = True
    else:
        raise UsageError(
            f"{path}: key '{group}/scan': class '{kind}' not supported, expected uff.linear_scan or uff.sector_scan"
        )
    nz, nx = rows.size, cols.size
    check_frame(path, f"{group}/scan", nz, nx)
    if (
        "z" in scan and getattr(scan["z"], "size", None) == nz * nx
    ):  # per-pixel positions: the order
        zp = vector(scan["z"], path, f"{group}/scan/z")
        rr, cc = np.meshgrid(rows, cols, indexing="ij")  # (nz, nx)
        zgrid = rr * np.cos(cc) if kind == "uff.sector_scan" else rr
        fits_col_fastest = np.allclose(zgrid.reshape(-1), zp, atol=1e-9)
        fits_row_fastest = np.allclose(zgrid.T.reshape(-1), zp, atol=1e-9)
        if fits_col_fastest != fits_row_fastest:
            col_fastest = fits_col_fastest
    return kind, rows, cols, col_fastest


def _is_matlab(path: Path, real, imag, group: str, nz: int, nx: int) -> bool:
    """Whether the data's axes are reversed (frames, waves, channels, pixels), as MATLAB writes."""
    npx = nz * nx
    shape = real.shape
    check_shape(shape, path, f"{group}/data/real", "(pixels, channels, waves, frames)")
    if len(shape) != 4:
        raise UsageError(
            f"{path}: key '{group}/data/real': expected 4 dimensions (pixels, channels, waves, frames), got {shape}"
        )
    if shape[0] == npx:
        matlab = False
    elif shape[-1] == npx:
        matlab = True
    else:
        raise UsageError(
            f"{path}: key '{group}/data/real': no axis of {npx} pixels (= {nz} × {nx}) in shape {shape}"
        )
    if imag is not None and tuple(imag.shape) != tuple(shape):
        raise UsageError(
            f"{path}: key '{group}/data/imag': shape {imag.shape} differs from data/real's {shape}"
        )
    return matlab


def _geometry(path: Path, scan, group: str, kind: str, rows: np.ndarray, cols: np.ndarray):
    """(x, z, grid, axes): polar about the scan's origin for a sector scan, else cartesian."""
    if kind != "uff.sector_scan":
        z, x = np.meshgrid(rows, cols, indexing="ij")
        return x, z, "cartesian", {"x": cols, "z": rows}
    origin = np.zeros(2)
    if "origin" in scan and "distance" in scan["origin"]:
        d = number(scan["origin/distance"][()], f"{path}: key '{group}/scan/origin/distance'")
        az = (
            number(scan["origin/azimuth"][()], f"{path}: key '{group}/scan/origin/azimuth'")
            if "azimuth" in scan["origin"]
            else 0.0
        )
        origin = np.array([d * np.sin(az), d * np.cos(az)])
    rr, tt = np.meshgrid(rows, cols, indexing="ij")
    x, z = origin[0] + rr * np.sin(tt), origin[1] + rr * np.cos(tt)
    return x, z, "polar", {"theta": cols, "r": rows, "origin": origin}


def read(path: Path, f, key: str | None) -> Scan:
    found = groups(f)
    group = _group(path, f, key, found)
    real, imag = (
        f[f"{group}/data/real"],
        f[f"{group}/data/imag"] if f"{group}/data/imag" in f else None,
    )
    scan = f[f"{group}/scan"]
    kind, rows, cols, col_fastest = _scan_axes(path, scan, group)
    nz, nx = rows.size, cols.size
    matlab = _is_matlab(path, real, imag, group, nz, nx)
    geometry = _geometry(path, scan, group, kind, rows, cols)
    key_path = f"{group}/data"

    def to_grid(px: np.ndarray) -> np.ndarray:  # (n, pixels) → (n, z, x)
        n = px.shape[0]
        return px.reshape(n, nz, nx) if col_fastest else px.reshape(n, nx, nz).transpose(0, 2, 1)

    def read_frames(a: int, b: int) -> np.ndarray:
        if matlab:
            re = real[a:b, 0, 0, :]
            im = imag[a:b, 0, 0, :] if imag is not None else np.zeros_like(re)
        else:
            re = real[:, 0, 0, a:b].T
            im = imag[:, 0, 0, a:b].T if imag is not None else np.zeros_like(re)
        return to_complex(np.stack([to_grid(re), to_grid(im)], axis=-1), path, key_path)

    n_frames = real.shape[0] if matlab else real.shape[-1]
    return dataset_scan(
        path,
        real,
        "uff",
        key_path,
        read_frames,
        (nz, nx),
        geometry,
        n_frames=n_frames,
        datasets=found,
        close=f.close,
    )


@register_reader
class UffReader(HDF5Reader):
    """USTB UFF files holding beamformed data (the key, if given, inside a UFF group)."""

    name, priority = "uff", 20
    suffixes = (".uff", ".h5", ".mat")
    description = "USTB UFF (HDF5)"
    detect_h5, owns, read_h5 = staticmethod(detect), staticmethod(owns), staticmethod(read)
