"""Layer data for napari: dB frames on the stored grid → display grid in mm, plus the metadata
that lets widgets and the writer get back to the stored (native, possibly polar) grid.

Every layer the plugin makes carries ``metadata["usdehaze"]`` (see :func:`layer_meta`): the dB
frames on the stored grid, the pixel positions ``x``/``z`` (m), grid kind and axes, the source
path and the layer's role (input, tissue, haze, ...). Displayed data are scan-converted for
sector scans; ``scale``/``translate`` put the world coordinates in millimetres (z, x), so
shapes drawn over them are in the roi.json "mm" frame (x lateral, z depth), and the frame axis
at the frames' source indices (a result of frames 5..8 sits at frames 5..8 of its scan).

Frames may be lazy (a dask array, as the reader gives for long cine loops): only the frames
shown or used are read and converted; code here indexes ``db``/``iq`` and takes ``np.asarray``
of what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usdehaze.ultrasound.logcomp import DEFAULT_DYNAMIC_RANGE

META_KEY = "usdehaze"
IMAGE_ROLES = ("input", "tissue", "haze")


@dataclass
class Native:
    """dB frames (n, z, x) on their stored grid with the pixel geometry and provenance."""

    db: np.ndarray
    x: np.ndarray
    z: np.ndarray
    grid: str = "cartesian"
    axes: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    role: str = "input"
    frame0: int = 0  # index of db[0] in the source (a dehazed subset starts later)
    frame_step: int = 1  # source frames between db[i] and db[i + 1]
    source_frames: list[int] | None = None  # explicit source indices (not evenly spaced)
    dynamic_range: float = DEFAULT_DYNAMIC_RANGE
    group: str = ""
    input_db: np.ndarray | None = None  # the input the tissue/haze came from (same frames)
    iq: np.ndarray | None = None  # complex IQ frames of a scan layer (for the iq data model)
    # a B-mode cine (DICOM, video): its shape, masks and display map
    # (usdehaze.ultrasound.bmode.DisplayFrames), what usdehaze run's view of it needs
    bmode: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # what the display had to assume (e.g. a default pixel grid), shown to users

    def source_frame(self, i: int) -> int:
        """The source index of db[i] (what the CLI and result files call that frame)."""
        if self.source_frames is not None:
            return int(self.source_frames[i])
        return self.frame0 + self.frame_step * i

    @property
    def n_frames(self) -> int:
        return int(self.db.shape[0])


def display_view(native: Native, dehazer: Any) -> Any:
    """``usdehaze run``'s view of a B-mode cine layer for ``dehazer`` (a DisplayDbView: the
    sector less overlays and colour pixels dehazed, every other pixel the input's); None for
    other layers."""
    if native.bmode is None or dehazer.model.needs_phase:
        return None
    from usdehaze.ultrasound.bmode import DisplayDbView

    return DisplayDbView(native.bmode, dehazer.min_size(), dehazer.cfg.dynamic_range)


def layer_check(native: Native, frames: list[int], dehazer: Any) -> Any:
    """The out-of-distribution check of a run on ``frames`` of a layer, as run_dehaze makes it
    on a scan: up to 4 frames spread over them, encoded as the dehazer's data model gives them
    to the sampler (the layer's IQ, or its dB frames for a dB model; a B-mode cine's through
    its :func:`display_view`)."""
    from usdehaze.ultrasound.ood import check_frames, sample_frames

    model, prior, at = dehazer.model, dehazer.priors.get("tissue"), dehazer.precision()
    picked = sample_frames(frames)
    seen = [native.source_frame(i) for i in picked]
    if model.needs_phase:
        return check_frames(np.asarray(native.iq[picked]), prior, model, seen, precision=at)
    db = np.asarray(native.db[picked])
    view = display_view(native, dehazer)
    x = db if view is None else view.encode(db)
    return check_frames(x, prior, model, seen, db=True, precision=at)


def placement(frames: list[int]) -> dict[str, Any]:
    """Native keyword arguments that place frames at their source indices: an evenly spaced
    run is shown at those indices; other sets keep the indices only for labels and seeds."""
    frames = [int(f) for f in frames]
    if not frames:
        return {}
    step = frames[1] - frames[0] if len(frames) > 1 else 1
    if step > 0 and frames == list(range(frames[0], frames[0] + step * len(frames), step)):
        return {"frame0": frames[0], "frame_step": step}
    return {"source_frames": frames}


@dataclass
class Display:
    """What napari shows: data (n, nz, nx) and the mm scale/translate of its pixel centres."""

    data: np.ndarray
    scale: tuple[float, float, float]
    translate: tuple[float, float, float]


def _cartesian_axes(x: np.ndarray, z: np.ndarray, axes: dict[str, Any]) -> tuple[np.ndarray, ...]:
    xa = np.asarray(axes["x"], float) if "x" in axes else np.asarray(x, float)[0, :]
    za = np.asarray(axes["z"], float) if "z" in axes else np.asarray(z, float)[:, 0]
    return xa, za


def _step(a: np.ndarray) -> float:
    return float(np.median(np.diff(a))) if a.size > 1 else 1e-3


def is_polar(grid: str, axes: dict[str, Any]) -> bool:
    return grid == "polar" and all(k in axes for k in ("theta", "r"))


def is_lazy(a: Any) -> bool:
    """A dask array (frames read on demand) rather than one in memory."""
    return type(a).__module__.startswith("dask.")


def display(native: Native, fill: float | None = None) -> Display:
    """Scan-convert sector frames (blank = -dynamic range) or pass Cartesian frames through;
    lazy frames stay lazy (each frame converted when napari shows it)."""
    fill = -native.dynamic_range if fill is None else fill
    if is_polar(native.grid, native.axes):
        from usdehaze.ultrasound.geometry import ScanConverter

        conv = ScanConverter.for_axes(
            native.axes["theta"], native.axes["r"], native.axes.get("origin", (0.0, 0.0))
        )
        xa, za = conv.x, conv.z
        if is_lazy(native.db):
            data = native.db.map_blocks(
                lambda b: conv(np.asarray(b), fill=fill).astype(np.float32),
                chunks=(1, len(za), len(xa)),
                dtype=np.float32,
            )
        else:
            data = conv(native.db, fill=fill).astype(np.float32)
    else:
        data = native.db if is_lazy(native.db) else np.asarray(native.db, np.float32)
        xa, za = _cartesian_axes(native.x, native.z, native.axes)
    frame = native.source_frames is None
    return Display(
        data,
        (float(native.frame_step if frame else 1), _step(za) * 1e3, _step(xa) * 1e3),
        (float(native.frame0 if frame else 0), float(za[0]) * 1e3, float(xa[0]) * 1e3),
    )


def display_converter(native: Native) -> Any:
    """What :func:`display` does to frames, as a function built once: stored-grid dB frames
    (n, z, x) → display frames on the same grid as ``display(native)`` (the live view converts
    one frame at a time with it)."""
    fill = -native.dynamic_range
    if is_polar(native.grid, native.axes):
        from usdehaze.ultrasound.geometry import ScanConverter

        conv = ScanConverter.for_axes(
            native.axes["theta"], native.axes["r"], native.axes.get("origin", (0.0, 0.0))
        )
        return lambda frames: conv(np.asarray(frames), fill=fill).astype(np.float32)
    return lambda frames: np.asarray(frames, np.float32)


def layer_meta(native: Native) -> dict[str, Any]:
    """The metadata dict a plugin layer carries."""
    return {META_KEY: native}


def image_layer_data(native: Native, name: str, **kwargs: Any) -> tuple:
    """A napari LayerData tuple (data, kwargs, "image") for dB frames."""
    disp = display(native)
    is_std = native.role.endswith("_std")
    peak = (lambda: np.nanmax(np.asarray(native.db[0]))) if is_lazy(native.db) else None
    limits = (
        [0.0, max(float(peak() if peak else np.nanmax(native.db)), 1e-3)]
        if is_std
        else [-native.dynamic_range, 0.0]
    )
    meta = {
        "name": name,
        "scale": disp.scale,
        "translate": disp.translate,
        "contrast_limits": limits,
        "colormap": "magma" if is_std else "gray",
        "metadata": layer_meta(native),
        "axis_labels": ("frame", "z", "x"),
        "units": ("pixel", "mm", "mm"),
        # sector scans shown smooth (linear): scan conversion's pixels are not the data's
        "interpolation2d": "linear" if is_polar(native.grid, native.axes) else "nearest",
        **kwargs,
    }
    return (disp.data, meta, "image")


def add_below_overlays(viewer: Any, data: Any, keep_active: bool = False, **kwargs: Any) -> Any:
    """Add an image layer (``viewer.add_image``'s arguments) below the lowest layer that is
    not an image (the ROI and other shapes, points, labels), so regions drawn on the input
    stay visible over results and the live view; ``keep_active`` leaves the active layer
    as it was (a drawing tool in use stays in use)."""
    from napari.layers import Image

    active = viewer.layers.selection.active
    layer = Image(data, **kwargs)
    overlays = [i for i, ly in enumerate(viewer.layers) if not isinstance(ly, Image)]
    viewer.layers.insert(overlays[0] if overlays else len(viewer.layers), layer)
    if keep_active and active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer


def native_of(layer: Any) -> Native | None:
    """The stored-grid view of a layer: the plugin's metadata, or (for any other 2-D/3-D image
    layer) its data taken as dB on a Cartesian grid placed by its scale/translate in mm."""
    meta = getattr(layer, "metadata", None) or {}
    if isinstance(meta.get(META_KEY), Native):
        return meta[META_KEY]
    data = np.asarray(getattr(layer, "data", None))
    if data.ndim not in (2, 3) or getattr(layer, "rgb", False):
        return None
    db = data[None] if data.ndim == 2 else data
    scale = np.asarray(layer.scale, float)[-2:]
    translate = np.asarray(layer.translate, float)[-2:]
    za = (translate[0] + scale[0] * np.arange(db.shape[1])) / 1e3
    xa = (translate[1] + scale[1] * np.arange(db.shape[2])) / 1e3
    x, z = np.meshgrid(xa, za)
    frame0 = int(round(float(layer.translate[0]))) if data.ndim == 3 else 0
    step = max(int(round(float(layer.scale[0]))), 1) if data.ndim == 3 else 1
    return Native(
        np.asarray(db, np.float32),
        x,
        z,
        "cartesian",
        {"x": xa, "z": za},
        frame0=frame0,
        frame_step=step,
    )


def frame_index(layer: Any, world_point: tuple[float, ...]) -> int | None:
    """Index into the layer's frames at a world position; None when the layer has no frame there."""
    if layer.ndim < 3:
        return 0
    pos = float(world_point[-layer.ndim])
    i = int(round((pos - float(layer.translate[0])) / float(layer.scale[0])))
    return i if 0 <= i < layer.data.shape[0] else None
