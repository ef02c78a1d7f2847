"""Dehazed B-mode cines back to DICOM: the input's own dataset with new pixels and new UIDs.

A PACS viewer must open the result beside its source: same geometry (rows, columns, pixel
spacing, ``SequenceOfUltrasoundRegions``), the patient and study tags exactly as the input had
them (copied, never added), a new series and instance (new UIDs), ``ImageType`` DERIVED /
SECONDARY and a ``DerivationDescription`` naming usdehaze, its version and method. Pixels are
written uncompressed (explicit VR little endian): grey frames as MONOCHROME2, colour inputs as
RGB so burned-in colour overlays come back as they were. Needs the ``dicom`` extra (pydicom).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from usdehaze.atomic import atomic_path
from usdehaze.errors import UsageError
from usdehaze.outputs import MARKER

# tags that describe how the *input's* pixels were stored: meaningless for uncompressed output
_STORAGE_TAGS = (
    "PlanarConfiguration",
    "PaletteColorLookupTableUID",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
)


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise UsageError("writing DICOM needs pydicom: pip install 'usdehaze[dicom]'") from None
    return pydicom


def derivation(version: str, method: str) -> str:
    """The ``DerivationDescription`` of a dehazed cine (also usdehaze's output marker)."""
    return f"Dehazed by usdehaze {version}, method {method} ({MARKER})"[:1024]


def write_dicom(
    source: str | os.PathLike,
    target: str | os.PathLike,
    frames: np.ndarray,
    *,
    method: str,
    frame_time_ms: float | None = None,
) -> Path:
    """Write ``frames`` (n, rows, cols) uint8 grey or (n, rows, cols, 3) uint8 RGB as a derived
    copy of the DICOM ``source`` at ``target``, atomically; returns ``target``.

    ``frames`` are the final pixels (the caller keeps overlays and the outside of the sector as
    the input had them); their size must be the source's."""
    pydicom = _pydicom()
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from usdehaze import __version__

    source, target = Path(source), Path(target)
    frames = np.asarray(frames)
    if (
        frames.dtype != np.uint8
        or frames.ndim not in (3, 4)
        or (frames.ndim == 4 and frames.shape[-1] != 3)
    ):
        raise ValueError(
            f"frames: expected uint8 (n, rows, cols[, 3]), got {frames.dtype} {frames.shape}"
        )
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if frames.shape[1:3] != (rows, cols):
        raise ValueError(f"frames of {frames.shape[1:3]} for a source of {(rows, cols)}")
    colour = frames.ndim == 4
    for name in _STORAGE_TAGS:
        if name in ds:
            delattr(ds, name)
    lossy = str(ds.get("LossyImageCompression", "00")) == "01" or _lossy(ds)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    n = len(frames)
    if n > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = n
        if frame_time_ms and "FrameTime" not in ds:
            ds.FrameTime = f"{frame_time_ms:.3f}"
    ds.add_new(0x7FE00010, "OB", np.ascontiguousarray(frames).tobytes())  # PixelData, 8-bit
    if lossy:  # once lossy, always flagged (PS3.3 C.7.6.1.1.5)
        ds.LossyImageCompression = "01"
    image_type = list(ds.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    ds.DerivationDescription = derivation(__version__, method)
    sop = generate_uid()
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SeriesInstanceUID = generate_uid()
    if "SeriesDescription" in ds:
        ds.SeriesDescription = f"{ds.SeriesDescription} dehazed"[:64]
    else:
        ds.SeriesDescription = "dehazed (usdehaze)"
    ds.file_meta.ImplementationVersionName = f"USDEHAZE_{__version__}"[:16]
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return target


def _lossy(ds) -> bool:
    """Whether the source's transfer syntax was lossy (JPEG baseline / extended, lossy J2K)."""
    uid = str(ds.file_meta.get("TransferSyntaxUID", ""))
    return uid in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91")
