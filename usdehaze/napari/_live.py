"""Live dehazing for the Dehaze widget: the frame the slider shows, dehazed by the fast method
(the one-pass student, ``usdehaze.ultrasound.student``) in a worker thread as the cine loop plays:
a scan's from its IQ, a B-mode cine's (DICOM, video) with the B-mode student as ``usdehaze run``
runs it.

The GUI thread only posts the frame index the slider shows into a one-slot mailbox
(:class:`Latest`); a request that is still waiting when a newer one comes is dropped, so when
frames come faster than the network the worker always takes the newest frame and never falls
behind. The worker (:func:`live_loop`, a napari generator worker) loads the student once, then
for each request reads that frame (IQ, or a cine's dB frame), dehazes it, scan-converts the
tissue for display (a cine is on its own pixel grid already) and
yields it; the GUI thread puts it in the live layer in place. ``usdehaze run``'s
out-of-distribution check (7 s here) is not made in this worker, which would show nothing
meanwhile: the widget makes it once, in a worker of its own, after the first frame is shown.
:class:`LiveStats` counts
requests, frames dehazed, shown and dropped, and the latency from request to display
(``pipelines/bench_live.py`` prints them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usdehaze.napari._layers import Native, display_converter, display_view

IDLE_WAIT = 0.05  # s: how often an idle worker looks whether it was stopped


class Latest:
    """A one-slot mailbox: :meth:`put` replaces a request still waiting (which is dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self.closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()

    def take(self, timeout: float) -> Any:
        """The newest request, or None after ``timeout`` s with none (or once closed)."""
        with self._cond:
            if not self._full and not self.closed:
                self._cond.wait(timeout)
            if not self._full or self.closed:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass
class LiveFrame:
    """One dehazed frame for display: index into the layer's frames, its display image."""

    index: int
    image: np.ndarray
    requested: float  # time.perf_counter() when the slider asked for it
    done: float  # when the worker finished it
    seconds: float  # the dehazing alone (read, network, scan conversion)


@dataclass
class LiveStats:
    """What a live session did: requests posted, frames dehazed and shown, requests dropped."""

    started: float = field(default_factory=time.perf_counter)
    requests: int = 0
    dehazed: int = 0
    shown: int = 0
    dropped: int = 0
    latency: list[float] = field(default_factory=list)  # request → shown, s
    work: list[float] = field(default_factory=list)  # dehazing time per frame, s

    def rate(self, now: float | None = None) -> float:
        """Frames shown per second since the session started."""
        dt = (now or time.perf_counter()) - self.started
        return self.shown / dt if dt > 0 else 0.0

    def summary(self, seconds: float) -> dict[str, float]:
        lat = np.asarray(self.latency or [np.nan]) * 1e3
        work = np.asarray(self.work or [np.nan]) * 1e3
        return {
            "seconds": seconds,
            "requests": self.requests,
            "dehazed": self.dehazed,
            "shown": self.shown,
            "dropped": self.dropped,
            "requested_per_s": self.requests / seconds,
            "dehazed_per_s": self.dehazed / seconds,
            "shown_per_s": self.shown / seconds,
            "ms_per_frame": float(np.nanmedian(work)),
            "latency_ms_median": float(np.nanmedian(lat)),
            "latency_ms_p95": float(np.nanpercentile(lat, 95)),
        }


def live_config(cfg: Any, native: Native | None = None, name: str = "") -> Any:
    """The form's settings as a live run uses them: method fast (its model, one sample); on a
    B-mode cine layer (``native``) the B-mode student, as ``usdehaze run`` picks it for
    one. UsageError for a layer it cannot run (magnitudes without IQ, not B-mode), naming it
    ``name``."""
    from usdehaze.ultrasound.methods import METHODS

    cfg = METHODS["fast"].configure(cfg, samples=1, batch=1)
    if native is None:
        return cfg
    if native.bmode is not None:
        return METHODS["fast"].for_display_data(cfg)[0]
    if native.iq is None:
        from usdehaze.errors import UsageError

        raise UsageError(
            f"live: layer '{name}' has no complex IQ and is not a B-mode cine (a result's input "
            "or a magnitude-only scan); the fast method needs a scan's IQ or a DICOM/video cine"
        )
    return cfg


def _load(native: Native, cfg: Any) -> tuple[Any, Any]:
    """The live worker's loading: torch, the checked config, the student; (dehazer, the B-mode
    cine's DisplayView or None for a scan's IQ)."""
    from usdehaze.napari._preload import preload_torch
    from usdehaze.ultrasound.dehaze import Dehazer
    from usdehaze.ultrasound.methods import uses_iq

    preload_torch()  # the GIL-holding part of ``import torch``, without the GIL
    cfg = cfg.validate("live view")
    # the iq student reads a scan's complex IQ; the B-mode student a cine's dB frames
    runs = not uses_iq(cfg) if native.bmode is not None else native.iq is not None and uses_iq(cfg)
    if not runs:
        from usdehaze.errors import UsageError

        raise UsageError(
            f"live view: method fast on model {cfg.model} cannot run this layer: the iq "
            "student needs a scan's complex IQ (not a result file's input or a magnitude-only "
            "scan), a B-mode cine the B-mode student (model bmode)"
        )
    dehazer = Dehazer(cfg)
    view = display_view(native, dehazer)  # None: a scan's IQ
    return dehazer, view


def live_loop(
    native: Native,
    cfg: Any,
    mailbox: Latest,
    stop: threading.Event,
    stats: LiveStats,
    on_ready: Callable[[Any], None] | None = None,
    on_taken: Callable[[int], None] | None = None,
) -> Iterator[LiveFrame]:
    """Worker body: load the student, then dehaze the newest requested frame until ``stop``.
    Requests are ``(index, time requested)``; yields a :class:`LiveFrame` per frame done.
    ``on_ready(dehazer)`` once loaded, ``on_taken(index)`` as it starts on a frame. A scan's frames go through the iq student from their
    IQ; a B-mode cine's (``cfg`` from :func:`live_config` with the layer) through the B-mode
    student as ``usdehaze run`` sees them (bmode.DisplayView: overlays, colour and what is
    outside the sector kept as they are)."""
    from usdehaze.napari._preload import collector_paused, release_frozen

    with collector_paused():  # its full passes over a growing heap stalled the GUI thread
        dehazer, view = _load(native, cfg)
    if stop.is_set():  # stopped (the window closed) while loading: nothing stays frozen
        release_frozen()
        return
    convert = display_converter(native)
    if on_ready is not None:
        on_ready(dehazer)
    while not stop.is_set():
        req = mailbox.take(IDLE_WAIT)
        if req is None:
            continue
        i, requested = req
        if on_taken is not None:
            on_taken(i)
        t0 = time.perf_counter()
        if view is None:
            frame = np.asarray(native.iq[i : i + 1])
            out = dehazer.dehaze_iq(frame, frames=[native.source_frame(i)])
        else:
            out = view.dehaze(dehazer, np.asarray(native.db[i : i + 1]), [native.source_frame(i)])
        image = convert(out["tissue"])[0]
        done = time.perf_counter()
        stats.dehazed += 1
        stats.work.append(done - t0)
        if stop.is_set():
            return
        yield LiveFrame(i, image, requested, done, done - t0)
