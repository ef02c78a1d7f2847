"""Training data: arrays of images from npz, HDF5, zarr or an image folder, and random patches."""

from __future__ import annotations

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
        data = np.load(path)
        if isinstance(data, np.ndarray):
            arr = data
        else:
            key = key or (data.files[0] if len(data.files) == 1 else None)
            if key not in data.files:
                raise UsageError(f"{path}: key '{key}': not found, arrays are {data.files}")
            arr = data[key]
    elif path.suffix == ".zarr":
        import zarr

        root = zarr.open(str(path), mode="r")
        arr = np.asarray(root[key] if key else root)
    else:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if key not in f:
                    raise UsageError(f"{path}: key '{key}': not found in HDF5 file")
                arr = f[key][()]
        except OSError:
            raise UsageError(f"{path}: not an HDF5, npz, zarr file or image folder") from None
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
    import matplotlib.image as mpimg

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder")
    imgs = []
    for p in files:
        im = np.asarray(mpimg.imread(p), np.float32)
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
        n, _, h, w = self.data.shape
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
