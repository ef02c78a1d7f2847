"""Do-no-harm check, after dehazing: does the result separate the scan's dark and bright regions
at least as well as the input did? Needs no truth and no regions from the user.

The out-of-distribution check (usdehaze.ultrasound.ood) asks, before sampling, whether the tissue
prior explains the input's speckle. It cannot see a scan whose tissue and haze each look familiar
but whose mixture the priors split wrongly: on ``usdehaze simulate``'s frames (diffuse haze
everywhere) the shipped priors remove none of the haze and lower gCNR, while the speckle check
passes. This check looks at the result instead, with regions taken from the input itself:

- *dark* and *bright* regions: the pixels of the input, smoothed over about 1/40 of the frame,
  at or below its 15th and at or above its 60th percentile (in a cardiac view: cavities and
  hazy gaps, and tissue);
- per frame, gCNR and contrast (mean dB of bright minus mean dB of dark) of the input and of the
  tissue estimate on the same regions;
- the result does harm when, in the median over frames, the contrast falls by more than
  ``CONTRAST_TOLERANCE_DB``, or the gCNR falls by more than ``GCNR_TOLERANCE`` while the
  contrast rises by less than ``CONTRAST_GAIN_DB``: the two things issue 14's do-no-harm asks of
  the default (gCNR and haze contrast not below the input's). The exception: taking haze out
  of the bright regions widens their spread, so even the clean truth lowers these regions' gCNR
  on some frames, but then the contrast rises by several dB.
- without harm, the result *takes little haze out* when the median contrast change stays below
  ``CONTRAST_GAIN_DB``: a one-line note (``harm_little_effect``), so a scan the priors do not
  dehaze is said to be so instead of coming back looking processed (issue 32: the README's
  walkthrough scan, from ``usdehaze simulate``, had no word).

Dehazing that works raises the contrast (median +7.8 dB on 8 validation frames of the corpus,
every frame +4.9 dB or more) and the gCNR of these regions; on ``usdehaze simulate`` frames the
shipped default changes the contrast by -1.6..+1.5 dB and lowers the regions' gCNR on 7 of 8
frames (median -0.05), as it lowers the true cavity/myocardium gCNR there. Figures in
docs/results.md. Gross failures of single frames (bright structures darkened, order inverted,
structures in the haze, dark painted on tissue) are usdehaze.ultrasound.wreck's business.

Scan-converted B-mode (display images, ``HarmCheck(display=True)``; ``usdehaze run`` on DICOM,
video and image stacks): near-field clutter brightens the first centimetres of every beam, so
there the input's bright regions are largely clutter, which dehazing rightly takes out: the
clean truth itself lowered the regions' contrast on 21 % of the rendered validation frames.
On display images the check therefore asks whether the input's *brightest* pixels lose more
than the average pixel does. Removing haze or clutter subtracts power, which takes more dB off
a weak pixel than off a strong one, so the brightest structures fall less than the average
pixel around them, or as much where clutter lies over everything; darkening structures,
inverting the order, taking structures out into the haze make them fall more. Two figures, on
the smoothed input and result (``ring_figures``):

- ``ring_bright_db``, per *depth ring* (distance from the fan's apex, ``RING_COUNT`` rings of
  equal pixel count; rows when the judged region is not a fan): the mean dB change of the
  ring's brightest pixels (smoothed input ≥ its ``TOP_PERCENTILE``-th percentile) minus the
  ring's mean dB change; a frame's figure is the ``RING_BRIGHT_QUANTILE``-th percentile over
  the rings (between the second- and third-worst ring: a structure must be darkened in two or
  three depth rings to count).
  Clutter and reverberation fill a ring, so the ring's own mean change takes them out, and a
  uniform gain changes nothing.
- ``bright_db``, over the whole frame: the same with the frame's brightest pixels against the
  frame's mean change: the brightest structures darkened against the whole image (a gain
  that overshoots where the input is brightest), which the rings cannot see when it fills
  their depths.

The result does harm when the median over frames of ``ring_bright_db`` falls below
``-DISPLAY_RING_BRIGHT_FALL_DB`` or that of ``bright_db`` below ``-DISPLAY_BRIGHT_FALL_DB``.
Calibrated by pipelines/calibrate_bmode_harm.py (docs/results.md: thresholds chosen on three
acquisitions, rates on the three others, both ways round). The depth rings' contrast change
(``ring_change_db``: per ring, bright ≥ ``RING_BRIGHT_PERCENTILE`` minus dark ≤
``RING_DARK_PERCENTILE`` pixels, its ``RING_QUANTILE``-th percentile over the rings), which
decided before (fall below ``-DISPLAY_CONTRAST_FALL_DB``), is still measured and recorded: its
dark pixels sit on the display's black floor after a darkening and cannot fall further, so it
warned on uniform gains that help, and it missed more (docs/results.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usdehaze import metrics

DARK_PERCENTILE = 15.0
BRIGHT_PERCENTILE = 60.0
SMOOTH_FRACTION = 1 / 40  # Gaussian σ as a share of the frame's size along each axis
GCNR_TOLERANCE = 0.02  # median fall of the regions' gCNR that counts as harm
CONTRAST_TOLERANCE_DB = 0.5  # median fall of their contrast (dB) that counts as harm
CONTRAST_GAIN_DB = 2.0  # a gCNR fall with a contrast gain at least this large is haze removed
MIN_CORPUS_GAIN_DB = 4.9  # the smallest contrast gain of the default on corpus validation frames
MIN_PIXELS = 64  # fewer pixels in a region: the frame is not scored
# display images (B-mode): regions per depth ring (see the module's note)
RING_COUNT = 16  # depth rings of equal pixel count from the fan's apex
RING_BRIGHT_PERCENTILE = 75.0  # a ring's bright pixels: structures at that depth
RING_DARK_PERCENTILE = 15.0  # a ring's dark pixels: cavities, gaps at that depth
RING_QUANTILE = 25.0  # a frame's figure: this percentile of its rings' contrast changes
MIN_RING_PIXELS = 32  # a ring with fewer judged pixels is left out
DISPLAY_CONTRAST_FALL_DB = 0.4  # ring_change_db's threshold before (recorded, not the verdict)
TOP_PERCENTILE = 90.0  # a ring's (or the frame's) brightest pixels: its structures
RING_BRIGHT_QUANTILE = 10.0  # a frame's ring_bright_db: this percentile over its rings
# The verdict's thresholds: pipelines/calibrate_bmode_harm.py on 144 rendered B-mode frames of 6
# acquisitions (docs/results.md). Chosen on 3 acquisitions (0.1 / 0.5 dB steps, smallest larger
# of the false-alarm and miss rates) they came out at 1.4 dB both ways round, and at 8.0 and 6.5
# dB; the same rule on all six gives 1.4 and 7.5 dB, which ship.
DISPLAY_RING_BRIGHT_FALL_DB = 1.4  # median ring_bright_db below minus this: harm
DISPLAY_BRIGHT_FALL_DB = 7.5  # median bright_db below minus this: harm


@dataclass(frozen=True)
class FrameHarm:
    """One frame: the regions' gCNR and contrast (dB) in the input and in the result."""

    frame: int
    gcnr_in: float
    gcnr_out: float
    contrast_in_db: float
    contrast_out_db: float
    ring_change_db: float = float("nan")  # display images: see ring_figures
    ring_bright_db: float = float("nan")  # display images: see ring_figures
    bright_db: float = float("nan")  # display images: see ring_figures


@functools.lru_cache(maxsize=8)
def _weights(shape: tuple[int, int]) -> np.ndarray:
    """The smoothing's weights where every pixel counts (the same each frame of a shape)."""
    from scipy.ndimage import gaussian_filter

    w = gaussian_filter(np.ones(shape, np.float64), _sigma(shape))
    w.flags.writeable = False
    return w


def _sigma(shape: tuple[int, ...]) -> list[float]:
    return [max(n * SMOOTH_FRACTION, 1.0) for n in shape]


def _smoothed(db: np.ndarray, sector: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A dB frame (z, x) smoothed inside ``sector`` only (default all pixels), and the sector."""
    from scipy.ndimage import gaussian_filter  # here: scipy.ndimage takes 0.2 s to import

    db = np.asarray(db, np.float64)
    sigma = _sigma(db.shape)
    # smooth inside the sector only: pixels outside neither pull the inside down nor count
    if sector is None:  # all pixels: the weights are the shape's, the data as it is
        sector = np.ones(db.shape, bool)
        w, inside_only = _weights(db.shape), db
    else:
        sector = np.asarray(sector, bool)
        w, inside_only = (
            gaussian_filter(sector.astype(np.float64), sigma),
            np.where(sector, db, 0.0),
        )
    return gaussian_filter(inside_only, sigma) / np.maximum(w, 1e-6), sector


def regions(db: np.ndarray, sector: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(dark, bright) masks of a dB frame (z, x) inside ``sector`` (default all pixels)."""
    smooth, sector = _smoothed(db, sector)
    inside = smooth[sector]
    if inside.size == 0:
        empty = np.zeros(db.shape, bool)
        return empty, empty
    lo, hi = np.percentile(inside, [DARK_PERCENTILE, BRIGHT_PERCENTILE])
    return sector & (smooth <= lo), sector & (smooth >= hi)


def depth_rings(mask: np.ndarray) -> np.ndarray:
    """int (z, x): each pixel of ``mask``'s depth ring, 0 (nearest) to ``RING_COUNT`` - 1, by
    distance from the fan's apex (usdehaze.ultrasound.sector.fit_fan; the row when the mask is
    not a fan), rings of equal pixel count; -1 outside the mask."""
    from usdehaze.ultrasound.sector import fit_fan

    mask = np.asarray(mask, bool)
    rows, cols = np.nonzero(mask)
    fan = fit_fan(mask) if rows.size else None
    depth = rows.astype(np.float64)
    if fan is not None:
        depth = np.hypot(rows - fan.apex[0], cols - fan.apex[1])
    out = np.full(mask.shape, -1, np.int16)
    if rows.size:
        edges = np.quantile(depth, np.linspace(0, 1, RING_COUNT + 1)[1:-1])
        out[rows, cols] = np.searchsorted(edges, depth, side="right")
    return out


def ring_figures(
    input_db: np.ndarray, output_db: np.ndarray, mask: np.ndarray, rings: np.ndarray
) -> tuple[float, float, float]:
    """A display frame's harm figures (dB; NaN when no ring is scored), from the smoothed input
    and result inside ``mask``, per depth ring of ``rings`` (depth_rings):

    - ``ring_change_db``: the ring's bright (≥ ``RING_BRIGHT_PERCENTILE``) minus dark (≤
      ``RING_DARK_PERCENTILE``) pixels' mean dB, in the result minus in the input; the
      ``RING_QUANTILE``-th percentile over the rings;
    - ``ring_bright_db``: the mean change (result − input, dB) of the ring's brightest pixels
      (≥ ``TOP_PERCENTILE``) minus the ring's mean change; the ``RING_BRIGHT_QUANTILE``-th
      percentile over the rings. Negative: structures darkened more than their depth;
    - ``bright_db``: the same over the whole judged region (the frame's brightest pixels against
      its mean change).

    Measured on block means of about a third of the smoothing's σ (4 × 4 pixels on a 500-pixel
    frame), smoothed there: the same figures at 1/16 of the cost."""
    x, y, mask, rings = np.asarray(input_db), np.asarray(output_db), np.asarray(mask), rings
    f = max(1, int(min(mask.shape) * SMOOTH_FRACTION / 3))
    if f > 1:
        (x, y), mask = _coarse([x, y], mask, f), _coarse_mask(mask, f)
        rings = rings[f // 2 :: f, f // 2 :: f][: mask.shape[0], : mask.shape[1]]
        mask = mask & (rings >= 0)
    sx, mask = _smoothed(x, mask)
    sy, _ = _smoothed(y, mask)
    return _ring_figures(sx, sy, mask, rings)


def ring_contrast_change(
    input_db: np.ndarray, output_db: np.ndarray, mask: np.ndarray, rings: np.ndarray
) -> float:
    """``ring_change_db`` of ring_figures alone: the depth rings' contrast change (dB)."""
    return ring_figures(input_db, output_db, mask, rings)[0]


def _coarse(images: list[np.ndarray], mask: np.ndarray, f: int) -> list[np.ndarray]:
    """Each (z, x) image's mean over the masked pixels of f × f blocks (0 where none)."""
    z, x = mask.shape[0] // f * f, mask.shape[1] // f * f
    m = mask[:z, :x].reshape(z // f, f, x // f, f)
    n = np.maximum(m.sum(axis=(1, 3)), 1)
    return [
        np.where(m, np.asarray(im, np.float64)[:z, :x].reshape(m.shape), 0.0).sum(axis=(1, 3)) / n
        for im in images
    ]


def _coarse_mask(mask: np.ndarray, f: int) -> np.ndarray:
    """f × f blocks at least half of whose pixels are in ``mask``."""
    z, x = mask.shape[0] // f * f, mask.shape[1] // f * f
    return mask[:z, :x].reshape(z // f, f, x // f, f).sum(axis=(1, 3)) >= f * f / 2


def _ring_figures(
    sx: np.ndarray, sy: np.ndarray, mask: np.ndarray, rings: np.ndarray
) -> tuple[float, float, float]:
    """ring_figures on the smoothed input ``sx`` and result ``sy``."""
    lab = rings[mask]
    order = np.argsort(lab, kind="stable")
    lab, xa, ya = lab[order], sx[mask][order], sy[mask][order]
    ends = np.searchsorted(lab, np.arange(RING_COUNT + 1))
    changes, bright_falls = [], []
    for j in range(RING_COUNT):
        a, b = xa[ends[j] : ends[j + 1]], ya[ends[j] : ends[j + 1]]
        if a.size < MIN_RING_PIXELS:
            continue
        lo, hi, top = np.percentile(
            a, [RING_DARK_PERCENTILE, RING_BRIGHT_PERCENTILE, TOP_PERCENTILE]
        )
        bright, dark = a >= hi, a <= lo
        changes.append((b[bright].mean() - b[dark].mean()) - (a[bright].mean() - a[dark].mean()))
        d = b - a
        bright_falls.append(d[a >= top].mean() - d.mean())
    if not changes:
        nan = float("nan")
        return nan, nan, nan
    d = ya - xa
    frame_bright = d[xa >= np.percentile(xa, TOP_PERCENTILE)].mean() - d.mean()
    return (
        float(np.percentile(changes, RING_QUANTILE)),
        float(np.percentile(bright_falls, RING_BRIGHT_QUANTILE)),
        float(frame_bright),
    )


def frame_harm(
    frame: int,
    input_db: np.ndarray,
    output_db: np.ndarray,
    sector: np.ndarray | None = None,
    rings: np.ndarray | None = None,
) -> FrameHarm | None:
    """The figures of one frame, or None when its regions are too small or not finite;
    ``rings`` (depth_rings of ``sector``): also the display figure ``ring_change_db``."""
    x, y = np.asarray(input_db), np.asarray(output_db)
    if x.shape != y.shape or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    dark, bright = regions(x, sector)
    if dark.sum() < MIN_PIXELS or bright.sum() < MIN_PIXELS:
        return None
    figures = (float("nan"),) * 3
    if rings is not None:
        judged = np.ones(x.shape, bool) if sector is None else np.asarray(sector, bool)
        figures = ring_figures(x, y, judged, rings)
    return FrameHarm(
        int(frame),
        metrics.gcnr(x[dark], x[bright]),
        metrics.gcnr(y[dark], y[bright]),
        float(x[bright].mean() - x[dark].mean()),
        float(y[bright].mean() - y[dark].mean()),
        *figures,
    )


@dataclass
class HarmCheck:
    """Per-frame figures of a run, gathered batch by batch; the verdict over all of them.
    ``display``: the frames are display images (B-mode), judged by their depth rings."""

    frames: list[FrameHarm] = field(default_factory=list)
    display: bool = False
    _rings: dict = field(default_factory=dict, repr=False, compare=False)

    def add(
        self,
        indices: Sequence[int],
        input_db: np.ndarray,
        output_db: np.ndarray,
        sector: np.ndarray | None = None,
    ) -> None:
        """Score a batch: frames (n, z, x) of the input and of the tissue estimate, in dB;
        ``sector`` (z, x): the pixels to judge (default all)."""
        rings = None
        if self.display:  # a cine's judged region is the same every frame: its rings once
            shape = np.shape(input_db)[1:]
            judged = np.ones(shape, bool) if sector is None else np.asarray(sector, bool)
            key = (judged.shape, hash(np.packbits(judged).tobytes()))
            if key not in self._rings:
                self._rings = {key: depth_rings(judged)}
            rings = self._rings[key]
        for k, i in enumerate(indices):
            f = frame_harm(i, input_db[k], output_db[k], sector, rings)
            if f is not None:
                self.frames.append(f)

    def _median(self, name: str) -> float:
        v = [getattr(f, name) for f in self.frames]
        return float(np.median(v)) if v else float("nan")

    @property
    def gcnr_change(self) -> float:
        return self._median("gcnr_out") - self._median("gcnr_in")

    @property
    def contrast_change_db(self) -> float:
        return self._median("contrast_out_db") - self._median("contrast_in_db")

    def _changes(self) -> tuple[float, float]:
        """Median over frames of each frame's gCNR change and contrast change (dB)."""
        gain = [f.gcnr_out - f.gcnr_in for f in self.frames]
        contrast = [f.contrast_out_db - f.contrast_in_db for f in self.frames]
        return float(np.median(gain)), float(np.median(contrast))

    def _finite_median(self, name: str) -> float:
        v = [getattr(f, name) for f in self.frames if np.isfinite(getattr(f, name))]
        return float(np.median(v)) if v else float("nan")

    @property
    def ring_change_db(self) -> float:
        """Display images: the median over frames of ``ring_change_db`` (NaN when none)."""
        return self._finite_median("ring_change_db")

    @property
    def ring_bright_db(self) -> float:
        """Display images: the median over frames of ``ring_bright_db`` (NaN when none)."""
        return self._finite_median("ring_bright_db")

    @property
    def bright_db(self) -> float:
        """Display images: the median over frames of ``bright_db`` (NaN when none)."""
        return self._finite_median("bright_db")

    def display_reasons(self) -> tuple[str, ...]:
        """Display images: the figures that fell beyond their thresholds ("ring_bright",
        "bright"; empty when none, NaN never fires)."""
        fired = {
            "ring_bright": self.ring_bright_db < -DISPLAY_RING_BRIGHT_FALL_DB,
            "bright": self.bright_db < -DISPLAY_BRIGHT_FALL_DB,
        }
        return tuple(k for k, v in fired.items() if v)

    @property
    def warning(self) -> bool:
        """True when the result separates the regions worse than the input (never unscored);
        display images: when the input's brightest pixels lose more than the average pixel, per
        depth ring or over the frame (see the module's note)."""
        if not self.frames:
            return False
        if self.display:
            return bool(self.display_reasons())
        g, c = self._changes()
        return bool(c < -CONTRAST_TOLERANCE_DB or (g < -GCNR_TOLERANCE and c < CONTRAST_GAIN_DB))

    @property
    def little_effect(self) -> bool:
        """True when the result does no harm but barely raises the regions' contrast (median
        per-frame change below ``CONTRAST_GAIN_DB``): little or no haze taken out, which a user
        should hear rather than guess from the figure (never unscored, never with a warning)."""
        if not self.frames or self.warning:
            return False
        return self._changes()[1] < CONTRAST_GAIN_DB

    def attrs(self) -> dict[str, Any]:
        """Root attributes of a result file: ``harm_*`` (NaN figures when no frame was scored)."""
        out = {
            "harm_warning": self.warning,
            "harm_little_effect": self.little_effect,
            "harm_frames": [f.frame for f in self.frames],
            "harm_gcnr_in": self._median("gcnr_in"),
            "harm_gcnr_out": self._median("gcnr_out"),
            "harm_contrast_in_db": self._median("contrast_in_db"),
            "harm_contrast_out_db": self._median("contrast_out_db"),
        }
        if self.display:  # B-mode: the figures the verdict is made on (and the one before)
            out["harm_ring_change_db"] = self.ring_change_db
            out["harm_ring_bright_db"] = self.ring_bright_db
            out["harm_bright_db"] = self.bright_db
        return out

    def message(self, name: str) -> str:
        """The one line that says so."""
        from usdehaze.ultrasound.ood import ADAPT_HINT

        if self.display:
            return (
                f"{name}: the result darkens the scan's brightest structures more than the rest "
                f"(against their own depth {self.ring_bright_db:+.1f} dB, the "
                f"{RING_BRIGHT_QUANTILE:g}th percentile over depth rings, warns below "
                f"-{DISPLAY_RING_BRIGHT_FALL_DB:g}; over the frame {self.bright_db:+.1f} dB, warns "
                f"below -{DISPLAY_BRIGHT_FALL_DB:g}; median of {len(self.frames)} frame(s); "
                f"dehazing darkens the weaker pixels more): it may have taken tissue out, "
                f"compare with the input; {ADAPT_HINT}"
            )
        return (
            f"{name}: the result separates the scan's dark and bright regions less than the input "
            f"(gCNR {self._median('gcnr_in'):.3f} -> {self._median('gcnr_out'):.3f}, contrast "
            f"{self._median('contrast_in_db'):.1f} -> {self._median('contrast_out_db'):.1f} dB, "
            f"median of {len(self.frames)} frame(s)): the priors may not fit this data, compare "
            f"with the input; {ADAPT_HINT}"
        )

    def little_effect_message(self, name: str) -> str:
        """The one line that says the result took little haze out, with the figures."""
        from usdehaze.ultrasound.ood import ADAPT_HINT

        return (
            f"{name}: the result takes little haze out (contrast of the scan's dark against its "
            f"bright regions {self._median('contrast_in_db'):.1f} -> "
            f"{self._median('contrast_out_db'):.1f} dB, median of {len(self.frames)} frame(s); "
            f"dehazing that works raised it {MIN_CORPUS_GAIN_DB} dB or more on every corpus "
            f"validation frame): the scan may hold little haze, or the priors may not fit it; "
            f"{ADAPT_HINT}"
        )
