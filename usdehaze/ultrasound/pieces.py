"""Config → built sampler pieces: the one place the names of a run's DC rule and solver are
looked up (``build_pieces``); ``JointSampler`` (usdehaze.core.sampler) takes them built.

Each piece declares its parameters (its ``Params`` dataclass, usdehaze.core.dc_rules and
usdehaze.core.solvers) and is built with those alone, from a method's own values or the
config's settings of the same names. Nothing here imports torch until a piece is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from usdehaze.core.dc_rules import DC_RULES
from usdehaze.core.registry import param_names
from usdehaze.core.solvers import SOLVERS


def build_pieces(cfg: Any, model: Any, rule: str | None = None, **given: Any) -> tuple[Any, Any]:
    """The config's sampler pieces, built (the one place their names are looked up): the DC
    rule ``rule`` (None: ``cfg.rule``) on measurement model ``model`` and the solver
    ``cfg.solver``, each with the parameters it declares (its ``Params``): from ``given`` (a
    method's own values), else the config's setting of that name, else the piece's default."""
    rule_cls = DC_RULES.lookup(rule or cfg.rule)
    solver_cls = SOLVERS.lookup(cfg.solver)
    return rule_cls(model, **_own_params(rule_cls, cfg, given)), solver_cls(
        **_own_params(solver_cls, cfg, {})
    )


def _own_params(piece: type, cfg: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """A piece's parameters from ``given``, else from the config's settings of their names."""
    out = {}
    for name in param_names(piece):
        if name in given:
            out[name] = given[name]
        elif hasattr(cfg, name):
            out[name] = getattr(cfg, name)
    return out
