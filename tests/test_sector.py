"""The imaging region of scan-converted B-mode (ultrasound/sector.py) on rendered cines of known
geometry: a fan or a rectangle of Rayleigh speckle on black, a dark cavity, burned-in text, a
moving ECG trace and a green marker; DICOM region tags read, clipped and checked."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from usdehaze.ultrasound.sector import REGIONS, find_sector, from_regions, reconcile


def fan_mask(shape, apex, angles, radii):
    """The true fan: pixel centres within the angles and radii of the apex."""
    r = np.arange(shape[0])[:, None] - apex[0]
    c = np.arange(shape[1])[None, :] - apex[1]
    rho, phi = np.hypot(r, c), np.arctan2(c, r)
    return (phi >= angles[0]) & (phi <= angles[1]) & (rho >= radii[0]) & (rho <= radii[1])


def draw_text(shape, items):
    """Saturated (255) burned-in text, no anti-aliasing: items of ((row, col), string)."""
    img = Image.new("L", (shape[1], shape[0]), 0)
    d = ImageDraw.Draw(img)
    d.fontmode = "1"
    for (row, col), s in items:
        d.text((col, row), s, fill=255)
    return np.asarray(img) > 0


def render_cine(
    shape=(300, 400),
    apex=(-30.0, 200.0),
    angles=(-math.radians(40), math.radians(40)),
    radii=(50.0, 300.0),
    n=8,
    seed=0,
    region=None,
    cavity=True,
    text=True,
    ecg=True,
    marker=True,
):
    """A scan-converted cine: frames (n, z, x) float 0..255 (8-bit values), the true imaging
    mask, the true overlay mask (text, ECG ever drawn, marker) and the colour mask."""
    rng = np.random.default_rng(seed)
    z, x = shape
    tissue = fan_mask(shape, apex, angles, radii) if region is None else region
    rr, cc = np.mgrid[0:z, 0:x]
    scale = np.full(shape, 45.0)
    if cavity:
        rows, cols = np.nonzero(tissue)
        cr, cx = rows.mean(), cols.mean()
        hr, hx = 0.18 * np.ptp(rows), 0.12 * np.ptp(cols)
        scale[((rr - cr) / hr) ** 2 + ((cc - cx) / hx) ** 2 < 1] = 4.0
    frames = np.zeros((n, z, x))
    for i in range(n):
        frames[i] = np.where(tissue, np.clip(np.round(rng.rayleigh(scale)), 0, 255), 0)
    overlay = np.zeros(shape, bool)
    if text:
        t = draw_text(
            shape, [((2, 4), "HR 72 bpm"), ((14, 4), "60 dB  G 50"), ((2, x - 70), "ECHO 1")]
        )
        # calipers and a depth label inside the cone
        rows, cols = np.nonzero(tissue)
        mid_r, mid_c = int(np.median(rows)), int(np.median(cols))
        t |= draw_text(
            shape, [((mid_r - 40, mid_c + 20), "+"), ((mid_r + 30, mid_c - 30), "x 4.1cm")]
        )
        frames[:, t] = 255
        overlay |= t
    if ecg:
        for i in range(n):
            img = Image.new("L", (x, z), 0)
            d = ImageDraw.Draw(img)
            xs = np.arange(0, x, 2)
            ph = (xs + 37 * i) % 120
            ys = z - 12 - np.where((ph > 50) & (ph < 56), 9 * np.sin((ph - 50) / 6 * np.pi), 0.0)
            d.line(list(zip(xs.tolist(), ys.tolist())), fill=200, width=1)
            e = (np.asarray(img) > 0) & ~tissue
            frames[i][e] = 200
            overlay |= e
    colour = np.zeros(shape, bool)
    if marker:
        colour[z - 30 : z - 24, 6:14] = True  # a green focus marker: luma of (0, 255, 0)
        frames[:, colour] = 150
        overlay |= colour
    return frames, tissue, overlay, colour


def iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def check_fan(found, apex, angles, radii, tissue):
    assert found is not None and found.kind == "sector"
    assert abs(found.apex[0] - apex[0]) <= 2 and abs(found.apex[1] - apex[1]) <= 2, found.apex
    for a, b in zip(found.angles, angles):
        assert abs(math.degrees(a - b)) <= 1.0, found.angles
    if radii[0] > max(-apex[0], 0):  # a near arc inside the frame
        assert abs(found.radii[0] / radii[0] - 1) <= 0.02 or abs(found.radii[0] - radii[0]) <= 2
    elif radii[0] == 0 and apex[0] >= 0:  # the apex inside the frame
        assert found.radii[0] <= 3
    assert abs(found.radii[1] / radii[1] - 1) <= 0.02, found.radii
    assert iou(found.mask(tissue.shape), tissue) >= 0.97


def test_fan_with_text_ecg_cavity_and_marker():
    apex, angles, radii = (-30.0, 200.0), (-math.radians(40), math.radians(40)), (50.0, 300.0)
    frames, tissue, _, _ = render_cine(apex=apex, angles=angles, radii=radii)
    found = find_sector(frames)
    check_fan(found, apex, angles, radii, tissue)
    assert found.source == "pixels" and found.spacing_mm is None
    assert "from the pixels" in found.note() and "spacing unknown" in found.note()
    rec = found.record()
    assert rec["kind"] == "sector" and rec["bounds"] == list(found.bounds)


APEX, ANGLES, RADII = (-30.0, 200.0), (-math.radians(40), math.radians(40)), (50.0, 300.0)


def jpeg(frames, quality=70):
    """Each frame through 8-bit JPEG, as clinical cines are stored."""
    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f.astype(np.uint8)).save(buf, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf), dtype=np.float64))
    return np.stack(out)


@pytest.mark.parametrize("n", [1, 2])
def test_fan_from_few_frames(n):
    frames, tissue, _, _ = render_cine(n=n, seed=n)
    check_fan(find_sector(frames), APEX, ANGLES, RADII, tissue)


def test_fan_through_jpeg():
    frames, tissue, _, _ = render_cine(n=4, seed=7)
    check_fan(find_sector(jpeg(frames)), APEX, ANGLES, RADII, tissue)


def test_frozen_cine_is_read_as_one_frame():
    """A still stored as a cine (every frame identical) is not 'all static overlay'."""
    frames, tissue, _, _ = render_cine(n=1, seed=8)
    check_fan(find_sector(np.repeat(frames, 5, axis=0)), APEX, ANGLES, RADII, tissue)


def test_apex_inside_the_frame_without_near_arc():
    apex, angles, radii = (12.0, 180.0), (-math.radians(35), math.radians(37)), (0.0, 260.0)
    frames, tissue, _, _ = render_cine(apex=apex, angles=angles, radii=radii, n=3, seed=9)
    found = find_sector(frames)
    check_fan(found, apex, angles, radii, tissue)
    assert found.radii[0] <= 3.0


def test_linear_region():
    shape = (280, 360)
    region = np.zeros(shape, bool)
    region[30:250, 70:300] = True
    frames, tissue, _, _ = render_cine(shape=shape, region=region, n=5, seed=10)
    found = find_sector(frames)
    assert found is not None and found.kind == "linear"
    assert found.bounds == (30, 70, 250, 300)
    assert iou(found.mask(shape), region) >= 0.97
    assert "rectangle rows 30:250, cols 70:300" in found.note()


def test_blank_or_text_only_frames_have_no_region():
    assert find_sector(np.zeros((3, 120, 160))) is None
    assert find_sector(np.zeros((120, 160))) is None
    text = draw_text((120, 160), [((5, 5), "HR 72 bpm"), ((60, 20), "no image here")])
    assert find_sector(np.repeat(np.where(text, 255.0, 0.0)[None], 3, axis=0)) is None


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    z=st.integers(220, 340),
    x=st.integers(300, 440),
    apex_row=st.floats(-60, 5),
    apex_shift=st.floats(-15, 15),
    half=st.floats(30, 45),
    tilt=st.floats(-2, 2),
    near=st.floats(0, 60),
    far_frac=st.floats(0.7, 0.97),
    n=st.sampled_from([1, 3]),
    seed=st.integers(0, 1000),
)
def test_random_fans(z, x, apex_row, apex_shift, half, tilt, near, far_frac, n, seed):
    """Any fan whose arcs and side lines lie inside the frame is fitted to the stated accuracy."""
    apex = (apex_row, x / 2 + apex_shift)
    angles = (-math.radians(half + tilt), math.radians(half - tilt))
    far = far_frac * (z - 1 - apex_row)
    far = min(far, (min(apex[1], x - 1 - apex[1]) - 3) / math.sin(max(-angles[0], angles[1])))
    near = max(near, 20.0, -apex_row + 5) if near > 10 else 0.0
    if far < near + 80:
        return
    frames, tissue, _, _ = render_cine((z, x), apex, angles, (near, far), n=n, seed=seed)
    check_fan(find_sector(frames), apex, angles, (near, far), tissue)


# --- DICOM region tags -------------------------------------------------------------------


def region(x0, y0, x1, y1, delta_cm=0.05, **extra):
    """A SequenceOfUltrasoundRegions item as the readers pass it (DICOM keywords)."""
    item = {
        "RegionSpatialFormat": 1,
        "RegionDataType": 1,
        "RegionLocationMinX0": x0,
        "RegionLocationMinY0": y0,
        "RegionLocationMaxX1": x1,
        "RegionLocationMaxY1": y1,
        "PhysicalUnitsXDirection": 3,
        "PhysicalUnitsYDirection": 3,
        "PhysicalDeltaX": delta_cm,
        "PhysicalDeltaY": delta_cm,
    }
    item.update(extra)
    return item


def test_from_regions_picks_the_tissue_region_with_spacing_and_apex():
    items = [
        region(0, 0, 399, 299, RegionDataType=3),  # a 2-D colour-flow region, larger
        {"RegionSpatialFormat": 3, "RegionLocationMinX0": 0, "RegionLocationMinY0": 0,
         "RegionLocationMaxX1": 399, "RegionLocationMaxY1": 299},  # a spectral strip
        region(60, 10, 339, 289, ReferencePixelX0=140, ReferencePixelY0=-40),
        region(0, 0, 20, 20),  # a small tissue thumbnail
    ]  # fmt: skip
    s = from_regions(items, (300, 400))
    assert s.source == REGIONS and s.kind == "linear"
    assert s.bounds == (10, 60, 290, 340)  # exclusive ends
    assert s.spacing_mm == pytest.approx((0.5, 0.5))
    assert s.apex == pytest.approx((-30.0, 200.0))
    assert s.mask((300, 400)).sum() == 280 * 280


def test_from_regions_physical_reference_value_and_units():
    # the reference pixel at 1.5 cm depth: the transducer lies 1.5 cm / 0.05 cm = 30 px above it
    item = region(60, 10, 339, 289, "0.05", ReferencePixelX0="140", ReferencePixelY0="0",
                  ReferencePixelPhysicalValueY=1.5)  # fmt: skip
    s = from_regions([item], (300, 400))
    assert s.apex == pytest.approx((10 + 0 - 30.0, 200.0))
    # not in cm: no spacing, and no apex from the reference
    s = from_regions([region(60, 10, 339, 289, PhysicalUnitsXDirection=0)], (300, 400))
    assert s.spacing_mm is None and s.apex == pytest.approx((10.0, 199.5))
    assert from_regions([], (300, 400)) is None
    assert from_regions([{"RegionSpatialFormat": 1}], (300, 400)) is None


def cone():
    frames, tissue, _, _ = render_cine(n=4, seed=11)
    found = find_sector(frames)
    assert found is not None
    return found, tissue


def test_reconcile_consistent_tags_give_the_fan_and_the_spacing():
    found, tissue = cone()
    tagged = from_regions(
        [region(0, 0, 399, 299, ReferencePixelX0=200, ReferencePixelY0=-30)], (300, 400)
    )
    s, note = reconcile(tagged, found, (300, 400))
    assert s.kind == "sector" and s.source == REGIONS
    assert s.spacing_mm == pytest.approx((0.5, 0.5))
    assert np.array_equal(s.mask((300, 400)), found.mask((300, 400)))
    assert "fan fitted to the pixels within the tagged box" in note and "depth 150 mm" in note
    assert ";" not in note  # nothing else said: nothing else was wrong


def test_reconcile_clips_a_box_larger_than_the_frame():
    found, _ = cone()
    tagged = from_regions([region(-5, 0, 420, 340)], (300, 400))
    s, note = reconcile(tagged, found, (300, 400))
    assert "exceeds the 300×400 frame: clipped" in note
    assert s.spacing_mm == pytest.approx((0.5, 0.5))
    b = s.bounds
    assert 0 <= b[0] and 0 <= b[1] and b[2] <= 300 and b[3] <= 400
    # without a cone from the pixels: clipped, and said that it could not be checked
    s, note = reconcile(tagged, None, (300, 400))
    assert s.bounds == (0, 0, 300, 400) and "not checkable" in note


def test_reconcile_box_contradicting_the_pixels():
    found, _ = cone()
    tagged = from_regions([region(250, 180, 399, 299)], (300, 400))
    s, note = reconcile(tagged, found, (300, 400))
    assert s is found and s.spacing_mm is None and s.source == "pixels"
    assert "the pixels win" in note and "% of the cone" in note


def test_reconcile_tags_for_a_frame_twice_as_large():
    """The cine was exported at half the size the tags describe: box and spacing off by 2×,
    caught because the box exceeds the frame and the cone fits it halved."""
    found, _ = cone()
    tagged = from_regions([region(0, 0, 799, 599, delta_cm=0.025)], (300, 400))
    s, note = reconcile(tagged, found, (300, 400))
    assert "frame 2× larger" in note and "spacing ×2" in note
    assert s.spacing_mm == pytest.approx((0.5, 0.5))


def test_reconcile_spacing_checks():
    found, _ = cone()
    # anisotropic (x off by 2×) on a fan that is circular in pixels: refused
    tagged = from_regions([region(0, 0, 399, 299, PhysicalDeltaX=0.1)], (300, 400))
    s, note = reconcile(tagged, found, (300, 400))
    assert s.spacing_mm is None and "circular in pixels" in note and "×0.50" in note
    # a depth no scanner images (300 px × 2 mm = 600 mm): refused
    s, note = reconcile(from_regions([region(0, 0, 399, 299, 0.2)], (300, 400)), found, (300, 400))
    assert s.spacing_mm is None and "600 mm" in note
    # the same 2× error on both axes with a plausible depth (300 mm → 75 mm) cannot be seen
    # from the pixels (a cone is the same shape at any scale): kept, as documented
    s, note = reconcile(
        from_regions([region(0, 0, 399, 299, 0.025)], (300, 400)), found, (300, 400)
    )
    assert s.spacing_mm == pytest.approx((0.25, 0.25)) and "depth 75 mm" in note


def test_reconcile_reference_point_apex_or_transducer_face():
    """The tags' physical origin is the apex (phased array) or the middle of the transducer
    face on the near arc (curved array): both agree with the fan; a point elsewhere is said."""
    found, _ = cone()
    for ref_row, said in ((-30, False), (20, False), (60, True)):  # apex, face, 40 px below
        item = region(0, 0, 399, 299, ReferencePixelX0=200, ReferencePixelY0=ref_row)
        s, note = reconcile(from_regions([item], (300, 400)), found, (300, 400))
        assert ("40 px from the fan's apex or transducer face" in note) == said, note
        assert s.apex == found.apex


def test_reconcile_far_edge_fading_into_black_takes_the_box():
    """Echoes that fade before the bottom of the image (a curved array over water): the far
    edge is no clean arc, so the tagged box says where the fan ends."""
    frames, tissue, _, _ = render_cine(radii=(50.0, 450.0), n=3, seed=12, cavity=False)
    rows = np.arange(300)[:, None]
    frames *= np.clip((230 - rows) / 60, 0, 1) ** 2  # fades out between rows 170 and 230
    found = find_sector(frames)
    assert found is not None and found.radii[1] < 270
    s, note = reconcile(from_regions([region(0, 0, 399, 299)], (300, 400)), found, (300, 400))
    assert "no clean arc" in note and s.radii[1] > 329 and s.bounds[2] == 300
    assert iou(s.mask((300, 400)), tissue) >= 0.97


def test_reconcile_with_nothing_or_only_pixels():
    s, note = reconcile(None, None, (300, 400))
    assert s.source == "assumed" and s.mask((300, 400)).all() and "whole frame" in note
    found, _ = cone()
    s, note = reconcile(None, found, (300, 400))
    assert s is found and "no region tags" in note
    rec = s.record()
    assert json.loads(json.dumps(rec)) == rec


# --- real clinical files shipped with pydicom (geometry checked against their burned-in text) ---


def dicom_luma(name):
    """Grey frames (n, z, x) and region items of one of pydicom's ultrasound test files."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(get_testdata_file(name))
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds) / 257.0
    arr = np.asarray(arr, dtype=np.float64)
    arr = arr[None] if arr.ndim == 3 else arr
    items = [{el.keyword: el.value for el in item} for item in ds.SequenceOfUltrasoundRegions]
    return arr @ [0.299, 0.587, 0.114], items


def test_real_cardiac_cine_tags_for_a_frame_twice_as_large():
    """pydicom's examples_ybr_color.dcm: a 30-frame apical four-chamber cine at 240 × 320 whose
    region tags describe a 480 × 640 frame (box up to row 414, column 595; 0.51 mm/px). The
    fan found in the pixels fits the box halved: spacing 1.02 mm/px, and the depth it gives
    (≈ 195 mm from the apex) matches the depth scale burned into the image ('19' cm)."""
    luma, items = dicom_luma("examples_ybr_color.dcm")
    found = find_sector(luma)
    assert found is not None and found.kind == "sector"
    assert abs(found.angles[0] + found.angles[1]) < math.radians(1.5)  # a symmetric fan
    assert 80 <= math.degrees(found.angles[1] - found.angles[0]) <= 90  # a phased array's 85°
    s, note = reconcile(from_regions(items, luma.shape[1:]), found, luma.shape[1:])
    assert "frame 2× larger" in note
    assert s.spacing_mm == pytest.approx((1.021, 1.021), abs=1e-3)
    assert 185 <= s.depth_mm() <= 200


def test_real_curved_array_frame_cropped_below_its_tags():
    """pydicom's examples_palette.dcm: a Philips C5-1 (curved array) frame, 350 rows, whose
    region runs to row 519 (the frame was cropped, not resized: the burned-in depth, 11 cm at
    0.262 mm/px below the transducer face, ends at the box's bottom). Echoes fade well above the frame's
    bottom, so the fan runs to the clipped box; the tags' reference point (the face's middle)
    agrees with the fitted fan's near arc."""
    luma, items = dicom_luma("examples_palette.dcm")
    found = find_sector(luma)
    assert found is not None and found.kind == "sector"
    assert abs(found.apex[1] - 460) <= 2  # the middle of the tagged box, columns 120..800
    assert abs(found.angles[0] + found.angles[1]) < math.radians(1.0)
    tagged = from_regions(items, luma.shape[1:])
    s, note = reconcile(tagged, found, luma.shape[1:])
    assert "exceeds the 350×800 frame: clipped" in note and "2× larger" not in note
    assert "no clean arc" in note and "reference point" not in note
    # 11 cm below the face found in the pixels, at the tags' spacing: the tags' box bottom
    face_row = found.apex[0] + found.radii[0]
    assert face_row + 110 / s.spacing_mm[0] == pytest.approx(tagged.bounds[2], abs=5)
