"""Data-consistency (DC) rules of the joint sampler, as small registered classes.

A rule turns one step's iterates and prior scores into directions (dx, dn) that pull signal x_t
and noise n_t towards the measurement y (TMLR paper, section 3.2, appendix A, table 1):

- ``pigdm``: x̂0 = (x_t + β_t²·s)/α_t, μ = A x̂0 + α n̂0, Σ = r_t² AAᵀ + q_t² α² I,
  r_t² = q_t² = β_t²/(α_t² + β_t²); x_t += λ r_t² (∂x̂0/∂x_t)ᵀ Aᵀ Σ⁻¹ (y − μ), n_t alike with κ q_t².
- ``dps``: same Tweedie estimates, Σ = ρ² I, step normalised by the residual norm:
  x_t −= λ ∇_{x_t} ‖y − μ‖ (works for a nonlinear ``measure(x, n)`` too).
- ``projection``: ŷ_t = α_t y + β_t (A z_x + α z_n); x_t += λ Aᵀ(ŷ_t − A x_t − α n_t), n_t alike.

With no noise prior (``joint=False``) the noise is Gaussian N(0, σ_n² I) (single-prior DPS /
ΠGDM baselines) and the model's ``noiseless(x)`` is the mean measurement.

Each rule declares what it needs of the measurement model (``needs``: capabilities of
usdehaze.core.operators.MeasurementModel), the weightings it takes (``weightings``: name → what
the step is), whether it back-propagates the networks (``backprop``) and its parameters
(``Params``, a frozen dataclass: ``RuleParams`` for every rule, ``TweedieParams`` for the rules on
Tweedie estimates, ``DPSParams`` adds DPS's ρ); a rule is built with its own parameters only
(``DPS(model, rho=0.5)``; ``PiGDM(model, rho=0.5)`` is refused). A choice the rule cannot honour
is refused when it is built, in one line (usdehaze.errors.UsageError).

Adding a rule: subclass ``DCRule`` (or ``TweedieRule``, to get Tweedie estimates, Gaussian
Jacobians and the reference shortcuts, and write only ``likelihood_gradient``), give it a
``name`` (and a ``Params`` subclass for parameters of its own) and decorate it with
``@register_rule``; ``JointSampler(..., rule=make_rule(name, model))`` then runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from usdehaze.core.registry import Registry, params_of, setting
from usdehaze.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from usdehaze.core.operators import MeasurementModel

DC_RULES: Registry[type[DCRule]] = Registry("rule")
register_rule = DC_RULES.register  # class decorator: ``make_rule(cls.name, model)`` builds it


def _grad(*args, **kw):
    """torch.autograd.grad (torch loads when a rule first runs, not when the CLI lists the
    rules)."""
    import torch

    return torch.autograd.grad(*args, **kw)


def make_rule(name: str, model: MeasurementModel, **params) -> DCRule:
    """The registered rule ``name`` for ``model`` with its ``params`` (UsageError for an
    unknown name, or a parameter the rule does not declare)."""
    return DC_RULES.lookup(name)(model, **params)


def _weighting_help() -> str:
    """--weighting's help: every weighting a registered rule declares."""
    names = list(dict.fromkeys(w for rule in DC_RULES.values() for w in rule.weightings))
    said = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    return (
        f"Weighting of the data-consistency step: {said} (what each is for each rule: "
        "usdehaze.core.dc_rules)."
    )


@dataclass(frozen=True)
class RuleParams:
    """Every rule's parameters: ``weighting``, one of the rule's ``weightings``."""

    weighting: str = setting("paper", _weighting_help)


@dataclass(frozen=True)
class TweedieParams(RuleParams):
    """A rule on Tweedie estimates: ``noise_sigma`` (σ_n of the Gaussian noise without a noise
    prior; None: 0), ``signal_jacobian`` / ``noise_jacobian`` (a Gaussian prior variance v that
    replaces that network's Jacobian in the DC step; None: the network's own) and
    ``reference_mode`` (the public reference code's shortcuts)."""

    noise_sigma: float | None = None
    signal_jacobian: float | None = None
    noise_jacobian: float | None = None
    reference_mode: bool = False


RHO_HELP = "DPS's likelihood scale ρ: its sde weighting's step is ∇‖y − μ‖²/(2ρ²) (rule dps)."
RHO_UNIT = "(σ, in the measurement's units: images scaled to [-1, 1])"


@dataclass(frozen=True)
class DPSParams(TweedieParams):
    """DPS's: ``rho``, the likelihood's ρ of its ``sde`` weighting (Σ = ρ² I)."""

    rho: float = setting(1.0, RHO_HELP, unit=RHO_UNIT, range=(None, 1e3, True))


@dataclass
class StepState:
    """One step's state as a rule sees it: iterates x, n (n None without a noise prior; each
    requires grad when the rule back-propagates that network), their scores sx, sn, the
    measurement y, α_t, β_t, f(t), g(t), the step length dt and the sampler's normal draws."""

    x: Tensor
    n: Tensor | None
    sx: Tensor
    sn: Tensor | None
    y: Tensor
    a: float
    b: float
    f: float
    g: float
    dt: float
    randn: Callable[[tuple[int, ...]], Tensor]


class DCRule:
    """Base class. Subclasses set ``name``, ``needs``, ``weightings`` (and ``Params`` for
    parameters of their own) and write ``direction``. Built with the measurement model and its
    parameters: ``Rule(model, params)`` or ``Rule(model, **fields of params)``. Whether a noise
    prior runs is the step's (``StepState.n`` None: Gaussian noise of σ ``noise_sigma``)."""

    kind = "rule"
    name: str = ""
    needs: frozenset[str] = frozenset()  # MeasurementModel capabilities the rule calls
    weightings: dict[str, str] = {}
    backprop: bool = True  # pulls the likelihood gradient back through the networks
    hint: str = "use dps for nonlinear measurements"
    Params: type[RuleParams] = RuleParams

    def __init__(
        self, model: MeasurementModel, params: RuleParams | None = None, **given: Any
    ) -> None:
        self.params = p = params_of(type(self), given) if params is None else params
        if p.weighting not in self.weightings:
            raise UsageError(
                f"rule '{self.name}': weighting '{p.weighting}': expected one of {', '.join(self.weightings)}"
            )
        from usdehaze.core.operators import CAPABILITIES, MeasurementModel

        if not isinstance(model, MeasurementModel):
            raise UsageError(
                f"rule '{self.name}': operator {type(model).__name__} is not a "
                "usdehaze.core.operators.MeasurementModel (derive from it and declare what it offers)"
            )
        missing = model.missing(self.needs)
        if missing:
            what = " and ".join(CAPABILITIES[c] for c in missing)
            raise UsageError(
                f"rule '{self.name}': needs {what}, which {type(model).__name__} does not declare ({self.hint})"
            )
        self.model, self.weighting = model, p.weighting

    def backprops(self) -> tuple[bool, bool]:
        """Whether the DC step back-propagates the signal and the noise network."""
        return self.backprop, self.backprop

    def direction(self, s: StepState) -> tuple[Tensor, Tensor | None]:
        """Directions (dx, dn) of the DC step, before ``step_weights`` (dn None without n)."""
        raise NotImplementedError

    def step_weights(self, lam: float, kappa: float, g: float, dt: float) -> tuple[float, float]:
        """Weights of dx and dn in the update x += wx·dx, n += wn·dn."""
        return lam, kappa


class TweedieRule(DCRule):
    """Rules on the Tweedie estimates x̂0, n̂0: the likelihood gradient at them, pulled back
    through the networks (or through a Gaussian prior's Jacobian, α v/(α² v + β²), when a
    variance is given). ``weighting="sde"`` scales the step by g(t)²Δt (the discretised
    conditional reverse SDE, exact for Gaussian priors with unit covariance)."""

    Params: type[TweedieParams] = TweedieParams

    def __init__(
        self, model: MeasurementModel, params: TweedieParams | None = None, **given: Any
    ) -> None:
        super().__init__(model, params, **given)
        p = self.params
        self.jacobians = (p.signal_jacobian, p.noise_jacobian)
        for which, v in zip(("signal_jacobian", "noise_jacobian"), self.jacobians):
            if v is not None and not v > 0:
                raise UsageError(f"{which} {v}: expected a positive prior variance (or None)")
        self.reference_mode = bool(p.reference_mode)

    def backprops(self) -> tuple[bool, bool]:
        # a network is back-propagated only for its exact vector–Jacobian product
        vx, vn = self.jacobians
        return self.backprop and vx is None, self.backprop and vn is None

    def direction(self, s: StepState) -> tuple[Tensor, Tensor | None]:
        x, n = s.x, s.n
        x0 = self.tweedie(x, s.sx, s)
        n0 = self.tweedie(n, s.sn, s) if n is not None else None
        vx, vn = self.jacobians
        if vx is not None:
            x = x0 = x0.detach().requires_grad_()
        if vn is not None and n is not None:
            n = n0 = n0.detach().requires_grad_()
        dx, dn = self.likelihood_gradient(x, n, x0, n0, s.y, s.a, s.b)
        a, b = s.a, s.b

        def jacobian(v: float | None) -> float:  # 1: the network's own, already pulled back
            return 1.0 if v is None else a * v / (a * a * v + b * b)

        return jacobian(vx) * dx, (jacobian(vn) * dn if dn is not None else None)

    def step_weights(self, lam: float, kappa: float, g: float, dt: float) -> tuple[float, float]:
        if self.weighting == "sde":
            return lam * g * g * dt, kappa * g * g * dt
        return lam, kappa

    def tweedie(self, z: Tensor, score: Tensor, s: StepState) -> Tensor:
        if self.reference_mode:  # reference code: the Euler–Maruyama mean, not Tweedie
            return z - (s.f * z - s.g * s.g * score) * s.dt
        return (z + s.b * s.b * score) / s.a

    def likelihood_gradient(self, x, n, x0, n0, y, a, b) -> tuple[Tensor, Tensor | None]:
        """Gradients of the rule's likelihood of y at x0, n0 with respect to ``x``, ``n`` (the
        noisy iterates, or the estimates themselves)."""
        raise NotImplementedError

    def vjp(self, outs, inputs, vecs) -> tuple[Tensor, Tensor | None]:
        if self.reference_mode:  # reference code: diagonal (Jᵀ1) ⊙ v instead of Jᵀ v
            diag = _grad([o.sum() for o in outs], inputs)
            got = [d * v for d, v in zip(diag, vecs)]
        else:
            got = list(_grad(outs, inputs, vecs))
        return got[0], (got[1] if len(got) > 1 else None)

    def variances(self, a: float, b: float, joint: bool) -> tuple[float, float]:
        """ΠGDM's r_t², q_t² (q_t² = σ_n² without a noise prior: ``joint`` False)."""
        r2 = b * b / (a * a + b * b)
        return r2, (r2 if joint else float(self.params.noise_sigma or 0.0) ** 2)


@register_rule
class PiGDM(TweedieRule):
    """ΠGDM: the Gaussian likelihood N(y; A x̂0 + α n̂0, r²AAᵀ + q²α²I), solved in closed form."""

    name = "pigdm"
    needs = frozenset({"linear", "adjoint", "cov_solve"})
    weightings = {
        "paper": "λ r_t² (∂x̂0/∂x_t)ᵀ Aᵀ Σ⁻¹ (y − μ), κ q_t² α (∂n̂0/∂n_t)ᵀ Σ⁻¹ (y − μ)",
        "sde": "the likelihood score (∂x̂0/∂x_t)ᵀ Aᵀ Σ⁻¹ (y − μ) (no r_t², q_t²) times λ g²Δt",
        # ΠGDM's paper step is already weighted by the Tweedie variances r_t², q_t²; the
        # unweighted likelihood score at step λ diverges as Σ → 0 (NaN frames: usdehaze run
        # --model additive --rule pigdm, whose config's default weighting is variance)
        "variance": "the same step as paper (ΠGDM's step is weighted by r_t², q_t² already)",
    }

    def likelihood_gradient(self, x, n, x0, n0, y, a, b):
        op = self.model
        alpha_n = op.noise_scale
        r2, q2 = self.variances(a, b, n is not None)
        mu = op.A(x0) + (alpha_n * n0 if n is not None else 0.0)
        v = op.solve_cov((y - mu).detach(), r2, q2)
        if self.weighting in ("paper", "variance"):
            vx, vn = r2 * op.A_adjoint(v), q2 * alpha_n * v
        else:
            vx, vn = op.A_adjoint(v), alpha_n * v
        outs, vecs = [x0], [vx]
        if n is not None:
            outs.append(n0)
            vecs.append(vn)
        return self.vjp(outs, [x, n] if n is not None else [x], vecs)


@register_rule
class DPS(TweedieRule):
    """DPS: autograd through ``measure(x̂0, n̂0)`` (``noiseless(x̂0)`` without a noise prior),
    so any differentiable measurement model."""

    name = "dps"
    Params = DPSParams
    weightings = {
        "paper": "−λ ∇ ‖y − μ‖ (ζ/‖r‖ normalisation)",
        "sde": "−λ g²Δt ∇ ‖y − μ‖²/(2ρ²)",
        "variance": "Gaussian likelihood with Σ = (r_t² + q_t² α²) I, weighted by r_t², q_t² as "
        "ΠGDM is: ΠGDM's step for A = I, through any differentiable model",
    }

    def likelihood_gradient(self, x, n, x0, n0, y, a, b):
        op = self.model
        mu = op.measure(x0, n0) if n is not None else op.noiseless(x0)
        res = (y - mu).reshape(y.shape[0], -1)
        inputs = [x, n] if n is not None else [x]
        if self.weighting == "paper":
            grads = _grad(-res.norm(dim=1).sum(), inputs)
            return grads[0], (grads[1] if n is not None else None)
        if self.weighting == "sde":
            grads = _grad(-(res**2).sum() / (2 * self.params.rho**2), inputs)
            return grads[0], (grads[1] if n is not None else None)
        r2, q2 = self.variances(a, b, n is not None)
        grads = _grad(-0.5 * (res**2).sum() / (r2 + q2 * op.noise_scale**2), inputs)
        return r2 * grads[0], (q2 * grads[1] if n is not None else None)


@register_rule
class Projection(DCRule):
    """Projection onto the noised measurement ŷ_t = α_t y + β_t (A z_x + α z_n): no likelihood,
    no network Jacobian, no weighting (each weighting takes the same λ, κ step)."""

    name = "projection"
    needs = frozenset({"linear", "adjoint"})
    backprop = False
    weightings = {
        "paper": "λ Aᵀ(ŷ_t − A x_t − α n_t), κ α (ŷ_t − A x_t − α n_t)",
        "sde": "the same step as paper (projection has no likelihood to weight)",
        "variance": "the same step as paper (projection has no likelihood to weight)",
    }

    def direction(self, s: StepState) -> tuple[Tensor, Tensor | None]:
        op = self.model
        x, n, y, a, b, randn = s.x, s.n, s.y, s.a, s.b, s.randn
        alpha_n = op.noise_scale
        zx = randn(x.shape)
        if n is not None:
            y_t = a * y + b * (op.A(zx) + alpha_n * randn(y.shape))
            res = y_t - op.A(x) - alpha_n * n
            return op.A_adjoint(res), alpha_n * res
        y_t = a * y + b * op.A(zx)
        return op.A_adjoint(y_t - op.A(x)), None
