"""The zea ≥ 0.1 layout (``tracks/track_0/data/<product>/values`` + ``coordinates``): reader and writer.

usdehaze writes exactly the structure zea 0.1.8's ``File.create`` writes for beamformed data, plus
a ``usdehaze`` group with the grid description and optional extra IQ arrays (e.g. the ground
truth ``tissue`` and ``haze`` of simulated scans), readable with ``load_scan(path, key=name)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError, first_line
from usdehaze.ultrasound.io._common import (
    assumed_grid_note,
    cartesian_geometry,
    check_frame,
    check_shape,
    dataset_scan,
    geometry_from_coordinates,
    iq_block,
    iq_is_complex,
    to_complex,
)
from usdehaze.ultrasound.io.registry import HDF5Reader, register_reader
from usdehaze.ultrasound.logcomp import db_to_envelope
from usdehaze.ultrasound.scan import Scan

DATA = "tracks/track_0/data"
PRODUCTS = ("beamformed_data", "envelope_data", "image")
EXTRAS = "usdehaze/extras"


def detect(f) -> bool:
    return DATA in f and any(f"{DATA}/{p}/values" in f for p in PRODUCTS)


def _coords(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    c = np.zeros((*x.shape, 3), np.float32)
    c[..., 0], c[..., 2] = x, z
    return c


AXES = {"polar": {"theta": 1, "r": 0}, "cartesian": {"x": 1, "z": 0}}  # name → image axis


def _check_axes(path, grid: str, axes: dict[str, Any], shape: tuple[int, int]) -> None:
    """The grid kind is known and its 1-D axes (if given) have one value per column or row."""
    if grid not in AXES:
        raise UsageError(f"{path}: grid '{grid}': expected 'polar' or 'cartesian'")
    for name, dim in AXES[grid].items():
        if name in axes and np.size(axes[name]) != shape[dim]:
            raise UsageError(
                f"{path}: axes['{name}']: expected {shape[dim]} values for a {grid} grid of "
                f"(z, x) = {shape}, got {np.size(axes[name])}"
            )
    if grid == "polar" and "origin" in axes and np.size(axes["origin"]) != 2:
        raise UsageError(f"{path}: axes['origin']: expected [x0, z0], got {axes['origin']}")


def write_scan(
    path: str | Path,
    iq: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    *,
    grid: str = "polar",
    axes: dict[str, Any] | None = None,
    probe: str | None = None,
    center_frequency: float | None = None,
    sound_speed: float | None = None,
    extras: dict[str, np.ndarray] | None = None,
    attrs: dict[str, Any] | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write complex IQ (frames, z, x) with pixel positions in the zea ≥ 0.1 layout, atomically."""
    import h5py

    from usdehaze import __version__
    from usdehaze.atomic import H5Output, atomic_path
    from usdehaze.jsonio import dumps

    iq = np.asarray(iq)
    if iq.ndim != 3:
        raise UsageError(f"{path}: iq must be (frames, z, x), got shape {iq.shape}")
    if np.shape(x) != iq.shape[1:] or np.shape(z) != iq.shape[1:]:
        raise UsageError(
            f"{path}: x and z must be (z, x) = {iq.shape[1:]}, got {np.shape(x)} and {np.shape(z)}"
        )
    _check_axes(path, grid, axes or {}, iq.shape[1:])
    coords = _coords(x, z)
    path = Path(path)
    # H5Output: a full disk is an OSError here, not a crash of libhdf5 when the file closes
    with atomic_path(path) as tmp, H5Output(tmp) as f:
        f.attrs["description"] = "beamformed IQ written by usdehaze"
        f.attrs["zea_version"] = "0.1.8"
        for g in ("metadata", "metrics", "probe"):
            f.create_group(g)
        f["probe/name"] = probe or "unknown"
        f["tracks/track_0/transmit_only"] = False
        for name, arr in {
            "beamformed_data": iq,
            **{f"{EXTRAS}/{k}": v for k, v in (extras or {}).items()},
        }.items():
            grp = f.require_group(f"{DATA}/{name}" if name == "beamformed_data" else name)
            arr = np.asarray(arr)
            if arr.shape != iq.shape:
                raise UsageError(
                    f"{path}: extra '{name}' has shape {arr.shape}, expected {iq.shape}"
                )
            vals = np.stack([arr.real, arr.imag], axis=-1).astype(np.float32)
            grp.create_dataset(
                "values", data=vals, chunks=(1, *vals.shape[1:]), compression=compression
            )
            grp.create_dataset("coordinates", data=coords)
            grp.create_dataset(
                "labels", data=np.array(["I", "Q"], dtype=object), dtype=h5py.string_dtype()
            )
        meta = f.require_group("usdehaze")
        meta.attrs["grid"] = grid
        meta.attrs["axes"] = dumps(
            {k: np.asarray(v, float).tolist() for k, v in (axes or {}).items()}
        )
        meta.attrs["usdehaze_version"] = __version__
        for k, v in (("center_frequency", center_frequency), ("sound_speed", sound_speed)):
            if v is not None:
                meta.attrs[k] = float(v)
        for k, v in (attrs or {}).items():  # nested values as JSON, as h5py cannot store them
            meta.attrs[k] = dumps(v) if isinstance(v, (dict, list, tuple)) else v  # NaN: null
    return path


def _resolve_key(
    path: Path, key: str | None, available: list[str], extras: list[str]
) -> tuple[str, str]:
    """(name, group) for ``key``: a product or extra name, or its full group or dataset path
    (so the key a Scan reports, e.g. ``tracks/track_0/data/beamformed_data/values``, works)."""
    if key is None:
        return available[0], f"{DATA}/{available[0]}"
    k = key.strip("/").removesuffix("/values")
    for p in available:
        if k in (p, f"{DATA}/{p}", f"data/{p}"):
            return p, f"{DATA}/{p}"
    for e in extras:
        if k in (e, f"{EXTRAS}/{e}"):
            return e, f"{EXTRAS}/{e}"
    raise UsageError(f"{path}: key '{key}': not found, expected one of {available + extras}")


def _scalar(f, name: str):
    """A scalar dataset's value (first element of a per-transmit array), str for bytes."""
    if name not in f or not hasattr(f[name], "shape"):
        return None
    v = np.asarray(f[name][()])
    v = v.reshape(-1)[0] if v.size else None
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def _number(v) -> float | None:
    """Optional metadata as a positive finite float; anything else (text, NaN, 0) is unknown."""
    try:
        f = None if v is None else float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if f is not None and np.isfinite(f) and f > 0 else None


def _stored_axes(path: Path, meta, shape: tuple[int, int]) -> tuple[str, dict[str, np.ndarray]]:
    """The grid kind and 1-D axes of the ``usdehaze`` group's attributes ``grid`` and ``axes``
    (JSON), checked: an object of finite number lists that fit the grid."""
    where = f"{path}: key 'usdehaze' attribute 'axes'"
    raw = meta["axes"]
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    if not isinstance(raw, str):
        raise UsageError(f"{where}: expected JSON text, got {type(raw).__name__}")
    try:
        stored = json.loads(raw, parse_constant=lambda c: float("nan"))
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{where}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(stored, dict):
        raise UsageError(f"{where}: expected a JSON object of axes, got {type(stored).__name__}")
    axes = {}
    for k, v in stored.items():
        arr = np.asarray(v, dtype=object).reshape(-1)
        if not all(
            isinstance(e, (int, float)) and not isinstance(e, bool) and np.isfinite(e) for e in arr
        ):
            raise UsageError(f"{where}: axis '{k}': expected a list of finite numbers")
        axes[k] = np.asarray(arr, np.float64)
    grid = meta.get("grid", "polar" if "theta" in axes else "cartesian")
    if isinstance(grid, bytes):
        grid = grid.decode(errors="replace")
    if axes:
        try:
            _check_axes(path, str(grid), axes, shape)
        except UsageError as exc:
            raise UsageError(
                f"{path}: key 'usdehaze': {str(exc).removeprefix(f'{path}: ')}"
            ) from None
        needed = AXES[str(grid)]
        missing = [n for n in needed if n not in axes]
        if missing:
            raise UsageError(f"{where}: axis '{missing[0]}' missing for a {grid} grid")
    return str(grid), axes


def _values(path: Path, f, key: str | None) -> tuple[str, str, Any, list[str], list[str]]:
    """(product or extra name, its group, its ``values`` dataset checked, products, extras)."""
    extras = sorted(f[EXTRAS].keys()) if EXTRAS in f else []
    available = [p for p in PRODUCTS if f"{DATA}/{p}/values" in f]
    name, group = _resolve_key(path, key, available, extras)
    ds = f[f"{group}/values"]
    magnitude = name in ("envelope_data", "image")
    rank = 3 if magnitude else 4
    if ds.ndim != rank:
        raise UsageError(
            f"{path}: key '{group}/values': expected {rank} dimensions, got shape {ds.shape}"
        )
    check_shape(ds.shape, path, f"{group}/values", "frames")
    if not magnitude and ds.shape[-1] not in (1, 2):
        raise UsageError(
            f"{path}: key '{group}/values': expected a last axis of 2 (I/Q) or 1 (RF), got {ds.shape[-1]}"
        )
    return name, group, ds, available, extras


def _geometry(path: Path, f, group: str, ds) -> tuple[tuple, str | None, Any]:
    """((x, z, grid, axes), the geometry note, the ``usdehaze`` attributes): from the product's
    coordinates, else the default grid; axes stored by usdehaze take precedence."""
    nz, nx = ds.shape[1:3]
    if f"{group}/coordinates" in f:
        coords = f[f"{group}/coordinates"]
        if coords.ndim not in (3, 4) or tuple(coords.shape[-3:]) != (nz, nx, 3):
            raise UsageError(
                f"{path}: key '{group}/coordinates': expected ({nz}, {nx}, 3) to match "
                f"values {ds.shape}, got {coords.shape}"
            )
        first = coords[0] if coords.ndim == 4 else coords[()]  # one grid for all frames
        x, z, grid, axes = geometry_from_coordinates(first, path, f"{group}/coordinates")
        note = None
    else:
        x, z, axes = cartesian_geometry(nz, nx)
        grid = "cartesian"
        note = assumed_grid_note()
    meta = f["usdehaze"].attrs if "usdehaze" in f else {}
    if "axes" in meta:
        stored_grid, stored = _stored_axes(path, meta, (nz, nx))
        if stored:
            axes, grid = stored, stored_grid
            note = None
    return (x, z, grid, axes), note, meta


def _acoustics(f, meta) -> dict[str, Any]:
    """Probe name, centre frequency and sound speed: usdehaze's attributes, then zea's places."""
    probe = _scalar(f, "probe/name")
    probe = None if probe is None else str(probe)
    center_frequency = _number(meta.get("center_frequency"))
    if center_frequency is None:  # zea's own places: the track's scan, then the probe
        center_frequency = _number(_scalar(f, "tracks/track_0/scan/center_frequency"))
    if center_frequency is None:
        center_frequency = _number(_scalar(f, "probe/probe_center_frequency"))
    sound_speed = _number(meta.get("sound_speed"))
    if sound_speed is None:
        sound_speed = _number(_scalar(f, "tracks/track_0/scan/sound_speed"))
    return {"probe": probe, "center_frequency": center_frequency, "sound_speed": sound_speed}


def read(path: Path, f, key: str | None) -> Scan:
    """Scan from an open zea file; ``key`` picks a product or an extra (default: beamformed IQ)."""
    name, group, ds, available, extras = _values(path, f, key)
    magnitude = name in ("envelope_data", "image")
    key_path = f"{group}/values"
    nz, nx = ds.shape[1:3]
    check_frame(path, key_path, nz, nx)
    complex_ = iq_is_complex(ds, path, key_path) if not magnitude else None
    geometry, note, meta = _geometry(path, f, group, ds)

    def read_frames(a: int, b: int) -> np.ndarray:
        block = ds[a:b]
        if magnitude:
            if name == "image":  # dB image: back to an envelope
                block = db_to_envelope(block)
            return to_complex(np.asarray(block), path, key_path, iq_axis=False)
        return iq_block(block, complex_, path, key_path)

    return dataset_scan(
        path,
        ds,
        "zea",
        key_path,
        read_frames,
        (nz, nx),
        geometry,
        **_acoustics(f, meta),
        magnitude_only=magnitude,
        datasets=available + [f"extras: {e}" for e in extras],
        close=f.close,
        geometry_note=note,
    )


@register_reader
class ZeaReader(HDF5Reader):
    """zea ≥ 0.1 files: ``tracks/track_0/data/<product>/values``."""

    name, priority = "zea", 40
    description = "zea ≥ 0.1 (HDF5)"
    detect_h5, read_h5 = staticmethod(detect), staticmethod(read)
