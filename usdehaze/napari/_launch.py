"""Open a file in napari with the Dehaze and gCNR widgets docked (``usdehaze view``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usdehaze.napari._layout import Relayout, arrange, fit_screen


def default_roi(path: Path) -> Path | None:
    """The regions shown with ``path``, if there: ``FILE.roi.json`` beside it (what
    ``usdehaze simulate`` writes); for a result file (``SCAN.dehazed.h5``) its scan's —
    ``SCAN.roi.json`` beside it, else beside the scan the result records as its source."""
    candidates = [path.with_suffix(".roi.json")]
    if path.stem.endswith(".dehazed"):
        candidates.append(path.with_name(path.stem.removesuffix(".dehazed") + ".roi.json"))
    source = _result_source(path)
    if source:
        candidates.append(Path(source).with_suffix(".roi.json"))
    return next((c for c in candidates if c.is_file()), None)


def _result_source(path: Path) -> str:
    """The scan a usdehaze result file was made from ("" for anything else)."""
    from usdehaze.ultrasound.results import is_result_file, load_result

    try:
        if not path.is_file() or not is_result_file(path):
            return ""
        res = load_result(path)
        try:
            return str(res.attrs.get("source") or "")
        finally:
            res.close()
    except Exception:  # noqa: BLE001 - no regions is the answer for a file that will not say
        return ""


def open_viewer(path: str | Path, roi: str | Path | None = None, viewer: Any = None) -> Any:
    """A viewer showing ``path`` (scan or result), both widgets docked, ``roi`` (or the scan's
    own roi.json) loaded into the gCNR widget. Returns the viewer; napari.run() is the caller's."""
    import napari

    path = Path(path)
    viewer = viewer if viewer is not None else napari.Viewer(title=f"usdehaze: {path.name}")
    fit_screen(viewer)
    layers = open_layers(viewer, path)
    viewer.window.add_plugin_dock_widget("usdehaze", "Dehaze")
    _, gcnr = viewer.window.add_plugin_dock_widget("usdehaze", "gCNR")
    first = layers[0].name if layers else None
    gcnr.select(image=first)
    roi = Path(roi) if roi is not None else default_roi(path)
    if roi is not None:
        gcnr.load_roi(roi)
        gcnr.select(image=first)
        viewer.layers.selection.active = layers[0] if layers else None
        gcnr.refresh()
    arrange(viewer)
    # once the window is shown and its layout settled (napari.run), fit docks and view again
    Relayout.of(viewer).schedule(view=True, delay=0)
    return viewer


def open_layers(viewer: Any, path: Path) -> list[Any]:
    """``path``'s layers through usdehaze's reader: napari's open where the manifest's patterns
    offer usdehaze the file, else (a photo-like still image, left to napari's own reader in
    File > Open) the same reader called directly."""
    from usdehaze.napari._reader import offered, read

    if offered(path):
        return viewer.open(str(path), plugin="usdehaze")
    return [viewer.add_image(data, **kwargs) for data, kwargs, _ in read(str(path))]


def finish_workers(seconds: float = 30.0) -> bool:
    """After napari's event loop ended (the window closed): wait for workers still running (the
    live view's out-of-distribution check is not stoppable and takes seconds). Left running,
    one finished after Qt had deleted its signals at exit and the process aborted (SIGABRT).
    True when none is left."""
    from napari.qt.threading import WorkerBase

    try:
        WorkerBase.await_workers(msecs=int(seconds * 1000))
    except RuntimeError:  # still running after ``seconds``: nothing more to do
        return False
    return True
