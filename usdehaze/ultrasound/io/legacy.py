"""zea legacy / usbmd (< 0.1): ``data/beamformed_data`` (frames, z, x, n_ch), n_ch 2 = I/Q or
1 = RF (made analytic along depth), parameters under ``scan/``, attributes ``probe`` and
``description``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io._common import (
    assumed_grid_note,
    cartesian_geometry,
    check_frame,
    check_shape,
    dataset_scan,
    iq_block,
    iq_is_complex,
    number,
    vector,
)
from usdehaze.ultrasound.io.registry import HDF5Reader, register_reader
from usdehaze.ultrasound.scan import Scan

KEY = "data/beamformed_data"


def detect(f) -> bool:
    return KEY in f


def _scalar(path: Path, g, name: str) -> float | None:
    """``scan/<name>`` as a positive number (first element), or None when absent."""
    if name in g:
        return number(g[name][()], f"{path}: key 'scan/{name}'", positive=True)
    return None


def _axis(path: Path, sg, name: str, n: int) -> np.ndarray | None:
    """A 1-D axis ``scan/<name>`` that must have one value per row or column."""
    if name not in sg:
        return None
    v = vector(sg[name], path, f"scan/{name}")
    if v.size != n:
        raise UsageError(
            f"{path}: key 'scan/{name}': expected {n} values to match the data, got {v.size}"
        )
    return v


_RANGE_MM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-|–|—|to|\.\.)\s*(\d+(?:\.\d+)?)\s*mm")
_HALF_ANGLE = re.compile(r"(?:±|\+/-|\+-)\s*(\d+(?:\.\d+)?)\s*(?:°|deg)")


def _polar(r: np.ndarray, th: np.ndarray):
    rr, tt = np.meshgrid(r, th, indexing="ij")
    return rr * np.sin(tt), rr * np.cos(tt), "polar", {"theta": th, "r": r, "origin": np.zeros(2)}


def geometry_from_description(text: object, nz: int, nx: int):
    """(x, z, grid, axes, note) of a sector the free-text description states ("polar,
    9.75-120 mm, ±30°": depths of the first and last row, half-angle of the outer columns),
    else None."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if not isinstance(text, str):
        return None
    low = text.lower()
    depth, angle = _RANGE_MM.search(low), _HALF_ANGLE.search(low)
    if not (("polar" in low or "sector" in low) and depth and angle):
        return None
    r0, r1, half = float(depth[1]), float(depth[2]), float(angle[1])
    if not (0 <= r0 < r1 and 0 < half < 90):
        return None
    r = np.linspace(r0, r1, nz) * 1e-3
    th = np.deg2rad(np.linspace(-half, half, nx))
    note = (
        f"no pixel coordinates in the file: geometry taken from its description {text!r} "
        f"(polar, r {r0:g}-{r1:g} mm, ±{half:g}°, rows and columns spread evenly)"
    )
    return (*_polar(r, th), note)


def _geometry(path: Path, sg, nz: int, nx: int, descriptions: tuple = ()):
    """(x, z, grid, axes, note) from ``scan/``: x_axis/z_axis, theta_axis/r_axis (polar about
    the origin), or zea-style xlims/zlims (pixel centres spread evenly between the limits);
    else a sector stated in the first of ``descriptions`` that states one; otherwise the
    default cartesian grid. The note (None for stated pixel positions) says what was inferred
    or assumed."""
    xs, zs = _axis(path, sg, "x_axis", nx), _axis(path, sg, "z_axis", nz)
    th, r = _axis(path, sg, "theta_axis", nx), _axis(path, sg, "r_axis", nz)
    if xs is None and zs is None and "xlims" in sg and "zlims" in sg:
        xl = vector(sg["xlims"], path, "scan/xlims")
        zl = vector(sg["zlims"], path, "scan/zlims")
        if xl.size != 2 or zl.size != 2:
            raise UsageError(f"{path}: key 'scan/xlims': expected [min, max] for x and z limits")
        xs, zs = np.linspace(xl[0], xl[1], nx), np.linspace(zl[0], zl[1], nz)
    if xs is not None and zs is not None:
        z, x = np.meshgrid(zs, xs, indexing="ij")
        return x, z, "cartesian", {"x": xs, "z": zs}, None
    if th is not None and r is not None:
        return (*_polar(r, th), None)
    for text in descriptions:
        described = geometry_from_description(text, nz, nx)
        if described is not None:
            return described
    x, z, axes = cartesian_geometry(nz, nx)
    return x, z, "cartesian", axes, assumed_grid_note()


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
    check_frame(path, key, nz, nx)
    sg = f["scan"] if "scan" in f else {}
    if not hasattr(sg, "keys"):
        raise UsageError(f"{path}: key 'scan': expected a group of scan parameters")
    # the sector may be stated on the dataset itself, its group or the file's root
    said = tuple(g.attrs.get("description") for g in (ds, ds.parent, f))
    x, z, grid, axes, note = _geometry(path, sg, nz, nx, said)
    complex_ = iq_is_complex(ds, path, key)

    def read_frames(a: int, b: int) -> np.ndarray:
        return iq_block(ds[a:b], complex_, path, key)

    probe = f.attrs.get("probe")
    if isinstance(probe, bytes):
        probe = probe.decode(errors="replace")
    return dataset_scan(
        path,
        ds,
        "zea-legacy",
        key,
        read_frames,
        (nz, nx),
        (x, z, grid, axes),
        probe=None if probe is None else str(probe),
        center_frequency=_scalar(path, sg, "center_frequency"),
        sound_speed=_scalar(path, sg, "sound_speed"),
        datasets=[key],
        close=f.close,
        extra={"description": f.attrs.get("description")},
        geometry_note=note,
    )


@register_reader
class LegacyReader(HDF5Reader):
    """zea legacy / usbmd files: ``data/beamformed_data`` (key None or that path)."""

    name, priority = "zea-legacy", 30
    description = "zea legacy / usbmd (HDF5)"
    detect_h5, read_h5 = staticmethod(detect), staticmethod(read)

    @staticmethod
    def owns(f, key: str | None) -> bool:
        return key in (None, KEY)
