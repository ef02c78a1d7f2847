"""gCNR dock widget: target/background shape pairs → gCNR, KS, CNR, haze contrast on a frame.

Shapes are drawn over the scan-converted image, whose world coordinates are mm (z, x); each
carries the features ``role`` (target/background) and ``pair``. Any shapes layer works, however it
was made (this widget's "New ROI layer", napari's own "New shapes layer", a script): its vertices
go through the layer's own transform (scale, translate, rotate, shear, affine) to world mm before
they become roi.json shapes. Those are rasterised with :func:`usdehaze.ultrasound.roi.pair_masks`
on the image layer's stored (polar) grid, so the figures equal ``usdehaze gcnr --roi saved.json``
on the same file and frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from usdehaze.errors import UsageError
from usdehaze.napari._common import (
    Lifetime,
    bind_keys,
    fill_combo,
    notify_error,
    show_scale_bar,
    status_label,
)
from usdehaze.napari._layers import Native, frame_index, native_of
from usdehaze.napari._link import link_groups
from usdehaze.napari._prefer import prefer_usdehaze
from usdehaze.napari._roi_file import (
    ROI_LAYER_NAME,
    ROI_META,
    recolor,
    roi_layer_data,
    roi_layer_kwargs,
    roi_mismatch,
    style_roi_layer,
    write_roi_file,
)
from usdehaze.napari._roi_shapes import shapes_to_roi

__all__ = ["COLUMNS", "GcnrWidget", "ROI_LAYER_NAME", "recolor", "roi_layer_kwargs"]

ROLE_KEYS = {"target": "Shift-T", "background": "Shift-B"}  # on the viewer (docs/napari.md)
COLUMNS = (
    ("pair", "name", "{}"),
    ("gCNR", "gcnr", "{:.3f}"),
    ("KS", "ks", "{:.3f}"),
    ("CNR", "cnr", "{:.3f}"),
    ("CNR dB", "cnr_db", "{:.2f}"),
    ("contrast dB", "contrast_db", "{:.2f}"),
    ("haze contrast dB", "haze_contrast_db", "{:.2f}"),
    ("n target", "n_target", "{}"),
    ("n background", "n_background", "{}"),
)


def world_vertices(layer: Any) -> list[np.ndarray]:
    """Each shape's vertices in world coordinates (mm for layers over a usdehaze image):
    through the layer's own scale, translate, rotate, shear and affine, so a shapes layer that
    inherited an image's 0.5 mm pixels is read in mm, not in its data units."""
    out = []
    for verts in layer.data:
        v = np.asarray(verts, float)
        out.append(np.array([layer.data_to_world(p) for p in v], float).reshape(len(v), -1))
    return out


def on_frame(layer: Any, verts: list[np.ndarray], point: tuple[float, ...]) -> list[bool]:
    """Which shapes napari shows at the world ``point``: all of a 2-D layer's; of a 3-D layer
    (napari's own *New shapes layer* inherits the image's frame axis) those drawn on the frame
    shown, the only ones measured, as they are the only ones seen."""
    if layer.ndim < 3:
        return [True] * len(verts)
    here = float(point[-layer.ndim])
    half = 0.5 * abs(float(layer.scale[0])) or 0.5
    return [bool(np.all(np.abs(v[:, 0] - here) < half)) for v in verts]


def _same(a: Any, b: Any) -> bool:
    """The same layer, through napari's PublicOnlyProxy (a new proxy on every access)."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def frames_of(verts: list[np.ndarray]) -> str:
    """The frames (world positions) 3-D shapes are drawn on, for a message."""
    return ", ".join(f"{f:g}" for f in sorted({round(float(v[0, 0]), 3) for v in verts}))


class GcnrWidget(QWidget):
    """Table of contrast figures for the ROI pairs on the chosen image layer and frame."""

    updated = Signal()
    USDEHAZE_DOCK = "gcnr"  # how usdehaze.napari._layout finds it among the docks

    def event(self, event: Any) -> bool:
        """Put in a dock (``usdehaze view`` or Plugins > usdehaze): arrange the usdehaze docks
        (every table column shown), and again whenever the window is resized."""
        viewer = getattr(self, "viewer", None)  # (None while __init__ runs)
        if event.type() == QEvent.ParentChange and self.parentWidget() and viewer is not None:
            from usdehaze.napari._layout import docked

            docked(viewer)
        return super().event(event)

    def needed_width(self) -> int:
        """The width at which every table column shows: the size hint, or more when the table
        scrolls sideways at the present width (its hint lags napari's style and contents)."""
        return max(
            self.sizeHint().width(), self.width() + self.table.horizontalScrollBar().maximum()
        )

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.rows: list[dict[str, Any]] = []
        self.error: str = ""
        self._shapes_layer: Any = None
        self._image: Any = None  # the image layer measured (the object: a rename keeps it)
        self._lost = ""  # the name of the image measured until it was deleted
        self._life = Lifetime()
        self.destroyed.connect(self._life)  # the keys do nothing once the widget is gone
        self._make_controls()
        self._make_table()
        self._lay_out()
        self._connect()
        show_scale_bar(self.viewer)
        prefer_usdehaze(self.viewer)  # File > Open of a scan: usdehaze, no dialog
        self._refresh_layers()
        link_groups(self.viewer)

    def _make_controls(self) -> None:
        """The layer boxes, the roi.json buttons, the pair name and the role buttons."""
        self.image_combo = QComboBox()
        self.roi_combo = QComboBox()
        for combo in (self.image_combo, self.roi_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # whole names, "_" too
            combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.new_button = QPushButton("New ROI layer")
        self.load_button = QPushButton("Load roi.json…")
        self.save_button = QPushButton("Save roi.json…")
        self.pair_name = QLineEdit("pair1")
        self.target_button = QPushButton("Selected → target")
        self.background_button = QPushButton("Selected → background")
        self.status = status_label()

    def _make_table(self) -> None:
        """The figures' table: two-line headers ("haze" over "contrast dB"), so every column
        fits a dock at 1600 x 1000."""
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0].replace(" ", "\n", 1) for c in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setMinimumSectionSize(self.fontMetrics().horizontalAdvance("-00.000") + 10)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.AdjustToContents)
        self.table.setMinimumHeight(5 * self.table.verticalHeader().defaultSectionSize())

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("ROI layer", self.roi_combo)
        form.addRow("pair name", self.pair_name)
        files = QHBoxLayout()
        for b in (self.new_button, self.load_button, self.save_button):
            files.addWidget(b)
        roles = QHBoxLayout()
        roles.addWidget(self.target_button)
        roles.addWidget(self.background_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(files)
        layout.addLayout(roles)
        layout.addWidget(self.table)
        layout.addWidget(self.status)

    def _connect(self) -> None:
        """Buttons to actions, the viewer's layer, slider and selection events to the table
        (recomputed 150 ms after the last), the role keys on the viewer."""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.refresh)
        # clicked(bool) would pass False as the layer data: the button takes no arguments
        self.new_button.clicked.connect(lambda: self._guard(self.new_roi_layer, "new ROI layer"))
        self.load_button.clicked.connect(self._load_dialog)
        self.save_button.clicked.connect(self._save_dialog)
        self.target_button.clicked.connect(lambda: self.set_role("target"))
        self.background_button.clicked.connect(lambda: self.set_role("background"))
        self.image_combo.currentTextChanged.connect(self._image_chosen)
        self.roi_combo.currentTextChanged.connect(self._watch_shapes)
        for ev in ("inserted", "removed", "moved", "changed", "renamed"):
            getattr(self.viewer.layers.events, ev).connect(self._refresh_layers)
        self.viewer.layers.events.inserted.connect(lambda e: link_groups(self.viewer))
        self.viewer.dims.events.current_step.connect(self.schedule)
        self.viewer.layers.selection.events.active.connect(self._follow_active)
        bind_keys(
            self.viewer,
            {key: lambda role=role: self.set_role(role) for role, key in ROLE_KEYS.items()},
            self._life,
        )

    # -- layers ------------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        from napari.layers import Image, Shapes

        images = [ly for ly in self.viewer.layers if isinstance(ly, Image)]
        fill_combo(self.image_combo, [ly.name for ly in images], keep=False)
        self._keep_image(images)
        fill_combo(self.roi_combo, [ly.name for ly in self.viewer.layers if isinstance(ly, Shapes)])
        self._watch_shapes()
        self.schedule()

    def _follow_active(self, event: Any = None) -> None:
        """The ROI layer follows the shapes layer the user works in (drawing, selecting), so
        the role buttons and the table act on the shapes the user just drew."""
        from napari.layers import Shapes

        active = self.viewer.layers.selection.active
        if isinstance(active, Shapes) and active.name != self.roi_combo.currentText():
            self.select(shapes=active.name)

    def _keep_image(self, images: list[Any]) -> None:
        """The image measured stays chosen when layers change (renamed too); once deleted the
        box stays empty and the status says so, until the user picks another (it switched to
        another image silently)."""
        chosen = self._image
        self.image_combo.blockSignals(True)
        if chosen is not None and any(_same(ly, chosen) for ly in images):
            self.image_combo.setCurrentText(chosen.name)
        elif chosen is not None or self._lost:
            self._lost = self._lost or chosen.name
            self._image = None
            self.image_combo.setCurrentIndex(-1)
        else:  # none chosen yet: the first image there is
            self._image = self._layer(self.image_combo)
        self.image_combo.blockSignals(False)

    def _image_chosen(self, name: str) -> None:
        """The user (or select) picked an image: measure it."""
        self._image = self._layer(self.image_combo)
        self._lost = "" if self._image is not None else self._lost
        self.schedule()

    def _layer(self, combo: QComboBox) -> Any:
        name = combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def image_layer(self) -> Any:
        return self._layer(self.image_combo)

    def shapes_layer(self) -> Any:
        return self._layer(self.roi_combo)

    def _watch_shapes(self, *args: Any) -> None:
        layer = self.shapes_layer()
        if _same(layer, self._shapes_layer):
            return
        if self._shapes_layer is not None:
            for ev in ("data", "set_data", "features"):
                getattr(self._shapes_layer.events, ev).disconnect(self.schedule)
        self._shapes_layer = layer
        if layer is not None:
            style_roi_layer(layer, self.pair_name.text().strip() or "pair1")
            self._check_fits(layer)
            for ev in ("data", "set_data", "features"):
                getattr(layer.events, ev).connect(self.schedule)
        self.schedule()

    def select(self, image: str | None = None, shapes: str | None = None) -> None:
        """Choose the image and/or ROI layer by name."""
        if image is not None:
            self.image_combo.setCurrentText(image)
        if shapes is not None:
            self.roi_combo.setCurrentText(shapes)
            self._watch_shapes()

    def _check_fits(self, layer: Any) -> None:
        """Once per roi.json layer (loaded, opened, dropped): say when it was drawn on another
        scan or lies outside the image (it loaded silently)."""
        from napari.utils.notifications import show_warning

        meta = layer.metadata.get(ROI_META) or {}
        image = self.image_layer()
        native = native_of(image) if image is not None else None
        if not meta.get("source") or meta.get("checked") or native is None:
            return
        meta["checked"] = True
        try:
            roi = shapes_to_roi(world_vertices(layer), list(layer.shape_type), layer.features)
        except UsageError:
            return  # its own problems show in the status line
        roi.source = Path(meta["source"]).name
        why = roi_mismatch(meta.get("scan"), roi, native, image.name)
        if why:
            meta["warning"] = why  # shown under the table while this layer is measured
            show_warning(f"usdehaze gCNR: {why}")
            self.status.setText(why)

    def new_roi_layer(self, data: list | None = None, **kwargs: Any) -> Any:
        """Add an (empty) ROI shapes layer set up for target/background pairs and select it."""
        opts = roi_layer_kwargs()
        opts["features"] = {k: np.array([], dtype=object) for k in ("role", "pair", "roi")}
        opts["metadata"] = {ROI_META: {"styled": True}}
        opts.update(kwargs)
        layer = self.viewer.add_shapes(data, **opts)
        recolor(layer)
        self.select(shapes=layer.name)
        return layer

    # -- roles -------------------------------------------------------------------------------
    def set_role(self, role: str) -> None:
        """Give the selected shapes ``role`` and the pair name typed in the widget."""
        layer = self.shapes_layer()
        if layer is None or not layer.selected_data:
            self.status.setText("select shapes in the ROI layer first")
            return
        feats = layer.features.copy()
        for col, default in (("role", "target"), ("pair", "pair1"), ("roi", "")):
            if col not in feats:
                feats[col] = default
        for i in layer.selected_data:
            feats.loc[i, "role"] = role
            feats.loc[i, "pair"] = self.pair_name.text().strip() or "pair1"
        layer.features = feats
        recolor(layer)
        self.schedule()

    # -- roi.json ----------------------------------------------------------------------------
    def current_roi(self) -> Any:
        """The ROI layer's shapes shown on the current frame (every shape of a 2-D layer) as a
        validated Roi in mm."""
        layer = self.shapes_layer()
        if layer is None:
            raise UsageError("gCNR: no ROI shapes layer (load roi.json or add a ROI layer)")
        verts = world_vertices(layer)
        shown = [i for i, on in enumerate(on_frame(layer, verts, self.viewer.dims.point)) if on]
        if verts and not shown:
            raise UsageError(
                f"gCNR: layer '{layer.name}': no regions on this frame; they are drawn on "
                f"frame(s) {frames_of(verts)} (a 3-D shapes layer shows and measures a region "
                "on its own frame only; New ROI layer's regions are on every frame)"
            )
        return shapes_to_roi(
            [verts[i] for i in shown],
            [layer.shape_type[i] for i in shown],
            layer.features.iloc[shown].reset_index(drop=True),
            f"layer '{layer.name}'",
        )

    def load_roi(self, path: str | Path) -> Any:
        """Load roi.json into a new ROI layer (px regions are placed on the chosen image); a
        warning when it was drawn on another scan or lies outside the image."""
        native = native_of(self.image_layer()) if self.image_layer() is not None else None
        grid = (native.x, native.z) if native is not None else (None, None)
        data, kwargs, _ = roi_layer_data(path, *grid)
        return self.new_roi_layer(data, **kwargs)

    def save_roi(self, path: str | Path) -> Path:
        """Write the ROI layer as roi.json (v1, mm), with the scan it was drawn on."""
        image = self.image_layer()
        return write_roi_file(self.current_roi(), path, native_of(image) if image else None)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load roi.json", "", "ROI (*.json)")
        if path:
            self._guard(lambda: self.load_roi(path), "load")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save roi.json", "roi.json", "ROI (*.json)")
        if path:
            self._guard(lambda: self.save_roi(path), "save")

    def _guard(self, fn, what: str) -> None:
        try:
            fn()
        except UsageError as exc:
            notify_error(exc, what)
            self.status.setText(str(exc))

    # -- metrics -----------------------------------------------------------------------------
    def schedule(self, *args: Any) -> None:
        """Recompute shortly (coalesces the many events of a drag)."""
        self._timer.start()

    def compute(self) -> list[dict[str, Any]]:
        """Figures per pair for the chosen image layer at the current frame (raises UsageError)."""
        from usdehaze.metrics import haze_contrast_db, region_stats

        layer = self.image_layer()
        if layer is None and self._lost:
            raise UsageError(f"gCNR: image layer '{self._lost}' was deleted: choose an image")
        if layer is None:
            raise UsageError("gCNR: no image layer")
        native = native_of(layer)
        if native is None:
            raise UsageError(f"gCNR: layer '{layer.name}': expected a 2-D or 3-D dB image")
        i = frame_index(layer, self.viewer.dims.point)
        if i is None:
            raise UsageError(f"gCNR: layer '{layer.name}' has no frame at the current position")
        roi = self.current_roi()
        img = np.asarray(native.db[i])
        rows = []
        for name, t, b in self._pair_masks(roi, native, layer.name):
            stats = region_stats(img[t], img[b])
            # mean dB(background) − mean dB(target): haze in a dark target lowers it
            stats["haze_contrast_db"] = haze_contrast_db(img[t], img[b])
            rows.append({"name": name, "frame": native.source_frame(i), **stats})
        return rows

    def _pair_masks(self, roi: Any, native: Native, name: str) -> list[tuple]:
        """``pair_masks`` of the regions on the layer's grid, kept while neither changes: a
        frame step (the slider, the cine playing) measures the same masks on another frame
        (rasterising them was 15 ms of the GUI thread's ~23 ms per refresh)."""
        import json

        from usdehaze.ultrasound.roi import pair_masks

        key = (json.dumps(roi.to_dict(), sort_keys=True), roi.source, name)
        kept = self._masks
        if kept is not None and kept[0] == key and kept[1] is native.x and kept[2] is native.z:
            return kept[3]
        masks = pair_masks(roi, native.x, native.z, f"layer '{name}'")
        self._masks = (key, native.x, native.z, masks)  # the grid held: its id stays its own
        return masks

    _masks: tuple | None = None

    def refresh(self) -> None:
        """Recompute and show the table; problems go to the status line, not to tracebacks."""
        self._timer.stop()
        try:
            self.rows, self.error = self.compute(), ""
        except UsageError as exc:
            self.rows, self.error = [], str(exc)
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, (_, key, fmt) in enumerate(COLUMNS):
                self.table.setItem(r, c, QTableWidgetItem(fmt.format(row[key])))
        layer = self.shapes_layer()
        warning = ((layer.metadata.get(ROI_META) or {}) if layer is not None else {}).get(
            "warning", ""
        )
        if self.error:
            self.status.setText("\n".join(filter(None, (self.error, warning))))
        elif self.rows:
            shown = f"frame {self.rows[0]['frame']} of '{self.image_combo.currentText()}'"
            self.status.setText("\n".join(filter(None, (shown, warning))))
        self.updated.emit()
