"""``fast``: the one-pass student distilled from the joint sampler on the iq model
(usdehaze.ultrasound.student); it keeps the tissue prior for the out-of-distribution check."""

from __future__ import annotations

from typing import Any

from usdehaze.errors import UsageError
from usdehaze.ultrasound.methods.base import Method, register_method


@register_method
class Fast(Method):
    name = "fast"
    summary = "its one-pass student"
    row = "fast (one-pass student of the default)"
    priors = ("student", "tissue")
    models = ("iq",)
    models_why = "is distilled from the iq model"
    one_sample_why = "returns the posterior mean in one pass"

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
        raise UsageError(
            "method fast has no student for scan-converted B-mode yet (it is distilled from "
            "the iq model); use --method joint, which runs such input with the B-mode priors"
        )

    @classmethod
    def rows(cls, base: Any) -> dict[str, Any]:
        """Its row when a run of ``base`` finds a student (given, in the priors folder, or
        shipped)."""
        from usdehaze.ultrasound.student import student_path

        if not student_path(base.priors, base.student).is_file():
            return {}
        return {cls.row: cls.configure(base)}

    def run_iq(self, d, iq, db, run):
        from usdehaze.ultrasound import student

        d.nfe = 1  # one network evaluation per frame
        c = self.cfg
        return student.run(d.student, iq, c.dynamic_range, d.device, d.precision(), run["within"])
