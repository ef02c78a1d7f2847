"""DICOM ultrasound images and cines (as scanners export them) → display-domain Scans.

pydicom decodes the pixels (uncompressed, RLE, JPEG baseline / lossless, JPEG 2000 through the
decoders it finds: the ``dicom`` extra installs pylibjpeg with libjpeg and openjpeg), one frame at
a time. MONOCHROME2 grey levels are read as they are, MONOCHROME1 inverted, RGB / YBR (converted
to RGB by pydicom) and PALETTE COLOR (through its lookup table) as BT.601 luma with colour pixels
marked. Accepted: Modality US, OT (secondary capture, how many cines are exported) or none, and
ultrasound or secondary-capture SOP classes; other modalities (CT, MR, ...) are refused in one
line, since the priors know only ultrasound. Pixel spacing from SequenceOfUltrasoundRegions
(PhysicalDeltaX/Y in cm), else PixelSpacing, else assumed; frame rate from FrameTime,
FrameTimeVector, CineRate or RecommendedDisplayFrameRate.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError, first_line
from usdehaze.ultrasound.io import _bmode
from usdehaze.ultrasound.io._common import optional_import
from usdehaze.ultrasound.io.registry import Reader, Source, register_reader
from usdehaze.ultrasound.scan import Scan

KEY = "PixelData"
READ_MODALITIES = ("US", "OT", "")
# what to pip install for each compressed transfer syntax pydicom cannot decode alone
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE (pydicom decodes it itself)
}
CM = 3  # PhysicalUnits code of centimetres


def _float(v: Any) -> float | None:
    """A tag's value as a positive finite float, else None (absent, text, 0, NaN)."""
    try:
        if v is not None and not isinstance(v, (str, bytes)) and hasattr(v, "__len__"):
            v = v[0]
        f = float(v)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def frame_rate(ds: Any) -> float | None:
    """Frames per second: FrameTime (ms), FrameTimeVector, CineRate, RecommendedDisplayFrameRate."""
    ft = _float(ds.get("FrameTime"))
    if ft is not None:
        return 1000.0 / ft
    ftv = ds.get("FrameTimeVector")
    if ftv is not None and not isinstance(ftv, (str, bytes)) and len(ftv) > 1:
        steps = [_float(v) for v in list(ftv)[1:]]
        if all(s is not None for s in steps):
            return 1000.0 / float(np.mean(steps))
    for k in ("CineRate", "RecommendedDisplayFrameRate"):
        if (r := _float(ds.get(k))) is not None:
            return r
    return None


def _plain(v: Any) -> Any:
    """A tag value as plain JSON-able Python (numbers, text, lists)."""
    if isinstance(v, (bytes, bytearray)):
        return None
    if isinstance(v, (int, float, str)):
        return float(v) if type(v).__name__ in ("DSfloat", "DSdecimal") else v
    if hasattr(v, "__iter__"):
        return [_plain(e) for e in v]
    return str(v)


def regions(ds: Any) -> list[dict[str, Any]]:
    """SequenceOfUltrasoundRegions as dicts of keyword → value (nested sequences left out)."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        out.append({e.keyword: _plain(e.value) for e in item if e.keyword and e.VR != "SQ"})
    return out


def spacing(ds: Any, regs: list[dict]) -> tuple[tuple[float, float] | None, str]:
    """(row, col) pixel spacing in mm and where it came from, or (None, "assumed")."""
    for r in regs:
        dx, dy = _float(r.get("PhysicalDeltaX")), _float(r.get("PhysicalDeltaY"))
        units = (r.get("PhysicalUnitsXDirection"), r.get("PhysicalUnitsYDirection"))
        if r.get("RegionSpatialFormat") == 1 and units == (CM, CM) and dx and dy:
            return (dy * 10.0, dx * 10.0), "SequenceOfUltrasoundRegions"
    ps = ds.get("PixelSpacing")
    if ps is not None and not isinstance(ps, (str, bytes)) and len(ps) == 2:
        row, col = _float(ps[0]), _float(ps[1])
        if row and col:
            return (row, col), "PixelSpacing"
    return None, "assumed"


def _check_kind(path: Path, ds: Any) -> None:
    """Refuse what is not an ultrasound image: another modality, no pixel data."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop = ds.get("SOPClassUID")
    sop_name = getattr(sop, "name", str(sop or "no SOP class"))
    if "PixelData" not in ds:
        raise UsageError(
            f"{path}: no pixel data (Modality '{modality}', {sop_name}): expected an "
            "ultrasound image or cine"
        )
    usish = "Ultrasound" in sop_name or "Secondary Capture" in sop_name
    if modality not in READ_MODALITIES and not usish:
        raise UsageError(
            f"{path}: Modality '{modality}' ({sop_name}): expected an ultrasound image "
            "(Modality US, or OT secondary capture); usdehaze dehazes ultrasound only"
        )


def _check_decoder(path: Path, ds: Any) -> str:
    """The transfer syntax's name once pydicom can decode it; else one line naming the package."""
    from pydicom.pixels import get_decoder

    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax is None:
        raise UsageError(f"{path}: no TransferSyntaxUID in the file meta: expected one")
    name = getattr(tsyntax, "name", str(tsyntax))
    if not tsyntax.is_compressed:
        return name
    try:
        available = get_decoder(tsyntax).is_available
    except NotImplementedError:
        raise UsageError(
            f"{path}: transfer syntax '{name}': pydicom has no decoder for it; expected "
            "uncompressed, RLE, JPEG or JPEG 2000 pixel data"
        ) from None
    if not available:
        pkg = DECODER_PACKAGES.get(str(tsyntax), "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
        raise UsageError(
            f"{path}: transfer syntax '{name}' needs a decoder: pip install {pkg} "
            "(or pip install 'usdehaze[dicom]')"
        )
    return name


def _levels(path: Path, ds: Any) -> int:
    """The largest grey level the pixels can hold (the display map's full scale)."""
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        desc = ds.get("RedPaletteColorLookupTableDescriptor")
        bits = int(desc[2]) if desc is not None and len(desc) == 3 else 8
    else:
        bits = int(ds.get("BitsStored", ds.BitsAllocated))
    if not 1 <= bits <= 16:
        raise UsageError(f"{path}: BitsStored {bits}: expected 1 to 16 bits per sample")
    return 2**bits - 1


def _check_length(path: Path, ds: Any, frames: int) -> None:
    """Uncompressed pixel data shorter than the declared frames: a truncated file."""
    from pydicom.pixels.utils import get_expected_length

    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return
    need, have = get_expected_length(ds, unit="bytes"), len(ds.PixelData)
    if have < need:
        raise UsageError(
            f"{path}: key '{KEY}': holds {have} bytes, expected {need} for {frames} frames of "
            f"{ds.Rows} x {ds.Columns} x {ds.SamplesPerPixel} (truncated file?)"
        )


def _dcmread(path: Path, key: str | None) -> Any:
    """The parsed DICOM file, refused in one line when pydicom is missing or the file is not a
    whole DICOM file (or ``key`` names another image)."""
    errors = optional_import(
        path, "reading DICOM needs pydicom", "dicom", "pydicom", "pydicom.errors"
    )
    import pydicom

    if key not in (None, "", KEY):
        raise UsageError(f"{path}: key '{key}': a DICOM file holds one image, key '{KEY}'")
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
    except errors.InvalidDicomError as exc:
        raise UsageError(f"{path}: not a DICOM file ({first_line(exc)})") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path}: unreadable DICOM file, truncated or damaged? ({first_line(exc)})"
        ) from None
    ended = [str(w.message) for w in said if "End of file" in str(w.message)]
    if ended or not len(ds):
        why = ended[0] if ended else "no data elements"
        raise UsageError(f"{path}: truncated DICOM file ({why[:200]}): expected a whole file")
    return ds


def _image_tags(path: Path, ds: Any) -> tuple[int, int, int, int, str]:
    """(rows, columns, frames, samples per pixel, photometric interpretation), checked."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        n = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1))
        photometric = str(ds.PhotometricInterpretation)
    except (AttributeError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{path}: image tags (Rows, Columns, NumberOfFrames, SamplesPerPixel, "
            f"PhotometricInterpretation) missing or malformed ({first_line(exc)})"
        ) from None
    _bmode.check_size(f"{path}: key '{KEY}'", n, rows, cols, samples)
    return rows, cols, n, samples, photometric


def _probe(ds: Any, regs: list) -> tuple[str | None, float | None]:
    """The probe's name and centre frequency (Hz) when the file says."""
    freq = next((f for r in regs if (f := _float(r.get("TransducerFrequency")))), None)
    probe = _plain(ds.get("TransducerData") or ds.get("ManufacturerModelName"))
    if isinstance(probe, list):  # TransducerData is multi-valued
        probe = " ".join(str(p) for p in probe if p) or None
    probe = None if probe is None else str(probe)
    return probe, None if freq is None else freq * 1e3  # TransducerFrequency: kHz


def read_dicom(path: Path, key: str | None = None) -> Scan:
    """A display-domain Scan of a DICOM ultrasound image or cine (frames decoded on demand)."""
    ds = _dcmread(path, key)
    _check_kind(path, ds)
    tsyntax = _check_decoder(path, ds)
    _, _, n, _, photometric = _image_tags(path, ds)
    levels = _levels(path, ds)
    _check_length(path, ds, n)
    decode = _decoder(ds, photometric, levels)

    def read_pixels(a: int, b: int) -> np.ndarray:
        px = [np.asarray(decode(i)) for i in range(a, b)]
        return np.stack([p[..., :3] if p.ndim == 3 else p for p in px])

    try:
        grey, colour_px = _bmode.sample(decode, n, levels)
    except (ValueError, RuntimeError, IndexError, KeyError, TypeError, OSError) as exc:
        raise UsageError(
            f"{path}: key '{KEY}': frames undecodable, truncated or damaged? ({first_line(exc)})"
        ) from None
    regs = regions(ds)
    spacing_mm, source = spacing(ds, regs)
    probe, center_frequency = _probe(ds, regs)
    return _bmode.decoded_scan(
        path,
        decode,
        n,
        levels,
        sampled=(grey, colour_px),
        layout="dicom",
        key=KEY,
        frame_rate=frame_rate(ds),
        spacing_mm=spacing_mm,
        spacing_source=source,
        regions=regs,
        extra={
            "modality": str(ds.get("Modality", "")),
            "sop_class": getattr(ds.get("SOPClassUID"), "name", None),
            "photometric": photometric,
            "transfer_syntax": tsyntax,
            "regions": regs,
        },
        probe=probe,
        center_frequency=center_frequency,
        dtype=f"uint{ds.BitsAllocated} {photometric}",
        compression=tsyntax,
        datasets=[KEY],
        pixels=read_pixels,
    )


def _decoder(ds: Any, photometric: str, levels: int):
    """frame index → decoded frame (z, x) grey or (z, x, 3) RGB, MONOCHROME1 inverted."""
    from pydicom.pixels import apply_color_lut, pixel_array

    signed = int(ds.get("PixelRepresentation", 0)) == 1
    offset = 2 ** (int(ds.get("BitsStored", ds.BitsAllocated)) - 1) if signed else 0

    def decode(i: int) -> np.ndarray:
        arr = pixel_array(ds, index=i)
        if photometric == "PALETTE COLOR":
            return apply_color_lut(arr, ds)
        if offset:  # signed grey levels (rare in ultrasound): shifted to start at 0
            arr = arr.astype(np.int32) + offset
        if photometric == "MONOCHROME1":
            return levels - arr.astype(np.int32)
        return arr

    return decode


@register_reader
class DicomReader(Reader):
    """DICOM files: a .dcm / .dicom suffix or the 'DICM' magic at byte 128."""

    name, priority = "dicom", 60
    suffixes = (".dcm", ".dicom")
    description = "DICOM ultrasound images and cines"

    @classmethod
    def detect(cls, src: Source) -> bool:
        return src.path.is_file() and (
            src.suffix in cls.suffixes or src.head(132)[128:132] == b"DICM"
        )

    @classmethod
    def read(cls, src: Source) -> Scan:
        return read_dicom(src.path, src.key)
