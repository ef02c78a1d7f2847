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
from usdehaze.napari._common import fill_combo, notify_error, status_label
from usdehaze.napari._layers import frame_index, native_of
from usdehaze.napari._link import link_groups
from usdehaze.napari._roi_shapes import roi_to_shapes, shapes_to_roi

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
ROLE_COLORS = {"target": "yellow", "background": "cyan"}
ROI_LAYER_NAME = "ROI"
EDGE_WIDTH = 1.0  # mm: napari's edge-width slider steps in whole units, 0.6 showed as 0
LABEL_SIZE = 11  # points: readable over speckle at 1600 x 1000


def role_text_color() -> Any:
    """Label colour by role, like the edges (target yellow, background cyan, else white)."""
    from napari.layers.utils.color_encoding import NominalColorEncoding
    from napari.utils.colormaps.categorical_colormap import CategoricalColormap

    cmap = CategoricalColormap(colormap=dict(ROLE_COLORS), fallback_color="white")
    return NominalColorEncoding(feature="role", colormap=cmap)


def roi_layer_kwargs() -> dict[str, Any]:
    """Display settings of a ROI shapes layer: coloured by role, labelled pair:role."""
    return {
        "name": ROI_LAYER_NAME,
        "ndim": 2,
        "units": ("mm", "mm"),
        "axis_labels": ("z", "x"),
        "edge_width": EDGE_WIDTH,
        "face_color": "transparent",
        "edge_color": ROLE_COLORS["target"],
        "text": {
            "string": "{pair}: {role}",
            "color": role_text_color(),
            "size": LABEL_SIZE,
            "anchor": "upper_left",
        },
        "feature_defaults": {"role": "target", "pair": "pair1", "roi": ""},
    }


def world_vertices(layer: Any) -> list[np.ndarray]:
    """Each shape's vertices in world coordinates (mm for layers over a usdehaze image):
    through the layer's own scale, translate, rotate, shear and affine, so a shapes layer that
    inherited an image's 0.5 mm pixels is read in mm, not in its data units."""
    out = []
    for verts in layer.data:
        v = np.asarray(verts, float)
        out.append(np.array([layer.data_to_world(p) for p in v], float).reshape(len(v), -1))
    return out


def recolor(layer: Any) -> None:
    """Edge colour by role (target yellow, background cyan, unassigned white)."""
    if len(layer.data) and "role" in layer.features:
        layer.edge_color = [ROLE_COLORS.get(str(r), "white") for r in layer.features["role"]]


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
        self.image_combo = QComboBox()
        self.roi_combo = QComboBox()
        self.new_button = QPushButton("New ROI layer")
        self.load_button = QPushButton("Load roi.json…")
        self.save_button = QPushButton("Save roi.json…")
        self.pair_name = QLineEdit("pair1")
        self.target_button = QPushButton("Selected → target")
        self.background_button = QPushButton("Selected → background")
        self.table = QTableWidget(0, len(COLUMNS))
        # two-line headers ("haze" over "contrast dB"): all columns fit a dock at 1600 x 1000
        self.table.setHorizontalHeaderLabels([c[0].replace(" ", "\n", 1) for c in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setMinimumSectionSize(self.fontMetrics().horizontalAdvance("-00.000") + 10)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.AdjustToContents)
        self.table.setMinimumHeight(5 * self.table.verticalHeader().defaultSectionSize())
        for combo in (self.image_combo, self.roi_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # whole names, "_" too
            combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.status = status_label()

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
        self.image_combo.currentTextChanged.connect(self.schedule)
        self.roi_combo.currentTextChanged.connect(self._watch_shapes)
        for ev in ("inserted", "removed", "moved", "changed"):
            getattr(self.viewer.layers.events, ev).connect(self._refresh_layers)
        self.viewer.layers.events.inserted.connect(lambda e: link_groups(self.viewer))
        self.viewer.dims.events.current_step.connect(self.schedule)
        self.viewer.layers.selection.events.active.connect(self._follow_active)
        self._refresh_layers()
        link_groups(self.viewer)

    # -- layers ------------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        from napari.layers import Image, Shapes

        for combo, kind in ((self.image_combo, Image), (self.roi_combo, Shapes)):
            fill_combo(combo, [ly.name for ly in self.viewer.layers if isinstance(ly, kind)])
        self._watch_shapes()
        self.schedule()

    def _follow_active(self, event: Any = None) -> None:
        """The ROI layer follows the shapes layer the user works in (drawing, selecting), so
        the role buttons and the table act on the shapes the user just drew."""
        from napari.layers import Shapes

        active = self.viewer.layers.selection.active
        if isinstance(active, Shapes) and active.name != self.roi_combo.currentText():
            self.select(shapes=active.name)

    def _layer(self, combo: QComboBox) -> Any:
        name = combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def image_layer(self) -> Any:
        return self._layer(self.image_combo)

    def shapes_layer(self) -> Any:
        return self._layer(self.roi_combo)

    def _watch_shapes(self, *args: Any) -> None:
        layer = self.shapes_layer()
        if layer is self._shapes_layer:
            return
        if self._shapes_layer is not None:
            for ev in ("data", "set_data", "features"):
                getattr(self._shapes_layer.events, ev).disconnect(self.schedule)
        self._shapes_layer = layer
        if layer is not None:
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

    def new_roi_layer(self, data: list | None = None, **kwargs: Any) -> Any:
        """Add an (empty) ROI shapes layer set up for target/background pairs and select it."""
        opts = roi_layer_kwargs()
        opts["features"] = {k: np.array([], dtype=object) for k in ("role", "pair", "roi")}
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
        """The ROI layer's shapes as a validated Roi in mm."""
        layer = self.shapes_layer()
        if layer is None:
            raise UsageError("gCNR: no ROI shapes layer (load roi.json or add a ROI layer)")
        return shapes_to_roi(
            world_vertices(layer), list(layer.shape_type), layer.features, f"layer '{layer.name}'"
        )

    def load_roi(self, path: str | Path) -> Any:
        """Load roi.json into a new ROI layer (px regions are placed on the chosen image)."""
        from usdehaze.ultrasound.roi import load_roi

        roi = load_roi(path)
        native = native_of(self.image_layer()) if self.image_layer() is not None else None
        data, types, feats = roi_to_shapes(
            roi, *((native.x, native.z) if native is not None else (None, None))
        )
        return self.new_roi_layer(
            data, shape_type=types, features=feats, name=f"{ROI_LAYER_NAME} {Path(path).stem}"
        )

    def save_roi(self, path: str | Path) -> Path:
        """Write the ROI layer as roi.json (v1, mm)."""
        from usdehaze.ultrasound.roi import save_roi

        return save_roi(self.current_roi(), path)

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
        from usdehaze.ultrasound.roi import pair_masks

        layer = self.image_layer()
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
        for name, t, b in pair_masks(roi, native.x, native.z, f"layer '{layer.name}'"):
            stats = region_stats(img[t], img[b])
            # mean dB(background) − mean dB(target): haze in a dark target lowers it
            stats["haze_contrast_db"] = haze_contrast_db(img[t], img[b])
            rows.append({"name": name, "frame": native.source_frame(i), **stats})
        return rows

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
        if self.error:
            self.status.setText(self.error)
        elif self.rows:
            self.status.setText(
                f"frame {self.rows[0]['frame']} of '{self.image_combo.currentText()}'"
            )
        self.updated.emit()
