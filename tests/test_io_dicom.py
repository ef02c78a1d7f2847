"""DICOM ultrasound reader: pydicom's own test files read as pydicom decodes them (grey levels,
BT.601 luma of colour), files written here with pydicom round-trip exactly (pixels, spacing,
frame rate, regions; uncompressed, RLE, JPEG 2000), and bad files are one line, exit 2."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from clirun import usdehaze

pydicom = pytest.importorskip("pydicom")  # the dicom extra (in the test extra)
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import (  # noqa: E402
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from usdehaze.cli._app import run_app  # noqa: E402
from usdehaze.ultrasound.io import load_scan  # noqa: E402

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def _decoded(ds) -> np.ndarray:
    """pydicom's decoded pixels, a palette through its LUT, a single frame as a cine of one."""
    a = pixel_array(ds)
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        a = apply_color_lut(a, ds)
    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        a = a[None]
    return a


def _reference_grey(ds) -> np.ndarray:
    """The documented processing, written out: pydicom's decoded pixels (YBR → RGB by pydicom,
    palette through its LUT, MONOCHROME1 inverted), colour as BT.601 luma, grey pixels as is."""
    a = _decoded(ds)
    if a.ndim == 3:
        if ds.PhotometricInterpretation == "MONOCHROME1":
            a = 2 ** int(ds.BitsStored) - 1 - a.astype(np.int64)
        return a.astype(np.float32)
    rgb = a.astype(np.float64)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    same = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    return np.where(same, rgb[..., 0], luma).astype(np.float32)


def _reference_colour(ds) -> np.ndarray:
    """Pixels whose channels differ by more than 10/255 of full scale in any frame."""
    a = _decoded(ds)
    if a.ndim == 3:
        return np.zeros(a.shape[1:], bool)
    full = 65535 if a.dtype == np.uint16 else 255
    spread = a.max(-1).astype(np.float64) - a.min(-1)
    return (spread > 10 / 255 * full).any(0)


PYDICOM_FILES = [
    # ultrasound files pydicom ships (its pydicom-data US1_* set is a download, not here)
    "examples_ybr_color.dcm",  # US multi-frame, YBR_FULL_422, JPEG baseline, regions, FrameTime
    "examples_palette.dcm",  # US, PALETTE COLOR, regions
    "examples_rgb_color.dcm",  # US, RGB, uncompressed
    "examples_jpeg2k.dcm",  # US, YBR_RCT, JPEG 2000 lossless
    "ExplVR_BigEnd.dcm",  # US, RGB, big endian
    # secondary captures (Modality OT): the other photometric / transfer syntaxes
    "SC_ybr_full_422_uncompressed.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless
    "SC_rgb_dcmtk_+eb+cy+n1.dcm",  # YBR_FULL, JPEG baseline
    "SC_rgb_rle_2frame.dcm",
]


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_test_files_read_as_pydicom_decodes_them(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _reference_grey(ds)
    with load_scan(path) as s:
        assert s.layout == "dicom" and s.domain == "display" and s.magnitude_only
        assert s.n_frames == ref.shape[0] and s.shape == ref.shape[1:]
        got = s.frames()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-3)  # luma in float32
        np.testing.assert_array_equal(s.frames(s.n_frames - 1, s.n_frames), got[-1:])
        assert s.x.shape == s.shape and s.geometry_note and "\n" not in s.geometry_note
        assert "sector" in s.masks and s.masks["sector"].shape == s.shape
        colour = _reference_colour(ds)  # channels apart by more than 10 of 255 levels
        np.testing.assert_array_equal(s.masks.get("colour", np.zeros(s.shape, bool)), colour)


def test_ybr_cine_frame_rate_and_colour_pixels():
    path = get_testdata_file("examples_ybr_color.dcm")
    with load_scan(path) as s:
        assert s.n_frames == 30
        assert s.frame_rate == pytest.approx(1000 / 33.333, rel=1e-6)  # FrameTime 33.333 ms
        assert s.masks["colour"].any() and s.extra["notes"]
        assert "left as they are" in s.extra["notes"][0]
        # the file's region (0.51 mm) was written for a 2x larger frame: said in the note
        assert "exceeds the 240×320 frame" in s.geometry_note


def test_palette_file_spacing_from_its_regions():
    with load_scan(get_testdata_file("examples_palette.dcm")) as s:
        dx = 0.02622878766196998 * 10  # PhysicalDeltaX in cm → mm
        assert s.extra["spacing_source"] == "SequenceOfUltrasoundRegions"
        np.testing.assert_allclose(np.diff(s.axes["x"]), dx * 1e-3, rtol=1e-9)
        np.testing.assert_allclose(np.diff(s.axes["z"]), dx * 1e-3, rtol=1e-9)
        assert s.display.levels == 65535  # 16-bit palette entries
        assert s.extra["regions"][0]["RegionLocationMinX0"] == 120


# -- files written here ------------------------------------------------------------------------
def _fan_cine(n=6, rows=120, cols=160, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames: speckle inside a fan from (0, cols/2), black outside, a static burned-in
    text block top-left; and the fan mask."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    rho, phi = np.hypot(r, c - cols / 2), np.arctan2(c - cols / 2, r)
    fan = (np.abs(phi) < np.deg2rad(40)) & (rho > 5) & (rho < rows - 4)
    frames = np.where(fan, rng.integers(20, 230, (n, rows, cols)), 0).astype(np.uint8)
    frames[:, 4:12, 4:30] = np.where((np.arange(26) % 3) == 0, 255, 0)[None, None]  # "text"
    return frames, fan


def _region(rows: int, cols: int, delta_cm: float) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = 0, 0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = cols - 1, rows - 1
    item.ReferencePixelX0, item.ReferencePixelY0 = cols // 2, 0
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
    item.PhysicalDeltaX = item.PhysicalDeltaY = delta_cm
    return item


def write_cine(path: Path, frames: np.ndarray, *, photometric="MONOCHROME2", frame_time=40.0,
               delta_cm=0.03, modality="US", pixels=True, regions=True, **tags) -> Path:  # fmt: skip
    """A multi-frame ultrasound DICOM written with pydicom, uncompressed: uint8 frames (n, z, x)
    grey or (n, z, x, 3) RGB; ``tags``: more data elements by keyword (PatientID=...)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.NumberOfFrames = frames.shape[0]
    ds.SamplesPerPixel = 3 if frames.ndim == 4 else 1
    ds.PhotometricInterpretation = "RGB" if frames.ndim == 4 else photometric
    if frames.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.FrameTime = frame_time
    if regions:
        ds.SequenceOfUltrasoundRegions = Sequence([_region(*frames.shape[1:3], delta_cm)])
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if pixels:
        ds.PixelData = frames.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_written_cine_round_trips_pixels_spacing_rate_and_region(tmp_path):
    frames, fan = _fan_cine()
    p = write_cine(tmp_path / "cine.dcm", frames)
    before = p.read_bytes()
    with load_scan(p) as s:
        np.testing.assert_array_equal(s.frames(), frames.astype(np.float32))
        np.testing.assert_array_equal(s.frames(2, 4), frames[2:4].astype(np.float32))
        assert s.frame_rate == pytest.approx(25.0)
        assert s.extra["spacing_mm"] == pytest.approx([0.3, 0.3])
        assert s.extra["spacing_source"] == "SequenceOfUltrasoundRegions"
        np.testing.assert_allclose(np.diff(s.axes["x"]), 0.3e-3)
        reg = s.extra["regions"][0]
        assert reg["PhysicalDeltaX"] == pytest.approx(0.03) and reg["RegionLocationMaxX1"] == 159
        assert s.display.levels == 255 and s.display.source == "default"
        sector = s.masks["sector"]
        # the fan found in the pixels covers the speckle and leaves the text block out
        assert (sector & fan).sum() >= 0.9 * fan.sum() and not sector[4:12, 4:30].any()
        assert s.extra["sector"]["kind"] == "sector"
        if "overlay" in s.masks:
            assert s.masks["overlay"][4:12, 4:30].sum() > 0
    assert p.read_bytes() == before  # the input untouched


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_cines_round_trip_exactly(tmp_path, syntax):
    frames, _ = _fan_cine(n=3, seed=1)
    p = write_cine(tmp_path / "c.dcm", frames)
    ds = pydicom.dcmread(p)
    ds.compress(syntax)  # pydicom's own RLE encoder, pylibjpeg-openjpeg's J2K encoder
    ds.save_as(p)
    with load_scan(p) as s:
        assert s.compression == syntax.name
        np.testing.assert_array_equal(s.frames(), frames.astype(np.float32))


def test_monochrome1_is_inverted(tmp_path):
    frames, _ = _fan_cine(n=2, seed=2)
    p = write_cine(tmp_path / "m1.dcm", frames, photometric="MONOCHROME1")
    with load_scan(p) as s:
        np.testing.assert_array_equal(s.frames(), 255 - frames.astype(np.float32))


def test_region_contradicting_the_pixels_is_said(tmp_path, capsys):
    """A region sequence whose spacing gives an impossible depth: reconcile says what it
    assumed; info still answers (exit 0)."""
    frames, _ = _fan_cine(n=3)
    p = write_cine(tmp_path / "wrong.dcm", frames, delta_cm=1.0)  # 10 mm/px: 1.2 m deep
    assert run_app(["info", str(p), "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert d["spacing_source"] == "assumed" and d["pixel_spacing_mm"] == [0.3, 0.3]
    assert d["geometry"].startswith("pixel spacing assumed") and "\n" not in d["geometry"]
    assert "SequenceOfUltrasoundRegions" in d["geometry"]  # what the tags said, and why not


def test_info_says_frames_rate_spacing_sector_overlays_colour_display(tmp_path, capsys):
    frames, _ = _fan_cine()
    p = write_cine(tmp_path / "cine.dcm", frames)
    assert run_app(["info", str(p), "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert d["frames"] == 6 and d["frame_rate"] == pytest.approx(25.0) and d["shape"] == [120, 160]
    assert d["pixel_spacing_mm"] == pytest.approx([0.3, 0.3]) and d["domain"] == "display"
    assert d["sector"]["kind"] == "sector" and len(d["sector"]["apex_px"]) == 2
    assert d["sector"]["source"] == "SequenceOfUltrasoundRegions"
    assert len(d["sector"]["angles_deg"]) == 2 and len(d["sector"]["radii_px"]) == 2
    assert d["colour_pixels"] == 0 and d["display"]["dynamic_range"] == 60.0
    assert "overlay_pixels" in d


# -- bad input: one line, exit 2, through the CLI ----------------------------------------------
def _bad_files(tmp_path: Path) -> list[tuple[Path, str]]:
    frames, _ = _fan_cine(n=4)
    nopix = write_cine(tmp_path / "nopix.dcm", frames, pixels=False)
    trunc = write_cine(tmp_path / "trunc.dcm", frames)
    trunc.write_bytes(trunc.read_bytes()[: -frames[0].size * 2])
    cut = write_cine(tmp_path / "cut.dcm", frames)
    cut.write_bytes(cut.read_bytes()[:200])
    rle = write_cine(tmp_path / "rle.dcm", frames)
    ds = pydicom.dcmread(rle)
    ds.compress(RLELossless)
    ds.save_as(rle)
    rle.write_bytes(rle.read_bytes()[: rle.stat().st_size * 2 // 3])  # cut inside the frames
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    return [
        (Path(get_testdata_file("CT_small.dcm")), "Modality 'CT'"),
        (nopix, "no pixel data"),
        (trunc, "truncated"),
        (cut, "expected"),
        (rle, "truncated"),
        (junk, "DICOM file"),
    ]


def test_bad_dicoms_are_one_line_exit_2_through_the_cli(tmp_path):
    for path, words in _bad_files(tmp_path):
        before = path.read_bytes()
        r = usdehaze("info", str(path))
        err = r.stderr.strip()
        assert r.returncode == 2, (path, err)
        lines = [ln for ln in err.splitlines() if "Warning" not in ln and "warn" not in ln]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(path) in lines[0] and words in lines[0], lines[0]
        assert path.read_bytes() == before


def test_missing_decoder_names_the_package(tmp_path, monkeypatch, capsys):
    frames, _ = _fan_cine(n=2)
    p = write_cine(tmp_path / "j2k.dcm", frames)
    ds = pydicom.dcmread(p)
    ds.compress(JPEG2000Lossless)
    ds.save_as(p)
    monkeypatch.setattr(get_decoder(JPEG2000Lossless), "_available", {})
    assert run_app(["info", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(p) in err
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in err


def test_lossy_jpeg2000_reads_within_its_loss(tmp_path):
    frames, _ = _fan_cine(n=2, seed=3)
    p = write_cine(tmp_path / "j2ki.dcm", frames)
    ds = pydicom.dcmread(p)
    ds.compress(JPEG2000, j2k_cr=[5])  # lossy, compression ratio 5
    ds.save_as(p)
    with load_scan(p) as s:
        ref = pixel_array(pydicom.dcmread(p)).astype(np.float32)
        np.testing.assert_array_equal(s.frames(), ref)  # what the decoder gives, as it gives it
        assert np.abs(s.frames() - frames).mean() < 10
