"""The B-mode outputs: a derived DICOM cine that pydicom reads back, and side-by-side videos."""

from __future__ import annotations

import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.outputs import check_output, is_usdehaze_output

pydicom = pytest.importorskip("pydicom")
av = pytest.importorskip("av")

from pydicom.uid import generate_uid  # noqa: E402
from test_io_dicom import write_cine  # noqa: E402

from usdehaze.ultrasound.io.write_dicom import write_dicom  # noqa: E402
from usdehaze.ultrasound.io.write_video import write_video  # noqa: E402


def _cine(path, frames: np.ndarray):
    """A cine written by pydicom (test_io_dicom.write_cine) with patient and series tags."""
    write_cine(
        path,
        frames,
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
        PatientName="Doe^Jane",
        PatientID="ID42",
        SeriesDescription="A4C",
        ImageType=["ORIGINAL", "PRIMARY", "ABDOMINAL"],
        FrameTime="33.3",
    )
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.mark.parametrize("colour", [False, True])
def test_dicom_round_trip_is_a_derived_copy(tmp_path, colour):
    rng = np.random.default_rng(0)
    shape = (3, 40, 56, 3) if colour else (3, 40, 56)
    src_frames = rng.integers(0, 256, shape, dtype=np.uint8)
    src = tmp_path / "cine.dcm"
    before = _cine(src, src_frames)
    raw = src.read_bytes()
    out_frames = 255 - src_frames
    out = write_dicom(src, tmp_path / "cine.dehazed.dcm", out_frames, method="joint")
    ds = pydicom.dcmread(out)
    assert np.array_equal(ds.pixel_array, out_frames)
    assert ds.PhotometricInterpretation == ("RGB" if colour else "MONOCHROME2")
    assert ds.SOPInstanceUID != before.SOPInstanceUID
    assert ds.SeriesInstanceUID != before.SeriesInstanceUID
    assert ds.StudyInstanceUID == before.StudyInstanceUID  # the same study, a new series
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "usdehaze" in ds.DerivationDescription and "joint" in ds.DerivationDescription
    assert str(ds.PatientName) == "Doe^Jane" and ds.PatientID == "ID42"
    assert "PatientBirthDate" not in ds  # copied only as the input had them
    assert ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX == 0.03  # the region kept
    assert int(ds.NumberOfFrames) == 3 and float(ds.FrameTime) == pytest.approx(33.3)
    assert src.read_bytes() == raw  # the input untouched
    assert is_usdehaze_output(out) and not is_usdehaze_output(src)
    check_output(out, [src])  # a later run may replace it
    with pytest.raises(UsageError, match="did not write"):
        check_output(src, [])


def test_dicom_refuses_frames_of_another_size(tmp_path):
    frames = np.zeros((2, 16, 16), np.uint8)
    src = tmp_path / "c.dcm"
    _cine(src, frames)
    with pytest.raises(ValueError, match="source"):
        write_dicom(src, tmp_path / "o.dcm", np.zeros((2, 8, 16), np.uint8), method="joint")
    assert not (tmp_path / "o.dcm").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.dcm"]  # no temporary left


def test_video_side_by_side_at_the_cine_rate(tmp_path):
    import imageio.v3 as iio

    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (4, 30, 1))
    out = write_video(tmp_path / "cine.mp4", ramp, ramp // 2, fps=30.0)
    back = iio.imread(out, plugin="pyav")
    assert back.shape == (4, 30, 2 * 48 + 8, 3)
    assert np.abs(back[:, :, :48, 0].astype(int) - ramp).max() <= 3  # near-lossless
    assert np.abs(back[:, :, 56:, 0].astype(int) - ramp // 2).max() <= 3
    assert iio.immeta(out, plugin="pyav")["fps"] == pytest.approx(30.0)
    assert is_usdehaze_output(out)
    user = tmp_path / "holiday.mp4"
    user.write_bytes(b"\x00" * 100)
    with pytest.raises(UsageError, match="did not write"):
        check_output(user, [])


def test_video_refuses_an_unknown_container(tmp_path):
    frames = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(UsageError, match="video is written as"):
        write_video(tmp_path / "x.webm", frames, frames, 10)
