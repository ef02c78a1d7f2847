"""Burned-in overlays (ultrasound/overlays.py) on rendered cines whose overlays are known: text
outside and inside the cone, a moving ECG trace, a green marker, and a bright slowly moving,
partly clipped wall inside the cone that must stay tissue."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_sector import jpeg, render_cine

from usdehaze.ultrasound.overlays import find_overlays
from usdehaze.ultrasound.sector import find_sector


def add_wall(frames, tissue, seed=1, scale=300.0):
    """A thick bright band across the cone, moving 0.3 px a frame, clipped at 255 in most
    pixels (a pericardium at high gain); returns its (ever covered) mask."""
    rng = np.random.default_rng(seed)
    n, z, x = frames.shape
    rows = np.arange(z)[:, None]
    ever = np.zeros((z, x), bool)
    rows_t, _ = np.nonzero(tissue)
    centre = np.percentile(rows_t, 88)
    for i in range(n):
        band = (np.abs(rows - centre - 0.3 * i) < 6) & tissue
        frames[i][band] = np.clip(np.round(rng.rayleigh(scale, band.sum())), 0, 255)
        ever |= band
    return ever


def score(found, truth, tissue):
    recall = np.count_nonzero(found & truth) / np.count_nonzero(truth)
    false_in_tissue = np.count_nonzero(found & tissue & ~truth) / np.count_nonzero(tissue)
    return recall, false_in_tissue


@pytest.mark.parametrize("n", [8, 2])
def test_overlays_of_a_cine(n):
    frames, tissue, truth, colour = render_cine(n=n)
    wall = add_wall(frames, tissue)
    sector = find_sector(frames)
    assert sector is not None
    inside = sector.mask(tissue.shape)
    found = find_overlays(frames, colour=colour, sector_mask=inside)
    recall, false_in_tissue = score(found, truth, tissue)
    assert recall >= 0.95, recall
    assert false_in_tissue <= 0.005, false_in_tissue
    # the clipped, moving wall stays tissue inside the fitted cone (a pixel it has outside the
    # fitted edge, at the corners of the far arc, is outside and so kept as it is)
    assert not (found & wall & ~truth & inside).any()
    # the text inside the cone (calipers, a label) is found, not only what is outside
    inner = truth & tissue
    assert inner.any() and np.count_nonzero(found & inner) / np.count_nonzero(inner) >= 0.95


@pytest.mark.parametrize("n", [8, 2])
def test_overlays_of_a_jpeg_cine(n):
    """Through JPEG (quality 75) text over tissue is no longer identical in every frame (its
    blocks change with the speckle beneath): found as near-white and nearly constant."""
    frames, tissue, truth, colour = render_cine(n=n, seed=20 + n)
    wall = add_wall(frames, tissue)
    frames = jpeg(frames, 75)
    inside = find_sector(frames).mask(tissue.shape)
    found = find_overlays(frames, colour=colour, sector_mask=inside)
    recall, false_in_tissue = score(found, truth, tissue)
    assert recall >= 0.95 and false_in_tissue <= 0.005, (recall, false_in_tissue)
    inner = truth & tissue
    assert np.count_nonzero(found & inner) / np.count_nonzero(inner) >= 0.95
    assert not (found & wall & ~truth & inside).any()


def test_overlays_without_a_given_sector():
    frames, tissue, truth, colour = render_cine(n=6, seed=3)
    found = find_overlays(frames, colour=colour)
    recall, false_in_tissue = score(found, truth, tissue)
    assert recall >= 0.95 and false_in_tissue <= 0.005, (recall, false_in_tissue)


def test_overlays_of_one_frame():
    frames, tissue, truth, colour = render_cine(n=1, seed=4)
    wall = add_wall(frames, tissue, scale=2000.0)  # fully clipped: thick, so not text
    found = find_overlays(frames[0], colour=colour, sector_mask=tissue)
    recall, false_in_tissue = score(found, truth, tissue)
    assert recall >= 0.95 and false_in_tissue <= 0.005, (recall, false_in_tissue)
    assert not (found & wall & ~truth).any()


def test_grey_text_inside_is_found_only_when_static():
    """Grey (not saturated) text inside the cone: static over frames, so an overlay; the same
    values redrawn as speckle that changes every frame are not."""
    frames, tissue, _, _ = render_cine(n=6, seed=5, text=False, ecg=False, marker=False)
    rows, cols = np.nonzero(tissue)
    r, c = int(np.median(rows)), int(np.median(cols))
    caliper = np.zeros(tissue.shape, bool)
    caliper[r - 6 : r + 7, c] = True
    caliper[r, c - 6 : c + 7] = True
    frames[:, caliper] = 180
    found = find_overlays(frames, sector_mask=tissue)
    assert found[caliper].all()
    assert np.count_nonzero(found & ~caliper) <= 8 * np.count_nonzero(caliper)
    moving = frames.copy()
    for i in range(len(moving)):
        moving[i][caliper] = 170 + i
    assert not find_overlays(moving, sector_mask=tissue)[caliper].any()


def test_outside_the_cone_everything_non_zero_is_an_overlay():
    frames, tissue, _, _ = render_cine(n=4, seed=6, text=False, ecg=False, marker=False)
    frames[:, 5:9, 5:60] = 40  # a dim grey scale bar beside the cone
    found = find_overlays(frames, sector_mask=tissue)
    assert found[5:9, 5:60].all()
    assert not found[~tissue & (frames.max(axis=0) == 0)].any()


def test_blank_frames_have_no_overlays():
    assert not find_overlays(np.zeros((3, 64, 80))).any()
    assert math.isfinite(float(find_overlays(np.zeros((64, 80))).sum()))


def test_real_cine_and_frame_from_pydicom():
    """pydicom's clinical files: over the 30 JPEG frames of the cardiac cine no speckle pixel
    inside the fan is taken for an overlay; in the curved-array frame (one frame) the caliper
    crosses drawn inside the fan (rows 280–310, columns 450–510) are, and little else inside."""
    from test_sector import dicom_luma

    from usdehaze.ultrasound.sector import from_regions, reconcile

    luma, items = dicom_luma("examples_ybr_color.dcm")
    shape = luma.shape[1:]
    sector, _ = reconcile(from_regions(items, shape), find_sector(luma), shape)
    inside = sector.mask(shape)
    found = find_overlays(luma, sector_mask=inside)
    assert not (found & inside).any()
    assert found[~inside & (luma.max(axis=0) > 10)].all()

    luma, items = dicom_luma("examples_palette.dcm")
    shape = luma.shape[1:]
    sector, _ = reconcile(from_regions(items, shape), find_sector(luma), shape)
    inside = sector.mask(shape)
    found = find_overlays(luma, sector_mask=inside) & inside
    calipers = np.zeros(shape, bool)
    calipers[280:310, 450:510] = True
    assert np.count_nonzero(found & calipers) >= 20
    assert np.count_nonzero(found & ~calipers) <= 0.001 * np.count_nonzero(inside)
