"""``fast``: a one-pass student (usdehaze.ultrasound.student): on the iq model the student
distilled from the joint sampler, on exported B-mode (the bmode model) the one trained on the
corpus's truth rendered through display chains; it keeps the model's tissue prior for the
out-of-distribution check."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from usdehaze.errors import UsageError
from usdehaze.ultrasound.methods.base import Method, register_method


@register_method
class Fast(Method):
    name = "fast"
    summary = "its one-pass student"
    row = "fast (one-pass student of the joint sampler)"
    priors = ("student", "tissue")
    models = ("iq", "bmode")
    models_why = "has students for the iq model (beamformed I/Q) and the bmode model (B-mode)"
    one_sample_why = "returns the posterior mean in one pass"
    # bf16 on AMX CPUs: the same validation figures as fp32 (iq and B-mode; docs/results.md)
    cpu_bf16 = True

    @classmethod
    def model_name(cls, cfg: Any) -> str:
        return cfg.model

    @classmethod
    def for_magnitude_data(cls, cfg: Any) -> tuple[Any, str | None]:
        if cls.data_model(cfg).needs_phase:
            raise UsageError(
                "method fast needs complex IQ data and this input is magnitude-only; "
                "use --method joint (it runs such data in the log domain)"
            )
        return cfg, None

    @classmethod
    def for_display_data(cls, cfg: Any) -> tuple[Any, str | None]:
        """Scan-converted B-mode runs the B-mode student (model bmode)."""
        if cfg.model == "bmode":
            return cfg, None
        if cfg.tissue_prior or cfg.haze_prior or cfg.priors:
            raise UsageError(
                f"model '{cfg.model}': this input is scan-converted B-mode; method fast runs it "
                "with the B-mode student (model bmode), give its priors folder's student with "
                "--student or leave out --priors"
            )
        return replace(cfg, model="bmode"), (
            f"scan-converted B-mode: running the B-mode student (model bmode) instead of "
            f"{cfg.model}"
        )

    @classmethod
    def rows(cls, base: Any) -> dict[str, Any]:
        """Its row when a run of ``base`` finds a student (given, in the priors folder, or
        shipped)."""
        from usdehaze.ultrasound.student import student_path

        if not student_path(base.priors, base.student, cls.configure(base).model).is_file():
            return {}
        return {cls.row: cls.configure(base)}

    def run_db(self, d, db, seed, callback, frames):
        from usdehaze.ultrasound import student

        d.nfe = 1  # one network evaluation per frame
        return student.run_db(d.student, db, self.cfg.dynamic_range, d.device, d.precision())

    def run_iq(self, d, iq, db, run):
        from usdehaze.ultrasound import student

        d.nfe = 1  # one network evaluation per frame
        c = self.cfg
        return student.run(d.student, iq, c.dynamic_range, d.device, d.precision(), run["within"])
