"""Natural-image datasets (readers on small files written here, built-ins) and noise statistics."""

import gzip
import struct

import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.natural import datasets as ds
from usdehaze.natural.noises import (
    ImageNoise,
    RainNoise,
    SineNoise,
    Translated,
    build_noise,
    translate,
)


def _write_idx(path, arr, gz=False):
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_and_mnist_folder(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28))
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    _write_idx(tmp_path / name, imgs, gz)
    np.testing.assert_array_equal(ds.read_idx(tmp_path / name), imgs)
    out = ds.load_mnist(str(tmp_path), 28, 1, count=3, offset=1)
    assert out.shape == (3, 1, 28, 28)
    np.testing.assert_allclose(out[:, 0], imgs[1:4] / 255.0 * 2 - 1, atol=1e-5)


def test_missing_datasets_say_where_to_put_them(tmp_path):
    with pytest.raises(UsageError, match="img_align_celeba"):
        ds.load_images({"kind": "celeba", "path": str(tmp_path / "nope")}, 64, 3)
    with pytest.raises(UsageError, match="idx3-ubyte"):
        ds.load_images({"kind": "mnist", "path": str(tmp_path)}, 64, 3)
    with pytest.raises(UsageError, match="key 'path'"):
        ds.load_images({"kind": "folder"}, 64, 3)
    with pytest.raises(UsageError, match="unknown dataset"):
        ds.load_images({"kind": "imagenet"}, 64, 3)


def test_celeba_folder_crop_and_resize(tmp_path):
    from PIL import Image

    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    # 178x218 frames: a bright central square on a dark border; the 140-pixel crop keeps mostly it
    for i in range(3):
        a = np.zeros((218, 178, 3), np.uint8)
        a[39:179, 19:159] = 200 + i
        Image.fromarray(a).save(folder / f"{i + 1:06d}.png")
    out = ds.load_images({"kind": "celeba", "path": str(tmp_path), "count": 2, "offset": 1}, 64, 3)
    assert out.shape == (2, 3, 64, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, 8:56, 8:56], 201 / 255 * 2 - 1, atol=0.02)  # interior kept


def test_tmnist_csv(tmp_path):
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (4, 784))
    lines = ["names,labels," + ",".join(str(i) for i in range(1, 785))]
    lines += [f"Font-{i},A," + ",".join(map(str, row)) for i, row in enumerate(px)]
    (tmp_path / "TMNIST_Data.csv").write_text("\n".join(lines) + "\n")
    out = ds.load_images(
        {"kind": "tmnist", "path": str(tmp_path / "TMNIST_Data.csv"), "count": 2}, 28, 1
    )
    np.testing.assert_allclose(out[:, 0], px[:2].reshape(2, 28, 28) / 255 * 2 - 1, atol=1e-5)


def test_builtins_shapes_and_ranges():
    d = ds.load_images({"kind": "digits", "count": 10}, 32, 1)
    assert d.shape == (10, 1, 32, 32) and d.min() >= -1 and d.max() <= 1
    assert np.all(d[:, :, :2] < -0.95)  # MNIST-like black border
    p = ds.load_images({"kind": "photos", "count": 4, "split": "test", "seed": 3}, 32, 3)
    assert p.shape == (4, 3, 32, 32) and p.std() > 0.05
    g = ds.load_images({"kind": "glyphs", "count": 3}, 32, 1)
    assert g.shape == (3, 1, 32, 32) and (g > 0).mean() > 0.02
    with pytest.raises(UsageError, match="count"):
        ds.load_images({"kind": "photos"}, 32, 1)


def test_to_square_keeps_constant_images():
    out = ds.to_square(np.full((50, 80), 0.3, np.float32), 16)
    assert out.shape == (16, 16)
    np.testing.assert_allclose(out, 0.3, atol=1e-5)


# -- noises -----------------------------------------------------------------------------------
def test_sine_pixel_profile_matches_exp_sin():
    src = SineNoise((1, 4, 16), sigma=0.2, period=16, axis="pixel")
    x = src.sample(20000, np.random.default_rng(0))
    std = x.reshape(len(x), -1).std(0)
    target = np.exp(np.sin(2 * np.pi * np.arange(64) / 16))
    ratio = std / target
    assert np.abs(ratio / ratio.mean() - 1).max() < 0.04  # same shape up to scale
    assert abs(std.mean() - 0.2) < 0.005  # mean sigma is the configured one
    assert abs(x.mean()) < 0.002


def test_sine_row_profile_is_constant_along_rows():
    src = SineNoise((1, 32, 8), sigma=0.5, axis="row")
    x = src.sample(8000, np.random.default_rng(1))
    std = x.std(0)[0]  # (H, W)
    assert np.abs(std / std.mean(1, keepdims=True) - 1).max() < 0.05
    ratio = std.mean(1) / np.exp(np.sin(2 * np.pi * np.arange(32) / 16))
    assert np.abs(ratio / ratio.mean() - 1).max() < 0.03


def test_rain_is_nonnegative_oriented_and_denser_with_density():
    rng = np.random.default_rng(2)

    def corr(x, dy, dx):
        a = x - x.mean()
        return float((a * np.roll(a, (dy, dx), (-2, -1))).mean() / a.var())

    vert = RainNoise((1, 48, 48), angle=(0, 0)).sample(6, rng)
    horiz = RainNoise((1, 48, 48), angle=(90, 90)).sample(6, rng)
    assert vert.min() >= 0 and horiz.min() >= 0
    assert corr(vert, 4, 0) > 2 * corr(vert, 0, 4)
    assert corr(horiz, 0, 4) > 2 * corr(horiz, 4, 0)
    light = RainNoise((1, 32, 32), density=(0.002, 0.002)).sample(10, rng).mean()
    heavy = RainNoise((1, 32, 32), density=(0.02, 0.02)).sample(10, rng).mean()
    assert heavy > 3 * light


def test_translate_moves_the_centre_of_mass():
    img = np.zeros((1, 20, 20), np.float32)
    img[0, 8:12, 9:11] = 1.0
    out = translate(img, 3, -4, fill=0.0)
    ys, xs = np.nonzero(out[0])
    assert ys.mean() == pytest.approx(9.5 + 3) and xs.mean() == pytest.approx(9.5 - 4)
    np.testing.assert_array_equal(translate(out, -3, 4, 0.0), img)


def test_translated_digits_spread_over_the_allowed_range():
    img = np.full((1, 1, 21, 21), -1.0, np.float32)
    img[0, 0, 10, 10] = 1.0
    src = Translated(ImageNoise(img), max_shift=0.2)  # up to 4 pixels
    x = src.sample(400, np.random.default_rng(3))
    pos = np.array([np.argwhere(a[0] > 0)[0] for a in x]) - 10
    assert pos.min() == -4 and pos.max() == 4 and np.all(x[x < 1] == -1.0)
    assert abs(pos.mean()) < 0.5 and pos.std() > 2.0  # uniform on [-4, 4]: std 2.58


def test_build_noise_errors():
    with pytest.raises(UsageError, match="kind"):
        build_noise({"kind": "salt"}, (1, 8, 8))
    with pytest.raises(UsageError, match="axis"):
        build_noise({"kind": "sine", "axis": "col"}, (1, 8, 8))
    with pytest.raises(UsageError, match="unexpected"):
        build_noise({"kind": "rain", "densty": [0, 1]}, (1, 8, 8))
