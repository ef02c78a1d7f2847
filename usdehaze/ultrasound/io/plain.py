"""Plain arrays: one complex dataset (frames, z, x) or (z, x), or a real one with a trailing
axis of 2 (I/Q), in HDF5 or zarr. No geometry is stored, so pixels get a cartesian grid with
pitch ``attrs['pitch']`` (m) when present, else 0.1 mm."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io._common import (
    DEFAULT_PITCH,
    assumed_grid_note,
    cartesian_geometry,
    check_frame,
    check_shape,
    number,
    to_complex,
)
from usdehaze.ultrasound.io.registry import Reader, Source, register_reader
from usdehaze.ultrasound.scan import Scan


def candidates(datasets: dict) -> list[str]:
    """Datasets that can hold IQ frames."""
    out = []
    for name, ds in datasets.items():
        shape, dtype = tuple(ds.shape), np.dtype(ds.dtype)
        if dtype.kind == "c" and len(shape) in (2, 3):
            out.append(name)
        elif dtype.kind == "f" and len(shape) in (3, 4) and shape[-1] == 2:
            out.append(name)
    return out


def read(
    path: Path, datasets: dict, key: str | None, close=lambda: None, fmt: str = "hdf5"
) -> Scan:
    found = candidates(datasets)
    if key is None:
        if len(found) != 1:
            what = "no dataset fits" if not found else f"several fit: {found}; pick one with --key"
            raise UsageError(
                f"{path}: no known layout; {what} (tried zea, zea legacy, UFF, plain complex arrays; datasets: {sorted(datasets)[:12]})"
            )
        key = found[0]
    if key not in datasets:
        raise UsageError(f"{path}: key '{key}': not found (datasets: {sorted(datasets)[:12]})")
    if key not in found:
        ds = datasets[key]
        raise UsageError(
            f"{path}: key '{key}': expected complex (frames, z, x) or real (frames, z, x, 2), got {np.dtype(ds.dtype)} {tuple(ds.shape)}"
        )
    ds = datasets[key]
    complex_ = np.dtype(ds.dtype).kind == "c"
    single = ds.ndim == (2 if complex_ else 3)
    check_shape(tuple(ds.shape), path, key, "(frames, z, x)")
    nz, nx = ds.shape[-2:] if complex_ else ds.shape[-3:-1]
    check_frame(path, key, nz, nx)
    attrs = getattr(ds, "attrs", {})
    pitch = (
        number(attrs["pitch"], f"{path}: key '{key}' attribute 'pitch'", positive=True)
        if "pitch" in attrs
        else DEFAULT_PITCH
    )
    x, z, axes = cartesian_geometry(nz, nx, pitch)
    note = None if "pitch" in attrs else assumed_grid_note()

    def read_frames(a: int, b: int) -> np.ndarray:
        block = np.asarray(ds[()])[None] if single else np.asarray(ds[a:b])
        if complex_:
            from usdehaze.ultrasound.io._common import check_finite

            block = block.astype(np.complex64)
            check_finite(block, path, key)
            return block
        return to_complex(block, path, key)

    return Scan(
        path=path,
        layout=f"plain-{fmt}",
        key=key,
        n_frames=1 if single else ds.shape[0],
        shape=(nz, nx),
        read=read_frames,
        x=x,
        z=z,
        grid="cartesian",
        axes=axes,
        dtype=str(np.dtype(ds.dtype)),
        compression=str(getattr(ds, "compression", None)),
        datasets=sorted(datasets),
        close=close,
        geometry_note=note,
    )


def _h5_datasets(f) -> dict:
    import h5py

    out = {}
    f.visititems(
        lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None
    )
    return out


def _read_zarr(path: Path, key: str | None) -> Scan:
    import zarr

    try:
        root = zarr.open(str(path), mode="r")
    except Exception:  # noqa: BLE001 - zarr raises several types for non-stores
        meta = next((m for m in ("zarr.json", ".zgroup", ".zarray") if (path / m).is_file()), None)
        if meta is not None:  # a store whose own metadata is damaged
            raise UsageError(
                f"{path}: key '{meta}': does not parse, expected zarr metadata"
            ) from None
        raise UsageError(f"{path}: not a zarr store") from None
    if hasattr(root, "shape"):  # a bare array
        return read(path, {"": root}, key if key is not None else "", fmt="zarr")
    arrays = {}

    def walk(g, prefix=""):
        for name, a in g.arrays():
            arrays[prefix + name] = a
        for name, sub in g.groups():
            walk(sub, prefix + name + "/")

    walk(root)
    return read(path, arrays, key, fmt="zarr")


@register_reader
class PlainReader(Reader):
    """The fallback: a zarr store (folder or .zarr), else one complex array in an HDF5 file."""

    name, priority = "plain", -100
    suffixes = (".h5", ".hdf5", ".hdf", ".he5", ".mat", ".zarr")
    description = "plain complex arrays (HDF5, zarr)"

    @classmethod
    def detect(cls, src: Source) -> bool:
        return True

    @classmethod
    def read(cls, src: Source) -> Scan:
        if src.path.is_dir() or src.suffix == ".zarr":
            return _read_zarr(src.path, src.key)
        f = src.take_h5()
        return read(src.path, _h5_datasets(f), src.key, f.close, "hdf5")
