"""Region files (roi.json, version 1) and the one rasteriser that maps shapes onto pixel centres.

Shapes are in the scan's own frame: ``units: "mm"`` uses x (lateral) and z (depth) in
millimetres, so sector (polar) scans work through each pixel's physical position; ``"px"`` uses
[column, row] indices. A pixel belongs to a region when its centre lies inside the shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.limits import MAX_POLYGON_POINTS, MAX_ROI_BYTES, MAX_ROI_PAIRS

MIN_PIXELS = 64
SHAPE_FIELDS = {
    "circle": ("center", "radius"),
    "annulus": ("center", "inner", "outer"),
    "rectangle": ("min", "max"),
    "polygon": ("points",),
}


@dataclass
class Pair:
    name: str
    target: dict[str, Any]
    background: dict[str, Any]


@dataclass
class Roi:
    units: str
    pairs: list[Pair]
    source: str = "roi"
    # the scan it was drawn on, as napari's Save records it ({"file": name, grid, extent});
    # None when the file has none. Not written by to_dict (the writer adds its own).
    scan: dict[str, Any] | None = None

    def drawn_elsewhere(self, *names: str) -> str | None:
        """One line when the file it was drawn on is none of ``names`` (the image's file and,
        for a result, the scan it was made from); None when it is, or none is recorded."""
        ref = (self.scan or {}).get("file")
        known = [n for n in dict.fromkeys(names) if n]
        if not isinstance(ref, str) or not ref or not known or ref in known:
            return None
        return f"{self.source} was drawn on {ref}, not on {' nor '.join(known)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "units": self.units,
            "pairs": [
                {"name": p.name, "target": p.target, "background": p.background} for p in self.pairs
            ],
        }


# the largest |coordinate| or size a region may have, in mm or pixels: a metre, or a million
# pixels, is beyond any scan; 1e300 is a typo or an attack, not a region (it measured silently)
MAX_COORDINATE = 1e6


def _finite(c: Any) -> bool:
    """A real number (not a bool), finite and within ±MAX_COORDINATE (huge integers are not)."""
    if not isinstance(c, (int, float)) or isinstance(c, bool):
        return False
    try:
        return math.isfinite(float(c)) and abs(float(c)) <= MAX_COORDINATE
    except OverflowError:
        return False


def _point(v: Any, where: str) -> list[float]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(_finite(c) for c in v)):
        raise UsageError(
            f"{where}: expected [x, z] with two finite numbers within ±{MAX_COORDINATE:g}, got {v!r}"
        )
    return [float(v[0]), float(v[1])]


def _number(v: Any, where: str, positive: bool = True) -> float:
    if not _finite(v) or (positive and v <= 0):
        raise UsageError(
            f"{where}: expected a {'positive ' if positive else ''}number within "
            f"±{MAX_COORDINATE:g}, got {v!r}"
        )
    return float(v)


def validate_shape(shape: Any, where: str) -> dict[str, Any]:
    """Check one SHAPE dict; errors name the pair and the field."""
    if not isinstance(shape, dict):
        raise UsageError(f"{where}: expected a shape object, got {type(shape).__name__}")
    kind = shape.get("shape")
    if not isinstance(kind, str) or kind not in SHAPE_FIELDS:
        raise UsageError(f"{where}.shape: expected one of {', '.join(SHAPE_FIELDS)}, got {kind!r}")
    for f in SHAPE_FIELDS[kind]:
        if f not in shape:
            raise UsageError(f"{where}.{f}: missing for a {kind}")
    return {"shape": kind, **_SHAPE_CHECKS[kind](shape, where)}


def _circle(shape: dict[str, Any], where: str) -> dict[str, Any]:
    """A circle's centre and positive radius."""
    return {
        "center": _point(shape["center"], f"{where}.center"),
        "radius": _number(shape["radius"], f"{where}.radius"),
    }


def _annulus(shape: dict[str, Any], where: str) -> dict[str, Any]:
    """An annulus's centre and radii, 0 <= inner < outer."""
    out = {
        "center": _point(shape["center"], f"{where}.center"),
        "inner": _number(shape["inner"], f"{where}.inner", positive=False),
        "outer": _number(shape["outer"], f"{where}.outer"),
    }
    if out["inner"] >= out["outer"] or out["inner"] < 0:
        raise UsageError(
            f"{where}.inner: expected 0 <= inner < outer, got {out['inner']} and {out['outer']}"
        )
    return out


def _rectangle(shape: dict[str, Any], where: str) -> dict[str, Any]:
    """A rectangle's corners, max > min in both coordinates."""
    lo, hi = _point(shape["min"], f"{where}.min"), _point(shape["max"], f"{where}.max")
    if not (lo[0] < hi[0] and lo[1] < hi[1]):
        raise UsageError(f"{where}.max: expected max > min in both coordinates")
    return {"min": lo, "max": hi}


def _polygon(shape: dict[str, Any], where: str) -> dict[str, Any]:
    """A polygon's points: 3 to MAX_POLYGON_POINTS of them."""
    pts = shape["points"]
    if not isinstance(pts, list) or len(pts) < 3:
        raise UsageError(f"{where}.points: expected a list of at least 3 [x, z] points")
    if len(pts) > MAX_POLYGON_POINTS:
        raise UsageError(
            f"{where}.points: {len(pts)} points, more than the {MAX_POLYGON_POINTS} a polygon may have (the limit)"
        )
    return {"points": [_point(p, f"{where}.points[{i}]") for i, p in enumerate(pts)]}


#: Each shape kind's check (the fields of SHAPE_FIELDS, converted and their relations checked).
_SHAPE_CHECKS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "circle": _circle,
    "annulus": _annulus,
    "rectangle": _rectangle,
    "polygon": _polygon,
}


def roi_from_dict(d: Any, source: str = "roi") -> Roi:
    """Validate a parsed roi.json."""
    if not isinstance(d, dict):
        raise UsageError(f"{source}: expected a JSON object at the top level")
    if d.get("version") != 1 or isinstance(d.get("version"), bool):
        raise UsageError(f"{source}: key 'version': expected 1, got {d.get('version')!r}")
    units = d.get("units")
    if units not in ("mm", "px"):
        raise UsageError(f"{source}: key 'units': expected 'mm' or 'px', got {units!r}")
    pairs = d.get("pairs")
    if not isinstance(pairs, list) or not pairs:
        raise UsageError(f"{source}: key 'pairs': expected a non-empty list")
    if len(pairs) > MAX_ROI_PAIRS:
        raise UsageError(
            f"{source}: key 'pairs': {len(pairs)} pairs, more than the {MAX_ROI_PAIRS} a ROI file may have (the limit)"
        )
    out: list[Pair] = []
    for i, p in enumerate(pairs):
        if not isinstance(p, dict):
            raise UsageError(f"{source}: pairs[{i}]: expected an object")
        name = p.get("name", f"pair{i}")
        if not isinstance(name, str) or not name.strip():
            raise UsageError(
                f"{source}: pairs[{i}].name: expected a non-empty string, got {name!r}"
            )
        if any(q.name == name for q in out):
            raise UsageError(f"{source}: pairs[{i}].name: '{name}' is used by an earlier pair")
        where = f"{source}: pair '{name}'"
        for f in ("target", "background"):
            if f not in p:
                raise UsageError(f"{where}: field '{f}' missing")
        out.append(
            Pair(
                str(name),
                validate_shape(p["target"], f"{where}: target"),
                validate_shape(p["background"], f"{where}: background"),
            )
        )
    scan = d.get("scan")
    return Roi(units, out, source, scan if isinstance(scan, dict) else None)


def load_roi(path: str | Path) -> Roi:
    """Read and validate a roi.json file."""
    from usdehaze.jsonio import read_json

    path = Path(path)
    return roi_from_dict(read_json(path, "ROI file", MAX_ROI_BYTES), str(path))


def save_roi(roi: Roi | dict[str, Any], path: str | Path) -> Path:
    """Write a roi.json atomically (validated first)."""
    from usdehaze.atomic import atomic_path

    d = roi.to_dict() if isinstance(roi, Roi) else roi_from_dict(roi, str(path)).to_dict()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(d, indent=2))
    return Path(path)


def pixel_coordinates(x: np.ndarray, z: np.ndarray, units: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel centre (u, v) in the ROI's units: mm from positions in metres, or [column, row]."""
    if units == "mm":
        return np.asarray(x, np.float64) * 1e3, np.asarray(z, np.float64) * 1e3
    if units == "px":
        rows, cols = np.indices(np.shape(x))
        return cols.astype(np.float64), rows.astype(np.float64)
    raise ValueError(f"units must be 'mm' or 'px', got {units!r}")


def _inside_polygon(points: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Even-odd rule: a centre is inside when a ray towards +u crosses the edges an odd number
    of times (concave and self-touching outlines included)."""
    inside = np.zeros(np.shape(u), bool)
    pu, pv = points[:, 0], points[:, 1]
    qu, qv = np.roll(pu, -1), np.roll(pv, -1)
    for au, av, bu, bv in zip(pu, pv, qu, qv):
        if av == bv:  # a horizontal edge is never crossed by a horizontal ray
            continue
        straddles = (av > v) != (bv > v)
        u_cross = au + (v - av) * (bu - au) / (bv - av)
        inside ^= straddles & (u < u_cross)
    return inside


def _mask(shape: dict[str, Any], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    kind = shape["shape"]
    if kind in ("circle", "annulus"):
        d = np.hypot(u - shape["center"][0], v - shape["center"][1])
        if kind == "circle":
            return d <= shape["radius"]
        return (d >= shape["inner"]) & (d <= shape["outer"])
    if kind == "rectangle":
        (u0, v0), (u1, v1) = shape["min"], shape["max"]
        return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
    return _inside_polygon(np.asarray(shape["points"], np.float64), u, v)


def rasterise(shape: dict[str, Any], x: np.ndarray, z: np.ndarray, units: str = "mm") -> np.ndarray:
    """Boolean mask (z, x) of the pixels whose centre lies inside ``shape`` (a validated SHAPE).

    ``x``, ``z``: per-pixel lateral and depth positions in metres, shape (z, x), e.g. ``Scan.x``
    and ``Scan.z`` (polar grids included); ``units`` is the ROI file's ("mm" or "px").
    """
    u, v = pixel_coordinates(x, z, units)
    return _mask(shape, u, v)


def pair_masks(
    roi: Roi, x: np.ndarray, z: np.ndarray, source: str = ""
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, target mask, background mask) per pair on a pixel grid; small regions are errors."""
    u, v = pixel_coordinates(x, z, roi.units)
    out = []
    for p in roi.pairs:
        masks = []
        for role, shape in (("target", p.target), ("background", p.background)):
            m = _mask(shape, u, v)
            count = int(m.sum())
            if count < MIN_PIXELS:
                where = "outside the image" if count == 0 else f"only {count} pixels"
                raise UsageError(
                    f"{roi.source}: pair '{p.name}': {role} is {where} on {source or 'this grid'} (need at least {MIN_PIXELS})"
                )
            masks.append(m)
        out.append((p.name, masks[0], masks[1]))
    return out
