"""Training data: arrays of images from npz, HDF5, zarr or an image folder, and random patches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from usdehaze.errors import UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def load_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """Images as float32 (N, C, H, W) from ``.npz``/``.npy``, HDF5, zarr or a folder of images."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: training data not found")
    if path.is_dir() and path.suffix != ".zarr":
        arr = _load_folder(path)
    elif path.suffix in (".npz", ".npy"):
        arr, key = _read_numpy(path, key)
    elif path.suffix == ".zarr":
        arr = _read_zarr(path, key)
    else:
        arr = _read_hdf5(path, key)
    return _as_images(arr, path, key)


def _why(exc: BaseException) -> str:
    """The first line of an exception's message (its type when empty), at most 200 characters."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _read_numpy(path: Path, key: str | None) -> tuple[np.ndarray, str | None]:
    """The array of a ``.npy`` file, or of a ``.npz`` file's ``key`` (its only array when none
    is named), and the key used."""
    try:  # allow_pickle stays False: an object array in the file is refused, never run
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data, key
        key = key or (data.files[0] if len(data.files) == 1 else None)
        if key not in data.files:
            raise UsageError(f"{path}: key '{key}': not found, arrays are {data.files}")
        return data[key], key
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - BadZipFile, truncated arrays, pickled objects
        raise UsageError(f"{path}: not a readable {path.suffix} array file ({_why(exc)})") from None


def _read_zarr(path: Path, key: str | None) -> np.ndarray:
    """A zarr store's array, or its group's array ``key``."""
    import zarr

    try:
        root = zarr.open(str(path), mode="r")
        return np.asarray(root[key] if key else root)
    except Exception as exc:  # noqa: BLE001 - zarr raises many types for damaged stores
        raise UsageError(f"{path}: key '{key}': not a readable zarr array ({_why(exc)})") from None


def _read_hdf5(path: Path, key: str | None) -> np.ndarray:
    """An HDF5 file's dataset ``key`` (required), read only from inside the file."""
    import h5py

    from usdehaze.hdf5 import only_inside

    if not key:
        raise UsageError(f"{path}: key: missing, name the HDF5 dataset with data.key")
    try:
        with h5py.File(path, "r") as f:
            only_inside(f, path)
            if key not in f:
                raise UsageError(f"{path}: key '{key}': not found in HDF5 file")
            return f[key][()]
    except OSError:
        raise UsageError(f"{path}: not an HDF5, npz, zarr file or image folder") from None


def _as_images(arr: np.ndarray, path: Path, key: str | None) -> np.ndarray:
    """``arr`` checked (numbers, (N, H, W) or (N, C, H, W), finite) as float32 (N, C, H, W)."""
    if np.asarray(arr).dtype.kind not in "iuf":
        raise UsageError(
            f"{path}: key '{key}': expected numbers, got {np.asarray(arr).dtype} values"
        )
    arr = np.asarray(arr, np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise UsageError(
            f"{path}: key '{key}': expected (N, H, W) or (N, C, H, W), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise UsageError(f"{path}: key '{key}': contains NaN or Inf")
    return arr


def _load_folder(path: Path) -> np.ndarray:
    """A folder's images (all of one size) in [-1, 1] as (N, C, H, W)."""
    import matplotlib.image as mpimg

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder")
    imgs = []
    for p in files:
        try:
            im = np.asarray(mpimg.imread(p), np.float32)
        except Exception as exc:  # noqa: BLE001 - PIL/matplotlib raise many types for bad images
            raise UsageError(f"{p}: not a readable image ({_why(exc)})") from None
        if im.max() > 1.5:
            im = im / 255.0
        im = im[..., :3].transpose(2, 0, 1) if im.ndim == 3 else im[None]
        imgs.append(im * 2 - 1)  # [0, 1] -> [-1, 1]
    shapes = {i.shape for i in imgs}
    if len(shapes) > 1:
        raise UsageError(f"{path}: images differ in size {sorted(shapes)[:3]}; resize them first")
    return np.stack(imgs)


class PatchSampler:
    """Random patches (and flips) from an (N, C, H, W) array, driven by one torch.Generator."""

    def __init__(self, data: np.ndarray, patch: int | None = 64, flips: bool = True) -> None:
        self.data = torch.from_numpy(np.ascontiguousarray(data))
        n, self.channels, h, w = self.data.shape
        self.patch = min(patch or max(h, w), h, w) if patch else None
        self.flips = flips

    def sample(self, batch: int, generator: torch.Generator) -> Tensor:
        n, c, h, w = self.data.shape
        idx = torch.randint(n, (batch,), generator=generator)
        if self.patch is None:
            out = self.data[idx].clone()
        else:
            p = self.patch
            i0 = torch.randint(h - p + 1, (batch,), generator=generator)
            j0 = torch.randint(w - p + 1, (batch,), generator=generator)
            out = torch.stack(
                [
                    self.data[k, :, i : i + p, j : j + p]
                    for k, i, j in zip(idx.tolist(), i0.tolist(), j0.tolist())
                ]
            )
        if self.flips:
            flip = torch.rand(batch, generator=generator) < 0.5
            out[flip] = out[flip].flip(-1)
        return out


class MaskedPatchSampler:
    """Random patches from frames of several sizes, centred on a chosen pixel, with the pixel
    mask cut alongside: a loss on masked pixels only trains on regions smaller than a patch
    (cavities), with the real surroundings as context.

    ``arrays``: (N, C, H, W) each, the same C; ``masks``: per array None (every pixel counts),
    a boolean (H, W) for all its frames, or (N, H, W) per frame. The patch side is ``patch``
    or the smallest frame side if smaller; a centre near an edge gives a patch shifted inside.
    ``sample`` returns (patches, masks): masks (B, 1, p, p) float, or None when no array has one.
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        masks: Sequence[np.ndarray | None] | None = None,
        patch: int = 64,
        flips: bool = True,
    ) -> None:
        if not arrays:
            raise ValueError("MaskedPatchSampler needs at least one array")
        masks = list(masks) if masks is not None else [None] * len(arrays)
        if len(masks) != len(arrays):
            raise ValueError(f"{len(masks)} masks for {len(arrays)} arrays")
        self.frames = [torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in arrays]
        channels = {a.shape[1] for a in self.frames}
        if len(channels) != 1 or any(a.dim() != 4 for a in self.frames):
            raise ValueError("arrays must be (N, C, H, W) with the same C")
        self.channels = channels.pop()
        self.patch = min(patch, *(min(a.shape[2:]) for a in self.frames))
        self.flips = flips
        self.masked = any(m is not None for m in masks)
        self.masks: list[Tensor | None] = []
        # blocks of candidate centres: (array, first frame, frames, flat pixel indices or None)
        self.blocks: list[tuple[int, int, int, np.ndarray | None]] = []
        for k, (a, m) in enumerate(zip(self.frames, masks)):
            n, _, h, w = a.shape
            if m is None:
                self.masks.append(None)
                self.blocks.append((k, 0, n, None))
                continue
            m = np.asarray(m, bool)
            if m.shape not in ((h, w), (n, h, w)):
                raise ValueError(
                    f"mask {k}: shape {m.shape}, expected ({h}, {w}) or ({n}, {h}, {w})"
                )
            self.masks.append(torch.from_numpy(np.ascontiguousarray(m)))
            if m.ndim == 2:
                self.blocks.append((k, 0, n, np.flatnonzero(m).astype(np.int32)))
            else:
                for f in range(n):
                    self.blocks.append((k, f, 1, np.flatnonzero(m[f]).astype(np.int32)))
        counts = [
            nf * (self.frames[k].shape[2] * self.frames[k].shape[3] if c is None else len(c))
            for k, _, nf, c in self.blocks
        ]
        self.pixels = int(sum(counts))  # candidate centres over all frames
        if self.pixels == 0:
            raise ValueError("no masked pixel to train on")
        self._ends = np.cumsum(counts)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        p = self.patch
        picks = torch.randint(self.pixels, (batch,), generator=generator).numpy()
        xs, ms = [], []
        for r in picks:
            b = int(np.searchsorted(self._ends, r, side="right"))
            local = int(r - (self._ends[b - 1] if b else 0))
            k, f0, _, centres = self.blocks[b]
            a = self.frames[k]
            h, w = a.shape[2:]
            size = h * w if centres is None else len(centres)
            f = f0 + local // size
            pix = local % size if centres is None else int(centres[local % size])
            ci, cj = divmod(pix, w)
            i0 = min(max(ci - p // 2, 0), h - p)
            j0 = min(max(cj - p // 2, 0), w - p)
            xs.append(a[f, :, i0 : i0 + p, j0 : j0 + p])
            if self.masked:
                m = self.masks[k]
                if m is None:
                    ms.append(torch.ones(p, p, dtype=torch.bool))
                else:
                    m = m if m.dim() == 2 else m[f]
                    ms.append(m[i0 : i0 + p, j0 : j0 + p])
        out = torch.stack(xs)
        mask = torch.stack(ms)[:, None].float() if self.masked else None
        if self.flips:
            flip = torch.rand(batch, generator=generator) < 0.5
            out[flip] = out[flip].flip(-1)
            if mask is not None:
                mask[flip] = mask[flip].flip(-1)
        return out, mask
