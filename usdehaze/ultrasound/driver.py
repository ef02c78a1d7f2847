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
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
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
        "config": json.dumps(asdict(cfg)),
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


class FrameDriver:
    """Batches of frames → Dehazer → per-frame results, with the run's checks and counts.

    ``ood``: the out-of-distribution check made before sampling (usdehaze.ultrasound.ood;
    default: none made); ``warn(message)``: blank frames and the do-no-harm warning; ``name``:
    the input as messages name it; ``check``: False where the caller makes the do-no-harm
    check itself (run-many: over every process's frames, read back from the store)."""

    def __init__(
        self,
        dehazer: Any,
        ood: Any = None,
        warn: Callable[[str], None] | None = None,
        name: str = "",
        check: bool = True,
        fallback: str = "none",
    ) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback {fallback!r}: expected one of {FALLBACKS}")
        self.fallback = fallback
        self.dehazer = dehazer
        self.ood = ood if ood is not None else OodCheck(float("nan"), float("nan"), "none")
        self.warn = warn
        self.name = name
        self.check = check
        self.harm = HarmCheck()  # do no harm: checked on the result, frame by frame
        self.wreck = WreckCheck()  # gross failures, frame by frame (usdehaze.ultrasound.wreck)
        self.blank: list[int] = []  # frames (their indices) that were all zeros
        self.nfe = 0  # network evaluations per dehazed frame, as the sampler counted them
        self.frames_done = 0
        self.replaced: list[int] = []  # flagged frames written as the input (fallback input)
        # cines: mean |Δ dB| between consecutive frames of the input and of the tissue estimate
        self.flicker: dict[str, list[float]] = {"input": [], "tissue": []}
        self._last: tuple[int, dict[str, np.ndarray]] | None = None

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
            frames, db, mask = view.encode(frames), True, view.mask
        if not db:
            blank = blank_frames(frames)  # once per batch: the Dehazer is told, not rescanning
            new = [int(i) for i, b in zip(index, blank) if b]
            if new:
                self.blank += new
                if self.warn is not None:
                    self.warn(f"{self.name}: frame(s) {new} are all zeros; written as blank frames")
            kw = {"blank": blank} if within is None else {"within": within}
            res = d.dehaze_iq(frames, callback=callback, frames=index, **kw)
        else:
            res = {"input": np.asarray(frames), **d(frames, callback=callback, frames=index)}
        self.nfe = max(self.nfe, d.nfe)
        if view is not None:  # the dehazed crop back onto the input's full frames
            res = view.full(frames_in, res)
        if self.check:
            self.harm.add(index, res["input"], res["tissue"])
            self.wreck.add(index, res["input"], res["tissue"], res.get("haze"), mask)
            self._fall_back(index, res)
        if view is not None:  # a cine: frame-to-frame change of input and result
            self._flicker(index, res, mask)
        self.frames_done += len(index)
        return res

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
            if out["harm_warning"]:
                self.warn(self.harm.message(self.name))
            if out["harm_little_effect"]:
                self.warn(self.harm.little_effect_message(self.name))
            if out["wreck_warning"]:
                self.warn(self.wreck.message(self.name))
        return out
