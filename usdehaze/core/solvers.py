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
sampler counts NFE from these and checks them against the calls it made. Adding a solver:
subclass ``Solver``, set ``name`` and the two counts, write ``step``, decorate with
``@register_solver``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from usdehaze.core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from usdehaze.core.sde import SDE

SOLVERS: Registry[type[Solver]] = Registry("solver")
register_solver = SOLVERS.register  # class decorator: ``JointSampler(solver=cls.name)`` runs it
Score = Callable[["Tensor", "Tensor"], "Tensor"]


def make_solver(name: str, sde: SDE, **options) -> Solver:
    """The registered solver ``name`` (UsageError for an unknown name)."""
    return SOLVERS.lookup(name)(sde, **options)


class Solver:
    """Base class. ``eta``: DDIM's stochasticity (the solvers that have none ignore it)."""

    name: str = ""
    evaluations: int = 1  # network evaluations per prior per step (the DC step's score included)
    evaluations_last: int = 1  # on the last step

    def __init__(self, sde: SDE, *, eta: float = 1.0) -> None:
        self.sde, self.eta = sde, float(eta)

    def evaluations_at(self, last: bool) -> int:
        return self.evaluations_last if last else self.evaluations

    def step(
        self,
        z: Tensor,
        s: Tensor,
        t: Tensor,
        t_next: Tensor,
        randn: Callable[[tuple[int, ...]], Tensor],
        last: bool,
        score: Score,
    ) -> Tensor:
        """z at t_next from z at t and its score s; ``score(z, t)`` evaluates the prior (each call
        one of the declared evaluations); no noise is added on the ``last`` step."""
        raise NotImplementedError


@register_solver
class EulerMaruyama(Solver):
    name = "em"

    def step(self, z, s, t, t_next, randn, last, score):
        f, g = float(self.sde.f(t)), float(self.sde.g(t))
        dt = float(t - t_next)
        z = z - (f * z - g * g * s) * dt
        return z if last else z + g * math.sqrt(dt) * randn(z.shape)


@register_solver
class DDIM(Solver):
    name = "ddim"

    def step(self, z, s, t, t_next, randn, last, score):
        sde = self.sde
        a, b = float(sde.alpha(t)), float(sde.beta(t))
        a1, b1 = float(sde.alpha(t_next)), float(sde.beta(t_next))
        x0, eps = (z + b * b * s) / a, -b * s
        var = (b1 * b1 / (b * b)) * max(b * b - (a * b1 / a1) ** 2, 0.0)
        c = 0.0 if last else self.eta * math.sqrt(var)
        z1 = a1 * x0 + math.sqrt(max(b1 * b1 - c * c, 0.0)) * eps
        return z1 + c * randn(z.shape) if c > 0 else z1


@register_solver
class Heun(Solver):
    name = "heun"
    evaluations = 2
    evaluations_last = 1  # Euler (= DDIM, η = 0) on the last step

    def step(self, z, s, t, t_next, randn, last, score):
        sde = self.sde
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
