"""Out-of-distribution check: does the tissue prior explain a scan's speckle? Run once per scan,
so that a run on data unlike the training data says so: before sampling where a run refuses
such data (``--strict``), else beside its first frames (:func:`start_run_check`: ``usdehaze
run``'s frames do not wait for it).

The score (``ood_score``): up to ``MAX_FRAMES`` frames spread over the run's frames, encoded as
the run's priors see them (μ-law I/Q with each hazy frame's own reference for the iq model, dB
mapped to [-1, 1] for the dB models), are noised at σ = 0.05, 0.1, 0.2 and denoised once each by
the tissue prior (:func:`usdehaze.core.priors.denoising_check`). For each σ,
r = ⟨ε̂, ε⟩ / ‖ε̂‖² compares the prior's noise estimate ε̂ with the noise ε actually added; the
score is the mean over σ of |ln r|. For data drawn from the prior's own distribution ε̂ is the
posterior mean of ε, whose error is orthogonal to it, so r = 1 and the score is 0 whatever the
data's content (a trained network gets close: about 0.01 on fresh simulator frames). Speckle
the prior did not learn moves r either way: finer speckle than it expects (resampled coarser,
demodulated off baseband) pushes r below 1, coarser speckle (a wider PSF, a finer pixel grid)
above 1.

Why not the plain denoising error ‖D(x + σε) − x‖²/σ²: it also measures how denoisable the data
is. Coarser speckle is easier to denoise, so a scan with a twice wider PSF scores *lower* than the
training frames (0.55 against 0.64 at σ = 0.05 with the shipped iq tissue prior) and a threshold
on the error would never flag it. Why these σ: below about 0.03 (the VE SDE's σ at its smallest
time) the networks were never trained; at 0.05–0.2 the noise is below the speckle (μ-law I/Q
spans [-1, 1]) and the denoiser's answer depends on the speckle's texture, the point-spread
function and the sampling, more than on the anatomy. Why the tissue prior only: the haze prior
models haze alone, which a hazy frame is not (its r on training-like hazy frames is about 0.3),
so it has no reference point on the input.

The threshold lives in the tissue prior's JSON, ``"ood": {"threshold": t, "measure": MEASURE,
"calibration": {...}}``, written by ``pipelines/calibrate_ood.py``; priors without it use
``FALLBACK_THRESHOLD``. Cost: 3 network evaluations on at most 4 frames of at most 256 × 256
pixels (a centre crop of larger frames), about 1.5 s on one CPU core.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usdehaze.ultrasound.scan import read_frames

OOD_SIGMAS = (0.05, 0.1, 0.2)
MAX_FRAMES = 4
MAX_SIDE = 256
SEED = 0
# what the score measures; a threshold calibrated for another measure is not used
MEASURE = "tweedie-stein-ratio/1"
# for priors without a calibrated threshold: above every training-like scan the shipped priors
# were calibrated on (iq ≤ 0.03, dB ≤ 0.08 per scan), so an uncalibrated prior warns only on
# clearly foreign speckle (resampled or demodulated IQ scores 0.25 and more)
FALLBACK_THRESHOLD = 0.15
ADAPT_HINT = "fit the priors to your device: usdehaze adapt --tissue ... --haze ..."


@dataclass(frozen=True)
class OodCheck:
    """A scan's score against its threshold: what a result file records as ``ood_*``."""

    score: float
    threshold: float
    threshold_from: str = "prior"  # "prior" (its JSON's "ood" block) or "fallback"
    frames: list[int] = field(default_factory=list)
    note: str | None = None  # why there is no score (NaN)

    @property
    def warning(self) -> bool:
        """True when the input looks unlike the training data (never for a missing score)."""
        return bool(self.score > self.threshold)

    def attrs(self) -> dict[str, Any]:
        """Root attributes of a result file: ``ood_score``, ``ood_warning`` and their context."""
        out: dict[str, Any] = {
            "ood_score": float(self.score),
            "ood_warning": self.warning,
            "ood_threshold": float(self.threshold),
            "ood_threshold_from": self.threshold_from,
            "ood_frames": [int(i) for i in self.frames],
        }
        if self.note:
            out["ood_note"] = self.note
        return out

    def message(self, name: str, strict: bool = False) -> str:
        """The one line that says so (``strict``: the refusal of ``--strict``)."""
        what = (
            f"looks unlike the priors' training data (ood_score {self.score:.3f} > threshold "
            f"{self.threshold:.3f})"
        )
        if strict:
            return f"{name}: refused (--strict): {what}; {ADAPT_HINT}"
        return f"{name}: {what}, results may be poor; {ADAPT_HINT}"


def sample_frames(frames: Sequence[int], k: int = MAX_FRAMES) -> list[int]:
    """Up to ``k`` of ``frames`` spread evenly, first and last included: the frames scored."""
    frames = [int(f) for f in frames]
    if len(frames) <= k:
        return frames
    return [frames[int(round(i))] for i in np.linspace(0, len(frames) - 1, k)]


def _centre_crop(x: np.ndarray, max_side: int) -> np.ndarray:
    z0 = max((x.shape[-2] - max_side) // 2, 0)
    x0 = max((x.shape[-1] - max_side) // 2, 0)
    return x[..., z0 : z0 + max_side, x0 : x0 + max_side]


def _plain(prior: Any) -> Any:
    """The prior without torch.compile (a compiled network would recompile for this shape)."""
    net = getattr(prior, "net", None)
    if net is None or not hasattr(net, "_orig_mod"):
        return prior
    from usdehaze.core.priors import NetworkPrior

    return NetworkPrior(net._orig_mod, prior.sde, prior.meta)


def score_encoded(
    x: np.ndarray,
    prior: Any,
    sigmas: Sequence[float] = OOD_SIGMAS,
    seed: int = SEED,
    max_side: int = MAX_SIDE,
    precision: str = "fp32",
) -> float:
    """The score of encoded frames (n, C, z, x): mean over σ of |ln r| (0: explained), the
    prior run at the run's ``precision`` (bf16 moves the score by under 0.001 on the
    validation scans, against thresholds near 0.14)."""
    import contextlib

    import torch

    from usdehaze.core.priors import denoising_check

    prior = _plain(prior)
    params = list(prior.parameters()) if isinstance(prior, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    t = torch.from_numpy(np.ascontiguousarray(_centre_crop(x, max_side), np.float32)).to(device)
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    cast = torch.autocast(device.type, dtype=low) if low else contextlib.nullcontext()
    with cast:  # autocast is per thread: entered in the thread that scores
        checks = denoising_check(prior, t, sigmas, seed)
    return float(np.mean([abs(c.log_ratio) for c in checks]))


def model_for_prior(prior: Any, dynamic_range: float = 60.0) -> Any:
    """The data model whose priors' domain the prior's JSON records (the first registered:
    logsum for "db"), at ``dynamic_range``; a prior without one: iq for 2 input channels, else
    logsum. Its ``prior_input`` is how frames are encoded for the prior."""
    from usdehaze.ultrasound.dehaze_config import DehazeConfig
    from usdehaze.ultrasound.models import DATA_MODELS

    meta = getattr(prior, "meta", {}) or {}
    domain = (meta.get("normalisation") or {}).get("domain")
    if domain is None:
        two = (meta.get("network") or {}).get("channels") == 2
        domain = DATA_MODELS["iq" if two else "logsum"].domain
    name = next((n for n, m in DATA_MODELS.items() if m.domain == domain), "logsum")
    return DATA_MODELS[name](DehazeConfig(model=name, dynamic_range=dynamic_range))


def ood_score(
    frames_iq: np.ndarray,
    tissue_prior: Any,
    *,
    model: Any = None,
    dynamic_range: float = 60.0,
    sigmas: Sequence[float] = OOD_SIGMAS,
    seed: int = SEED,
    max_side: int = MAX_SIDE,
    precision: str = "fp32",
) -> float:
    """How far the tissue prior is from explaining complex IQ frames (n, z, x): 0 when it does,
    larger the less (see the module docstring). ``model``: the data model whose encoding the
    prior sees (default: the one of the domain its JSON records). Deterministic for a ``seed``."""
    model = model_for_prior(tissue_prior, dynamic_range) if model is None else model
    x = model.prior_input(model.reads(frames_iq))
    return score_encoded(x, tissue_prior, sigmas, seed, max_side, precision)


def ood_threshold(prior: Any) -> tuple[float, str]:
    """The tissue prior's calibrated threshold (its JSON's ``"ood"`` block, when made for this
    measure) and ``"prior"``, else ``FALLBACK_THRESHOLD`` and ``"fallback"``."""
    block = (getattr(prior, "meta", {}) or {}).get("ood")
    if isinstance(block, dict) and block.get("measure", MEASURE) == MEASURE:
        t = block.get("threshold")
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
            return float(t), "prior"
    return FALLBACK_THRESHOLD, "fallback"


def check_frames(
    frames: np.ndarray,
    prior: Any,
    model: Any,
    indices: Sequence[int] | None = None,
    db: bool = False,
    precision: str = "fp32",
) -> OodCheck:
    """Score IQ frames (n, z, x), encoded as ``model`` (a DataModel of the run) gives them to the
    sampler, against the prior's threshold; ``db``: the frames are dB images (a layer without
    IQ; a dB model reads them as they are); ``precision``: the run's networks'. Blank or non-finite frames are left out, and
    without any left the score is NaN."""
    indices = list(range(len(frames))) if indices is None else [int(i) for i in indices]
    if prior is None:
        return OodCheck(math.nan, math.nan, "none", [], "the method uses no prior")
    threshold, source = ood_threshold(prior)
    frames = np.asarray(frames)
    flat = frames.reshape(len(frames), -1)
    empty = -model.cfg.dynamic_range if db else 0  # a blank frame
    ok = np.isfinite(flat).all(axis=1) & (flat != empty).any(axis=1)
    if not ok.any():
        return OodCheck(math.nan, threshold, source, [], "no frame with signal to score")
    keep = [i for i, k in zip(indices, ok) if k]
    x = model.prior_input(frames[ok] if db else model.reads(frames[ok]))
    score = score_encoded(x, prior, precision=precision)
    return OodCheck(score, threshold, source, keep)


def _scored(  # the frames read now; the scoring when the returned call is made
    scan: Any,
    frames: Sequence[int],
    prior: Any,
    model: Any,
    view: Any = None,
    precision: str = "fp32",
) -> Callable[[], OodCheck]:
    """Read up to ``MAX_FRAMES`` frames spread over a scan's ``frames`` now; returns what scores
    them (the network evaluations), to call now or beside the run (``view``: frames of another
    domain, seen as the driver sees them: usdehaze.ultrasound.bmode.DisplayView)."""
    picked = sample_frames(frames)
    if prior is None or not picked:
        return lambda: check_frames(np.zeros((0, 1, 1)), prior, model, [])
    data = read_frames(scan, picked)
    if view is not None:
        data = view.encode(data)
        return lambda: check_frames(data, prior, model, picked, db=True, precision=precision)
    return lambda: check_frames(data, prior, model, picked, precision=precision)


class PendingCheck:
    """A run's check scored beside its frames, in a daemon thread (its frames were read before
    it started): :meth:`result` waits for it, says the warning once, and raises what it
    raised; :attr:`seconds`: how long the scoring took."""

    def __init__(self, score: Callable[[], OodCheck], name: str, warn: Callable | None) -> None:
        import threading

        self.name, self.warn = name, warn
        self.seconds = 0.0
        self._check: OodCheck | None = None
        self._error: BaseException | None = None
        self._said = False
        self._thread = threading.Thread(
            target=self._run, args=(score,), name="usdehaze-ood-check", daemon=True
        )
        self._thread.start()

    def _run(self, score: Callable[[], OodCheck]) -> None:
        import time

        t0 = time.perf_counter()
        try:
            self._check = score()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self._error = exc
        self.seconds = time.perf_counter() - t0

    def done(self) -> bool:
        """Whether the score is known (or failed)."""
        return not self._thread.is_alive()

    def result(self) -> OodCheck:
        """The check (waiting for it); its warning through ``warn`` the first time."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        check = self._check
        assert check is not None
        if check.warning and self.warn is not None and not self._said:
            self._said = True
            self.warn(check.message(self.name))
        return check


def unfinished(prior: Any) -> OodCheck:
    """What a run records when it stopped before its check beside the frames finished."""
    if prior is None:
        return OodCheck(math.nan, math.nan, "none", [], "the method uses no prior")
    threshold, source = ood_threshold(prior)
    return OodCheck(math.nan, threshold, source, [], "not scored: the run stopped first")


def start_run_check(
    scan: Any,
    frames: Sequence[int],
    dehazer: Any,
    warn: Callable[[str], None] | None = None,
    view: Any = None,
) -> PendingCheck:
    """A run's one check without ``--strict``, scored beside its frames: the frames are read
    here, the network evaluations run in a thread while the run dehazes (the warning comes
    when the score is known; a refusal, ``--strict``, is :func:`check_run`, before any frame)."""
    prior = dehazer.priors.get("tissue")
    score = _scored(scan, frames, prior, dehazer.model, view, dehazer.precision())
    return PendingCheck(score, str(scan.path), warn)


def check_run(
    scan: Any,
    frames: Sequence[int],
    dehazer: Any,
    strict: bool = False,
    warn: Callable[[str], None] | None = None,
    view: Any = None,
) -> OodCheck:
    """A run's one check, before sampling, with the tissue prior the ``dehazer`` samples with:
    ``warn(message)`` when it fires, or with ``strict`` a UsageError (before anything is
    written). Methods without a prior (bm3d) get no score (NaN, no warning)."""
    from usdehaze.errors import UsageError

    prior = dehazer.priors.get("tissue")
    check = _scored(scan, frames, prior, dehazer.model, view, dehazer.precision())()
    if check.warning and strict:
        raise UsageError(check.message(str(scan.path), strict=True))
    if check.warning and warn is not None:
        warn(check.message(str(scan.path)))
    return check
