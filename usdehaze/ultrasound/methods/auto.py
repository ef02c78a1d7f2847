"""``auto`` (the default): the method that measured best on what a run is given
(docs/results.md). On beamformed I/Q (the iq model) with the shipped priors: refine, the
student's estimate refined by 4 steps of the joint sampler, which removed more haze than the
joint sampler alone on every independent set (corpus validation 72 vs 54 %, unseen frames 57 vs
23 %, full-wave frames), at a higher PSNR, a tissue level as close and 9 network evaluations a
frame instead of 50; still posterior samples and std maps (``samples``). On scan-converted B-mode
the fast method's B-mode student, which took 98 % of the haze out of the rendered validation
split (tissue within 0.4 dB, speckle kept) where the sampler took none. Priors of one's own (a
lab's ``usdehaze adapt``) run the joint sampler: the shipped student was distilled from the
shipped priors (refine from it with priors adapted to full-wave frames kept their overshoot); samples > 1 keep the sampler on B-mode too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from usdehaze.ultrasound.methods.base import METHODS, Method, register_method


@register_method
class Auto(Method):
    name = "auto"
    summary = "refine on beamformed I/Q, fast on scan-converted B-mode"
    priors = ("tissue", "haze")  # the sampler's, what a run without a scan loads
    stepwise = True
    multi_sample = True

    @classmethod
    def pick(cls, cfg: Any, display: bool) -> type[Method]:
        """fast on B-mode unless the run asks for what only the sampler gives (samples > 1);
        refine on the iq model where its student fits; joint for priors of one's own (a priors
        folder or files: the sampler runs them), the dB models and other dynamic ranges."""
        own = cfg.tissue_prior or cfg.haze_prior or cfg.priors
        if display:
            return METHODS["fast" if cfg.samples == 1 and not own else "joint"]
        return METHODS[
            "refine" if cfg.model == "iq" and not own and cls.student_fits(cfg) else "joint"
        ]

    @staticmethod
    def student_fits(cfg: Any) -> bool:
        """refine's student: one given (``--student``: a misfit is refused in one line), or the
        shipped one where it runs at the config's dynamic range (distilled at 60 dB; another
        range runs the joint sampler, whose iq priors carry none)."""
        from usdehaze.ultrasound.student import runs_at, student_path

        if cfg.student:
            return True
        return runs_at(student_path(None, None, "iq"), cfg.dynamic_range)

    @classmethod
    def runs(cls, base: Any) -> str:
        """The method a run of ``base`` on beamformed data runs: evaluate marks its row
        default."""
        return cls.pick(base, display=False).name if base.method == cls.name else base.method

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
