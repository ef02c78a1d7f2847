"""Image datasets for the natural-image experiments, as float32 arrays (N, C, S, S) in [-1, 1].

Real datasets are read from where the user put them (nothing is downloaded); a missing one is a
:class:`UsageError` that says where to put it. Offline built-ins make demos and tests possible:

- ``photos``: crops of the photographs bundled with scikit-image (signal),
- ``digits``: the 8×8 digits bundled with scikit-learn, upsampled (MNIST-like noise),
- ``glyphs``: letters drawn with matplotlib's DejaVu fonts (TMNIST-style noise).

A spec is a mapping ``{kind, path?, count?, offset?, seed?}``; :func:`load_images` reads it with
the kind's entry in ``LOADERS`` (adding a dataset is one entry there).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Where each real dataset comes from and what the loader expects, for "not found" messages.
WHERE = {
    "celeba": "the 'img_align_celeba' folder of CelebA (202,599 JPEGs, e.g. 000001.jpg)",
    "mnist": "a folder with MNIST's IDX files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz])",
    "folder": "a folder of images (FFHQ's images1024x1024 or thumbnails128x128, or any other)",
    "tmnist": "TMNIST_Data.csv of the TMNIST (Typeface MNIST) dataset (columns names, labels, 1..784)",
}

# scikit-image photographs: first group for training crops, second held out for testing.
PHOTOS_TRAIN = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "page",
    "text",
    "clock",
)
PHOTOS_TEST = (
    "cat",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "horse",
    "retina",
    "colorwheel",
    "logo",
)
PHOTOS_TEST_FALLBACK = ("cat", "coins", "hubble_deep_field", "immunohistochemistry")


# -- resizing ---------------------------------------------------------------------------------
def to_square(img: np.ndarray, size: int, crop: float | None = None) -> np.ndarray:
    """Centre-crop an (H, W[, C]) float image to a square (``crop`` = side as a fraction of the
    short side) and resize it to ``size``×``size`` with an antialiasing filter (PIL, bicubic)."""
    from PIL import Image

    h, w = img.shape[:2]
    side = min(h, w) if crop is None else max(1, int(round(crop * min(h, w))))
    i0, j0 = (h - side) // 2, (w - side) // 2
    img = img[i0 : i0 + side, j0 : j0 + side]
    if img.shape[0] == size:
        return img.astype(np.float32)
    chans = [img] if img.ndim == 2 else [img[..., c] for c in range(img.shape[2])]
    out = [
        np.asarray(
            Image.fromarray(c.astype(np.float32), mode="F").resize((size, size), Image.BICUBIC)
        )
        for c in chans
    ]
    return (out[0] if img.ndim == 2 else np.stack(out, -1)).astype(np.float32)


def _channels(img: np.ndarray, channels: int) -> np.ndarray:
    """(H, W[, C]) in [0, 1] -> (channels, H, W) in [-1, 1]; gray is replicated, RGB averaged."""
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3]
    if channels == 1 and img.shape[-1] != 1:
        img = img.mean(-1, keepdims=True)
    elif channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, -1)
    elif channels not in (1, 3):
        raise UsageError(f"config: key 'channels': expected 1 or 3, got {channels}")
    return np.clip(img, 0.0, 1.0).transpose(2, 0, 1) * 2.0 - 1.0


def _stack(
    images: Iterable[np.ndarray], size: int, channels: int, crop: float | None
) -> np.ndarray:
    out = [_channels(to_square(im, size, crop), channels) for im in images]
    if not out:
        return np.zeros((0, channels, size, size), np.float32)
    return np.stack(out).astype(np.float32)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "F", "I;16") else im, np.float32)
    return arr / (65535.0 if arr.max() > 255 else 255.0)


# -- real datasets ----------------------------------------------------------------------------
def _need(path: str | None, kind: str, key: str = "path") -> Path:
    if not path:
        raise UsageError(f"config: key '{key}': dataset '{kind}' needs a path to {WHERE[kind]}")
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(
            f"{p}: {kind} dataset not found; put {WHERE[kind]} there (nothing is downloaded)"
        )
    return p


def image_files(folder: Path, kind: str = "folder") -> list[Path]:
    """Sorted image files under ``folder`` (recursive, so FFHQ's numbered sub-folders work)."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: expected a folder with {WHERE[kind]}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(
            f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in folder; put {WHERE[kind]} there"
        )
    return files


def load_folder(
    path: str | None,
    size: int,
    channels: int,
    count: int | None,
    offset: int = 0,
    crop: float | None = None,
    kind: str = "folder",
) -> np.ndarray:
    """Images ``offset .. offset+count`` of a folder (sorted names), centre-cropped and resized."""
    files = image_files(_need(path, kind), kind)
    sel = files[offset : None if count is None else offset + count]
    if count is not None and len(sel) < count:
        raise UsageError(
            f"{path}: key 'count': asked for {count} images from {offset}, folder has {len(files)}"
        )
    return _stack((_read_image(p) for p in sel), size, channels, crop)


def load_celeba(
    path: str | None, size: int, channels: int, count: int | None, offset: int = 0
) -> np.ndarray:
    """CelebA aligned faces: the usual 140-pixel centre crop of the 178×218 frame, then resize."""
    p = _need(path, "celeba")
    if p.is_dir() and (p / "img_align_celeba").is_dir():
        p = p / "img_align_celeba"
    return load_folder(str(p), size, channels, count, offset, crop=140 / 178, kind="celeba")


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format: magic, dims, big-endian uint8 data), optionally gzipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
            raise UsageError(f"{path}: not an IDX file of unsigned bytes (magic {head.hex()})")
        ndim = head[3]
        dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        data = np.frombuffer(f.read(), np.uint8)
    if data.size != int(np.prod(dims)):
        raise UsageError(
            f"{path}: IDX header says {dims} ({int(np.prod(dims))} bytes), file has {data.size}"
        )
    return data.reshape(dims)


def load_mnist(
    path: str | None,
    size: int,
    channels: int,
    count: int | None,
    offset: int = 0,
    split: str = "train",
) -> np.ndarray:
    """MNIST digits from IDX files (a folder with them, or one ``*-images-idx3-ubyte[.gz]``)."""
    p = _need(path, "mnist")
    if p.is_dir():
        stem = "train-images-idx3-ubyte" if split == "train" else "t10k-images-idx3-ubyte"
        cands = [
            p / stem,
            p / f"{stem}.gz",
            p / stem.replace("-idx3", ".idx3"),
            p / f"{stem.replace('-idx3', '.idx3')}.gz",
        ]
        found = [c for c in cands if c.is_file()]
        if not found:
            raise UsageError(f"{p}: no {stem}[.gz] in folder; put {WHERE['mnist']} there")
        p = found[0]
    imgs = read_idx(p)
    if imgs.ndim != 3:
        raise UsageError(f"{p}: expected IDX images (N, H, W), got dimensions {imgs.shape}")
    sel = imgs[offset : None if count is None else offset + count]
    return _stack((im.astype(np.float32) / 255.0 for im in sel), size, channels, None)


def load_tmnist(
    path: str | None, size: int, channels: int, count: int | None, offset: int = 0
) -> np.ndarray:
    """TMNIST characters from its CSV (two label columns, then 784 pixels of a 28×28 image)."""
    p = _need(path, "tmnist")
    rows = []
    with open(p) as f:
        header = f.readline()
        if header.count(",") < 784:
            raise UsageError(
                f"{p}: expected a CSV header with 2 label columns and 784 pixel columns"
            )
        for i, line in enumerate(f):
            if i < offset:
                continue
            if count is not None and len(rows) >= count:
                break
            vals = line.rstrip("\n").split(",")[-784:]
            rows.append(np.asarray(vals, np.float32).reshape(28, 28) / 255.0)
    return _stack(rows, size, channels, None)


# -- offline built-ins ------------------------------------------------------------------------
def _photo(name: str) -> np.ndarray | None:
    import skimage.data

    try:
        img = getattr(skimage.data, name)()
    except Exception:  # noqa: BLE001 - an optional image that needs pooch data is skipped
        return None
    img = np.asarray(img, np.float32)
    return img / (65535.0 if img.max() > 255 else 255.0 if img.max() > 1.0 else 1.0)


def builtin_photos(
    size: int,
    channels: int,
    count: int,
    split: str = "train",
    seed: int = 0,
    scale: tuple[float, float] = (0.15, 0.5),
) -> np.ndarray:
    """Random square crops (side a random fraction ``scale`` of the short side) of scikit-image's
    bundled photographs; ``split='test'`` draws from photographs never used for training."""
    names = PHOTOS_TRAIN if split == "train" else PHOTOS_TEST
    photos = [p for p in (_photo(n) for n in names) if p is not None]
    if not photos:
        raise UsageError("photos: scikit-image's bundled photographs are not available")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        img = photos[rng.integers(len(photos))]
        h, w = img.shape[:2]
        side = int(rng.uniform(*scale) * min(h, w))
        side = max(side, size // 2)
        i0, j0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[i0 : i0 + side, j0 : j0 + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.ascontiguousarray(crop))
    return _stack(out, size, channels, None)


def builtin_digits(size: int, channels: int, count: int | None, offset: int = 0) -> np.ndarray:
    """scikit-learn's 1,797 8×8 digits, padded like MNIST (digit in the central 20/28) and upsampled."""
    from sklearn.datasets import load_digits

    imgs = load_digits().images.astype(np.float32) / 16.0
    sel = imgs[offset : None if count is None else offset + count]
    if count is not None and len(sel) < count:
        raise UsageError(
            f"digits: key 'count': {count} from {offset} asked, only {len(imgs)} bundled digits"
        )
    pad = 3  # 8 -> 14 with 3 on each side: the digit covers ~ 20/28 of the frame as in MNIST
    sel = np.pad(sel, ((0, 0), (pad, pad), (pad, pad)))
    return _stack(sel, size, channels, None)


GLYPH_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabdefghqrt"


def builtin_glyphs(size: int, channels: int, count: int, seed: int = 0) -> np.ndarray:
    """Letters in random DejaVu typefaces, small jitter in scale and position (TMNIST-like)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    styles = [
        ("DejaVu Sans", "normal", "normal"),
        ("DejaVu Sans", "bold", "normal"),
        ("DejaVu Serif", "normal", "normal"),
        ("DejaVu Serif", "bold", "italic"),
        ("DejaVu Sans Mono", "bold", "normal"),
        ("DejaVu Sans", "normal", "italic"),
    ]
    px = 28
    out = []
    for _ in range(count):
        fig = Figure(figsize=(1, 1), dpi=px)
        canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("black")
        fam, weight, style = styles[rng.integers(len(styles))]
        ch = GLYPH_CHARS[rng.integers(len(GLYPH_CHARS))]
        fig.text(
            0.5 + rng.uniform(-0.06, 0.06),
            0.5 + rng.uniform(-0.06, 0.06),
            ch,
            color="white",
            ha="center",
            va="center",
            fontsize=rng.uniform(44, 56),
            family=fam,
            weight=weight,
            style=style,
        )
        canvas.draw()
        img = np.asarray(canvas.buffer_rgba(), np.float32)[..., 0] / 255.0
        out.append(img)
    return _stack(out, size, channels, None)


# -- one entry point --------------------------------------------------------------------------
#: A dataset kind's loader: (spec, size, channels, count or None, offset, source) -> images.
Loader = Callable[[dict[str, Any], int, int, Any, int, str], np.ndarray]


def _builtin(make: Callable[[dict[str, Any], int, int, int, int, int], np.ndarray]) -> Loader:
    """A built-in dataset's loader: ``count`` required; ``make(spec, size, channels, count,
    offset, seed)`` draws the images."""

    def load(
        spec: dict[str, Any], size: int, channels: int, count: Any, offset: int, source: str
    ) -> np.ndarray:
        if count is None:
            raise UsageError(
                f"{source}: key 'count': built-in dataset '{spec['kind']}' needs a count"
            )
        seed = int(spec.get("seed", 0))
        return make(spec, size, channels, int(count), offset, seed)

    return load


def _load_npz(
    spec: dict[str, Any], size: int, channels: int, count: Any, offset: int, source: str
) -> np.ndarray:
    """Images from an .npz/.npy array (key ``key``), already (N, channels, size, size)."""
    from usdehaze.core.data import load_array

    path = spec.get("path")
    arr = load_array(_need_any(path, source), spec.get("key"))
    arr = arr[offset : None if count is None else offset + count]
    if arr.shape[1:] != (channels, size, size):
        raise UsageError(
            f"{path}: key '{spec.get('key')}': expected images ({channels}, {size}, {size}) in [-1, 1], got {arr.shape[1:]}"
        )
    return arr


def _load_folder(
    spec: dict[str, Any], size: int, channels: int, count: Any, offset: int, source: str
) -> np.ndarray:
    """A folder of images (FFHQ or any other)."""
    return load_folder(spec.get("path"), size, channels, count, offset, spec.get("crop"))


#: Every dataset kind and its loader (the order is the one error messages list).
LOADERS: dict[str, Loader] = {
    "celeba": lambda spec, size, ch, count, offset, source: load_celeba(
        spec.get("path"), size, ch, count, offset
    ),
    "mnist": lambda spec, size, ch, count, offset, source: load_mnist(
        spec.get("path"), size, ch, count, offset, spec.get("split", "train")
    ),
    "folder": _load_folder,
    "ffhq": _load_folder,
    "tmnist": lambda spec, size, ch, count, offset, source: load_tmnist(
        spec.get("path"), size, ch, count, offset
    ),
    "photos": _builtin(
        lambda spec, size, ch, count, offset, seed: builtin_photos(
            size, ch, count, spec.get("split", "train"), seed
        )
    ),
    "digits": _builtin(
        lambda spec, size, ch, count, offset, seed: builtin_digits(size, ch, count, offset)
    ),
    "glyphs": _builtin(
        lambda spec, size, ch, count, offset, seed: builtin_glyphs(size, ch, count, seed)
    ),
    "npz": _load_npz,
}
KINDS = tuple(LOADERS)
SPEC_KEYS = {"kind", "path", "count", "offset", "seed", "split", "crop", "key"}


def check_spec(spec: Any, source: str = "config") -> None:
    """A dataset spec's kind, fields and numbers (count >= 1, offset >= 0, a seed), checked
    before anything loads or trains: ``count: -3`` is one line, not a run that fails later."""
    from usdehaze import limits

    if not isinstance(spec, dict) or "kind" not in spec:
        raise UsageError(
            f"{source}: key 'kind': expected a dataset kind, one of {', '.join(KINDS)}"
        )
    kind = spec["kind"]
    if kind not in LOADERS:
        raise UsageError(
            f"{source}: key 'kind': unknown dataset '{kind}' (expected one of {', '.join(KINDS)})"
        )
    extra = set(spec) - SPEC_KEYS
    if extra:
        raise UsageError(
            f"{source}: key '{sorted(extra)[0]}': unknown dataset field (expected {sorted(SPEC_KEYS)})"
        )
    if spec.get("count") is not None:
        limits.integer(spec["count"], f"{source}: key 'count'", minimum=1, maximum=10_000_000)
    if "offset" in spec:
        limits.integer(spec["offset"], f"{source}: key 'offset'", minimum=0)
    if "seed" in spec:
        limits.seed(spec["seed"], f"{source}: key 'seed'")
    for key in ("path", "split", "key"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise UsageError(f"{source}: key '{key}': expected a string, got {spec[key]!r}")


def load_images(
    spec: dict[str, Any], size: int, channels: int, *, source: str = "config"
) -> np.ndarray:
    """Load a dataset spec to float32 (N, channels, size, size) in [-1, 1]."""
    check_spec(spec, source)
    kind = spec["kind"]
    offset = int(spec.get("offset", 0))
    return LOADERS[kind](spec, size, channels, spec.get("count"), offset, source)


def _need_any(path: str | None, source: str) -> str:
    if not path:
        raise UsageError(f"{source}: key 'path': dataset 'npz' needs a path")
    return path
