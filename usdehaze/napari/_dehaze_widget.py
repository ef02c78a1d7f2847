"""Dehaze dock widget: run the joint sampler on an image layer in a napari worker thread.

The widget is the form and one library call. The form is generated from ``DehazeConfig``'s
fields (usdehaze.napari._form, magicgui); a click reads it and starts a napari worker that
calls :func:`usdehaze.napari._run.dehaze_frames` — the same ``Dehazer``, ``FrameDriver`` and
``run_record`` as ``usdehaze run``, each frame seeded as the command line seeds it — so the
layers that appear equal the command's result file. Nothing heavy runs on the GUI thread: the
config check (which imports the sampler and torch), the priors, the out-of-distribution check
and sampling run in the worker; the status line says which. The progress bar counts sampler
steps of every frame (a batch of k frames advances k per step) and names the frames and step;
cancel follows the sampler's step callback; errors become viewer notifications. The result
layers carry the provenance ``usdehaze run`` writes plus the ``ood_*`` attributes, so a
result saved from napari records the same.

Results are named by their frames (``NAME tissue (frames 0–3)``). **Live** (a toggle, its own
module usdehaze.napari._live_view): while on, the frame the slider shows is dehazed by the fast
method in a worker thread and shown in ``NAME tissue (live)`` over the input. **Dehaze this
frame (joint)** runs the joint sampler with the form's settings on the frame shown, for a
careful look. Shift-D, Shift-C and Shift-F on the canvas are Dehaze, Cancel and Live (KEYS).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from usdehaze.errors import UsageError
from usdehaze.napari._common import (
    ActivityBar,
    Lifetime,
    WindowWatch,
    bind_keys,
    fill_combo,
    make_worker,
    notify_error,
    room_in_pool,
    show_scale_bar,
    status_label,
)
from usdehaze.napari._form import config_form, form_values, is_path, pick_path
from usdehaze.napari._layers import (
    Native,
    add_below_overlays,
    frame_index,
    image_layer_data,
    native_of,
    placement,
)
from usdehaze.napari._link import link_groups
from usdehaze.napari._live_view import LiveSession, LiveView
from usdehaze.napari._prefer import prefer_usdehaze
from usdehaze.napari._preload import release_frozen
from usdehaze.napari._run import Cancelled, Progress, StopFlag, dehaze_frames, layer_config

__all__ = [  # the run's pieces, importable from here as before
    "Cancelled",
    "DehazeWidget",
    "Lifetime",
    "Progress",
    "StopFlag",
    "dehaze_frames",
    "layer_config",
    "notify_error",
    "room_in_pool",
]

FRAMES = ("current frame", "all frames")


# keyboard shortcuts on the viewer (docs/napari.md); napari's own keys are single letters
# (layer tools), Shift-A/L/P/V and Control combinations
KEYS = {"dehaze": "Shift-D", "cancel": "Shift-C", "live": "Shift-F"}


class Relay(QObject):
    """The signals workers send to the widget, on an object of their own (no Qt parent, held
    by the workers' closures): a worker never emits a signal of the widget, which Qt may have
    deleted with its window while the worker still runs (that crashed the process)."""

    progress = Signal(int, int, str)  # value, maximum, label
    stage = Signal(str)
    ood = Signal(object)  # a run's out-of-distribution check (an OodCheck)
    live_ready = Signal(object)  # the live worker loaded its dehazer
    live_ood = Signal(object)  # the live worker's out-of-distribution check
    live_taken = Signal(int)  # the live worker took a frame to dehaze


def frames_label(frames: list[int]) -> str:
    """How a result's layer names its source frames: ``frame 2``, ``frames 0–3``,
    ``frames 0–6 every 2`` or ``frames 0, 2, 5``."""
    frames = [int(f) for f in frames]
    if len(frames) == 1:
        return f"frame {frames[0]}"
    step = frames[1] - frames[0]
    if step > 0 and frames == list(range(frames[0], frames[-1] + 1, step)):
        every = f" every {step}" if step > 1 else ""
        return f"frames {frames[0]}–{frames[-1]}{every}"
    return "frames " + ", ".join(map(str, frames))


def frames_in(native: Native, spec: str, name: str) -> list[int]:
    """The layer's frames (indices) whose source numbers — the slider's — a frames spec
    picks, as ``usdehaze run --frames`` reads it (``2``, ``0:3``, ``-1``)."""
    from usdehaze.ultrasound.scan import parse_frames

    sources = [native.source_frame(i) for i in range(native.n_frames)]
    picked = parse_frames(spec, max(sources) + 1, f"dehaze: layer '{name}'", option="frames")
    found = [i for i, f in enumerate(sources) if f in picked]
    if not found:
        raise UsageError(
            f"dehaze: layer '{name}': frames '{spec}': it has none of them ({frames_label(sources)})"
        )
    return found


def _say_checks(record: dict, harm: Any, name: str) -> None:
    """The do-no-harm warning, or the little-effect note, as a notification."""
    from napari.utils.notifications import show_info, show_warning

    if record.get("harm_warning"):
        show_warning(f"usdehaze dehaze: {harm.message(name)}")
    elif record.get("harm_little_effect"):
        show_info(f"usdehaze dehaze: {harm.little_effect_message(name)}")


def _row(*widgets: QWidget) -> QHBoxLayout:
    """Widgets side by side."""
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


class DehazeWidget(LiveView, QWidget):
    """Pick an image layer and the run settings; tissue and haze layers appear when done."""

    run_finished = Signal(str)  # "done", "cancelled" or "error"
    _progress = Signal(int, int, str)  # a step shown on the bar: value, maximum, label
    live_shown = Signal(int)  # a live frame was put on screen: its index in the input layer
    live_stopped = Signal(str)  # "off" (the toggle) or "error"
    USDEHAZE_DOCK = "dehaze"  # how usdehaze.napari._layout finds it among the docks

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self._init_state()
        self._make_form()
        self._make_controls()
        self._lay_out()
        self._connect()
        self._refresh_layers()
        link_groups(self.viewer)

    def _init_state(self) -> None:
        """No run, no live session; the lifetime that stops their workers on close."""
        self.worker = None
        self._cancel = StopFlag()
        self._relay = Relay()  # the workers' signals (not the widget's: see Relay)
        self._life = Lifetime()
        self._life.on_close(self._cancel.set)
        self.destroyed.connect(self._life)  # a plain callable: nothing of the widget is touched
        self._watched = 0  # id of the main window watched for its closing (no reference kept)
        self._runs = 0
        self._live: LiveSession | None = None
        self._last_ood = None  # the running job's OodCheck, once the worker has made it
        self._running = ""  # the running job's layer name
        self._activity = ActivityBar()  # the run in napari's activity panel
        self._life.on_close(self._activity.close)
        self._life.on_close(release_frozen)  # the heap the loading froze: collectable again

    def _make_form(self) -> None:
        """The settings, generated from DehazeConfig: ``self.<field>`` is the Qt widget typed
        in, a path field's picker ``self.<field>_browse``; then the layer and frames boxes."""
        self.form = config_form()
        for name, w in self.form.items():
            setattr(self, name, w.native)
            if is_path(name):
                button = QPushButton("…")
                button.setToolTip(f"Pick the {w.label} (what usdehaze run takes)")
                button.clicked.connect(lambda *a, name=name: self._pick(name))
                setattr(self, f"{name}_browse", button)
        self.layer_combo = QComboBox()
        self.layer_combo.setMinimumContentsLength(12)
        self.frames = QComboBox()  # or typed: a frame range, as usdehaze run --frames
        self.frames.addItems(FRAMES)
        self.frames.setEditable(True)
        self.frames.setInsertPolicy(QComboBox.NoInsert)
        self.frames.setToolTip(
            "The frame shown, all frames, or frames typed as usdehaze run --frames takes them: "
            "2 (one frame), 0:3 (frames 0, 1, 2), -1 (the last)"
        )
        combos = [w.native for w in self.form.values() if isinstance(w.native, QComboBox)]
        for combo in [self.layer_combo, self.frames, *combos]:
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # whole names, "_" too
            combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def _make_controls(self) -> None:
        """Dehaze, Cancel, the progress bar and status line; Live and the joint look."""
        self.run_button = QPushButton("Dehaze")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status = status_label()
        self.live_button = QPushButton("Live (fast)")
        self.live_button.setCheckable(True)
        self.live_button.setToolTip(
            "Dehaze the frame shown with method fast as the loop plays or the slider moves"
        )
        self.joint_button = QPushButton("Dehaze this frame (joint)")
        self.joint_button.setToolTip("The joint sampler with these settings on the frame shown")
        self.live_status = status_label()

    def _lay_out(self) -> None:
        """The form (image, the settings, frames after seed), Dehaze and Cancel, the bar and
        status line, Live and the joint look, the live status line."""
        form = QFormLayout()
        form.addRow("image", self.layer_combo)
        for name, w in self.form.items():
            if is_path(name):
                row = QHBoxLayout()
                row.addWidget(w.native)
                row.addWidget(getattr(self, f"{name}_browse"))
                form.addRow(w.label, row)
            else:
                form.addRow(w.label, w.native)
            if name == "seed":
                form.addRow("frames", self.frames)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(_row(self.run_button, self.cancel_button))
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(_row(self.live_button, self.joint_button))
        layout.addWidget(self.live_status)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)  # the form, no blank

    def _connect(self) -> None:
        """Buttons to actions, the workers' relay to the GUI thread, layer list to the box."""
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.live_button.toggled.connect(self._live_toggled)
        self.joint_button.clicked.connect(lambda *a: self.run_frame_joint())
        relay = self._relay
        for signal, slot in (
            (relay.live_ready, self._live_loaded),
            (relay.live_ood, self._live_ood_checked),
            (relay.live_taken, self._live_taken),
            (relay.progress, self._stepped),
            (relay.stage, self._staged),
            (relay.ood, self._ood_checked),
        ):
            signal.connect(slot, Qt.QueuedConnection)
        for ev in ("inserted", "removed", "moved", "changed", "renamed"):
            getattr(self.viewer.layers.events, ev).connect(self._refresh_layers)
        self.viewer.layers.events.inserted.connect(lambda e: link_groups(self.viewer))
        bind_keys(
            self.viewer,
            {
                KEYS["dehaze"]: self.run,
                KEYS["cancel"]: lambda: self.worker is not None and self.cancel(),
                KEYS["live"]: self.live_button.toggle,
            },
            self._life,
        )
        show_scale_bar(self.viewer)
        prefer_usdehaze(self.viewer)  # File > Open of a scan: usdehaze, no dialog

    # -- closing -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the widget's window or dock closed: its workers were told to stop."""
        return self._life.closed

    def _watch_window(self) -> None:
        """Watch the main window the dock is in (found through the parents, a floating dock's
        too) for its closing, with a watcher of its own that knows only the Lifetime."""
        w = self.parentWidget()
        while w is not None and not isinstance(w, QMainWindow):
            w = w.parentWidget()
        if w is not None and id(w) != self._watched:
            self._watched = id(w)
            WindowWatch(w, self._life)

    def showEvent(self, event: Any) -> None:
        self._watch_window()
        super().showEvent(event)

    def event(self, event: Any) -> bool:
        """The dock's close button takes the widget out of its dock (napari then drops it):
        stop its workers as when the window closes."""
        if event.type() == QEvent.ParentChange and self.parent() is None and self._docked:
            self.shut_down()
        elif event.type() == QEvent.ParentChange and self.parent() is not None:
            from usdehaze.napari._layout import docked

            self._docked = True
            self._watch_window()
            docked(self.viewer)  # arranged with the gCNR dock, and again on each resize
        return super().event(event)

    _docked = False

    def shut_down(self) -> None:
        """Stop a running Dehaze run and the live view for good (the window or dock closed):
        no worker keeps sampling and no late result, step or frame reaches the widget."""
        if self._life.closed:
            return
        self._life()
        for ev, cb in (
            (self.viewer.layers.events.inserted, self._refresh_layers),
            (self.viewer.layers.events.removed, self._refresh_layers),
            (self.viewer.layers.events.moved, self._refresh_layers),
            (self.viewer.layers.events.changed, self._refresh_layers),
            (self.viewer.layers.events.renamed, self._refresh_layers),
            (self.viewer.dims.events.current_step, self._live_request),
            (self.viewer.layers.events.removed, self._live_layer_removed),
        ):
            try:
                ev.disconnect(cb)
            except Exception:  # noqa: BLE001 - not connected
                pass

    # -- layer choice ------------------------------------------------------------------------
    def _candidates(self) -> list[Any]:
        from napari.layers import Image

        return [
            ly
            for ly in self.viewer.layers
            if isinstance(ly, Image)
            and isinstance(ly.metadata.get("usdehaze"), Native)
            and ly.metadata["usdehaze"].role == "input"
        ]

    def _refresh_layers(self, event: Any = None) -> None:
        if not self._life.closed:
            fill_combo(self.layer_combo, [ly.name for ly in self._candidates()])

    def selected_layer(self) -> Any:
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # -- settings ----------------------------------------------------------------------------
    def form_config(self) -> Any:
        """The DehazeConfig the form describes, not yet checked (cheap: no torch import); the
        layer's dynamic range (the config's default without a layer)."""
        from usdehaze.ultrasound.dehaze import DehazeConfig

        layer = self.selected_layer()
        native = native_of(layer) if layer is not None else None
        kept = {"dynamic_range": native.dynamic_range} if native is not None else {}
        return DehazeConfig(**form_values(self.form), **kept)

    def config(self) -> Any:
        """The DehazeConfig the form describes, checked (imports the sampler: not for the GUI
        thread; a run checks it in its worker)."""
        from usdehaze.ultrasound.dehaze_config import method_settings

        return method_settings(self.form_config().validate("dehaze widget"))

    def _pick(self, name: str) -> None:
        """The picker of a path field (a folder of priors, a prior or student file)."""
        field = getattr(self, name)
        path = pick_path(self, name, field.text())
        if path:
            field.setText(path)

    def _frames(self, layer: Any, native: Native, current: bool = False) -> list[int]:
        """The frames box: the frame shown, all frames, or what was typed (``2``, ``0:3``)."""
        spec = self.frames.currentText().strip()
        if spec == FRAMES[1] and not current:
            return list(range(native.n_frames))
        if spec not in ("", FRAMES[0]) and not current:
            return frames_in(native, spec, layer.name)
        i = frame_index(layer, self.viewer.dims.point)
        if i is None:
            raise UsageError(f"dehaze: layer '{layer.name}' has no frame at the current position")
        return [i]

    # -- running -----------------------------------------------------------------------------
    def run(self) -> None:
        """Start a run in a worker thread (no-op while one is running). On the GUI thread only
        the form is read; the config check, priors and sampling happen in the worker."""
        self._run()

    def run_frame_joint(self) -> None:
        """The joint sampler, with the form's other settings, on the frame the slider shows
        (the careful look beside the live view)."""
        self._run(method="joint", current=True)

    def _run(self, method: str | None = None, current: bool = False) -> None:
        if self.worker is not None or self._life.closed:
            return
        try:
            layer, native, cfg, frames = self._request(method, current)
        except UsageError as exc:
            notify_error(exc, "dehaze")
            self.status.setText(str(exc))
            self.run_finished.emit("error")
            return
        self._starting(layer.name, frames)
        relay = self._relay  # the worker emits the relay's signals, never the widget's
        worker = make_worker(
            dehaze_frames,
            native,
            frames,
            cfg,
            self._cancel,
            lambda *a: relay.progress.emit(*a),
            lambda check: relay.ood.emit(check),
            lambda text: relay.stage.emit(text),
        )  # errors go to _failed → a notification, not a traceback
        self._cancel.worker = worker  # its quit() (napari closing) stops the sampler too
        worker.returned.connect(lambda out: self._done(out, layer.name, native, frames))
        worker.errored.connect(self._failed)
        self.worker = worker
        worker.start()

    def _request(self, method: str | None, current: bool) -> tuple[Any, Native, Any, list[int]]:
        """What a click asks for, read on the GUI thread (cheap): the layer, its frames on the
        stored grid, the form's config (``method`` instead of the form's) and the frames."""
        layer = self.selected_layer()
        if layer is None:
            raise UsageError("dehaze: no image layer from usdehaze (open a scan first)")
        native = native_of(layer)
        cfg = self.form_config()
        if method is not None:
            cfg = replace(cfg, method=method)
        return layer, native, cfg, self._frames(layer, native, current)

    def _starting(self, name: str, frames: list[int]) -> None:
        """The widget as a run starts: bar at 0, status saying what starts, Cancel enabled."""
        self._cancel.clear()
        self._last_ood = None
        self._running = name
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status.setText(f"starting: {len(frames)} frame(s) of {name}…")
        self._activity.start(f"usdehaze {name}: starting {len(frames)} frame(s)")
        self.run_button.setEnabled(False)
        self.joint_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _stepped(self, value: int, maximum: int, text: str) -> None:
        if self.worker is None or self._life.closed:  # a late step of a finished run
            return
        self.progress.setRange(0, maximum)
        self.progress.setValue(value)
        self.progress.setFormat(f"{text} · %p%")
        self._activity.step(value, maximum, f"usdehaze {self._running}: {text}")
        self._progress.emit(value, maximum, text)

    def _staged(self, text: str) -> None:
        if self.worker is not None and not self._life.closed:
            self.status.setText(text)
            self._activity.describe(f"usdehaze {self._running}: {text}")

    def cancel(self) -> None:
        """Ask the running sampler to stop at its next step."""
        self._cancel.set()
        self.status.setText("cancelling…")

    def _ood_checked(self, check: Any) -> None:
        """On the GUI thread: keep the check for the result layers; warn when it fires."""
        from napari.utils.notifications import show_warning

        if self._life.closed:
            return
        self._last_ood = check
        if check.warning:
            show_warning(f"usdehaze dehaze: {check.message(self._running)}")

    def _reset(self) -> None:
        self.worker = None
        self._activity.close()
        self.run_button.setEnabled(True)
        self.joint_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, exc: BaseException) -> None:
        if self._life.closed:
            release_frozen()  # the loading may have frozen the heap after the window closed
            return
        self._reset()
        notify_error(exc, "dehaze")
        self.status.setText(f"failed: {exc}")
        self.run_finished.emit("error")

    def _done(
        self,
        out: dict[str, Any] | None,
        name: str,
        native: Native,
        frames: list[int],
    ) -> None:
        if self._life.closed:  # the window or dock closed meanwhile: nothing to show it in
            release_frozen()  # the loading may have frozen the heap after the window closed
            return
        self._reset()
        if out is None:
            self.status.setText("cancelled")
            self.progress.setFormat("cancelled")
            self.run_finished.emit("cancelled")
            return
        self._runs += 1
        record, cfg, harm = out.pop("record"), out.pop("cfg"), out.pop("harm")
        _say_checks(record, harm, name)
        self._add_results(out, record, name, native, frames)
        link_groups(self.viewer)
        self.progress.setRange(0, 100)
        self.progress.setValue(100)
        self.progress.setFormat(f"done: {len(frames)} frame(s) · %p%")
        from usdehaze.ultrasound.methods import METHODS

        stepwise = METHODS[cfg.method].stepwise
        how = f"{cfg.steps} steps ({cfg.method})" if stepwise else f"one pass ({cfg.method})"
        self.status.setText(f"done: {len(frames)} frame(s), {how}")
        self.run_finished.emit("done")

    def _add_results(
        self, out: dict[str, Any], record: dict, name: str, native: Native, frames: list[int]
    ) -> None:
        """The run's layers below the regions, at the frames they came from, linked with the
        input: ``NAME tissue (frame 2)``, ``NAME haze (frames 0–3)`` (``, run N`` when those
        frames were dehazed before) and, with samples > 1, the hidden ``*_std`` layers."""
        group = native.group or f"{name} dehazed {self._runs}"  # linked with its input
        where = placement(record["source_frames"])  # shown at the frames they came from
        label = frames_label(record["source_frames"])
        if f"{name} tissue ({label})" in self.viewer.layers:
            label += f", run {self._runs}"
        input_db = np.asarray(native.db[frames])
        for role in ("haze_std", "tissue_std", "haze", "tissue"):
            if role not in out:
                continue
            result = Native(
                out[role],
                native.x,
                native.z,
                native.grid,
                native.axes,
                source=native.source,
                role=role,
                dynamic_range=native.dynamic_range,
                group=group,
                input_db=input_db,
                attrs=dict(record),
                note=native.note,
                **where,
            )
            shown = not role.endswith("_std")
            data, kwargs, _ = image_layer_data(result, f"{name} {role} ({label})", visible=shown)
            add_below_overlays(self.viewer, data, **kwargs)  # the regions stay on top
