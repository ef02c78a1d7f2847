"""``joint``: the two-prior sampler (tissue and haze priors, the config's data model).

Its data model (``--model``) encodes the frames, sets the sampler's start (the tissue at the
input, the haze below it) and its measurement operator, whose declared capabilities decide the
DC rules it allows; the rule, weighting and κ are the config's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from usdehaze.ultrasound.methods.base import METHODS, SamplerMethod, register_method
from usdehaze.ultrasound.models import DATA_MODELS


@register_method
class Joint(SamplerMethod):
    name = "joint"
    summary = "the two-prior sampler"
    priors = ("tissue", "haze")

    @classmethod
    def model_name(cls, cfg: Any) -> str:
        return cfg.model

    @classmethod
    def check(cls, cfg: Any, source: str) -> None:
        super().check(cfg, source)  # and the rules its measurement model declares what they need
        DATA_MODELS[cfg.model].check_rule(cfg.rule, source)

    @classmethod
    def prior_role(cls, cfg: Any) -> str:
        return cfg.model

    @classmethod
    def rows(cls, base: Any) -> dict[str, Any]:
        """Its row under each registered data model with the sampler settings that model
        declares (the base's own model first, marked default when it is what auto runs); models that ask for no row
        (``table_row`` False: the display model, scored on exported B-mode) are left out."""
        rows = {}
        default = METHODS["auto"].runs(base) == cls.name
        for name in sorted(DATA_MODELS, key=lambda m: m != base.model):
            m = DATA_MODELS[name]
            own = name == base.model
            if not (own or m.table_row):
                continue
            label = f"joint ({m.label or m.name}{', default' if own and default else ''})"
            # the joint method itself: the base's method may be auto, which runs refine on iq
            mine = replace(base, method=cls.name)
            rows[label] = mine if own else replace(mine, model=name, **m.settings)
        return rows

    def operator(self, d):
        return d.model.operator()

    def rule_params(self):
        c = self.cfg
        # the DC step back-propagates the networks `jacobian` names; the others are run forward
        # only, with a Gaussian prior's Jacobian (variance jacobian_variance)
        v = c.jacobian_variance
        return {
            "signal_jacobian": None if c.jacobian in ("both", "tissue") else v,
            "noise_jacobian": None if c.jacobian in ("both", "haze") else v,
        }

    def sampler_options(self, d):
        return {"kappa": self.cfg.kappa}

    def start(self, m):
        return {"x_init": m.x_init, "n_init": m.n_init}
