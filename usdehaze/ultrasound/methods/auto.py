"""``auto`` (the default): the method that measured best on what a run is given
(docs/results.md): the joint sampler on beamformed scans; on scan-converted B-mode the fast
method's B-mode student, which took 98 % of the haze out of the rendered validation split
(tissue within 0.4 dB, speckle kept) where the sampler took none, at a thousandth of its time.
Samples > 1 (uncertainty maps) or priors of one's own keep the sampler on B-mode too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from usdehaze.ultrasound.methods.base import METHODS, Method, register_method


@register_method
class Auto(Method):
    name = "auto"
    summary = "joint on beamformed scans, fast on scan-converted B-mode"
    priors = ("tissue", "haze")  # the sampler's, what a run without a scan loads
    stepwise = True
    multi_sample = True

    @classmethod
    def pick(cls, cfg: Any, display: bool) -> type[Method]:
        """fast on B-mode unless the run asks for what only the sampler gives (samples > 1)
        or names priors (a priors folder of one's own: the sampler runs them)."""
        own = cfg.tissue_prior or cfg.haze_prior or cfg.priors
        return METHODS["fast" if display and cfg.samples == 1 and not own else "joint"]

    @classmethod
    def _as(cls, cfg: Any, display: bool) -> tuple[type[Method], Any]:
        m = cls.pick(cfg, display)
        return m, m.defaults(replace(cfg, method=m.name))

    @classmethod
    def resolve(cls, cfg: Any) -> Any:
        return cls._as(cfg, display=False)[1]

    @classmethod
    def model_name(cls, cfg: Any) -> str:
        return cfg.model

    @classmethod
    def check(cls, cfg: Any, source: str) -> None:
        METHODS["joint"].check(cfg, source)

    @classmethod
    def prior_role(cls, cfg: Any) -> str:
        return "joint"

    @classmethod
    def for_display_data(cls, cfg: Any) -> tuple[Any, str | None]:
        """B-mode: the method it picks, set for display data (other input keeps ``auto``,
        which the Dehazer runs as joint: ``resolve``)."""
        m, cfg = cls._as(cfg, display=True)
        cfg, note = m.for_display_data(cfg)
        if m.name == "fast":
            note = (
                f"scan-converted B-mode: method auto runs the B-mode student (method fast, model "
                f"{cfg.model}; --method joint for the sampler)"
            )
        return cfg, note

    @classmethod
    def rows(cls, base: Any) -> dict[str, Any]:
        return {}  # evaluate's rows are the methods it picks (joint's own marks the default)
