"""Ways to damage a finished result file (HDF5 or zarr) or run-many store after it was written,
as a disk, a tool or a careless hand could: each takes the copy's path and one dataset (or
attribute) inside it and changes only that. Used by tests/test_fuzz_second.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np


def is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or any(p.suffix == ".zarr" for p in path.parents)


def datasets(path: Path) -> list[str]:
    """Names of the arrays of a result (HDF5 file or zarr group), top level only."""
    if is_zarr(path):
        return sorted(p.name for p in path.iterdir() if (p / "zarr.json").is_file())
    with h5py.File(path, "r") as f:
        return sorted(n for n in f if isinstance(f[n], h5py.Dataset))


def _replace(path: Path, name: str, data: np.ndarray) -> None:
    """Dataset ``name`` replaced by ``data`` (same name, new shape or type)."""
    if is_zarr(path):
        import zarr

        shutil.rmtree(path / name)
        g = zarr.open_group(str(path), mode="r+")
        if data.dtype.kind == "U":
            g.create_array(name, shape=data.shape, dtype=str)[...] = data
        else:
            g.create_array(name, data=data)
        return
    with h5py.File(path, "r+") as f:
        del f[name]
        f[name] = data.astype(h5py.string_dtype()) if data.dtype.kind == "U" else data


def _read(path: Path, name: str) -> np.ndarray:
    if is_zarr(path):
        import zarr

        return np.asarray(zarr.open_group(str(path), mode="r")[name][...])
    with h5py.File(path, "r") as f:
        return np.asarray(f[name][()])


def remove(path: Path, name: str) -> None:
    if is_zarr(path):
        shutil.rmtree(path / name)
    else:
        with h5py.File(path, "r+") as f:
            del f[name]


def flatten(path: Path, name: str) -> None:
    """The dataset as 1-D: the same values, one dimension."""
    _replace(path, name, _read(path, name).reshape(-1))


def strings(path: Path, name: str) -> None:
    """The dataset as text: 'nan' for every value."""
    _replace(path, name, np.full(_read(path, name).shape[:1] or (1,), "nan"))


def longer(path: Path, name: str) -> None:
    """One more entry along the first axis (an axis or a frame count of the wrong length)."""
    a = _read(path, name)
    _replace(path, name, np.concatenate([a, a[:1]]) if a.ndim else np.array([a, a]))


def _chunk_files(path: Path, name: str) -> list[Path]:
    root = path / name
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "zarr.json")


def corrupt_chunk(path: Path, name: str) -> bool:
    """Garbage over the middle of the dataset's first stored chunk; False when it has none or
    nothing could see it (HDF5: neither a filter nor a checksum)."""
    if is_zarr(path):
        files = _chunk_files(path, name)
        if not files:
            return False
        data = bytearray(files[0].read_bytes())
        mid = len(data) // 2
        data[max(0, mid - 8) : mid + 8] = b"\xff" * len(data[max(0, mid - 8) : mid + 8])
        files[0].write_bytes(bytes(data))
        return True
    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.chunks is None or not (ds.compression or ds.fletcher32) or not ds.id.get_num_chunks():
            return False
        info = ds.id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff" * min(16, info.size // 2))
    return True


def delete_chunk(path: Path, name: str) -> bool:
    """The dataset's last stored chunk removed (zarr only: HDF5 has no chunk files)."""
    if not is_zarr(path):
        return False
    files = _chunk_files(path, name)
    if not files:
        return False
    files[-1].unlink()
    return True


def break_metadata(path: Path, name: str) -> bool:
    """The dataset's zarr.json cut in half (zarr only)."""
    if not is_zarr(path):
        return False
    meta = path / name / "zarr.json"
    meta.write_text(meta.read_text()[: len(meta.read_text()) // 2])
    return True


def set_attr(path: Path, key: str, value: object) -> None:
    """Root attribute ``key`` of a result or store set to ``value``."""
    if is_zarr(path):
        meta = path / "zarr.json"
        doc = json.loads(meta.read_text())
        doc.setdefault("attributes", {})[key] = value
        meta.write_text(json.dumps(doc))
        return
    with h5py.File(path, "r+") as f:
        f.attrs[key] = value


DATASET_DAMAGE: dict[str, Callable[[Path, str], object]] = {
    "remove": remove,
    "flatten": flatten,
    "strings": strings,
    "longer": longer,
    "corrupt_chunk": corrupt_chunk,
    "delete_chunk": delete_chunk,
    "break_metadata": break_metadata,
}
