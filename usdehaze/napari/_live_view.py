"""The Dehaze widget's live view: the frame the slider shows, dehazed by the fast method in a
worker thread as the cine loop plays, shown in ``NAME tissue (live)`` over the input.

:class:`LiveView` is the Dehaze widget's live half (a mixin: the widget's Qt signals
``live_shown`` and ``live_stopped``, its ``live_button``, ``live_status``, relay and lifetime
are the widget's). The GUI thread only posts the frame index into a one-slot mailbox; the
worker (usdehaze.napari._live.live_loop) loads the student once and dehazes the newest frame;
``usdehaze run``'s out-of-distribution check is made once, after the first frame, in a worker
of its own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.napari._common import make_worker, notify_error
from usdehaze.napari._layers import (
    Native,
    add_below_overlays,
    frame_index,
    layer_check,
    native_of,
)
from usdehaze.napari._live import Latest, LiveFrame, LiveStats, live_config, live_loop

LIVE_SUFFIX = " tissue (live)"


@dataclass
class LiveSession:
    """One live run: the input layer it follows, the layer it fills, the worker and its
    mailbox, stop flag and counters."""

    layer: Any
    live_layer: Any
    mailbox: Latest = field(default_factory=Latest)
    stop: threading.Event = field(default_factory=threading.Event)
    stats: LiveStats = field(default_factory=LiveStats)
    worker: Any = None
    last_requested: int | None = None
    shown_index: int | None = None
    ready: bool = False
    dehazer: Any = None  # the worker's, once loaded (the out-of-distribution check uses it)
    ood_worker: Any = None  # the out-of-distribution check's own worker, once started
    ood: Any = None  # the out-of-distribution check, made once after the first frame
    hid_input: bool = False  # the input was hidden under the live layer (shown again after)


class LiveView:
    """The live half of the Dehaze widget (mixed into it): the toggle, the session, the live
    layer and what the workers send back."""

    _live: LiveSession | None = None

    @property
    def live(self) -> LiveSession | None:
        """The running live session, or None."""
        return self._live

    def _live_toggled(self, on: bool) -> None:
        if on:
            self.start_live()
        else:
            self.stop_live()

    def _set_toggle(self, on: bool) -> None:
        self.live_button.blockSignals(True)
        self.live_button.setChecked(on)
        self.live_button.blockSignals(False)

    def _untoggle(self) -> None:
        self._set_toggle(False)

    def start_live(self) -> None:
        """Start the live view on the chosen layer: a worker loads the student, then dehazes
        the frame the slider shows each time it changes (the newest only)."""
        if self._live is not None or self._life.closed:
            return
        try:
            layer = self.selected_layer()
            if layer is None:
                raise UsageError("live: no image layer from usdehaze (open a scan first)")
            native = native_of(layer)
            cfg = live_config(self.form_config(), native, layer.name)
        except UsageError as exc:
            notify_error(exc, "live")
            self.live_status.setText(str(exc))
            self._untoggle()
            self.live_stopped.emit("error")
            return
        session = LiveSession(layer, self._live_layer(layer, native))
        relay = self._relay  # the worker emits the relay's signals, never the widget's
        worker = make_worker(  # errors → _live_failed → a notification
            live_loop,
            native,
            cfg,
            session.mailbox,
            session.stop,
            session.stats,
            lambda dehazer: relay.live_ready.emit(dehazer),
            lambda i: relay.live_taken.emit(i),
        )
        worker.yielded.connect(lambda f, s=session: self._live_show(s, f))
        worker.errored.connect(lambda e, s=session: self._live_failed(s, e))
        session.worker = worker
        self._live = session
        stop, mailbox = session.stop, session.mailbox
        self._life.on_close(lambda: (stop.set(), mailbox.close(), worker.quit()))
        self._life.on_close(lambda s=session: _uncover(s))  # the dock closed while live
        _cover(session)
        session.live_layer.events.visible.connect(self._live_visibility)
        self.viewer.dims.events.current_step.connect(self._live_request)
        self.viewer.layers.events.removed.connect(self._live_layer_removed)
        self._set_toggle(True)  # when started from code, not the button
        self.live_status.setText(f"live: loading the student for {layer.name}…")
        worker.start()
        self._live_request()

    def _live_layer(self, layer: Any, native: Native) -> Any:
        """The layer the live frames go to, over the input in the same place (world coordinates
        in the scan's mm, so the cursor, the regions and gCNR mean the same on both; a layer
        beside the input sat 126 mm off): reused when it is there, else a blank one; contrast,
        gamma and colormap linked with the input. Inserted below the regions; the active layer
        stays active."""
        name = layer.name + LIVE_SUFFIX
        shape = tuple(layer.data.shape[-2:])
        scale = tuple(float(v) for v in layer.scale[-2:])
        t = [float(v) for v in layer.translate[-2:]]
        if name in self.viewer.layers:
            live = self.viewer.layers[name]
            live.translate = t
            return live
        blank = np.full(shape, -native.dynamic_range, np.float32)
        live = add_below_overlays(  # the regions stay on top; the active layer stays active
            self.viewer,
            blank,
            keep_active=True,
            name=name,
            scale=scale,
            translate=t,
            contrast_limits=list(layer.contrast_limits),
            interpolation2d=layer.interpolation2d,  # smooth for sector scans, as the input
            colormap=layer.colormap,
            gamma=layer.gamma,
            metadata={"usdehaze_live": {"source": layer.name, "frame": None}},
            axis_labels=tuple(layer.axis_labels[-2:]),
            units=tuple(str(u) for u in layer.units[-2:]),
        )
        try:
            from napari.experimental import link_layers

            link_layers([layer, live], ("contrast_limits", "gamma", "colormap"))
        except Exception:  # noqa: BLE001 - linking is a convenience
            pass
        return live

    def _live_visibility(self, event: Any = None) -> None:
        """The live layer hidden (to see the input): the input shown; shown again: the input
        hidden again under it."""
        s = self._live
        if s is None or self._life.closed:
            return
        if s.live_layer.visible:
            _cover(s)
        else:
            _uncover(s)

    def _live_request(self, event: Any = None) -> None:
        """On the GUI thread, when the slider moves: post the frame shown (cheap)."""
        s = self._live
        if s is None or self._life.closed:
            return
        i = frame_index(s.layer, self.viewer.dims.point)
        if i is None or i == s.last_requested:
            return
        s.last_requested = i
        s.stats.requests += 1
        s.mailbox.put((i, time.perf_counter()))

    def _live_taken(self, index: int) -> None:
        """On the GUI thread: the worker started on a frame. With the input hidden, napari's
        player may step now (see _player_may_go_on): the next frame waits in the mailbox while
        this one is dehazed, one step per live frame."""
        s = self._live
        if s is not None and not self._life.closed and s.hid_input:
            _player_may_go_on(self.viewer)

    def _live_loaded(self, dehazer: Any) -> None:
        s = self._live
        if s is None or self._life.closed:
            return
        s.ready = True
        s.dehazer = dehazer
        self.live_status.setText(
            f"live: {s.layer.name}, method fast (model {dehazer.cfg.model}) on "
            f"{dehazer.device} ({dehazer.precision()})"
        )

    def _live_ood_checked(self, check: Any) -> None:
        """On the GUI thread: keep the live session's check; warn as a run does when it fires."""
        from napari.utils.notifications import show_warning

        s = self._live
        if s is None or self._life.closed:
            return
        s.ood = check
        if check.warning:
            show_warning(f"usdehaze live: {check.message(s.layer.name)}")

    def _live_show(self, s: LiveSession, f: LiveFrame) -> None:
        """On the GUI thread: put a dehazed frame in the live layer (none after live is off)."""
        if s is not self._live or self._life.closed:
            return
        layer = s.live_layer
        if isinstance(layer.data, np.ndarray) and layer.data.shape == f.image.shape:
            layer.data[...] = f.image  # in place: no new layer data, no thumbnail per frame
            layer.refresh(thumbnail=False, extent=False, highlight=False)
        else:
            layer.data = f.image
        s.live_layer.metadata["usdehaze_live"]["frame"] = f.index
        s.shown_index = f.index
        st = s.stats
        now = time.perf_counter()
        st.shown += 1
        st.dropped = s.mailbox.dropped
        st.latency.append(now - f.requested)
        self.live_status.setText(
            f"live: frame {f.index} · {1e3 * f.seconds:.0f} ms/frame · "
            f"{st.shown} shown, {st.dropped} skipped"
        )
        if s.ood_worker is None and s.dehazer is not None:
            self._live_check(s, f.index)
        self.live_shown.emit(f.index)

    def _live_check(self, s: LiveSession, index: int) -> None:
        """``usdehaze run``'s out-of-distribution check on the first frame shown, once, in a
        worker of its own: in the live worker it held every frame back for its 7 s."""
        relay = self._relay  # a check that fails is no check: live goes on
        worker = make_worker(layer_check, native_of(s.layer), [index], s.dehazer)
        worker.returned.connect(relay.live_ood.emit)
        s.ood_worker = worker
        worker.start()

    def _live_failed(self, s: LiveSession, exc: BaseException) -> None:
        if s is not self._live or self._life.closed:
            return
        self.stop_live("error")
        notify_error(exc, "live")
        self.live_status.setText(f"live failed: {exc}")

    def _live_layer_removed(self, event: Any) -> None:
        s = self._live
        if s is not None and not self._life.closed and event.value in (s.layer, s.live_layer):
            self.stop_live()

    def stop_live(self, why: str = "off") -> LiveStats | None:
        """Stop the live view: no frame is put on screen after this; the worker ends after the
        frame it is on. Returns the session's counters."""
        s = self._live
        if s is None:
            if not self._life.closed:
                self._untoggle()
            return None
        self._live = None
        s.stop.set()
        s.mailbox.close()
        if s.worker is not None:
            s.worker.quit()  # the generator ends at its next yield, whatever it was doing
        s.stats.dropped = s.mailbox.dropped
        if self._life.closed:  # shut down: the viewer's events are off, the widget may be gone
            return s.stats
        self.viewer.dims.events.current_step.disconnect(self._live_request)
        self.viewer.layers.events.removed.disconnect(self._live_layer_removed)
        s.live_layer.events.visible.disconnect(self._live_visibility)
        _uncover(s)
        self._untoggle()
        s.live_layer.refresh()  # its thumbnail, left alone while live
        self.live_status.setText(f"live off: {s.stats.shown} frame(s) shown")
        self.live_stopped.emit(why)
        return s.stats


def _cover(s: LiveSession) -> None:
    """Hide the input under the live layer, which covers it wholly (the same place and size):
    napari then neither slices nor uploads nor draws it on each frame step, which cost the GUI
    thread and the software renderer as much as the live layer itself."""
    if s.live_layer.visible and s.layer.visible:
        s.layer.visible = False
        s.hid_input = True


def _uncover(s: LiveSession) -> None:
    """Show the input again if the live view hid it (not if the user hid it)."""
    if s.hid_input:
        s.hid_input = False
        try:
            s.layer.visible = True
        except RuntimeError:  # the viewer is gone (its window closed)
            pass


def _player_may_go_on(viewer: Any) -> None:
    """napari's player (the dims ▶ button) steps again only once the canvas drew the last step
    (``dims._play_ready``, set by the canvas's draw). With the input hidden under the live layer
    a step draws nothing until its live frame comes, so the player waited for each frame's
    dehazing and drawing in turn (the worker idle meanwhile). Called when the worker takes a
    frame: the player steps while it dehazes, so the next frame is waiting when it is done.
    Steps are not let go on at every step: the GUI thread then spent itself on steps the worker
    skipped (19 steps/s for 5.5 live frames/s, its longest gaps back to 0.3-0.5 s)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a PublicOnlyProxy
    dims = getattr(viewer, "dims", None)
    if getattr(dims, "_play_ready", None) is False:
        dims._play_ready = True
