"""Prior steps of the joint sampler (``solver``), as small registered classes.

After the DC step each prior's iterate moves from t to t_next along its reverse process, given
the score s the DC step already evaluated:

- ``em``: Euler–Maruyama on the reverse SDE (Algorithm 1).
- ``ddim``: z' = α' x̂0 + √(β'² − c²) ε̂ + c ξ with c = η × the DDPM posterior std (η = 0
  deterministic, η = 1 ancestral), exact for any step size when the score is exact and the data
  a point.
- ``heun``: the probability-flow ODE in EDM's variables (z/α against β/α) with Heun's
  second-order correction: one more network evaluation per prior per step (none on the last).

Each solver declares its network evaluations per prior per step (``evaluations``, and
``evaluations_last`` on the last step), the score shared with the DC step included; the
sampler counts NFE from these and checks them against the calls it made. Each declares its
parameters (``Params``, a frozen dataclass: none for em and heun, ``DDIMParams.eta`` for ddim)
and is built with its own only (``DDIM(eta=0)``; ``Heun(eta=0)`` is refused). Adding a solver:
subclass ``Solver``, set ``name`` and the two counts (and ``Params`` for parameters of its own),
write ``step``, decorate with ``@register_solver``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from usdehaze.core.registry import Registry, params_of, setting

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from usdehaze.core.sde import SDE

SOLVERS: Registry[type[Solver]] = Registry("solver")
register_solver = SOLVERS.register  # class decorator: ``make_solver(cls.name)`` builds it
Score = Callable[["Tensor", "Tensor"], "Tensor"]


def make_solver(name: str, **params) -> Solver:
    """The registered solver ``name`` with its ``params`` (UsageError for an unknown name, or a
    parameter the solver does not declare)."""
    return SOLVERS.lookup(name)(**params)


@dataclass(frozen=True)
class SolverParams:
    """A solver's parameters (the base: none)."""


ETA_HELP = "DDIM stochasticity: 0 deterministic, 1 ancestral (solver ddim)."


@dataclass(frozen=True)
class DDIMParams(SolverParams):
    """DDIM's: ``eta``, its stochasticity (0 deterministic, 1 ancestral)."""

    eta: float = setting(1.0, ETA_HELP, unit="(a fraction, 0 to 1)", range=(0.0, 1.0, False))


class Solver:
    """Base class, built with its parameters: ``Solver(params)`` or ``Solver(**fields of
    params)``; the sampler hands ``step`` its SDE."""

    kind = "solver"
    name: str = ""
    evaluations: int = 1  # network evaluations per prior per step (the DC step's score included)
    evaluations_last: int = 1  # on the last step
    Params: type[SolverParams] = SolverParams

    def __init__(self, params: SolverParams | None = None, **given: Any) -> None:
        self.params = params_of(type(self), given) if params is None else params

    def evaluations_at(self, last: bool) -> int:
        return self.evaluations_last if last else self.evaluations

    def step(
        self,
        sde: SDE,
        z: Tensor,
        s: Tensor,
        t: Tensor,
        t_next: Tensor,
        randn: Callable[[tuple[int, ...]], Tensor],
        last: bool,
        score: Score,
    ) -> Tensor:
        """z at t_next from z at t and its score s under ``sde``; ``score(z, t)`` evaluates the prior (each call
        one of the declared evaluations); no noise is added on the ``last`` step."""
        raise NotImplementedError


@register_solver
class EulerMaruyama(Solver):
    name = "em"

    def step(self, sde, z, s, t, t_next, randn, last, score):
        f, g = float(sde.f(t)), float(sde.g(t))
        dt = float(t - t_next)
        z = z - (f * z - g * g * s) * dt
        return z if last else z + g * math.sqrt(dt) * randn(z.shape)


@register_solver
class DDIM(Solver):
    name = "ddim"
    Params = DDIMParams

    def step(self, sde, z, s, t, t_next, randn, last, score):
        a, b = float(sde.alpha(t)), float(sde.beta(t))
        a1, b1 = float(sde.alpha(t_next)), float(sde.beta(t_next))
        x0, eps = (z + b * b * s) / a, -b * s
        var = (b1 * b1 / (b * b)) * max(b * b - (a * b1 / a1) ** 2, 0.0)
        c = 0.0 if last else float(self.params.eta) * math.sqrt(var)
        z1 = a1 * x0 + math.sqrt(max(b1 * b1 - c * c, 0.0)) * eps
        return z1 + c * randn(z.shape) if c > 0 else z1


@register_solver
class Heun(Solver):
    name = "heun"
    evaluations = 2
    evaluations_last = 1  # Euler (= DDIM, η = 0) on the last step

    def step(self, sde, z, s, t, t_next, randn, last, score):
        a, b = float(sde.alpha(t)), float(sde.beta(t))
        a1, b1 = float(sde.alpha(t_next)), float(sde.beta(t_next))
        # d(z/α)/d(β/α) = ε̂ = −β s
        d = -b * s
        z1 = a1 * (z / a + (b1 / a1 - b / a) * d)  # = the DDIM (η = 0) step
        if last:
            return z1
        import torch  # loaded when a solver runs, not when the CLI lists the solvers

        tv = torch.full((z.shape[0],), float(t_next), dtype=torch.float64, device=z.device)
        d1 = -b1 * score(z1, tv)
        return a1 * (z / a + (b1 / a1 - b / a) * 0.5 * (d + d1))
