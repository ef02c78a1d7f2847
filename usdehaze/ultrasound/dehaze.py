"""Dehazing: scan → frames → the run's method (usdehaze.ultrasound.methods) → result file.

``Dehazer`` loads what the config's method declares (priors, student) once and hands it batches
of frames; ``run_dehaze`` streams a scan through it into a result file. The settings are
``DehazeConfig`` (usdehaze.ultrasound.dehaze_config), the methods (joint, fast, dps,
pigdm-gauss, bm3d) are registered in ``METHODS`` and the data models in ``DATA_MODELS``
(usdehaze.ultrasound.models): what each declares is read from there, not here. The prior files
are found by usdehaze.ultrasound.prior_files.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze_config import DehazeConfig, build_config, method_settings
from usdehaze.ultrasound.driver import (
    FrameDriver,
    beside,
    provenance,
    read_ahead,
    source_record,
    stage,
    timed,
)
from usdehaze.ultrasound.logcomp import reference, to_db
from usdehaze.ultrasound.methods import METHODS, for_scan, run_model
from usdehaze.ultrasound.scan import blank_frames

# the public API: the settings and how to build them come from dehaze_config
__all__ = ["DehazeConfig", "Dehazer", "build_config", "run_dehaze"]


class Dehazer:
    """Dehaze batches of frames with one configuration through its method; what the method
    declares (priors, student) loads once."""

    def __init__(self, cfg: DehazeConfig) -> None:
        from usdehaze.core.device import resolve_device, set_cpu_threads

        cfg = cfg.validate()
        self.cfg = cfg = method_settings(METHODS[cfg.method].resolve(cfg))  # auto: refine / joint
        self.method = METHODS[cfg.method](cfg)  # what runs the frames
        self.device = resolve_device(cfg.device)
        # on CPU: torch's threads (cfg.threads; 0: auto, fewer on a loaded machine)
        self.threads = set_cpu_threads(cfg.threads) if self.device.type == "cpu" else None
        self.model = run_model(cfg)  # what frames it reads, how it encodes and decodes them
        self.priors: dict[str, Any] = {}
        self.checksums: dict[str, str] = {}
        self.student = None
        for role in self.method.priors:
            self._load(role)
        self.sampler_options: dict[str, Any] = {}  # extra JointSampler arguments (benchmarks)
        # network evaluations each frame of the last call got, as the sampler counted them
        # (samples × prior calls); 0 when none ran (bm3d, or only blank frames)
        self.nfe = 0

    def _load(self, role: str) -> None:
        """Load the student, or the tissue or haze prior (checked against the data model's
        keys: domain, μ, dynamic range...; the student keeps the tissue prior for the
        out-of-distribution check)."""
        c = self.cfg
        if role == "student":
            from usdehaze.ultrasound import student

            path = student.student_path(c.priors, c.student, c.model)
            self.student = student.load(path, self.device, c.dynamic_range, c.model)
            self.checksums["student"] = self.student.checksum
            return
        from usdehaze.core.priors import accelerate, load_prior
        from usdehaze.ultrasound.prior_files import prior_paths

        path = dict(zip(("tissue", "haze"), prior_paths(c)))[role]
        p = self.priors[role] = load_prior(path, self.device)
        content = (p.meta.get("data") or {}).get("content")
        if isinstance(content, str) and content.endswith("-only") and content != f"{role}-only":
            raise UsageError(
                f"{Path(path).with_suffix('.json')}: key 'data.content': '{content}', expected "
                f"'{role}-only' for the {role} prior (tissue and haze priors swapped?)"
            )
        self.checksums[role] = p.checksum
        accelerate(p, c.channels_last, c.compile, c.cuda_graphs)
        self.model.check_prior(p.meta, self.method.prior_role(c))

    def precision(self) -> str:
        """The networks' precision: ``auto`` is bf16 on CUDA; on CPU bf16 for a method checked
        to score as in fp32 (``cpu_bf16``) where the CPU runs bf16 natively (AMX), else fp32:
        results then depend on the CPU's bf16 support, and record the precision that ran."""
        from usdehaze.core.device import native_bf16

        if self.cfg.precision != "auto":
            return self.cfg.precision
        if self.device.type == "cuda":
            return "bf16"
        return "bf16" if self.method.cpu_bf16 and native_bf16(self.device) else "fp32"

    def min_size(self) -> int:
        """Smallest frame side the priors handle (their downsampling factor × 2)."""
        nets = [p.net for p in self.priors.values()] + ([self.student.net] if self.student else [])
        return 2 * max((getattr(n, "factor", 1) for n in nets), default=1)

    def operator(self):
        """The measurement model the method's sampler runs (recorded in results as
        ``operator``): the data model's for joint, the identity (y = x + Gaussian noise) for
        the single-prior baselines; None where no sampler runs (bm3d, fast)."""
        return self.method.operator(self)

    def sampler(self):
        """The JointSampler the method runs (a method without one: AttributeError)."""
        return self.method.sampler(self)

    def __call__(
        self,
        db: np.ndarray,
        seed: int | None = None,
        callback=None,
        frames: list[int] | range | None = None,
    ) -> dict[str, np.ndarray]:
        """Dehaze dB frames (n, z, x) in [-DR, 0]; returns tissue, haze (and *_std) in dB.

        ``frames``: the frames' indices in their scan; each frame then draws its noise from
        seed + index, so its result does not depend on batching, sharding or resuming.
        """
        c = self.cfg
        self.nfe = 0
        self._check_frames(db)
        if self.model.needs_phase:
            raise UsageError(
                f"model '{c.model}' needs complex IQ frames, not dB images: use "
                f"Dehazer.dehaze_iq, or model {self.model.fallback or 'logsum'}"
            )
        return self.method.run_db(self, db, seed, callback, frames)

    def dehaze_iq(
        self,
        iq: np.ndarray,
        callback=None,
        frames: list[int] | range | None = None,
        seed: int | None = None,
        within: np.ndarray | None = None,
        blank: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Dehaze IQ (complex) or envelope frames (n, z, x): ``input``, ``tissue``, ``haze`` (and
        ``*_std``) in dB, 0 dB = each input frame's maximum. dB models log-compress first; the
        iq model separates the companded I/Q and log-compresses its tissue and haze IQ.

        ``within``: when ``iq`` are crops, the whole frames (n, Z, X) they were cut from; the
        crops are then scaled and referenced as those frames are (a crop of a frame dehazes as
        that part of the frame would), not by their own maxima. ``blank``: which frames are all
        zeros, when the caller found them already (the driver: one scan per batch)."""
        c = self.cfg
        self.nfe = 0
        iq = np.asarray(iq)
        self._check_frames(iq)
        blank = blank_frames(iq) if blank is None else np.asarray(blank, bool)
        if blank.any() and within is None:  # blank in, blank out, and no sampler time spent
            return self._with_blank_frames(iq, blank, callback, frames, seed)
        whole = iq if within is None else np.asarray(within)
        with stage("encode"):
            env_ref = reference(np.abs(whole), "frame")
            db = to_db(iq, c.dynamic_range, normalise=env_ref)
        if not self.model.needs_phase:
            with stage("network"):
                return {"input": db, **self(db, seed=seed, callback=callback, frames=frames)}
        if not np.iscomplexobj(iq):
            raise UsageError(
                f"model '{c.model}' needs complex IQ frames; these are magnitudes (use model "
                f"{self.model.fallback or 'logsum'})"
            )
        if not np.isfinite(iq).all():
            raise UsageError("frames: contain NaN or Inf")
        run = {"seed": seed, "callback": callback, "frames": frames, "whole": whole}
        with stage("network"):  # a student's encode and decode inside it count as theirs
            return self.method.run_iq(self, iq, db, run | {"within": within})

    def _with_blank_frames(self, iq, blank, callback, frames, seed) -> dict[str, np.ndarray]:
        keep = np.flatnonzero(~blank)
        full = -self.cfg.dynamic_range
        sub = {}
        if len(keep):
            idx = None if frames is None else [frames[i] for i in keep]
            none = np.zeros(len(keep), bool)  # the frames kept have signal
            sub = self.dehaze_iq(iq[keep], callback=callback, frames=idx, seed=seed, blank=none)
        keys = ("input", "tissue", "haze") + (
            ("tissue_std", "haze_std") if self.cfg.samples > 1 else ()
        )
        out = {}
        for k in keys:
            a = np.full(iq.shape, 0.0 if k.endswith("_std") else full, np.float32)
            if len(keep):
                a[keep] = sub[k]
            out[k] = a
        return out

    def _check_frames(self, a: np.ndarray) -> None:
        if a.ndim != 3:
            raise UsageError(f"frames: expected (frames, z, x), got shape {a.shape}")
        if min(a.shape[1:]) < self.min_size():
            raise UsageError(
                f"frames of {a.shape[1]}x{a.shape[2]} pixels are smaller than the priors' minimum {self.min_size()}x{self.min_size()}"
            )

    def seeds(self, n: int, seed: int | None, frames: list[int] | range | None) -> int | list[int]:
        """One seed for the batch, or one per frame (independent of batching): the config's
        seed for every frame (noise shared: a cine flickers less), or seed + frame index."""
        if frames is None:
            return self.cfg.seed if seed is None else seed
        if len(frames) != n:
            raise ValueError(f"frames: {len(frames)} indices for {n} frames")
        if self.cfg.noise == "shared":
            return [self.cfg.seed] * n
        return [self.cfg.seed + int(f) for f in frames]


def run_record(
    dehazer: Dehazer,
    source: str | Path,
    layout: str,
    key: str | None,
    frames: Any,
    magnitude_only: bool,
) -> dict[str, Any]:
    """The provenance a result file records about its run (usdehaze.ultrasound.driver:
    provenance, then source_record): version, full config as it ran, method, seed, prior
    checksums, the precision "auto" resolved to, dynamic range; source file, layout, key,
    frames and whether it had phase."""
    return {
        **provenance(dehazer),
        **source_record(source, layout, key, frames, magnitude_only),
    }


def run_dehaze(
    scan,
    out: str | Path,
    cfg: DehazeConfig,
    frames: range | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    attrs: dict[str, Any] | None = None,
    step_callback: Callable[[int, int, float], None] | None = None,
    warn: Callable[[str], None] | None = None,
    strict: bool = False,
    fallback: str = "none",
) -> Path:
    """Dehaze ``frames`` of a Scan into ``out``; frames stream in batches of cfg.batch.

    ``out``'s suffix picks the output (usdehaze.ultrasound.sinks): a result file, or for
    scan-converted B-mode a DICOM cine or a side-by-side video. ``progress(frames_done, total,
    seconds)`` after each batch; ``step_callback`` each sampler step; ``warn(message)`` for
    what runs in place of the config on this scan (once its weights loaded), for frames that are
    all zeros (kept blank, listed in ``blank_frames``), when the scan looks unlike the priors'
    training data (usdehaze.ultrasound.ood, checked once, beside the first frames; with
    ``strict`` before any) and when results look wrecked (usdehaze.ultrasound.wreck, per frame);
    ``strict``: refuse such a scan, and stop at a wrecked frame; ``fallback`` "input": write the
    input in place of a wrecked frame. The root attribute ``nfe`` is the number of network
    evaluations each dehazed frame got, as the sampler counted them (0: none ran).
    """
    from usdehaze.ultrasound.ood import check_run, start_run_check
    from usdehaze.ultrasound.sinks import check_kind

    frames = range(scan.n_frames) if frames is None else frames
    kind = check_kind(out, scan)
    if kind == "result" and Path(out).suffix == ".zarr":
        from usdehaze.ultrasound.results import store_lock

        with store_lock(Path(out)):  # a store another process writes: said now, not after
            pass  # the work (the writer holds the lock while it writes)
    dehazer, note = _load_dehazer(scan, cfg, warn)
    cfg = dehazer.cfg  # with a baseline's own settings: what actually ran
    view = None
    if scan.domain == "display":
        from usdehaze.ultrasound.bmode import DisplayView

        view = DisplayView(scan, dehazer.min_size(), cfg.dynamic_range)
    with stage("ood check"):  # --strict refuses before any frame; else scored beside them
        pending = None if strict else start_run_check(scan, frames, dehazer, warn, view)
        ood = check_run(scan, frames, dehazer, strict, warn, view) if strict else None
    record = {
        **run_record(dehazer, scan.path, scan.layout, scan.key, frames, scan.magnitude_only),
        **({"note": note} if note else {}),
        **({"display": view.display.record()} if view is not None else {}),
        **(ood.attrs() if ood is not None else {}),  # beside the frames: added when known
        **(attrs or {}),
    }
    driver = FrameDriver(
        dehazer, ood, warn, str(scan.path), fallback="stop" if strict else fallback
    )
    t0 = time.perf_counter()
    # the next batch is read while this one is dehazed ("read" counts the waits for it); the
    # reader stops before the sink closes (a video or DICOM sink reads the scan's pixels then)
    ahead = contextlib.closing(read_ahead(scan.batches(frames, cfg.batch)))
    with stage("write"), _sink(out, kind, scan, view, frames, cfg, record) as w, ahead as reader:
        check = _BesideCheck(pending, driver, w)
        done = _stream(
            driver, timed("read", reader), w, check, len(frames), t0, progress, step_callback, view
        )
        with stage("result checks"):
            w.update_attrs(driver.finish())  # result checks, nfe, blank frames
        seconds = time.perf_counter() - t0
        w.update_attrs({"seconds": seconds, "seconds_per_frame": seconds / max(done, 1)})
    return Path(out)


def _load_dehazer(
    scan, cfg: DehazeConfig, warn: Callable[[str], None] | None
) -> tuple[Dehazer, str | None]:
    """The Dehazer for this scan (magnitude data, a file's own dynamic range) and the note of
    what runs in place of ``cfg``, said once the weights loaded (a refusal stays one line)."""
    cfg, note = for_scan(cfg, scan)
    if scan.display is not None and scan.display.source != "default":  # the file says
        cfg = replace(cfg, dynamic_range=scan.display.dynamic_range)
    with stage("load"):
        dehazer = Dehazer(cfg)
    if note and warn is not None:  # said once its weights loaded: a refusal stays one line
        said = note if scan.domain == "display" else f"only magnitude data; {note}"
        warn(f"{scan.path}: {said}")
    return dehazer, note


class _BesideCheck:
    """The out-of-distribution check scored beside the frames: into the output once known."""

    def __init__(self, pending: Any, driver: FrameDriver, w: Any) -> None:
        self.pending, self.driver, self.w = pending, driver, w

    def take(self, wait: bool) -> None:
        """Record the check's result if it is done (or, with ``wait``, once it is)."""
        if self.pending is not None and (wait or self.pending.done()):
            with stage("ood check"):  # the run's wait for it, if any
                self.driver.ood = self.pending.result()
            beside("ood check", self.pending.seconds)
            self.w.update_attrs(self.driver.ood.attrs())
            self.pending = None


def _stream(
    driver: FrameDriver,
    batches: Any,
    w: Any,
    check: _BesideCheck,
    total: int,
    t0: float,
    progress: Callable[[int, int, float], None] | None,
    step_callback: Callable[[int, int, float], None] | None,
    view: Any,
) -> int:
    """Dehaze and write every batch; on any exit the output says how far the check got."""
    from usdehaze.ultrasound.ood import unfinished

    done = 0
    try:
        for idx, res in driver.run(batches, step_callback, view):
            w.write_frames(done, **res)  # the batch in one write per key
            done += len(idx)
            if driver.blank:  # kept when a later batch is interrupted
                w.update_attrs({"blank_frames": list(driver.blank)})
            check.take(wait=False)
            if progress is not None:
                progress(done, total, time.perf_counter() - t0)
        check.take(wait=True)
    except BaseException:
        with contextlib.suppress(Exception):  # a score known by now goes in the partial file
            check.take(wait=False)
        if check.pending is not None:  # else: not scored, and the file says so
            w.update_attrs(unfinished(driver.dehazer.priors.get("tissue")).attrs())
        raise
    return done


def _sink(out, kind: str, scan, view, frames, cfg: DehazeConfig, record: dict[str, Any]):
    """The writer of a run's output kind (usdehaze.ultrasound.sinks)."""
    if kind != "result":
        from usdehaze.ultrasound.sinks import PixelSink

        return PixelSink(out, kind, scan, view, frames, cfg.method)
    from usdehaze.ultrasound.results import ResultWriter

    return ResultWriter(
        out,
        len(frames),
        scan.shape,
        x=scan.x,
        z=scan.z,
        grid=scan.grid,
        axes=scan.axes,
        with_std=cfg.samples > 1,
        attrs=record,
        masks=scan.masks,
    )
