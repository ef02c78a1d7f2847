"""The imaging region of scan-converted B-mode (ultrasound/sector.py) on rendered cines of known
geometry: a fan or a rectangle of Rayleigh speckle on black, a dark cavity, burned-in text, a
moving ECG trace and a green marker; DICOM region tags read, clipped and checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from usdehaze.ultrasound.sector import REGIONS, Sector, find_sector, from_regions, reconcile


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
    if radii[0] > 0:
        assert abs(found.radii[0] / radii[0] - 1) <= 0.02 or abs(found.radii[0] - radii[0]) <= 2
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
