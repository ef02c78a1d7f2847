"""roi.json in napari: the ROI shapes layer's look, roi.json opened as a layer (File > Open,
drag and drop, the demo sample, ``usdehaze view``), and the scan a roi.json was drawn on.

A ROI layer shows regions as outlines (no face hides the pixels measured), edges and labels
``pair: role`` in the role's colour (target yellow, background cyan). Any shapes layer the gCNR
widget takes — napari's own *New shapes layer* too — is given that look once
(:func:`style_roi_layer`). A roi.json saved from napari records the scan it was drawn on
(``"scan"``: file name, grid, extent in mm; ``usdehaze gcnr`` warns when it names another
file); loading it over another scan, or regions lying outside the image, is said
(:func:`roi_mismatch`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.napari._roi_shapes import outline_xz, roi_to_shapes

ROLE_COLORS = {"target": "yellow", "background": "cyan"}
ROI_LAYER_NAME = "ROI"
EDGE_WIDTH = 1.0  # mm: napari's edge-width slider steps in whole units, 0.6 showed as 0
LABEL_SIZE = 11  # points: readable over speckle at 1600 x 1000
ROI_META = "usdehaze_roi"  # layer.metadata key: {"scan": reference or None, "source": path}
FEATURES = ("role", "pair", "roi")


def role_text_color() -> Any:
    """Label colour by role, like the edges (target yellow, background cyan, else white)."""
    from napari.layers.utils.color_encoding import NominalColorEncoding
    from napari.utils.colormaps.categorical_colormap import CategoricalColormap

    cmap = CategoricalColormap(colormap=dict(ROLE_COLORS), fallback_color="white")
    return NominalColorEncoding(feature="role", colormap=cmap)


def label_text() -> dict[str, Any]:
    """The labels of a ROI layer: ``pair: role`` in the role's colour."""
    return {
        "string": "{pair}: {role}",
        "color": role_text_color(),
        "size": LABEL_SIZE,
        "anchor": "upper_left",
    }


def roi_layer_kwargs(pair: str = "pair1") -> dict[str, Any]:
    """Display settings of a ROI shapes layer: coloured by role, labelled pair:role."""
    return {
        "name": ROI_LAYER_NAME,
        "ndim": 2,
        "units": ("mm", "mm"),
        "axis_labels": ("z", "x"),
        "edge_width": EDGE_WIDTH,
        "face_color": "transparent",
        "edge_color": ROLE_COLORS["target"],
        "text": label_text(),
        "feature_defaults": {"role": "target", "pair": pair, "roi": ""},
    }


def recolor(layer: Any) -> None:
    """Edge colour by role (target yellow, background cyan, unassigned white)."""
    if len(layer.data) and "role" in layer.features:
        layer.edge_color = [ROLE_COLORS.get(str(r), "white") for r in layer.features["role"]]


def style_roi_layer(layer: Any, pair: str = "pair1") -> bool:
    """Give a shapes layer the ROI look once (napari's own *New shapes layer* had opaque white
    faces over the pixels measured and no labels): transparent faces, the role features
    (new shapes: targets of ``pair``), labels and edges by role. True when it was styled now."""
    meta = layer.metadata.setdefault(ROI_META, {})
    if meta.get("styled"):
        return False
    feats = layer.features.copy()
    for col in FEATURES:
        if col not in feats:
            feats[col] = np.array([""] * len(feats), dtype=object)
    layer.features = feats
    layer.feature_defaults = {"role": "target", "pair": pair, "roi": ""}
    if len(layer.data):
        layer.face_color = "transparent"
    layer.current_face_color = "transparent"
    layer.current_edge_color = ROLE_COLORS["target"]
    text = label_text()
    layer.text.string = text["string"]  # one by one: assigning the dict fails on a layer made
    layer.text.color = text["color"]  # without text (napari re-validates the encoding)
    layer.text.size = text["size"]
    layer.text.anchor = text["anchor"]
    recolor(layer)
    meta["styled"] = True
    return True


def scan_reference(native: Any) -> dict[str, Any]:
    """What a saved roi.json records of the scan it was drawn on: file name, grid, extent."""
    x, z = np.asarray(native.x, float) * 1e3, np.asarray(native.z, float) * 1e3
    return {
        "file": Path(native.source).name if native.source else "",
        "grid": native.grid,
        "x_mm": [round(float(x.min()), 3), round(float(x.max()), 3)],
        "z_mm": [round(float(z.min()), 3), round(float(z.max()), 3)],
    }


def roi_mismatch(ref: Any, roi: Any, native: Any, name: str) -> str | None:
    """Why a roi.json may not belong to the image ``native`` (layer ``name``): drawn on another
    scan (its ``"scan"`` reference), or regions wholly outside the image; None when it fits."""
    here = Path(native.source).name if native.source else ""
    elsewhere = replace(roi, scan=ref if isinstance(ref, dict) else None).drawn_elsewhere(here)
    if elsewhere:
        return f"{elsewhere} (layer '{name}')"
    if roi.units != "mm":
        return None
    x, z = np.asarray(native.x, float) * 1e3, np.asarray(native.z, float) * 1e3
    outside = []
    for p in roi.pairs:
        for role, shape in (("target", p.target), ("background", p.background)):
            pts = outline_xz(shape)
            inside = (
                (pts[:, 0] >= x.min())
                & (pts[:, 0] <= x.max())
                & (pts[:, 1] >= z.min())
                & (pts[:, 1] <= z.max())
            )
            if not inside.any():
                outside.append(f"{p.name}: {role}")
    if outside:
        return (
            f"{roi.source}: region(s) {', '.join(outside)} lie outside layer '{name}' "
            f"(x {x.min():.0f}..{x.max():.0f} mm, z {z.min():.0f}..{z.max():.0f} mm): "
            "a roi.json of another scan?"
        )
    return None


def read_roi_file(path: str | Path) -> tuple[Any, Any]:
    """(Roi, its ``"scan"`` reference or None) of a roi.json."""
    from usdehaze.jsonio import read_json
    from usdehaze.limits import MAX_ROI_BYTES
    from usdehaze.ultrasound.roi import roi_from_dict

    raw = read_json(Path(path), "ROI file", MAX_ROI_BYTES)
    roi = roi_from_dict(raw, str(path))
    return roi, raw.get("scan") if isinstance(raw, dict) else None


def write_roi_file(roi: Any, path: str | Path, native: Any = None) -> Path:
    """Write a roi.json atomically (validated like save_roi), with the scan it was drawn on
    when ``native`` is given."""
    from usdehaze.atomic import atomic_path
    from usdehaze.jsonio import dumps
    from usdehaze.ultrasound.roi import roi_from_dict

    d = roi_from_dict(roi.to_dict(), str(path)).to_dict()
    if native is not None:
        d["scan"] = scan_reference(native)
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(d, indent=2))
    return Path(path)


def roi_layer_data(
    path: str | Path, x: np.ndarray | None = None, z: np.ndarray | None = None
) -> tuple:
    """A napari LayerData tuple (data, kwargs, "shapes") of a roi.json: a ROI layer named
    ``ROI STEM`` whose metadata keeps the file and the scan it names (``"px"`` regions need
    the image's pixel positions ``x``/``z``)."""
    roi, ref = read_roi_file(path)
    data, types, feats = roi_to_shapes(roi, x, z)
    kwargs = roi_layer_kwargs()
    kwargs.update(
        name=f"{ROI_LAYER_NAME} {Path(path).name.removesuffix('.json')}",
        shape_type=types,
        features=feats,
        metadata={ROI_META: {"scan": ref, "source": str(path), "styled": True}},
    )
    return (data, kwargs, "shapes")


def napari_get_roi_reader(path: Any) -> Any:
    """napari's reader for a roi.json (File > Open, drag and drop): a ROI layer the gCNR
    widget measures; None for a JSON file that is no ROI file (napari asks about any)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, Path)) or not str(path).lower().endswith(".json"):
        return None
    try:
        roi, _ = read_roi_file(path)
    except (UsageError, OSError, ValueError):
        return None
    if roi.units != "mm":  # px regions need an image's pixel positions: the widget places them
        return None
    return lambda p: [roi_layer_data(path)]
