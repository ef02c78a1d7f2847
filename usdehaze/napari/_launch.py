"""Open a file in napari with the Dehaze and gCNR widgets docked (``usdehaze view``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def default_roi(path: Path) -> Path | None:
    """``SCAN.roi.json`` beside a scan (what ``usdehaze simulate`` writes), if present."""
    cand = path.with_suffix(".roi.json")
    return cand if cand.is_file() else None


def open_viewer(path: str | Path, roi: str | Path | None = None, viewer: Any = None) -> Any:
    """A viewer showing ``path`` (scan or result), both widgets docked, ``roi`` (or the scan's
    own roi.json) loaded into the gCNR widget. Returns the viewer; napari.run() is the caller's."""
    import napari

    path = Path(path)
    viewer = viewer if viewer is not None else napari.Viewer(title=f"usdehaze: {path.name}")
    layers = viewer.open(str(path), plugin="usdehaze")
    _, dehaze = viewer.window.add_plugin_dock_widget("usdehaze", "Dehaze")
    _, gcnr = viewer.window.add_plugin_dock_widget("usdehaze", "gCNR")
    first = layers[0].name if layers else None
    gcnr.select(image=first)
    roi = Path(roi) if roi is not None else default_roi(path)
    if roi is not None:
        gcnr.load_roi(roi)
        gcnr.select(image=first)
        viewer.layers.selection.active = layers[0] if layers else None
        gcnr.refresh()
    return viewer
