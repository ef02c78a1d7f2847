"""The imaging region of a scan-converted B-mode frame: a fan (phased / curved array) or a
rectangle (linear array), from DICOM ``SequenceOfUltrasoundRegions`` and from the pixels.

Clinical cines hold the image as a cone on black, with text, markers and ECG traces burned in
around it. Only the cone is dehazed and measured. The tags give a box and a spacing, and vendors
get them wrong, so the cone is also fitted to the pixels (:func:`find_sector`) and the two are
checked against each other (:func:`reconcile`). Pixel coordinates are (row, col) of pixel
centres; a fan's angles are measured from the depth (row) axis, positive towards larger columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy import ndimage

Kind = Literal["sector", "linear"]
Source = Literal["SequenceOfUltrasoundRegions", "pixels", "assumed"]

REGIONS = "SequenceOfUltrasoundRegions"
# plausible imaging depth (mm) of an echo / general B-mode image: a spacing giving a depth
# outside it is refused (20 mm for the shallowest small-parts presets, 300 mm for the deepest)
DEPTH_RANGE_MM = (20.0, 300.0)
MAX_FRAMES = 32  # frames looked at (evenly spaced) when fitting: enough for a median over time
# a pixel is lit when its median over time is above FLOOR of full scale and RELATIVE of the level
# of the lit pixels around it
FLOOR, RELATIVE = 0.004, 0.3
LINEAR_SLOPE = math.tan(math.radians(1.5))  # side lines steeper than this: not a fan


@dataclass(frozen=True)
class Sector:
    """The imaging region: kind, apex (row, col) px, angles (left, right) rad from the depth
    axis, radii (near, far) px from the apex, bounds (row0, col0, row1, col1) px with row1 and
    col1 exclusive (a numpy slice), spacing_mm (row, col) or None, and its source.

    A "linear" region is the rectangle ``bounds``; its apex is the top centre of the box, its
    angles (0, 0) and its radii (0, box height). ``fit`` holds how well the pixels fitted.
    """

    kind: Kind
    apex: tuple[float, float]
    angles: tuple[float, float]
    radii: tuple[float, float]
    bounds: tuple[int, int, int, int]
    spacing_mm: tuple[float, float] | None = None
    source: Source = "pixels"
    fit: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean (z, x) mask, True on pixels whose centre lies inside the imaging region."""
        z, x = int(shape[0]), int(shape[1])
        r0, c0, r1, c1 = self.bounds
        out = np.zeros((z, x), dtype=bool)
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, z), min(c1, x)
        if r1 <= r0 or c1 <= c0:
            return out
        if self.kind == "linear":
            out[r0:r1, c0:c1] = True
            return out
        rows = np.arange(r0, r1, dtype=np.float64)[:, None] - self.apex[0]
        cols = np.arange(c0, c1, dtype=np.float64)[None, :] - self.apex[1]
        rho = np.hypot(rows, cols)
        phi = np.arctan2(cols, rows)
        inside = (phi >= self.angles[0]) & (phi <= self.angles[1])
        inside &= (rho >= self.radii[0]) & (rho <= self.radii[1])
        out[r0:r1, c0:c1] = inside
        return out

    def depth_mm(self) -> float | None:
        """Imaging depth in mm (far radius or box height times the row spacing), or None."""
        if self.spacing_mm is None:
            return None
        px = self.radii[1] if self.kind == "sector" else self.bounds[2] - self.bounds[0]
        return float(px * self.spacing_mm[0])

    def note(self) -> str:
        """One line: what the region is and where it came from."""
        where = {"pixels": "from the pixels", REGIONS: f"from {REGIONS}", "assumed": "assumed"}
        r0, c0, r1, c1 = self.bounds
        if self.kind == "sector":
            shape = (
                f"fan: apex ({self.apex[0]:.1f}, {self.apex[1]:.1f}) px, angles "
                f"{math.degrees(self.angles[0]):+.1f}°..{math.degrees(self.angles[1]):+.1f}°, "
                f"radii {self.radii[0]:.1f}–{self.radii[1]:.1f} px"
            )
        else:
            shape = f"rectangle rows {r0}:{r1}, cols {c0}:{c1}"
        if self.spacing_mm is None:
            spacing = "spacing unknown"
        else:
            spacing = (
                f"{self.spacing_mm[0]:.4g} × {self.spacing_mm[1]:.4g} mm/px "
                f"(depth {self.depth_mm():.0f} mm)"
            )
        return f"imaging region {where[self.source]}: {shape}, {spacing}"

    def record(self) -> dict[str, Any]:
        """What a result file records of it (JSON-able)."""
        return {
            "kind": self.kind,
            "apex": [float(v) for v in self.apex],
            "angles_deg": [math.degrees(v) for v in self.angles],
            "angles": [float(v) for v in self.angles],
            "radii": [float(v) for v in self.radii],
            "bounds": [int(v) for v in self.bounds],
            "spacing_mm": None if self.spacing_mm is None else [float(v) for v in self.spacing_mm],
            "source": self.source,
            "fit": {k: float(v) for k, v in self.fit.items()},
        }


def full_scale(frames: np.ndarray) -> float:
    """The grey level of full scale: 255 for 8-bit-like data, 1 for [0, 1] floats, else the max."""
    top = float(np.max(frames)) if frames.size else 0.0
    if top <= 1.0:
        return 1.0
    return 255.0 if top <= 255.0 else top


def _subsample(frames: np.ndarray, limit: int = MAX_FRAMES) -> np.ndarray:
    """At most ``limit`` evenly spaced frames, as float32 (n, z, x)."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise ValueError(f"frames: expected (n, z, x) or (z, x), got shape {frames.shape}")
    if frames.shape[0] > limit:
        frames = frames[np.linspace(0, frames.shape[0] - 1, limit).round().astype(int)]
    return frames.astype(np.float32, copy=False)


def static_pixels(frames: np.ndarray) -> np.ndarray | None:
    """(z, x) True where every frame holds the same value, or None when that says nothing
    (a single frame, or a frozen cine whose frames are all identical)."""
    if frames.shape[0] < 2:
        return None
    same = np.ptp(frames, axis=0) == 0
    if same.all():
        return None
    return same


def _smooth_size(shape: tuple[int, int]) -> int:
    """Odd box size of the cleaning filter: about 1 % of the frame, at least 5 px."""
    k = max(5, int(round(min(shape) / 100)) * 2 + 1)
    return k | 1


def region_pixels(frames: np.ndarray) -> np.ndarray:
    """(z, x) bool: the cone as the pixels show it, before any model is fitted (see _region)."""
    return _region(frames)[0]


def _region(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cone as the pixels show it, and where its outline is unsure (within 3 px of static
    non-zero pixels: text drawn over the cone's edge hides it).

    75th percentile over time (a trace that moves, like an ECG, drops out) above 0.4 % of full scale and
    30 % of the level of the lit pixels around it (dark tissue counts, JPEG ringing does not),
    minus pixels that are identical in every frame (burned-in text) or, with one frame, flat
    over 5 × 5 pixels (banners, logos, grey bars: not speckle), cleaned by a box filter at
    half occupancy (thin lines and text strokes vanish, straight edges stay put), the largest
    connected part, filled along columns and through holes (dark cavities inside the cone)."""
    frames = _subsample(frames)
    level = full_scale(frames)
    med = np.quantile(frames, 0.75, axis=0) if frames.shape[0] > 1 else frames[0]
    # lit: above a floor and above a fraction of the tissue's level around it (normalised
    # convolution), so dark lateral tissue counts and JPEG ringing beside bright tissue does not
    lit = med > FLOOR * level
    sigma = 2 * _smooth_size(med.shape)
    around = ndimage.gaussian_filter(np.where(lit, med, 0), sigma)
    around /= np.maximum(ndimage.gaussian_filter(lit.astype(np.float32), sigma), 1e-6)
    active = lit & (med > RELATIVE * around)
    static = static_pixels(frames)
    unsure = np.zeros(active.shape, dtype=bool)
    if static is not None:
        unsure = ndimage.binary_dilation(static & active, iterations=3)
        active &= ~static
    else:  # one frame: flat graphics (banners, logos, grey bars) are not speckle
        f = frames[0].astype(np.float64)
        var = ndimage.uniform_filter(f * f, 5) - ndimage.uniform_filter(f, 5) ** 2
        active &= var > (FLOOR * level) ** 2
    k = _smooth_size(active.shape)
    active = ndimage.uniform_filter(active.astype(np.float32), k, mode="constant") > 0.5
    labels, n = ndimage.label(active)
    if n == 0:
        return active, unsure
    sizes = ndimage.sum_labels(active, labels, index=np.arange(1, n + 1))
    region = labels == (1 + int(np.argmax(sizes)))
    # fill each column between its first and last pixel (a fan is convex along columns)
    cols = np.flatnonzero(region.any(axis=0))
    top = np.argmax(region[:, cols], axis=0)
    bottom = region.shape[0] - 1 - np.argmax(region[::-1, cols], axis=0)
    rows = np.arange(region.shape[0])[:, None]
    region[:, cols] = (rows >= top[None, :]) & (rows <= bottom[None, :])
    return ndimage.binary_fill_holes(region), unsure


def _fit_line(rows: np.ndarray, cols: np.ndarray, tol: float = 1.5) -> tuple[float, float, int]:
    """Robust fit col = a·row + b: the line through two edge points (a fixed random draw of 300
    pairs, and least squares on each third of the rows) with most points within ``tol`` px,
    refitted by least squares on those points (arcs, text and cavities at the edge drop out).
    Returns a, b and the inliers."""
    n = rows.size
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, (2, 300))
    ok = rows[i] != rows[j]
    a = (cols[j[ok]] - cols[i[ok]]) / (rows[j[ok]] - rows[i[ok]])
    cands = list(zip(a, cols[i[ok]] - a * rows[i[ok]]))
    lo, hi = rows.min(), rows.max()
    for f in (0.0, 0.33, 0.66):
        use = (rows >= lo + f * (hi - lo)) & (rows <= lo + (f + 0.34) * (hi - lo))
        if use.sum() >= 3 and np.ptp(rows[use]) > 0:
            cands.append(tuple(np.polyfit(rows[use], cols[use], 1)))
    if not cands:
        return 0.0, 0.0, 0
    ca, cb = np.array(cands).T
    counts = (np.abs(cols[None, :] - (ca[:, None] * rows[None, :] + cb[:, None])) <= tol).sum(1)
    a, b = ca[np.argmax(counts)], cb[np.argmax(counts)]
    use = np.abs(cols - (a * rows + b)) <= tol
    for _ in range(10):
        if use.sum() < 3 or np.ptp(rows[use]) == 0:
            break
        a, b = np.polyfit(rows[use], cols[use], 1)
        new = np.abs(cols - (a * rows + b)) <= tol
        if np.array_equal(new, use):
            break
        use = new
    return float(a), float(b), int(np.count_nonzero(np.abs(cols - (a * rows + b)) <= tol))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def bounding_box(
    mask: np.ndarray, default: tuple[int, int, int, int] | None = None
) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1), exclusive ends, of a (z, x) mask; ``default`` when it is empty
    (the whole frame when that is None)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return (0, 0, *mask.shape) if default is None else default
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _fit_rectangle(region: np.ndarray) -> Sector:
    """The linear-array model: the region's box."""
    r0, c0, r1, c1 = bounding_box(region)
    return Sector(
        "linear",
        (float(r0), (c0 + c1 - 1) / 2),
        (0.0, 0.0),
        (0.0, float(r1 - r0)),
        (r0, c0, r1, c1),
    )


def _fit_fan(region: np.ndarray, unsure: np.ndarray) -> Sector | None:
    """The phased / curved-array model: two side lines meeting at the apex, near and far arcs."""
    z, x = region.shape
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size < 8:
        return None
    sub = region[rows]
    left = np.argmax(sub, axis=1)
    right = x - 1 - np.argmax(sub[:, ::-1], axis=1)
    # edges between the last outside and the first inside pixel centre; rows cut by the frame out
    # side lines: edges that move outwards with depth (the far arc moves inwards), not at the
    # frame's border nor next to text over the edge
    widen = np.ones(7) / 7
    keep_l = (left > 0) & ~unsure[rows, np.maximum(left - 1, 0)]
    keep_l &= np.convolve(np.gradient(left.astype(float)), widen, mode="same") < 0
    keep_r = (right < x - 1) & ~unsure[rows, np.minimum(right + 1, x - 1)]
    keep_r &= np.convolve(np.gradient(right.astype(float)), widen, mode="same") > 0
    if keep_l.sum() < 8 or keep_r.sum() < 8:
        return None
    al, bl, nl = _fit_line(rows[keep_l].astype(float), left[keep_l] - 0.5)
    ar, br, nr = _fit_line(rows[keep_r].astype(float), right[keep_r] + 0.5)
    if al >= ar or (abs(al) < LINEAR_SLOPE and abs(ar) < LINEAR_SLOPE):
        return None
    apex_r = (br - bl) / (al - ar)
    apex_c = al * apex_r + bl
    if apex_r > rows[0] + 0.25 * (rows[-1] - rows[0]):
        return None  # lines meeting low in the region: not a fan opening downwards
    angles = (math.atan(al), math.atan(ar))
    # radii: per angular bin the nearest and farthest region pixel, bins cut by the frame left out
    rr, cc = np.nonzero(region)
    rho = np.hypot(rr - apex_r, cc - apex_c)
    phi = np.arctan2(cc - apex_c, rr - apex_r)
    span = angles[1] - angles[0]
    edges = np.linspace(angles[0] + 0.08 * span, angles[1] - 0.08 * span, 49)
    which = np.digitize(phi, edges) - 1
    near, far, near_all, far_all = [], [], [], []
    for b in range(len(edges) - 1):
        sel = np.flatnonzero(which == b)
        if sel.size == 0:
            continue
        i, j = sel[np.argmin(rho[sel])], sel[np.argmax(rho[sel])]
        near_all.append(rho[i])
        far_all.append(rho[j])
        if 0 < rr[i] and 0 < cc[i] < x - 1 and not unsure[rr[i], cc[i]]:
            near.append(rho[i])
        if rr[j] < z - 1 and 0 < cc[j] < x - 1 and not unsure[rr[j], cc[j]]:
            far.append(rho[j])
    if not far_all:
        return None
    # the frame cuts the near side when most bins start on its border (corners the cleaning
    # rounded give a few that do not)
    clip_near, clip_far = len(near) < max(5, len(near_all) / 2), len(far) < 5
    r_near = float(np.min(rho)) - 0.5 if clip_near else float(np.median(near))
    r_far = float(np.max(rho)) + 0.5 if clip_far else float(np.median(far))
    k = _smooth_size(region.shape)
    mid = np.asarray(near_all[len(near_all) // 4 : -(len(near_all) // 4) or None])
    spread = float(np.median(np.abs(mid - np.median(mid))) / max(r_near, 1e-6)) if near else 1.0
    if r_near < k or (r_near < 4 * k and spread > 0.15):
        r_near = 0.0  # a fan's tip the cleaning rounded off (minima spread along it): no arc
    fan = Sector("sector", (apex_r, apex_c), angles, (r_near, r_far), (0, 0, z, x))
    m = fan.mask((z, x))
    if not m.any():
        return None
    fit = {
        "inliers_left": nl,
        "inliers_right": nr,
        "far_arc_bins": len(far),
        "far_arc_rms_px": float(np.sqrt(np.mean((np.asarray(far) - r_far) ** 2))) if far else -1.0,
    }
    return replace(fan, bounds=bounding_box(m), fit=fit)


def fit_fan(region: np.ndarray) -> Sector | None:
    """The fan (apex, angles, radii) fitted to a boolean (z, x) region mask such as a B-mode
    reader's sector, every edge pixel trusted; None when the region is not a fan opening
    downwards (a linear probe's rectangle, too few rows)."""
    region = np.asarray(region, bool)
    return _fit_fan(region, np.zeros(region.shape, bool))


def find_sector(frames: np.ndarray) -> Sector | None:
    """The imaging region found from the pixels of (n, z, x) grey frames (or one (z, x) frame).

    The cone is what is non-zero across frames and not identical in all of them
    (:func:`region_pixels`); a fan (robust line fits to its side edges, the apex where they
    meet, near and far radii per angular bin) and a rectangle are fitted to it and the one that
    overlaps it best is kept. None when no region is found (blank frames) or neither model fits
    (overlap below 0.8)."""
    region, unsure = _region(frames)
    if np.count_nonzero(region) < 0.005 * region.size:
        return None
    best: Sector | None = None
    best_iou = 0.0
    for model in (_fit_fan(region, unsure), _fit_rectangle(region)):
        if model is None:
            continue
        score = _iou(model.mask(region.shape), region)
        if model.kind == "linear" and best is not None:
            score -= 0.01  # a fan that fits as well is the better account of a fan
        if score > best_iou:
            best, best_iou = model, score
    if best is None or best_iou < 0.8:
        return None
    return replace(best, fit={**best.fit, "iou": round(float(best_iou), 4)})


def _num(item: dict[str, Any], key: str) -> float | None:
    """A region item's value as a float, or None when absent or not a number."""
    v = item.get(key)
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def from_regions(regions: list[dict[str, Any]], shape: tuple[int, int]) -> Sector | None:
    """The tissue region of DICOM ``SequenceOfUltrasoundRegions`` items (plain dicts keyed by
    DICOM keyword), or None when none is a 2-D region with bounds.

    The largest 2-D (RegionSpatialFormat 1) tissue (RegionDataType 1) region is used, else the
    largest 2-D one. It gives a box, not a fan: a "linear" Sector with the box as given (clip and
    check it with :func:`reconcile`), spacing in mm when both axes are in cm (units 3), and as
    apex the point of physical position (0, 0) (the transducer, by the usual convention), from
    the reference pixel (relative to the box) and its physical value."""
    best: tuple[int, float, dict[str, Any]] | None = None
    for item in regions or []:
        if _num(item, "RegionSpatialFormat") != 1:
            continue
        box = [_num(item, k) for k in ("RegionLocationMinX0", "RegionLocationMinY0")]
        box += [_num(item, k) for k in ("RegionLocationMaxX1", "RegionLocationMaxY1")]
        if any(v is None for v in box) or box[2] < box[0] or box[3] < box[1]:
            continue
        area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        key = (1 if _num(item, "RegionDataType") == 1 else 0, area, item)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    item = best[2]
    x0, y0 = int(_num(item, "RegionLocationMinX0")), int(_num(item, "RegionLocationMinY0"))
    x1, y1 = int(_num(item, "RegionLocationMaxX1")), int(_num(item, "RegionLocationMaxY1"))
    spacing = None
    dx, dy = _num(item, "PhysicalDeltaX"), _num(item, "PhysicalDeltaY")
    units = (_num(item, "PhysicalUnitsXDirection"), _num(item, "PhysicalUnitsYDirection"))
    if units == (3.0, 3.0) and dx and dy and dx > 0 and dy > 0:
        spacing = (abs(dy) * 10.0, abs(dx) * 10.0)
    top_centre = (float(y0), (x0 + x1) / 2)
    apex = top_centre
    rx, ry = _num(item, "ReferencePixelX0"), _num(item, "ReferencePixelY0")
    if rx is not None and ry is not None and spacing is not None:
        px = _num(item, "ReferencePixelPhysicalValueX") or 0.0
        py = _num(item, "ReferencePixelPhysicalValueY") or 0.0
        apex = (y0 + ry - py / dy, x0 + rx - px / dx)
    fit = {"apex_from_reference": 1.0 if apex != top_centre else 0.0}
    return Sector(
        "linear",
        (float(apex[0]), float(apex[1])),
        (0.0, 0.0),
        (0.0, float(y1 + 1 - y0)),
        (y0, x0, y1 + 1, x1 + 1),
        spacing,
        REGIONS,
        fit,
    )


def _box_mask(bounds: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of a box (clipped to the frame)."""
    m = np.zeros(shape, dtype=bool)
    r0, c0, r1, c1 = bounds
    m[max(r0, 0) : max(min(r1, shape[0]), 0), max(c0, 0) : max(min(c1, shape[1]), 0)] = True
    return m


def _clip(bounds: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box clipped to the frame."""
    r0, c0, r1, c1 = bounds
    return max(r0, 0), max(c0, 0), min(r1, shape[0]), min(c1, shape[1])


def _check_spacing(sector: Sector, said: list[str]) -> Sector:
    """Refuse a spacing whose imaging depth is implausible, or anisotropic on a fan that is
    circular in pixels (which needs square pixels); what was refused goes into ``said``."""
    if sector.spacing_mm is None:
        return sector
    dz, dx = sector.spacing_mm
    depth = sector.depth_mm()
    lo, hi = DEPTH_RANGE_MM
    if depth is not None and not lo <= depth <= hi:
        said.append(
            f"the tagged spacing gives an imaging depth of {depth:.0f} mm, outside "
            f"{lo:.0f}–{hi:.0f} mm: spacing ignored"
        )
        return replace(sector, spacing_mm=None)
    circular = (
        sector.kind == "sector"
        and sector.fit.get("far_arc_bins", 0) >= 10
        and 0 <= sector.fit.get("far_arc_rms_px", -1) <= max(1.0, 0.01 * sector.radii[1])
    )
    if circular and not 0.9 <= dz / dx <= 1.1:
        said.append(
            f"the tagged spacing is {dz:.4g} mm/px in depth but {dx:.4g} mm/px across (×"
            f"{dz / dx:.2f}) while the fan is circular in pixels (square pixels): spacing ignored"
        )
        return replace(sector, spacing_mm=None)
    return sector


def reconcile(
    tagged: Sector | None, found: Sector | None, shape: tuple[int, int]
) -> tuple[Sector | None, str]:
    """The region to use and one line saying what was assumed: the tags checked against the
    pixels.

    - box larger than the frame: clipped (said); when it exceeds the frame by more than 10 %
      (or the cone lies outside the clipped box) and the box scaled by 1/2, 1/3 or 1/4 fits the
      frame and holds the cone, the tags were written for a frame that many times larger (the
      frame was resized): box and spacing rescaled (said);
    - box holding less than 90 % of the cone found in the pixels: the pixels win, and the tagged
      spacing (which belongs to another region) is dropped (said);
    - otherwise the fan fitted to the pixels within the tags' box, with the tags' spacing; a
      far edge that is no clean arc (echoes fading into black) is moved to the box's edge;
      a reference point (physical origin) that is neither the fan's apex nor the middle of its
      near arc (a curved array's face) is said;
    - spacing: refused when the depth it gives is outside ``DEPTH_RANGE_MM`` or when it is
      anisotropic while the fan is circular in pixels. A spacing wrong by the same factor on
      both axes with a plausible depth cannot be seen from the pixels (a scan-converted cone is
      the same shape at any scale) and is kept;
    - nothing from either: the whole frame, "assumed".
    """
    shape = (int(shape[0]), int(shape[1]))
    if tagged is None:
        if found is None:
            return _whole_frame(shape), (
                "no imaging region in the tags nor in the pixels: the whole frame is used"
            )
        return found, found.note() + " (no region tags)"
    box = tuple(tagged.bounds)
    clipped = _clip(box, shape)
    said: list[str] = []
    if clipped != box:
        said.append(f"the tagged region {list(box)} exceeds the {shape[0]}×{shape[1]} frame")
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        said.append("it lies outside the frame: tags ignored")
        if found is None:
            return _whole_frame(shape), "; ".join(said) + "; whole frame used"
        return found, found.note() + " (" + "; ".join(said) + ")"
    if found is None:
        if clipped != box:
            said[-1] += ": clipped (not checkable: no cone found in the pixels)"
        sector = _check_spacing(replace(tagged, bounds=clipped), said)
        return sector, "; ".join([sector.note(), *said])
    use_box, spacing, inside = _box_holding_the_cone(
        found, box, clipped, tagged.spacing_mm, shape, said
    )
    if inside < 0.9:
        said.append(
            f"the tagged region holds only {100 * inside:.0f} % of the cone found in the pixels:"
            " the pixels win, tagged spacing ignored"
        )
        return found, "; ".join([found.note(), *said])
    sector = _fitted_within(tagged, found, use_box, spacing, shape, said)
    sector = _check_spacing(sector, said)
    shape_said = (
        "fan fitted to the pixels" if found.kind == "sector" else "box fitted to the pixels"
    )
    return sector, "; ".join([f"{sector.note()} ({shape_said} within the tagged box)", *said])


def _whole_frame(shape: tuple[int, int]) -> Sector:
    """The whole frame as a linear region, "assumed" (nothing found in tags nor pixels)."""
    return Sector(
        "linear", (0.0, (shape[1] - 1) / 2), (0.0, 0.0), (0.0, float(shape[0])),
        (0, 0, *shape), None, "assumed",
    )  # fmt: skip


def _box_holding_the_cone(
    found: Sector,
    box: tuple[int, int, int, int],
    clipped: tuple[int, int, int, int],
    spacing: tuple[float, float] | None,
    shape: tuple[int, int],
    said: list[str],
) -> tuple[tuple[int, int, int, int], tuple[float, float] | None, float]:
    """(box, spacing, share of the cone inside the box): the clipped tagged box, or, when the
    box is well beyond the frame (tags written for a frame k× larger, this one resized), the
    box and spacing rescaled by k (said)."""
    cone = found.mask(shape)
    n_cone = max(np.count_nonzero(cone), 1)
    inside = np.count_nonzero(cone & _box_mask(clipped, shape)) / n_cone
    grown = any(b > lim * 1.1 for b, lim in zip(box[2:], shape)) or min(box[:2]) < -0.1 * min(shape)
    if grown or (inside < 0.9 and clipped != box):
        for k in (2, 3, 4):
            scaled = tuple(int(round(v / k)) for v in box)
            fits = all(s <= lim * 1.02 for s, lim in zip(scaled[2:], shape))
            if fits and np.count_nonzero(cone & _box_mask(scaled, shape)) / n_cone >= 0.9:
                said[-1] += (
                    f"; the cone fits it scaled by 1/{k}: tags written for a frame {k}× larger, "
                    f"box and spacing rescaled (spacing ×{k})"
                )
                spacing = None if spacing is None else (spacing[0] * k, spacing[1] * k)
                return _clip(scaled, shape), spacing, 1.0
        if inside >= 0.9:
            said[-1] += ": clipped"
    elif clipped != box:
        said[-1] += ": clipped"
    return clipped, spacing, inside


def _fitted_within(
    tagged: Sector,
    found: Sector,
    use_box: tuple[int, int, int, int],
    spacing: tuple[float, float] | None,
    shape: tuple[int, int],
    said: list[str],
) -> Sector:
    """The region fitted to the pixels within the tagged box, with the tags' spacing; for a
    fan, its far edge and the tags' reference point checked (said)."""
    r0, c0, r1, c1 = use_box
    b = found.bounds
    bounds = (max(b[0], r0), max(b[1], c0), min(b[2], r1), min(b[3], c1))
    sector = replace(found, bounds=bounds, spacing_mm=spacing, source=REGIONS)
    if found.kind != "sector":
        return sector
    sector = _far_edge_to_box(sector, found, use_box, shape, said)
    if tagged.fit.get("apex_from_reference"):
        _check_reference_point(tagged, found, said)
    return sector


def _far_edge_to_box(
    sector: Sector,
    found: Sector,
    use_box: tuple[int, int, int, int],
    shape: tuple[int, int],
    said: list[str],
) -> Sector:
    """A fan's far edge that is no clean arc is where the echoes fade: the tagged box, deeper,
    says where the image ends (said)."""
    rms = found.fit.get("far_arc_rms_px", 0.0)
    open_fan = replace(sector, radii=(found.radii[0], math.inf), bounds=use_box)
    rr, cc = np.nonzero(open_fan.mask(shape))
    deepest = float(np.hypot(rr - found.apex[0], cc - found.apex[1]).max()) if rr.size else 0
    if (rms < 0 or rms > 0.02 * found.radii[1]) and deepest > found.radii[1] + 2:
        sector = replace(open_fan, radii=(found.radii[0], deepest))
        sector = replace(sector, bounds=bounding_box(sector.mask(shape), use_box))
        said.append(
            f"the fan's far edge in the pixels is no clean arc (echoes fading): the fan runs "
            f"to the tagged box's edge (far radius {deepest:.0f} px)"
        )
    return sector


def _check_reference_point(tagged: Sector, found: Sector, said: list[str]) -> None:
    """The tags' physical origin is the apex (phased arrays) or the middle of the transducer
    face, on the near arc (curved arrays): a point elsewhere is said."""
    mid = (found.angles[0] + found.angles[1]) / 2
    face = (
        found.apex[0] + found.radii[0] * math.cos(mid),
        found.apex[1] + found.radii[0] * math.sin(mid),
    )
    d = min(math.dist(tagged.apex, found.apex), math.dist(tagged.apex, face))
    if d > max(3.0, 0.02 * found.radii[1]):
        said.append(
            f"the tags' reference point ({tagged.apex[0]:.1f}, {tagged.apex[1]:.1f}) is "
            f"{d:.0f} px from the fan's apex or transducer face in the pixels: the pixels' "
            "apex used"
        )
