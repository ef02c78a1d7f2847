"""The Dehaze widget's run, without Qt: a layer's frames through ``usdehaze run``'s library.

:func:`dehaze_frames` is the one call the widget's worker thread makes. Its phases are named:
:func:`prepare` (torch, the checked config, the priors), :func:`layer_record` (the provenance
``usdehaze run`` writes, from the same ``run_record``), :func:`check_frames_ood` (the
out-of-distribution check) and :func:`sample` (batches of ``cfg.batch`` frames through
``usdehaze run``'s :class:`~usdehaze.ultrasound.driver.FrameDriver`: blank frames, do-no-harm
and gross-failure checks, nfe). Each frame is seeded as the command line seeds it, so the
layers that appear equal the command's result file.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from usdehaze.napari._layers import Native, display_view, layer_check
from usdehaze.napari._preload import collector_paused, preload_torch

Emit = Callable[..., None]


class Cancelled(Exception):
    """Raised inside the sampler callback when the user pressed Cancel."""


class StopFlag:
    """A run's stop request: Cancel, the widget's window or dock closing, or the worker's
    ``quit()`` (napari quitting asks every worker to quit and waits for it), so the sampler
    stops at its next step instead of holding the closing window for the whole run."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.worker: Any = None  # the run's napari worker, once made

    def set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        self.event.clear()
        self.worker = None

    def is_set(self) -> bool:
        w = self.worker
        return self.event.is_set() or bool(w is not None and w.abort_requested)


class Progress:
    """Sampler steps done out of all the run's steps (frames × steps), with a label."""

    def __init__(self, n_frames: int, emit: Emit) -> None:
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
    magnitude-only scans lack; those run in the log domain, and B-mode cines (DICOM, video)
    with the display model (with a note saying so)."""
    from usdehaze.ultrasound.methods import METHODS, for_magnitude_data

    if native.attrs.get("domain") == "display":
        return METHODS[cfg.method].for_display_data(cfg)
    return (cfg, None) if native.iq is not None else for_magnitude_data(cfg)


def prepare(native: Native, cfg: Any, stage: Emit) -> tuple[Any, Any, str | None]:
    """Phase 1: torch (its library opened without the GIL), the checked config for this layer
    and the loaded priors: (dehazer, the config that runs, a note on what was changed)."""
    from usdehaze.ultrasound.dehaze import Dehazer
    from usdehaze.ultrasound.dehaze_config import method_settings

    with collector_paused():  # its full passes over a growing heap stalled the GUI thread
        if "torch" not in sys.modules:
            stage("loading torch…")
            preload_torch()  # the GIL-holding part of ``import torch``, without the GIL
        stage("checking the settings…")
        cfg, note = layer_config(native, method_settings(cfg.validate("dehaze widget")))
        stage("loading the priors…")
        dehazer = Dehazer(cfg)
    return dehazer, dehazer.cfg, note


def layer_record(native: Native, frames: list[int], dehazer: Any, note: str | None) -> dict:
    """Phase 2: the provenance ``usdehaze run`` records (run_record), plus the note."""
    from usdehaze.ultrasound.dehaze import run_record

    attrs = native.attrs
    record = run_record(
        dehazer,
        native.source,
        attrs.get("layout", attrs.get("source_layout", "")),
        attrs.get("key", attrs.get("source_key", "")),
        [native.source_frame(i) for i in frames],
        bool(attrs.get("magnitude_only", native.iq is None)),
    )
    return {**record, **({"note": note} if note else {})}


def check_frames_ood(native: Native, frames: list[int], dehazer: Any, on_ood: Emit | None):
    """Phase 3: ``usdehaze run``'s out-of-distribution check (none made without ``on_ood``),
    handed to ``on_ood`` as soon as it is made."""
    from usdehaze.ultrasound.ood import OodCheck

    if on_ood is None:
        return OodCheck(float("nan"), float("nan"), "none")
    check = layer_check(native, frames, dehazer)
    on_ood(check)
    return check


def sample(
    native: Native, frames: list[int], driver: Any, cancel: Any, bar: Progress
) -> dict[str, np.ndarray] | None:
    """Phase 4: the frames in batches of ``cfg.batch`` through the run's FrameDriver, each
    step reported to ``bar`` (a B-mode cine seen as ``usdehaze run`` sees it: the sector less
    overlays and colour pixels dehazed, the rest the input's); the arrays (tissue, haze,
    *_std) or None when cancelled."""
    batch = driver.dehazer.cfg.batch
    phase = driver.dehazer.model.needs_phase  # the scan's IQ, else the layer's dB frames
    view = None if phase else display_view(native, driver.dehazer)  # a B-mode cine: run's view
    parts: dict[str, list[np.ndarray]] = {}
    done = 0
    for idx in (frames[i : i + batch] for i in range(0, len(frames), batch)):
        if cancel.is_set():
            return None
        seeds = [native.source_frame(i) for i in idx]

        def step(i: int, total: int, t: float, done: int = done, seeds: list = seeds) -> None:
            if cancel.is_set():
                raise Cancelled
            bar.step(done, seeds, i, total)

        data = np.asarray((native.iq if phase else native.db)[idx])
        try:
            res = driver.dehaze(seeds, data, step, db=not phase, view=view)
        except Cancelled:
            return None
        res.pop("input")
        for k, v in res.items():
            parts.setdefault(k, []).append(v)
        done += len(idx)
    return {k: np.concatenate(v) for k, v in parts.items()}


def dehaze_frames(
    native: Native,
    frames: list[int],
    cfg: Any,
    cancel: threading.Event | StopFlag,
    progress: Emit | None = None,
    on_ood: Emit | None = None,
    on_stage: Emit | None = None,
) -> dict[str, Any] | None:
    """Check ``cfg``, load the priors and dehaze ``frames`` (indices into native.db) like
    run_dehaze does, all in the calling (worker) thread; None when cancelled. Returns the
    arrays and ``record`` (run_record's provenance + note + ood attributes), ``cfg`` (what
    ran) and ``harm`` (the do-no-harm check). ``progress(value, maximum, text)`` after each
    sampler step; ``on_ood(check)`` the out-of-distribution check, made first;
    ``on_stage(text)`` what the worker is doing."""
    from usdehaze.ultrasound.driver import FrameDriver

    stage = on_stage or (lambda text: None)
    dehazer, cfg, note = prepare(native, cfg, stage)
    if cancel.is_set():
        return None
    record = layer_record(native, frames, dehazer, note)
    if on_ood is not None:
        stage("checking the frames against the priors…")
    check = check_frames_ood(native, frames, dehazer, on_ood)
    record.update(check.attrs() if on_ood is not None else {})
    if cancel.is_set():
        return None
    stage(f"dehazing {len(frames)} frame(s)…" + (f" ({note})" if note else ""))
    driver = FrameDriver(dehazer, check)  # usdehaze run's frame driver: blank frames, harm, nfe
    out = sample(native, frames, driver, cancel, Progress(len(frames), progress or _nothing))
    if out is None:
        return None
    record.update(driver.attrs())  # result check, nfe, blank frames: as usdehaze run records
    return {**out, "record": record, "cfg": cfg, "harm": driver.harm}


def _nothing(*args: Any) -> None:
    """A progress callback that shows nothing."""
