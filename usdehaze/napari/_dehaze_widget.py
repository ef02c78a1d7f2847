"""Dehaze dock widget: run the joint sampler on an image layer in a napari worker thread.

The picked layer's stored-grid dB frames (from the reader's metadata) go through the same
:class:`usdehaze.ultrasound.dehaze.Dehazer` as ``usdehaze run``, in batches of ``cfg.batch``
each frame seeded ``seed + its index`` exactly like the command line, so the layers that appear
equal the command's result file. Nothing heavy runs on the GUI thread: the click only reads the
form and says what is happening; checking the config (which imports the sampler and torch),
loading the priors and sampling run in a napari worker. The progress bar counts sampler steps
of every frame (a batch of k frames advances k per step) and names the frames and step; cancel
follows the sampler's step callback; errors become viewer notifications. Before sampling, the
same worker scores how familiar the frames look to the tissue prior (usdehaze.ultrasound.ood);
a warning notification says when they do not. The result layers carry the provenance
``usdehaze run`` writes (:func:`usdehaze.ultrasound.dehaze.run_record`: version, full config,
seed, prior checksums, precision, source frames) plus the ``ood_*`` attributes, so a result
saved from napari records the same.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from usdehaze.errors import UsageError
from usdehaze.napari._layers import Native, frame_index, image_layer_data, native_of, placement
from usdehaze.napari._link import link_groups

RULES = ("dps", "pigdm", "projection")
DEVICES = ("auto", "cpu", "cuda")
FRAMES = ("current frame", "all frames")


class Cancelled(Exception):
    """Raised inside the sampler callback when the user pressed Cancel."""


class Progress:
    """Sampler steps done out of all the run's steps (frames × steps), with a label."""

    def __init__(self, n_frames: int, emit) -> None:
        self.n_frames, self.emit = n_frames, emit

    def step(self, done_frames: int, batch: list[int], i: int, total: int) -> None:
        """After step ``i`` of ``total`` of a batch of source frames, ``done_frames`` done."""
        value = done_frames * total + i * len(batch)
        first, last = batch[0], batch[-1]
        which = f"frame {first}" if first == last else f"frames {first}–{last}"
        text = f"{which} ({done_frames + len(batch)}/{self.n_frames}) · step {i}/{total}"
        self.emit(value, self.n_frames * total, text)


def layer_config(native: Native, cfg: Any) -> tuple[Any, str | None]:
    """The config a layer can run: the iq model needs the scan's IQ, which result layers and
    magnitude-only scans lack; those run in the log domain (with a note saying so)."""
    from usdehaze.ultrasound.dehaze import for_magnitude_data

    return (cfg, None) if native.iq is not None else for_magnitude_data(cfg)


def layer_check(native: Native, frames: list[int], dehazer: Any) -> Any:
    """The out-of-distribution check of a run on ``frames`` of a layer, as run_dehaze makes it
    on a scan: up to 4 frames spread over them, encoded as the dehazer's priors see them."""
    from usdehaze.ultrasound.dehaze import uses_iq
    from usdehaze.ultrasound.logcomp import db_to_unit
    from usdehaze.ultrasound.ood import check_frames, sample_frames

    cfg, prior = dehazer.cfg, dehazer.priors.get("tissue")
    picked = sample_frames(frames)
    seen = [native.source_frame(i) for i in picked]
    if uses_iq(cfg):
        return check_frames(np.asarray(native.iq[picked]), prior, True, cfg.dynamic_range, seen)
    x = db_to_unit(np.asarray(native.db[picked]), cfg.dynamic_range)[:, None]  # as Dehazer sees
    return check_frames(x, prior, False, cfg.dynamic_range, seen, encoded=True)


def dehaze_frames(
    native: Native,
    frames: list[int],
    cfg: Any,
    cancel: threading.Event,
    progress=None,
    on_ood=None,
    on_stage=None,
) -> dict[str, Any] | None:
    """Check ``cfg``, load the priors and dehaze ``frames`` (indices into native.db) like
    run_dehaze does, all in the calling (worker) thread; None when cancelled. Returns the
    arrays and ``record`` (run_record's provenance + note + ood attributes) and ``cfg`` (what
    ran). ``progress(value, maximum, text)`` after each sampler step; ``on_ood(check)`` the
    out-of-distribution check, made first; ``on_stage(text)`` what the worker is doing."""
    from usdehaze.ultrasound.dehaze import (
        Dehazer,
        method_settings,
        result_check_attrs,
        run_record,
        uses_iq,
    )
    from usdehaze.ultrasound.harm import HarmCheck
    from usdehaze.ultrasound.ood import OodCheck

    stage = on_stage or (lambda text: None)
    stage("checking the settings…")
    cfg, note = layer_config(native, method_settings(cfg.validate("dehaze widget")))
    stage("loading the priors…")
    dehazer = Dehazer(cfg)
    cfg = dehazer.cfg
    source = [native.source_frame(i) for i in frames]
    attrs = native.attrs
    record = {
        **run_record(
            dehazer,
            native.source,
            attrs.get("layout", attrs.get("source_layout", "")),
            attrs.get("key", attrs.get("source_key", "")),
            source,
            bool(attrs.get("magnitude_only", native.iq is None)),
        ),
        **({"note": note} if note else {}),
    }
    check = OodCheck(float("nan"), float("nan"), "none")
    if on_ood is not None:
        stage("checking the frames against the priors…")
        check = layer_check(native, frames, dehazer)
        record.update(check.attrs())
        on_ood(check)
    stage(f"dehazing {len(frames)} frame(s)…" + (f" ({note})" if note else ""))
    bar = Progress(len(frames), progress or (lambda *a: None))
    batches = [frames[i : i + cfg.batch] for i in range(0, len(frames), cfg.batch)]
    parts: dict[str, list[np.ndarray]] = {}
    harm = HarmCheck()  # do no harm, as usdehaze run checks its result
    nfe = 0
    done = 0
    for idx in batches:
        if cancel.is_set():
            return None
        seeds = [native.source_frame(i) for i in idx]

        def step(i: int, total: int, t: float, done: int = done, seeds: list = seeds) -> None:
            if cancel.is_set():
                raise Cancelled
            bar.step(done, seeds, i, total)

        try:
            if uses_iq(cfg):
                res = dehazer.dehaze_iq(np.asarray(native.iq[idx]), callback=step, frames=seeds)
                db_in = res.pop("input")
            else:
                db_in = np.asarray(native.db[idx])
                res = dehazer(db_in, callback=step, frames=seeds)
        except Cancelled:
            return None
        harm.add(seeds, db_in, res["tissue"])
        nfe = max(nfe, dehazer.nfe)  # network evaluations per frame, as usdehaze run records
        for k, v in res.items():
            parts.setdefault(k, []).append(v)
        done += len(idx)
    out: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    record.update(result_check_attrs(harm, check, dehazer.priors.get("tissue") is not None))
    record["nfe"] = nfe
    out["record"], out["cfg"] = record, cfg
    out["harm"] = harm
    return out


def notify_error(exc: BaseException, what: str) -> None:
    """One notification in the viewer: the one-line message for user errors; anything else as
    an error notification that keeps its traceback (napari's "View Traceback")."""
    from napari.utils.notifications import ErrorNotification, notification_manager, show_error

    if isinstance(exc, UsageError):
        show_error(f"usdehaze {what}: {exc}")
    else:
        notification_manager.dispatch(ErrorNotification(exc))


class DehazeWidget(QWidget):
    """Pick an image layer and the run settings; tissue and haze layers appear when done."""

    run_finished = Signal(str)  # "done", "cancelled" or "error"
    _progress = Signal(int, int, str)  # value, maximum, label
    _stage = Signal(str)
    _ood = Signal(object)  # the worker's out-of-distribution check (an OodCheck)

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from usdehaze.ultrasound.dehaze import METHODS, MODELS, DehazeConfig

        self.viewer = napari_viewer
        self.worker = None
        self._cancel = threading.Event()
        self._runs = 0
        d = DehazeConfig()
        self.layer_combo = QComboBox()
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.model = QComboBox()
        self.model.addItems(MODELS)
        self.model.setCurrentText(d.model)
        self.rule = QComboBox()
        self.rule.addItems(RULES)
        self.steps = QSpinBox()
        self.steps.setRange(1, 2000)
        self.steps.setValue(d.steps)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(d.seed)
        self.frames = QComboBox()
        self.frames.addItems(FRAMES)
        self.tissue_prior = QLineEdit()
        self.tissue_prior.setPlaceholderText("shipped tissue prior")
        self.haze_prior = QLineEdit()
        self.haze_prior.setPlaceholderText("shipped haze prior")
        self.priors = QLineEdit()  # a folder of both priors, as usdehaze adapt writes
        self.priors.setPlaceholderText("shipped priors, or a folder from usdehaze adapt")
        self.priors_browse = QPushButton("…")
        self.priors_browse.setToolTip("Pick a folder of priors (usdehaze adapt -o DIR)")
        self.priors_browse.clicked.connect(self._pick_priors)
        self.run_button = QPushButton("Dehaze")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image", self.layer_combo)
        form.addRow("method", self.method)
        form.addRow("model", self.model)
        form.addRow("rule", self.rule)
        form.addRow("steps", self.steps)
        form.addRow("device", self.device)
        form.addRow("seed", self.seed)
        form.addRow("frames", self.frames)
        form.addRow("tissue prior", self.tissue_prior)
        form.addRow("haze prior", self.haze_prior)
        priors_row = QHBoxLayout()
        priors_row.addWidget(self.priors)
        priors_row.addWidget(self.priors_browse)
        form.addRow("priors folder", priors_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)  # the form, no blank

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._progress.connect(self._stepped, Qt.QueuedConnection)
        self._stage.connect(self.status.setText, Qt.QueuedConnection)
        for combo in (self.layer_combo, self.method, self.model, self.rule, self.device):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # whole names, "_" too
            combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.layer_combo.setMinimumContentsLength(12)
        self._ood.connect(self._ood_checked, Qt.QueuedConnection)
        self._last_ood = None  # the running job's OodCheck, once the worker has made it
        self._running = ""  # the running job's layer name
        for ev in ("inserted", "removed", "moved", "changed"):
            getattr(self.viewer.layers.events, ev).connect(self._refresh_layers)
        self.viewer.layers.events.inserted.connect(lambda e: link_groups(self.viewer))
        self._refresh_layers()
        link_groups(self.viewer)

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
        current = self.layer_combo.currentText()
        names = [ly.name for ly in self._candidates()]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if current in names:
            self.layer_combo.setCurrentText(current)
        self.layer_combo.blockSignals(False)

    def selected_layer(self) -> Any:
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # -- settings ----------------------------------------------------------------------------
    def form_config(self) -> Any:
        """The DehazeConfig the form describes, not yet checked (cheap: no torch import)."""
        from usdehaze.ultrasound.dehaze import DehazeConfig

        layer = self.selected_layer()
        native = native_of(layer) if layer is not None else None
        return DehazeConfig(
            method=self.method.currentText(),
            model=self.model.currentText(),
            rule=self.rule.currentText(),
            steps=self.steps.value(),
            device=self.device.currentText(),
            seed=self.seed.value(),
            dynamic_range=native.dynamic_range if native is not None else 60.0,
            tissue_prior=self.tissue_prior.text().strip() or None,
            haze_prior=self.haze_prior.text().strip() or None,
            priors=self.priors.text().strip() or None,
        )

    def config(self) -> Any:
        """The DehazeConfig the form describes, checked (imports the sampler: not for the GUI
        thread; a run checks it in its worker)."""
        from usdehaze.ultrasound.dehaze import method_settings

        return method_settings(self.form_config().validate("dehaze widget"))

    def _pick_priors(self) -> None:
        """Folder picker for the priors field (what ``usdehaze run --priors`` takes)."""
        folder = QFileDialog.getExistingDirectory(self, "Folder of priors", self.priors.text())
        if folder:
            self.priors.setText(folder)

    def _frames(self, layer: Any, native: Native) -> list[int]:
        if self.frames.currentText() == "all frames":
            return list(range(native.db.shape[0]))
        i = frame_index(layer, self.viewer.dims.point)
        if i is None:
            raise UsageError(f"dehaze: layer '{layer.name}' has no frame at the current position")
        return [i]

    # -- running -----------------------------------------------------------------------------
    def run(self) -> None:
        """Start a run in a worker thread (no-op while one is running). On the GUI thread only
        the form is read; the config check, priors and sampling happen in the worker."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return
        try:
            layer = self.selected_layer()
            if layer is None:
                raise UsageError("dehaze: no image layer from usdehaze (open a scan first)")
            native = native_of(layer)
            cfg = self.form_config()
            frames = self._frames(layer, native)
        except UsageError as exc:
            notify_error(exc, "dehaze")
            self.status.setText(str(exc))
            self.run_finished.emit("error")
            return
        self._cancel.clear()
        self._last_ood = None
        self._running = layer.name
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status.setText(f"starting: {len(frames)} frame(s) of {layer.name}…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        worker = create_worker(
            dehaze_frames,
            native,
            frames,
            cfg,
            self._cancel,
            self._progress.emit,
            self._ood.emit,
            self._stage.emit,
            _start_thread=False,
            _ignore_errors=True,  # errors go to _failed → a notification, not a traceback
        )
        worker.returned.connect(lambda out: self._done(out, layer.name, native, frames))
        worker.errored.connect(self._failed)
        self.worker = worker
        worker.start()

    def _stepped(self, value: int, maximum: int, text: str) -> None:
        if self.worker is None:  # a late step of a finished run
            return
        self.progress.setRange(0, maximum)
        self.progress.setValue(value)
        self.progress.setFormat(f"{text} · %p%")

    def cancel(self) -> None:
        """Ask the running sampler to stop at its next step."""
        self._cancel.set()
        self.status.setText("cancelling…")

    def _ood_checked(self, check: Any) -> None:
        """On the GUI thread: keep the check for the result layers; warn when it fires."""
        from napari.utils.notifications import show_warning

        self._last_ood = check
        if check.warning:
            show_warning(f"usdehaze dehaze: {check.message(self._running)}")

    def _reset(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, exc: BaseException) -> None:
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
        self._reset()
        if out is None:
            self.status.setText("cancelled")
            self.progress.setFormat("cancelled")
            self.run_finished.emit("cancelled")
            return
        self._runs += 1
        record, cfg, harm = out.pop("record"), out.pop("cfg"), out.pop("harm")
        if record.get("harm_warning"):
            from napari.utils.notifications import show_warning

            show_warning(f"usdehaze dehaze: {harm.message(name)}")
        group = native.group or f"{name} dehazed {self._runs}"  # linked with its input
        where = placement(record["source_frames"])  # shown at the frames they came from
        input_db = np.asarray(native.db[frames])
        for role in ("haze", "tissue"):
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
            data, kwargs, _ = image_layer_data(result, f"{name} {role}")
            self.viewer.add_image(data, **kwargs)
        link_groups(self.viewer)
        self.progress.setRange(0, 100)
        self.progress.setValue(100)
        self.progress.setFormat(f"done: {len(frames)} frame(s) · %p%")
        self.status.setText(f"done: {len(frames)} frame(s), {cfg.steps} steps")
        self.run_finished.emit("done")
