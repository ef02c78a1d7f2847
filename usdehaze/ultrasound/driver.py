"""One frame driver and one provenance record for every path that dehazes frames.

``usdehaze run`` (dehaze.run_dehaze), ``run-many`` (batch_run), the napari Dehaze widget and
``usdehaze evaluate`` (and ``bench dehaze``'s sampler rows) all dehaze batches of frames
through :class:`FrameDriver`: it hands each batch to the Dehazer (IQ frames, or dB images for
layers without IQ), notes the frames that are all zeros (dehazed as blank frames, said once
through ``warn``), adds every result frame to the do-no-harm check (usdehaze.ultrasound.harm)
and keeps the network evaluations the sampler actually ran per frame. Its
:meth:`FrameDriver.attrs` and :func:`provenance` are the record every result carries: version,
the full config as it actually ran (a baseline's own sampler settings included), method, seed,
prior checksums, the precision "auto" resolved to, the dynamic range, the measurement model the
sampler ran (``operator``: its config()), ``nfe`` (root attribute), blank frames, and the
``ood_*`` / ``harm_*`` fields of the checks before and after sampling.

Stage timing (``usdehaze bench run``): :func:`stage` marks a part of a run (read, encode,
network, ...); inside :func:`timing` its wall time is added to a :class:`StageTimer`, outside
it costs one context-variable lookup. Stages nest: a stage's own time excludes the stages
inside it (the method's call is "network", the student's encode and decode inside it count as
"encode" and "decode"). Work beside the frames (the run's read-ahead, the result checks of a
batch while the next is dehazed when no fallback needs them first) runs in threads; its own
time is noted with :func:`beside`, the run's waits for it count in the stage.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np

from usdehaze.ultrasound.harm import HarmCheck
from usdehaze.ultrasound.ood import OodCheck
from usdehaze.ultrasound.scan import blank_frames
from usdehaze.ultrasound.wreck import WreckCheck

# what a run does with a frame the gross-failure check flags: keep the result (and say so),
# write the input in its place, or stop (--strict)
FALLBACKS = ("none", "input", "stop")

# the keys of the provenance record (provenance()) and of a driven run's result (attrs())
PROVENANCE_KEYS = (
    "usdehaze_version",
    "config",
    "method",
    "seed",
    "prior_checksums",
    "precision",
    "dynamic_range",
    "operator",
)


# the stages a run's time is split into, in the order they are printed
STAGES = (
    "read",
    "encode",
    "ood check",
    "network",
    "decode",
    "scan conversion",
    "result checks",
    "write",
)


class StageTimer:
    """Wall seconds per stage of a run (each stage's own time: stages inside it excluded)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        # work that ran in another thread beside the stages (not part of their sum)
        self.beside: dict[str, float] = {}
        self._open: list[list[float]] = []  # per open stage: [start, seconds of inner stages]

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        here = [time.perf_counter(), 0.0]
        self._open.append(here)
        try:
            yield
        finally:
            self._open.pop()
            spent = time.perf_counter() - here[0]
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - here[1]
            if self._open:
                self._open[-1][1] += spent

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` measured elsewhere (a generator's reads) to ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if self._open:
            self._open[-1][1] += seconds


_TIMER: ContextVar[StageTimer | None] = ContextVar("usdehaze_stage_timer", default=None)
_OFF = contextlib.nullcontext()


def stage(name: str) -> contextlib.AbstractContextManager:
    """Time the block as stage ``name`` when a :func:`timing` is on; else nothing."""
    t = _TIMER.get()
    return _OFF if t is None else t(name)


def beside(name: str, seconds: float) -> None:
    """Note ``seconds`` of work ``name`` that ran in another thread, beside the stages."""
    t = _TIMER.get()
    if t is not None:
        t.beside[name] = t.beside.get(name, 0.0) + seconds


@contextlib.contextmanager
def timing(timer: StageTimer) -> Iterator[StageTimer]:
    """Turn stage timing on into ``timer`` for the block (this thread or task)."""
    token = _TIMER.set(timer)
    try:
        yield timer
    finally:
        _TIMER.reset(token)


def timed(name: str, items: Iterable[Any]) -> Iterator[Any]:
    """``items`` with the time spent producing each counted to stage ``name`` (a reader)."""
    it = iter(items)
    while True:
        t = _TIMER.get()
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        if t is not None:
            t.add(name, time.perf_counter() - t0)
        yield item


def read_ahead(items: Iterable[Any]) -> Iterator[Any]:
    """``items`` produced ahead (two at most) in a daemon thread: the next batch is read while
    this one is dehazed (the network releases the GIL). The producer's errors are raised here, in
    order; closing the generator stops the producer, waits for its read in progress and closes
    ``items``, so the file is never read after its reader closes it (close it before the
    scan)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    source = iter(items)

    def produce() -> None:
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            put((None, exc))
        finally:  # a generator source is closed here, in its own thread, before join returns
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="usdehaze-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class _InOrder:
    """Jobs run one after another, in order, in a daemon thread beside the frames (a batch's
    result checks while the next batch is dehazed). A job's error is raised by the next
    :meth:`submit` or by :meth:`wait` (the jobs behind it are not run); the thread's time is
    noted as :func:`beside` work. The thread ends at :meth:`wait`, or when this is dropped
    unwaited (an interrupted run)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: Any = None  # a queue.SimpleQueue while a thread runs
        self._state = _JobState()
        self._pending = 0

    def submit(self, job: Callable[[], None]) -> None:
        import queue
        import threading
        import weakref

        self._raise()
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            args = (self._jobs, self._state)
            threading.Thread(target=_work, args=args, name=self.name, daemon=True).start()
            weakref.finalize(self, self._jobs.put, None)
        self._pending += 1
        self._jobs.put(job)

    def wait(self) -> None:
        """Until every job submitted has run, then the thread ends; its time goes to the
        stage timer."""
        st = self._state
        while self._pending:
            st.done.acquire()
            self._pending -= 1
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None
        if st.seconds:
            beside("result checks", st.seconds)
            st.seconds = 0.0
        self._raise()

    def _raise(self) -> None:
        if self._state.error is not None:
            exc, self._state.error = self._state.error, None
            raise exc


class _JobState:
    """What the jobs' thread hands back: the first error, its seconds, one release per job."""

    def __init__(self) -> None:
        import threading

        self.error: BaseException | None = None
        self.seconds = 0.0
        self.done = threading.Semaphore(0)


def _work(jobs: Any, state: _JobState) -> None:
    """The jobs' thread: runs them in order until it gets None."""
    while (job := jobs.get()) is not None:
        t0 = time.perf_counter()
        try:
            if state.error is None:  # after an error the jobs behind it are not run
                job()
        except BaseException as exc:  # noqa: BLE001 - raised again in the run's thread
            state.error = exc
        finally:
            job = None  # not kept alive while waiting for the next
            state.seconds += time.perf_counter() - t0
            state.done.release()


def provenance(dehazer: Any) -> dict[str, Any]:
    """What a result records about the run that made it, before any frame: version, the full
    config as it ran (``dehazer.cfg``: with a baseline's own settings), method, seed, the prior
    (and student) checksums, the precision "auto" resolved to on this machine, dynamic range,
    and the sampler's measurement model (``operator``: its config(), null without a sampler)."""
    from usdehaze import __version__

    cfg = dehazer.cfg
    op = dehazer.operator()
    return {
        "usdehaze_version": __version__,
        "config": json.dumps(cfg.flat()),
        "method": cfg.method,  # joint (the sampler) or fast (its student), ...: what ran
        "seed": cfg.seed,
        "prior_checksums": json.dumps(dehazer.checksums),
        "precision": dehazer.precision(),
        "dynamic_range": cfg.dynamic_range,
        "operator": json.dumps(op.config() if op is not None else None),
    }


def source_record(
    source: Any, layout: str, key: str | None, frames: Iterable[int], magnitude_only: bool
) -> dict[str, Any]:
    """Where the frames came from: source file, its layout and key, the frames, whether the
    input had phase."""
    return {
        "source": str(source),
        "source_layout": layout,
        "source_key": key,
        "source_frames": [int(i) for i in frames],
        "magnitude_only": bool(magnitude_only),
    }


def result_check_attrs(harm: Any, ood: Any, with_prior: bool) -> dict[str, Any]:
    """The do-no-harm check's root attributes (``harm_*``), and ``ood_warning`` / ``ood_reasons``
    over both checks: "speckle" (the input, before sampling: usdehaze.ultrasound.ood) and
    "result" (the output, usdehaze.ultrasound.harm). Methods without priors (bm3d) are not
    judged: their figures are kept, no warning."""
    out = dict(harm.attrs())
    out["harm_warning"] = bool(with_prior and harm.warning)
    out["harm_little_effect"] = bool(with_prior and harm.little_effect)
    reasons = [r for r, on in (("speckle", ood.warning), ("result", out["harm_warning"])) if on]
    out["ood_warning"] = bool(reasons)
    out["ood_reasons"] = reasons
    return out


def harm_lines(harm: Any, found: dict[str, Any], name: str) -> list[str]:
    """The do-no-harm warning and the little-effect note that ``found`` (result_check_attrs)
    records, one line each: the one place run and run-many take their wording from."""
    lines = []
    if found["harm_warning"]:
        lines.append(harm.message(name))
    if found["harm_little_effect"]:
        lines.append(harm.little_effect_message(name))
    return lines


class FrameDriver:
    """Batches of frames → Dehazer → per-frame results, with the run's checks and counts.

    ``ood``: the out-of-distribution check made before sampling (usdehaze.ultrasound.ood;
    default: none made); ``warn(message)``: blank frames and the do-no-harm warning; ``name``:
    the input as messages name it; ``check``: False where the caller makes the do-no-harm
    check itself (run-many: over every process's frames, read back from the store);
    ``frame_checks``: the gross-failure check and its ``fallback``, per frame (default: as
    ``check``; run-many makes them here, frame by frame, with check False)."""

    def __init__(
        self,
        dehazer: Any,
        ood: Any = None,
        warn: Callable[[str], None] | None = None,
        name: str = "",
        check: bool = True,
        fallback: str = "none",
        frame_checks: bool | None = None,
    ) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback {fallback!r}: expected one of {FALLBACKS}")
        self.fallback = fallback
        self.dehazer = dehazer
        self.ood = ood if ood is not None else OodCheck(float("nan"), float("nan"), "none")
        self.warn = warn
        self.name = name
        self.check = check
        self.frame_checks = check if frame_checks is None else frame_checks
        self.harm = HarmCheck()  # do no harm: checked on the result, frame by frame
        self.wreck = WreckCheck()  # gross failures, frame by frame (usdehaze.ultrasound.wreck)
        self.blank: list[int] = []  # frames (their indices) that were all zeros
        self.nfe = 0  # network evaluations per dehazed frame, as the sampler counted them
        self.frames_done = 0
        self.replaced: list[int] = []  # flagged frames written as the input (fallback input)
        # cines: mean |Δ dB| between consecutive frames of the input and of the tissue estimate
        self.flicker: dict[str, list[float]] = {"input": [], "tissue": []}
        self._last: tuple[int, dict[str, np.ndarray]] | None = None
        # with fallback "none" the checks change no result: they run beside the next batch
        self._beside = _InOrder("usdehaze-result-checks") if fallback == "none" else None

    def dehaze(
        self,
        index: list[int],
        frames: np.ndarray,
        callback: Callable | None = None,
        db: bool = False,
        within: np.ndarray | None = None,
        view: Any = None,
    ) -> dict[str, np.ndarray]:
        """Dehaze one batch: ``frames`` (n, z, x) IQ or envelope (``db``: dB images, for inputs
        without IQ; ``view``: frames its ``encode`` turns into dB images) with their indices
        ``index`` (seeds: seed + index); returns input, tissue, haze (and *_std) in dB, one row
        per frame."""
        d = self.dehazer
        frames_in, mask = frames, None
        if view is not None:
            with stage("scan conversion"):
                frames, db, mask = view.encode(frames), True, view.mask
        if not db:
            with stage("encode"):
                blank = blank_frames(frames)  # once per batch: the Dehazer is told, no rescan
            new = [int(i) for i, b in zip(index, blank) if b]
            if new:
                self.blank += new
                if self.warn is not None:
                    self.warn(f"{self.name}: frame(s) {new} are all zeros; written as blank frames")
            kw = {"blank": blank} if within is None else {"within": within}
            res = d.dehaze_iq(frames, callback=callback, frames=index, **kw)
        else:
            with stage("network"):
                res = {"input": np.asarray(frames), **d(frames, callback=callback, frames=index)}
        self.nfe = max(self.nfe, d.nfe)
        if view is not None:  # the dehazed crop back onto the input's full frames
            with stage("scan conversion"):
                res = view.full(frames_in, res)
        if view is not None:  # display images (B-mode): the do-no-harm check by depth rings
            self.harm.display = True
        with stage("result checks"):
            checks = self._checks(list(index), dict(res), mask, view is not None)
            if self._beside is not None:  # the arrays are not changed after this: read later
                self._beside.submit(checks)
            else:
                checks()
        self.frames_done += len(index)
        return res

    def _checks(
        self, index: list[int], res: dict[str, np.ndarray], mask: Any, cine: bool
    ) -> Callable[[], None]:
        """The batch's result checks (do no harm, gross failures and their fallback, a cine's
        flicker), to run now or beside the next batch, in order."""

        def run() -> None:
            if self.check:  # a display image's judged pixels (its mask) for the harm check too
                self.harm.add(index, res["input"], res["tissue"], mask if cine else None)
            if self.frame_checks:
                self.wreck.add(index, res["input"], res["tissue"], res.get("haze"), mask)
                self._fall_back(index, res)
            if cine:  # a cine: frame-to-frame change of input and result
                self._flicker(index, res, mask)

        return run

    def _flicker(self, index: list[int], res: dict[str, np.ndarray], mask: Any) -> None:
        """Add consecutive frames' changes (mean |Δ dB| in the dehazed region) of the input and
        the tissue estimate; frames that do not follow each other in the scan are not paired."""
        from usdehaze.metrics import frame_change_db

        for k, i in enumerate(index):
            last = self._last
            if last is not None and last[0] == int(i) - 1:
                for key in ("input", "tissue"):
                    self.flicker[key].append(frame_change_db(last[1][key], res[key][k], mask))
            self._last = (int(i), {key: res[key][k] for key in ("input", "tissue")})

    def _fall_back(self, index: list[int], res: dict[str, np.ndarray]) -> None:
        """Flagged frames of this batch (the gross-failure check): kept (``none``), replaced by
        the input, the haze estimate nothing (``input``), or the run stopped (``stop``)."""
        flagged = set(self.wreck.flagged) & {int(i) for i in index}
        if not flagged or self.fallback == "none" or self.dehazer.priors.get("tissue") is None:
            return
        first = min(flagged)
        if self.fallback == "stop":
            from usdehaze.errors import UsageError

            raise UsageError(
                f"{self.name}: frame {first}: the result looks wrecked "
                f"({', '.join(self.wreck.reasons(first))}); --strict: stopped (the frames "
                "before it are kept, complete = false)"
            )
        for k, i in enumerate(index):
            if int(i) in flagged:
                res["tissue"][k] = res["input"][k]
                res["haze"][k] = -float(self.dehazer.cfg.dynamic_range)
        self.replaced += sorted(flagged)

    def run(
        self,
        batches: Iterable[tuple[list[int], np.ndarray]],
        callback: Callable | None = None,
        view: Any = None,
    ) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        """Dehaze every (indices, frames) batch in turn: yields (indices, result). ``view``: how
        frames of another domain are seen (usdehaze.ultrasound.bmode.DisplayView for B-mode
        grey levels: dB crops in, full frames out, the checks on its mask)."""
        for index, frames in batches:
            yield index, self.dehaze(index, frames, callback, view=view)

    def attrs(self) -> dict[str, Any]:
        """The run's result attributes after its frames: the do-no-harm figures and
        ``ood_warning`` / ``ood_reasons`` over both checks (result_check_attrs), ``nfe``
        (0 when none ran) and the blank frames (when any)."""
        if self._beside is not None:
            self._beside.wait()  # the checks of the last batches
        judged = self.dehazer.priors.get("tissue") is not None  # bm3d is not judged
        wreck = self.wreck.attrs()
        wreck["wreck_warning"] = bool(judged and wreck["wreck_warning"])
        return {
            **result_check_attrs(self.harm, self.ood, judged),
            **wreck,
            **(
                {
                    "flicker_input_db": float(np.mean(self.flicker["input"])),
                    "flicker_tissue_db": float(np.mean(self.flicker["tissue"])),
                }
                if self.flicker["input"]
                else {}
            ),
            "fallback": self.fallback,
            "fallback_frames": list(self.replaced),
            "nfe": self.nfe,
            **({"blank_frames": list(self.blank)} if self.blank else {}),
        }

    def finish(self) -> dict[str, Any]:
        """``attrs()``, after saying the do-no-harm and gross-failure warnings and the
        little-effect note (when they fire) through ``warn``."""
        out = self.attrs()
        if self.warn is not None:
            for line in harm_lines(self.harm, out, self.name):
                self.warn(line)
            if out["wreck_warning"]:
                self.warn(self.wreck.message(self.name))
        return out
