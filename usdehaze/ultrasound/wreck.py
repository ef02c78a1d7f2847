"""Gross-failure check, after dehazing (issue 28, item 2): did the result wreck a frame? Needs no
truth: per frame, only the input, the tissue estimate and the haze estimate (dB, one scale) and
an optional mask of the pixels to judge (a B-mode fan on black, burned-in overlays left out).

The do-no-harm check (usdehaze.ultrasound.harm) asks, over a scan, whether the result separates
dark from bright a little worse than the input. It missed the wreck issue 28 saw on a real
apical four-chamber cine (septum 10–16 dB darker, apex-vs-septum contrast +8.9 → −6.9 dB, bright
structures in the haze estimate, dark blobs painted outside the heart). This check looks for
such failures frame by frame. The frame is cut into about ``BLOCKS`` × ``BLOCKS`` blocks; each
block's mean dB (over its judged pixels; blocks less than ``MIN_COVER`` judged are left out) of
the input, the tissue and the haze estimate are compared, with regions taken from the input's
block levels (their percentiles over the judged blocks):

- ``bright_darkened``: the input's brightest blocks (≥ ``BRIGHT_PERCENTILE``) lose more than
  ``BRIGHT_DROP_DB`` in the tissue estimate beyond what their depth row loses (median over them).
  Removing haze lowers the dark regions, where haze dominates, and whole depths where clutter or
  reverberation lies (haze varies chiefly with depth); darkening the brightest structures more
  than the rest of their depth is losing tissue.
- ``order_inverted``: the contrast of the input's bright (≥ ``ORDER_BRIGHT_PERCENTILE``) minus
  dark (≤ ``DARK_PERCENTILE``) blocks, measured in the tissue estimate, is not positive, or is
  more than ``CONTRAST_FALL_DB`` below the input's.
- ``moved_to_haze``: more than ``HAZE_SHARE`` of the brightest blocks have a haze estimate within
  ``HAZE_MARGIN_DB`` of the input, at depths where fewer than ``ROW_HAZY_SHARE`` of the blocks do
  (not a clutter depth): bright structures explained as haze.
- ``invented_dark``: more than ``DARK_SHARE`` of the blocks at tissue level in the input (≥ its
  median block) are ``DARK_DROP_DB`` or more darker in the tissue estimate beyond their depth
  row: dark regions painted where the input has tissue (a block is 1/``BLOCKS`` of each side, so
  what counts is compact).

A frame is flagged when any fires. The thresholds come from ``pipelines/calibrate_checks.py`` on
constructed material (docs/results.md), stated beside each. What no level check can see: haze as
bright as the brightest tissue (removing it is what a wreck does), and cleared haze over
tissue-level input against painted dark (both are tissue-level input made dark). Cost: about
1 ms per 256 × 256 frame (block sums, row medians and one percentile call; no filtering).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCKS = 40  # blocks per axis: a block is 1/40 of the frame's side, as harm.py's smoothing σ
MIN_COVER = 0.5  # a block with less than this share of judged pixels is left out
MIN_BLOCKS = 64  # fewer judged blocks: the frame is not scored
DARK_PERCENTILE = 15.0  # as harm.py's dark regions: cavities and hazy gaps
ORDER_BRIGHT_PERCENTILE = 75.0  # bright side of the order check: tissue, not the haze-lifted mid
BRIGHT_PERCENTILE = 90.0  # the brightest structures (septum, valves, pericardium)
TISSUE_PERCENTILE = 50.0  # "at tissue level" for the invented-dark check
HAZE_MARGIN_DB = 3.0  # haze within 3 dB of the input: haze power at least half the input's
DARK_DROP_DB = 12.0  # a block this much darker (beyond its depth row) counts as painted dark
ROW_HAZY_SHARE = 0.5  # a depth row with at least half its blocks haze-dominated: clutter depth
# Thresholds from pipelines/calibrate_checks.py on constructed material (docs/results.md: the
# table and its limits). "Good": clean truth as the result on the demo scan (haze -10 dB; also
# as a display image, judged in its fan) and on simulate frames at -12 dB, the input as the
# result, mild dehazing (darkest 30 % -10/-20 dB, the rest within ±1 dB), the shipped
# default's result on the demo scan. "Harmed": the same
# inputs with their brightest true tissue -6/-12 dB, order mirrored, brightest tissue as haze,
# dark blobs on 10/25 % of the true tissue.
BRIGHT_DROP_DB = 2.5  # good ≤ 1.74 (demo truth: its near-field clutter removed); tissue -12 dB
# on simulate frames 3.6-6.8 (on the demo 0.2-6.3: its brightest input is near-field haze)
CONTRAST_FALL_DB = 6.0  # good: the contrast rises (demo, -12 dB) or falls ≤ 2.8 dB (truth at
# -6 dB haze); the mirrored order and the all-at-once wreck turn it negative
HAZE_SHARE = 0.2  # good ≤ 0.14 (simulate truth, -12 and -6 dB haze); tissue moved into the
# haze 0.23-0.55 on simulate frames, 0.12-0.47 on the demo (plain and as a display image)
DARK_SHARE = 0.15  # good ≤ 0.14 (simulate truth at -12 dB: haze blobs over tissue-level input,
# cleared); blobs on 25 % of the tissue 0.13-0.23; on 10 %, 0.08-0.12: not told from haze removed

CHECKS = ("bright_darkened", "order_inverted", "moved_to_haze", "invented_dark")


@dataclass(frozen=True)
class FrameWreck:
    """One frame's figures (NaN where not measured) and the checks that fired on it."""

    frame: int
    bright_drop_db: float  # median dB the brightest blocks lost beyond their depth row
    contrast_in_db: float  # bright − dark blocks, input
    contrast_out_db: float  # the same blocks, tissue estimate
    haze_share: float  # share of the brightest blocks with haze ≥ input − HAZE_MARGIN_DB
    dark_share: float  # share of tissue-level blocks ≥ DARK_DROP_DB darker
    reasons: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        """True when any check fired on this frame."""
        return bool(self.reasons)


def judged_mask(masks: dict[str, np.ndarray]) -> np.ndarray | None:
    """The pixels to judge from a Scan's ``masks``: its "sector" without its "overlay" (burned-in
    text, markers); None (judge all) when it has neither."""
    sector, overlay = masks.get("sector"), masks.get("overlay")
    if sector is None and overlay is None:
        return None
    judged = np.ones(np.shape(sector if sector is not None else overlay), bool)
    if sector is not None:
        judged &= np.asarray(sector, bool)
    if overlay is not None:
        judged &= ~np.asarray(overlay, bool)
    return judged


THRESHOLDS = {
    "bright_drop_db": BRIGHT_DROP_DB,
    "contrast_fall_db": CONTRAST_FALL_DB,
    "haze_share": HAZE_SHARE,
    "dark_share": DARK_SHARE,
}


def _block_sums(a: np.ndarray, bz: int, bx: int) -> np.ndarray:
    """Sums over bz × bx blocks of a (z, x) array (the ragged last rows/columns dropped)."""
    nz, nx = a.shape[0] // bz, a.shape[1] // bx
    a = a[: nz * bz, : nx * bx].reshape(nz, bz, nx * bx)
    rows = a.sum(axis=1, dtype=np.float64)  # contiguous first: fast; float32 input summed as 64
    return rows.reshape(nz, nx, bx).sum(axis=2)


def block_means(
    images: Sequence[np.ndarray], mask: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Mean of each (z, x) image over the judged pixels of each block (block grid (Z, X), NaN
    where less than ``MIN_COVER`` of a block is judged), and the map of the kept blocks."""
    z, x = mask.shape
    bz, bx = max(z // BLOCKS, 1), max(x // BLOCKS, 1)
    cover = _block_sums(mask.astype(np.float64), bz, bx)
    keep = cover >= MIN_COVER * bz * bx
    n = np.where(keep, cover, np.nan)
    every = bool(mask.all())  # no masked pixel: skip zeroing them
    means = [_block_sums(im if every else np.where(mask, im, 0.0), bz, bx) / n for im in images]
    return means, keep


def _beyond_row(d: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each kept block's value minus the median of its depth row's kept blocks (NaN elsewhere):
    haze (near-field clutter, reverberation) varies chiefly with depth, tissue structures do not
    fill a row."""
    v = np.sort(np.where(keep, d, np.inf), axis=1)  # kept values first, in order
    n = keep.sum(axis=1)
    lo = np.take_along_axis(v, np.maximum((n - 1) // 2, 0)[:, None], axis=1)
    hi = np.take_along_axis(v, np.maximum(n // 2, 0)[:, None], axis=1)
    med = np.where(n[:, None] > 0, (lo + hi) / 2, np.nan)
    return np.where(keep, d - med, np.nan)


def frame_wreck(
    frame: int,
    input_db: np.ndarray,
    tissue_db: np.ndarray,
    haze_db: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> FrameWreck | None:
    """The figures of one frame, or None when it cannot be scored (shapes differ, too few judged
    blocks). Non-finite pixels are left out as if masked; rows are the frame's first axis
    (depth on a polar grid, z on a Cartesian one)."""
    x, t = np.asarray(input_db), np.asarray(tissue_db)  # any float dtype; block sums in float64
    h = None if haze_db is None else np.asarray(haze_db)
    if x.ndim != 2 or t.shape != x.shape or (h is not None and h.shape != x.shape):
        return None
    m = np.isfinite(x) & np.isfinite(t)
    if h is not None:
        m &= np.isfinite(h)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != x.shape:
            return None
        m &= mask
    means, keep = block_means([x, t] if h is None else [x, t, h], m)
    if keep.sum() < MIN_BLOCKS:
        return None
    xg = means[0]
    drop_g = xg - means[1]
    beyond = _beyond_row(drop_g, keep)[keep]  # dB lost beyond the block's depth row
    xb, tb = xg[keep], means[1][keep]
    p_dark, p_tissue, p_order, p_bright = np.percentile(
        xb, [DARK_PERCENTILE, TISSUE_PERCENTILE, ORDER_BRIGHT_PERCENTILE, BRIGHT_PERCENTILE]
    )
    bright, dark, upper, tissue = xb >= p_bright, xb <= p_dark, xb >= p_order, xb >= p_tissue
    bright_drop = float(np.median(beyond[bright]))
    c_in = float(xb[upper].mean() - xb[dark].mean())
    c_out = float(tb[upper].mean() - tb[dark].mean())
    if h is None:
        haze_share = float("nan")
    else:
        hazy = keep & (means[2] >= xg - HAZE_MARGIN_DB)  # haze ≈ input (NaN compares False)
        row_hazy = hazy.sum(axis=1, keepdims=True) / np.maximum(keep.sum(axis=1, keepdims=True), 1)
        moved = hazy & (row_hazy < ROW_HAZY_SHARE)  # not at a haze-dominated depth
        haze_share = float(np.mean(moved[keep][bright]))
    dark_share = float(np.mean(beyond[tissue] >= DARK_DROP_DB))
    fired = {
        "bright_darkened": bright_drop > BRIGHT_DROP_DB,
        "order_inverted": c_in > 0 and (c_out <= 0 or c_out < c_in - CONTRAST_FALL_DB),
        "moved_to_haze": haze_share > HAZE_SHARE,  # False for NaN
        "invented_dark": dark_share > DARK_SHARE,
    }
    reasons = tuple(k for k in CHECKS if fired[k])
    return FrameWreck(int(frame), bright_drop, c_in, c_out, haze_share, dark_share, reasons)


@dataclass
class WreckCheck:
    """Per-frame gross-failure figures of a run, gathered batch by batch; the flagged frames."""

    frames: list[FrameWreck] = field(default_factory=list)

    def add(
        self,
        indices: Sequence[int],
        input_db: np.ndarray,
        tissue_db: np.ndarray,
        haze_db: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        """Score a batch: frames (n, z, x) of the input, tissue and haze estimates in dB;
        ``mask`` (z, x) bool: the pixels to judge (default: all)."""
        for k, i in enumerate(indices):
            f = frame_wreck(
                i, input_db[k], tissue_db[k], None if haze_db is None else haze_db[k], mask
            )
            if f is not None:
                self.frames.append(f)

    @property
    def flagged(self) -> list[int]:
        """The flagged frames' indices, in the order scored."""
        return [f.frame for f in self.frames if f.flagged]

    def reasons(self, frame: int) -> tuple[str, ...]:
        """The checks that fired on ``frame`` (empty when it was not flagged or not scored)."""
        return next((f.reasons for f in self.frames if f.frame == int(frame)), ())

    @property
    def warning(self) -> bool:
        """True when any scored frame is flagged."""
        return any(f.flagged for f in self.frames)

    def attrs(self) -> dict[str, Any]:
        """Root attributes of a result file: ``wreck_*``. Figures are lists aligned with
        ``wreck_frames`` (the scored frames); ``wreck_reasons`` maps each flagged frame (as a
        string: JSON keys) to the checks that fired on it."""
        fs = self.frames
        return {
            "wreck_warning": self.warning,
            "wreck_frames": [f.frame for f in fs],
            "wreck_flagged_frames": self.flagged,
            "wreck_reasons": {str(f.frame): list(f.reasons) for f in fs if f.flagged},
            "wreck_bright_drop_db": [f.bright_drop_db for f in fs],
            "wreck_contrast_in_db": [f.contrast_in_db for f in fs],
            "wreck_contrast_out_db": [f.contrast_out_db for f in fs],
            "wreck_haze_share": [f.haze_share for f in fs],
            "wreck_dark_share": [f.dark_share for f in fs],
            "wreck_thresholds": dict(THRESHOLDS),
        }

    def message(self, name: str) -> str:
        """The one line that says which frames were flagged and why."""
        bad = [f for f in self.frames if f.flagged]
        counts = {k: sum(k in f.reasons for f in bad) for k in CHECKS}
        why = ", ".join(f"{k.replace('_', ' ')} ({n})" for k, n in counts.items() if n)
        shown = [f.frame for f in bad][:8]
        more = f" and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
        return (
            f"{name}: the result wrecks {len(bad)} of {len(self.frames)} frame(s) {shown}{more}: "
            f"{why}; compare with the input before using these frames"
        )
