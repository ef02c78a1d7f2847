"""Image stacks of B-mode frames → display-domain Scans: a folder of PNG / JPEG / TIFF / BMP
files (one frame each, in natural name order), a multi-page TIFF, or a single image.

Frames must share one size (a folder mixing sizes is refused in one line naming the first odd
file); 8-bit images have 255 grey levels, 16-bit ones 65535. Colour images: luma, with colour
pixels marked. No pixel spacing nor frame rate: the spacing is assumed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError, first_line
from usdehaze.ultrasound.io import _bmode
from usdehaze.ultrasound.io._common import optional_import
from usdehaze.ultrasound.io.registry import Reader, Source, register_reader
from usdehaze.ultrasound.scan import Scan

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
STACK_SUFFIXES = (".tif", ".tiff")  # one file, several pages


def _natural(p: Path) -> list[Any]:
    """Sort key: frame2.png before frame10.png."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder`` (hidden ones left out), in natural order."""
    try:
        files = [
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ]
    except OSError:
        return []
    return sorted(files, key=_natural)


def _iio(path: Path) -> Any:
    """imageio.v3, or one line saying to install it."""
    return optional_import(path, "reading images needs imageio", "video", "imageio.v3")


def _levels(path: Path, dtype: np.dtype) -> int:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    raise UsageError(f"{path}: {dtype} pixels: expected 8- or 16-bit integer grey levels")


def _frame(a: np.ndarray) -> np.ndarray:
    """One decoded image as (z, x) grey or (z, x, c) colour (alpha dropped)."""
    if a.ndim == 3 and a.shape[-1] in (2, 4):  # grey + alpha, RGBA
        a = a[..., :1] if a.shape[-1] == 2 else a[..., :3]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return a


def _decode(path: Path, iio: Any, index: int | None = None) -> np.ndarray:
    try:
        if path.suffix.lower() in STACK_SUFFIXES:  # a page of a TIFF (tifffile: key = page)
            import tifffile

            return np.asarray(tifffile.imread(path, key=index or 0))
        return np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - pillow / tifffile raise many types for bad files
        raise UsageError(
            f"{path}: not an image imageio can decode ({type(exc).__name__}: {first_line(exc)})"
        ) from None


def read_images(path: Path, key: str | None = None) -> Scan:
    """A display-domain Scan of an image folder, a multi-page TIFF or one image."""
    iio = _iio(path)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise UsageError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        if key not in (None, ""):
            raise UsageError(f"{path}: key '{key}': an image folder has no keys")
        first = _frame(_decode(files[0], iio))
        for f in files[1:]:
            props = iio.improps(f)
            shape = tuple(props.shape[:2])
            if shape != first.shape[:2] or np.dtype(props.dtype) != first.dtype:
                raise UsageError(
                    f"{path}: frame '{f.name}' is {shape[0]} x {shape[1]} {props.dtype}, expected "
                    f"{first.shape[0]} x {first.shape[1]} {first.dtype} like '{files[0].name}': "
                    "frames of one size"
                )

        def frame(i: int) -> np.ndarray:
            return _frame(_decode(files[i], iio))

        n, layout = len(files), "images"
    else:
        if key not in (None, ""):
            raise UsageError(f"{path}: key '{key}': an image file has no keys")
        n = _pages(path) if path.suffix.lower() in STACK_SUFFIXES else 1
        first = _frame(_decode(path, iio, 0 if n > 1 else None))

        def frame(i: int) -> np.ndarray:
            a = _frame(_decode(path, iio, i if n > 1 else None))
            if a.shape != first.shape:
                raise UsageError(
                    f"{path}: page {i} is {a.shape}, expected {first.shape} like page 0: "
                    "frames of one size"
                )
            return a

        layout = "images"
    levels = _levels(path, first.dtype)
    samples = first.shape[2] if first.ndim == 3 else 1
    _bmode.check_size(f"{path}", n, first.shape[0], first.shape[1], samples)
    return _bmode.decoded_scan(
        path,
        frame,
        n,
        levels,
        layout=layout,
        key="",
        frame_rate=None,
        dtype=f"{first.dtype} {'RGB' if samples == 3 else 'grey'}",
        datasets=[f.name for f in files][:12] if path.is_dir() else [path.name],
    )


def _pages(path: Path) -> int:
    """Pages of a TIFF file (each a frame)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as t:
            return len(t.pages)
    except Exception as exc:  # noqa: BLE001 - tifffile raises several types for bad files
        raise UsageError(
            f"{path}: not a TIFF file tifffile can read ({type(exc).__name__}: {first_line(exc)})"
        ) from None


@register_reader
class ImagesReader(Reader):
    """Image files by suffix, and folders holding image files (not zarr stores)."""

    name, priority = "images", 50
    suffixes = IMAGE_SUFFIXES
    generic = IMAGE_SUFFIXES  # napari opens folders of them through usdehaze, not every photo
    description = "image stacks (folders of PNG/JPEG/TIFF, multi-page TIFF)"

    @classmethod
    def detect(cls, src: Source) -> bool:
        if src.path.is_dir():
            zarr = src.suffix == ".zarr" or any(
                (src.path / m).exists() for m in (".zgroup", ".zarray", "zarr.json")
            )
            return not zarr and bool(image_files(src.path))
        return src.suffix in cls.suffixes

    @classmethod
    def read(cls, src: Source) -> Scan:
        return read_images(src.path, src.key)
