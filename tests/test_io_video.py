"""Videos and image stacks: written with imageio, read back (lossless codecs exactly or within
a level, PNG stacks exactly), frame rate from the container, bad files one line, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from clirun import usdehaze

iio = pytest.importorskip("imageio.v3")  # the video extra (in the test extra)
pytest.importorskip("av")

from usdehaze.ultrasound.io import load_scan  # noqa: E402


def _frames(n=5, rows=64, cols=48, seed=0) -> np.ndarray:
    """uint8 grey frames: speckle in a fan, black outside, a static white marker."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    fan = np.abs(np.arctan2(c - cols / 2, r + 1)) < np.deg2rad(35)
    f = np.where(fan, rng.integers(30, 220, (n, rows, cols)), 0).astype(np.uint8)
    f[:, 2:5, 2:8] = 255
    return f


def test_lossless_avi_reads_within_one_level_with_its_frame_rate(tmp_path):
    fr = _frames()
    p = tmp_path / "cine.avi"
    iio.imwrite(p, np.repeat(fr[..., None], 3, -1), plugin="pyav", fps=25, codec="ffv1")
    with load_scan(p) as s:
        assert s.layout == "video" and s.domain == "display" and s.n_frames == 5
        assert s.frame_rate == pytest.approx(25.0) and s.shape == (64, 48)
        got = s.frames()
        assert np.abs(got - fr).max() <= 1  # ffv1 is lossless; RGB <-> YUV rounds by a level
        np.testing.assert_array_equal(s.frames(3, 5), got[3:5])  # a read before: from the start
        np.testing.assert_array_equal(s.frames(1, 2), got[1:2])
        assert "sector" in s.masks and "pixel spacing assumed" in s.geometry_note
        assert "colour" not in s.masks


def test_mp4_reads_within_the_codec_loss(tmp_path):
    fr = _frames(n=8)
    p = tmp_path / "cine.mp4"
    iio.imwrite(p, np.repeat(fr[..., None], 3, -1), plugin="pyav", fps=30, codec="mpeg4")
    with load_scan(p) as s:
        assert s.n_frames == 8 and s.frame_rate == pytest.approx(30.0)
        assert np.abs(s.frames() - fr).mean() < 25  # lossy mpeg4 at its default quality


def test_gif_reads_exactly(tmp_path):
    fr = _frames()
    p = tmp_path / "cine.gif"
    iio.imwrite(p, fr, duration=50, loop=0)  # pillow's GIF writer, 256 grey levels: exact
    with load_scan(p) as s:
        assert s.n_frames == 5
        np.testing.assert_array_equal(s.frames(), fr.astype(np.float32))


def test_colour_pixels_are_marked_and_kept_as_luma(tmp_path):
    fr = np.repeat(_frames()[..., None], 3, -1)
    fr[:, 30:34, 20:24] = [200, 30, 30]  # a colour-flow patch
    p = tmp_path / "doppler.avi"
    iio.imwrite(p, fr, plugin="pyav", fps=20, codec="ffv1")
    with load_scan(p) as s:
        colour = s.masks["colour"]
        outside = colour.copy()
        outside[28:36, 18:26] = False  # the patch and the 2 px its subsampled chroma bleeds
        assert colour[30:34, 20:24].all() and not outside.any()
        assert "left as they are" in s.extra["notes"][0]
        luma = 0.299 * 200 + 0.587 * 30 + 0.114 * 30
        assert np.abs(s.frames(0, 1)[0, 31, 21] - luma) < 3


def test_png_folder_and_tiff_stack_read_exactly(tmp_path):
    fr = _frames(n=12)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, f in enumerate(fr):
        iio.imwrite(folder / f"frame{i}.png", f)  # frame10 after frame9: natural order
    tif = tmp_path / "stack.tif"
    iio.imwrite(tif, fr)
    for p in (folder, tif):
        with load_scan(p) as s:
            assert s.layout == "images" and s.n_frames == 12 and s.frame_rate is None
            np.testing.assert_array_equal(s.frames(), fr.astype(np.float32))
            np.testing.assert_array_equal(s.frames(10, 12), fr[10:].astype(np.float32))
    with load_scan(folder / "frame3.png") as s:
        np.testing.assert_array_equal(s.frames(), fr[3:4].astype(np.float32))
    fr16 = fr.astype(np.uint16) * 257
    iio.imwrite(tmp_path / "s16.tif", fr16)
    with load_scan(tmp_path / "s16.tif") as s:
        assert s.display.levels == 65535
        np.testing.assert_array_equal(s.frames(), fr16.astype(np.float32))


def test_zea_image_only_files_are_the_envelope_domain(tmp_path):
    """A zea file holding only ``image`` (dB) is read by the zea reader as envelopes."""
    import h5py

    db = -np.random.default_rng(0).uniform(0, 60, (2, 16, 12)).astype(np.float32)
    p = tmp_path / "img.h5"
    with h5py.File(p, "w") as f:
        f["tracks/track_0/data/image/values"] = db
    with load_scan(p) as s:
        assert s.layout == "zea" and s.domain == "envelope" and s.magnitude_only
        np.testing.assert_allclose(20 * np.log10(np.abs(s.frames())), db, atol=1e-3)


def _bad_files(tmp_path: Path) -> list[tuple[Path, str]]:
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    cut = tmp_path / "cut.avi"
    frames = np.random.default_rng(0).integers(0, 255, (20, 64, 48, 3)).astype(np.uint8)
    iio.imwrite(cut, frames, plugin="pyav", fps=25, codec="ffv1")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # truncated mid-stream
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    iio.imwrite(mixed / "a.png", np.zeros((32, 32), np.uint8))
    iio.imwrite(mixed / "b.png", np.zeros((40, 32), np.uint8))
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return [
        (garbage, "not a video PyAV can decode"),
        (empty, "not a video PyAV can decode"),
        (cut, "not a video PyAV can decode"),
        (mixed, "frames of one size"),
        (bad_png, "not an image imageio can decode"),
    ]


def test_bad_videos_and_stacks_are_one_line_exit_2_through_the_cli(tmp_path):
    for path, words in _bad_files(tmp_path):
        r = usdehaze("info", str(path))
        err = r.stderr.strip()
        assert r.returncode == 2, (path, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert str(path) in err and words in err, err
