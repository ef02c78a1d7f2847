"""roi.json regions ↔ napari shapes (vertices in world mm, (z, x) order).

A region is one shape with the features ``role`` (target/background) and ``pair`` (a name).
napari → roi: ellipses with a square bounding box become circles, axis-aligned rectangles become
rectangles, everything else (rotated rectangles, other ellipses, polygons) becomes a polygon.
roi → napari: circles are ellipses, rectangles rectangles, polygons polygons, and an annulus a
"keyhole" polygon (outer ring, radial slit, inner ring backwards). Each loaded shape keeps its
roi.json form in the ``roi`` feature and is written back exactly as loaded while its vertices
have not been edited (napari stores vertices in float32, so without this a round trip would
shift coordinates by ~1e-6 mm and turn annuli into polygons).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.roi import Pair, Roi

ROLES = ("target", "background")
ELLIPSE_POINTS = 64
RING_POINTS = 96


def _circle(center: list[float], radius: float, t: np.ndarray) -> np.ndarray:
    """[x, z] points on a circle at angles t."""
    return np.column_stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)])


def annulus_outline(shape: dict[str, Any]) -> np.ndarray:
    """Keyhole polygon [x, z] of an annulus; contains_points on it equals the annulus test up to
    pixels exactly on the slit."""
    t = np.linspace(0.0, 2 * np.pi, RING_POINTS + 1)
    return np.concatenate(
        [
            _circle(shape["center"], shape["outer"], t),
            _circle(shape["center"], shape["inner"], t[::-1]),
        ]
    )


def outline_xz(shape: dict[str, Any]) -> np.ndarray:
    """A closed outline [x, z] of any roi shape (used for px regions and annuli)."""
    kind = shape["shape"]
    if kind == "circle":
        t = np.linspace(0.0, 2 * np.pi, ELLIPSE_POINTS, endpoint=False)
        return _circle(shape["center"], shape["radius"], t)
    if kind == "annulus":
        return annulus_outline(shape)
    if kind == "rectangle":
        (x0, z0), (x1, z1) = shape["min"], shape["max"]
        s = np.linspace(0.0, 1.0, 16, endpoint=False)
        return np.concatenate(
            [
                np.column_stack([x0 + (x1 - x0) * s, np.full_like(s, z0)]),
                np.column_stack([np.full_like(s, x1), z0 + (z1 - z0) * s]),
                np.column_stack([x1 - (x1 - x0) * s, np.full_like(s, z1)]),
                np.column_stack([np.full_like(s, x0), z1 - (z1 - z0) * s]),
            ]
        )
    return np.asarray(shape["points"], float)


def _px_to_mm(points_xz: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """[column, row] pixel positions → [x, z] mm through the grid's pixel positions (bilinear)."""
    from scipy.ndimage import map_coordinates

    coords = np.stack([points_xz[:, 1], points_xz[:, 0]])
    xs = map_coordinates(np.asarray(x, float), coords, order=1, mode="nearest") * 1e3
    zs = map_coordinates(np.asarray(z, float), coords, order=1, mode="nearest") * 1e3
    return np.column_stack([xs, zs])


def _to_napari(shape: dict[str, Any]) -> tuple[np.ndarray, str]:
    """(vertices (k, 2) in (z, x) mm, napari shape type) of a mm roi shape."""
    kind = shape["shape"]
    if kind == "circle":
        (cx, cz), r = shape["center"], shape["radius"]
        box = [[cz - r, cx - r], [cz - r, cx + r], [cz + r, cx + r], [cz + r, cx - r]]
        return np.asarray(box, float), "ellipse"
    if kind == "rectangle":
        (x0, z0), (x1, z1) = shape["min"], shape["max"]
        return np.asarray([[z0, x0], [z0, x1], [z1, x1], [z1, x0]], float), "rectangle"
    return outline_xz(shape)[:, ::-1].copy(), "polygon"


def roi_to_shapes(
    roi: Roi, x: np.ndarray | None = None, z: np.ndarray | None = None
) -> tuple[list[np.ndarray], list[str], dict[str, list[str]]]:
    """napari (data, shape_type, features) of a Roi; px regions need the grid's x/z (m)."""
    data, types = [], []
    features: dict[str, list[str]] = {"role": [], "pair": [], "roi": []}
    for p in roi.pairs:
        for role, shape in (("target", p.target), ("background", p.background)):
            if roi.units == "px":
                if x is None or z is None:
                    raise UsageError(f"{roi.source}: units 'px' need an image layer to place them")
                verts, kind = _px_to_mm(outline_xz(shape), x, z)[:, ::-1].copy(), "polygon"
                memo = ""
            else:
                verts, kind = _to_napari(shape)
                memo = json.dumps(shape)
            data.append(verts)
            types.append(kind)
            features["role"].append(role)
            features["pair"].append(p.name)
            features["roi"].append(memo)
    return data, types, features


MEMO_ATOL = 1e-4  # mm; float32 vertices of shapes within a few metres are well inside this


def _unchanged(memo: str, verts: np.ndarray, kind: str) -> dict[str, Any] | None:
    """The loaded roi shape when the napari shape still has the vertices it was loaded with."""
    try:
        orig = json.loads(memo)
        ref, ref_kind = _to_napari(orig)
    except (ValueError, KeyError, TypeError):
        return None
    if (
        ref_kind == kind
        and ref.shape == verts.shape
        and np.allclose(ref, verts, rtol=0, atol=MEMO_ATOL)
    ):
        return orig
    return None


def shape_to_roi(verts: np.ndarray, kind: str, memo: str = "") -> dict[str, Any]:
    """One napari shape (vertices (k, ≥2), world mm, last two axes (z, x)) → a mm roi shape."""
    v = np.asarray(verts, float)[:, -2:]
    xz = v[:, ::-1]
    if memo:
        orig = _unchanged(memo, v, kind)
        if orig is not None:
            return orig
    if kind == "ellipse":
        c = xz.mean(axis=0)
        a, b = (xz[1] - xz[0]) / 2, (xz[3] - xz[0]) / 2
        if abs(np.linalg.norm(a) - np.linalg.norm(b)) <= 1e-5 * max(np.linalg.norm(a), 1e-9):
            return {
                "shape": "circle",
                "center": [float(c[0]), float(c[1])],
                "radius": float(np.linalg.norm(a)),
            }
        t = np.linspace(0.0, 2 * np.pi, ELLIPSE_POINTS, endpoint=False)[:, None]
        pts = c + np.cos(t) * a + np.sin(t) * b
        return {"shape": "polygon", "points": pts.tolist()}
    if kind == "rectangle":
        lo, hi = xz.min(axis=0), xz.max(axis=0)
        on_box = np.all(np.isclose(xz, lo, atol=1e-9) | np.isclose(xz, hi, atol=1e-9), axis=1)
        if on_box.all():
            return {"shape": "rectangle", "min": lo.tolist(), "max": hi.tolist()}
        return {"shape": "polygon", "points": xz.tolist()}
    if kind == "polygon":
        return {"shape": "polygon", "points": xz.tolist()}
    raise UsageError(f"a {kind} encloses no region: use a polygon, rectangle or ellipse")


def shapes_to_roi(
    data: list[np.ndarray], types: list[str], features: dict[str, Any], source: str = "ROI layer"
) -> Roi:
    """A Roi (mm) from shapes carrying ``role`` and ``pair`` features; one target and one
    background per pair, errors name the shape or the pair."""
    roles = list(features.get("role", [""] * len(data)))
    pairs = list(features.get("pair", [""] * len(data)))
    memos = list(features.get("roi", [""] * len(data)))
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for i, (verts, kind) in enumerate(zip(data, types)):
        role, name = str(roles[i] or ""), str(pairs[i] or "")
        if role not in ROLES:
            raise UsageError(f"{source}: shape {i}: role {role!r}: expected target or background")
        if not name:
            raise UsageError(f"{source}: shape {i}: no pair name")
        memo = memos[i] if isinstance(memos[i], str) else ""
        try:
            shape = shape_to_roi(verts, kind, memo)
        except UsageError as exc:
            raise UsageError(f"{source}: shape {i}: {exc}") from None
        slot = found.setdefault(name, {})
        if role in slot:
            raise UsageError(f"{source}: pair '{name}': more than one {role}")
        slot[role] = shape
    if not found:
        raise UsageError(f"{source}: no shapes (draw a target and a background, or load roi.json)")
    out = []
    for name, slot in found.items():
        for role in ROLES:
            if role not in slot:
                raise UsageError(f"{source}: pair '{name}': no {role}")
        out.append(Pair(name, slot["target"], slot["background"]))
    return Roi("mm", out, source)
