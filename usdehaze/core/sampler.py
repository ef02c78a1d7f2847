"""Joint posterior sampling of signal x and structured noise n from y = A·x + α·n (Algorithm 1).

Two reverse diffusions, one per prior, coupled by a data-consistency (DC) step built on a
Gaussian approximation of p(y | x_t, n_t). Each step evaluates each network once: the score
s(x_t, t) gives both the Tweedie estimate for the DC step and the Euler–Maruyama drift (as DPS
does), and one backward pass per network gives the exact vector–Jacobian products.

Rules (TMLR paper, section 3.2, appendix A, table 1):
- ``pigdm``: x̂0 = (x_t + β_t²·s)/α_t, μ = A x̂0 + α n̂0, Σ = r_t² AAᵀ + q_t² α² I,
  r_t² = q_t² = β_t²/(α_t² + β_t²); x_t += λ r_t² (∂x̂0/∂x_t)ᵀ Aᵀ Σ⁻¹ (y − μ), n_t alike with κ q_t².
- ``dps``: same Tweedie estimates, Σ = ρ² I, step normalised by the residual norm:
  x_t −= λ ∇_{x_t} ‖y − μ‖ (works for a nonlinear ``measure(x, n)`` too).
- ``projection``: ŷ_t = α_t y + β_t (A z_x + α z_n); x_t += λ Aᵀ(ŷ_t − A x_t − α n_t), n_t alike.
With ``noise_prior=None`` the noise is Gaussian N(0, σ_n² I) (single-prior DPS / ΠGDM baselines).
``weighting="variance"`` (DPS) uses Σ = (r_t² + q_t² α²) I with ΠGDM's r_t², q_t² weights: the
same step as ``pigdm`` for A = I, but through any differentiable (nonlinear) measurement.
``signal_jacobian`` / ``noise_jacobian`` = v (default None: the network's own Jacobian, one
backward pass through it per step) replace ∂x̂0/∂z_t in the DC step by the Jacobian of Tweedie's
estimate under a Gaussian prior N(0, v I), the scalar α_t v/(α_t² v + β_t²): the likelihood
gradient is taken at x̂0 and that network is only run forward (Jacobian-free, as DDS and MPGD do).
``weighting="sde"`` scales the DC step by g(t)²Δt instead (the discretised conditional reverse
SDE, exact for Gaussian priors with unit covariance); ``reference_mode=True`` reproduces the
public reference code's shortcuts for comparison.

Prior step after the DC step (``solver``): ``em`` Euler–Maruyama on the reverse SDE (Algorithm 1);
``ddim`` the DDIM update z' = α' x̂0 + √(β'² − c²) ε̂ + c ξ with c = η × the DDPM posterior std
(η = 0 deterministic, η = 1 ancestral), exact for any step size when the score is exact and the
data a point; ``heun`` the probability-flow ODE in EDM's variables (z/α against β/α) with Heun's
second-order correction (one more network evaluation per prior per step). Random draws come from one generator per batch item when
``seed`` is a sequence, so an item's result does not depend on what it is batched with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from usdehaze.core.device import resolve_device
from usdehaze.core.operators import adjoint_guess
from usdehaze.core.sde import SDE
from usdehaze.errors import UsageError

RULES = ("pigdm", "dps", "projection")
SOLVERS = ("em", "ddim", "heun")
SCHEDULES = ("linear", "karras")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
Callback = Callable[[int, int, float], None]


def step_times(sde: SDE, steps: int, t_start: float, schedule: str = "linear") -> Tensor:
    """``steps + 1`` times from t_start to eps: uniform in t, or ``karras``: uniform in σ^(1/7)
    with σ = β_t/α_t (Karras et al. 2022), small steps where the noise is low, for few steps."""
    if schedule == "linear":
        return sde.timesteps(steps, t_start, device="cpu")
    rho = 7.0

    def sigma(t: float) -> float:
        tt = torch.tensor(t, dtype=torch.float64)
        return float(sde.beta(tt) / sde.alpha(tt))

    def time_of(target: float) -> float:  # σ(t) increases with t: bisection
        lo, hi = sde.eps, t_start
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if sigma(mid) < target else (lo, mid)
        return 0.5 * (lo + hi)

    s0, s1 = sigma(t_start) ** (1 / rho), sigma(sde.eps) ** (1 / rho)
    inner = [time_of((s0 + i / steps * (s1 - s0)) ** rho) for i in range(1, steps)]
    return torch.tensor([t_start, *inner, sde.eps], dtype=torch.float64)


@dataclass
class SampleResult:
    """Posterior estimates: means over ``samples`` draws and, when samples > 1, per-pixel std;
    ``x_samples``/``n_samples`` (B, K, ...) keep the draws for statistics in another domain.

    ``nfe``: prior (network) evaluations the loop ran, counted per call, each on the whole batch
    of B × K draws; ``nfe_per_item`` = nfe × K: the evaluations each measurement got."""

    x: Tensor
    n: Tensor
    x_std: Tensor | None = None
    n_std: Tensor | None = None
    x_samples: Tensor | None = None
    n_samples: Tensor | None = None
    nfe: int = 0
    seconds: float = 0.0
    samples: int = 1

    @property
    def nfe_per_item(self) -> int:
        return self.nfe * self.samples

    def __iter__(self):  # allows ``x, n = sampler(y)``
        return iter((self.x, self.n))


class _Noise:
    """Standard normal draws for a batch of ``len(seeds)`` items × ``K`` samples each."""

    def __init__(self, seeds: list[int] | None, generator, device: torch.device) -> None:
        self.device = device
        if seeds is None:
            self.gens = [generator]
        else:
            self.gens = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, shape: tuple[int, ...]) -> Tensor:
        if len(self.gens) == 1:
            return torch.randn(shape, generator=self.gens[0], device=self.device)
        per = shape[0] // len(self.gens)
        part = (per, *shape[1:])
        return torch.cat([torch.randn(part, generator=g, device=self.device) for g in self.gens])


class JointSampler:
    """``JointSampler(signal_prior, noise_prior, operator, sde, rule="pigdm", steps=...)(y)``."""

    def __init__(
        self,
        signal_prior: Callable[[Tensor, Tensor], Tensor],
        noise_prior: Callable[[Tensor, Tensor], Tensor] | None,
        operator,
        sde: SDE,
        rule: str = "pigdm",
        steps: int = 600,
        lam: float = 1.0,
        kappa: float = 1.0,
        noise_sigma: float | None = None,
        rho: float = 1.0,
        weighting: str = "paper",
        start_sigma: float | None = None,
        t_start: float | None = None,
        reference_mode: bool = False,
        rescore: bool = False,
        device: str | torch.device = "cpu",
        autocast: bool = False,
        precision: str | None = None,
        solver: str = "em",
        eta: float = 1.0,
        schedule: str = "linear",
        signal_jacobian: float | None = None,
        noise_jacobian: float | None = None,
    ) -> None:
        for name, v in (("signal_jacobian", signal_jacobian), ("noise_jacobian", noise_jacobian)):
            if v is not None and not v > 0:
                raise UsageError(f"{name} {v}: expected a positive prior variance (or None)")
        if schedule not in SCHEDULES:
            raise UsageError(f"schedule '{schedule}': expected one of {', '.join(SCHEDULES)}")
        if solver not in SOLVERS:
            raise UsageError(f"solver '{solver}': unknown, expected one of {', '.join(SOLVERS)}")
        if rule not in RULES:
            raise UsageError(f"rule '{rule}': unknown, expected one of {', '.join(RULES)}")
        if weighting not in ("paper", "sde", "variance"):
            raise UsageError(f"weighting '{weighting}': expected paper, sde or variance")
        if noise_prior is None and rule != "projection" and noise_sigma is None:
            noise_sigma = 0.0
        if rule == "projection" and not getattr(operator, "linear", True):
            raise UsageError(
                "rule 'projection': needs a linear operator (use dps for nonlinear measurements)"
            )
        if rule == "pigdm" and not hasattr(operator, "solve_cov"):
            raise UsageError(
                "rule 'pigdm': the operator has no solve_cov (use dps for nonlinear measurements)"
            )
        if steps < 1:
            raise UsageError(f"steps {steps}: expected at least 1")
        self.signal_prior, self.noise_prior, self.op, self.sde = (
            signal_prior,
            noise_prior,
            operator,
            sde,
        )
        self.rule, self.steps, self.lam, self.kappa = rule, int(steps), float(lam), float(kappa)
        self.noise_sigma, self.rho, self.weighting = noise_sigma, float(rho), weighting
        self.reference_mode, self.rescore = reference_mode, rescore
        self.solver, self.eta, self.schedule = solver, float(eta), schedule
        self.jacobians = (signal_jacobian, noise_jacobian)
        self.device = resolve_device(device)
        if precision is None:  # autocast=True: the historical bf16-on-CUDA switch
            precision = "bf16" if autocast and self.device.type == "cuda" else "fp32"
        if precision not in PRECISIONS:
            raise UsageError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self._amp = PRECISIONS[precision]
        if start_sigma is not None and t_start is None:
            t_start = sde.t_of_beta(float(start_sigma))
        self.t_start = sde.T if t_start is None else min(float(t_start), sde.T)

    # -- helpers ---------------------------------------------------------------------------
    def _score(self, prior, z: Tensor, t: Tensor) -> Tensor:
        """The prior's score; under autocast the networks run in bf16/fp16, the sampler in fp32.

        A CUDA-graphed network writes its output into static memory that its next replay
        overwrites: the score is cloned so that it outlives the call. Every call is counted
        (``SampleResult.nfe``)."""
        self._nfe += 1
        if self._amp is not None:
            with torch.autocast(self.device.type, dtype=self._amp):
                s = prior(z, t).float()
        else:
            s = prior(z, t)
        return s.clone() if getattr(prior, "cuda_graphs", False) else s

    def _A(self, x: Tensor) -> Tensor:
        return self.op.A(x) if hasattr(self.op, "A") else x

    def _measure(self, x: Tensor, n: Tensor | None) -> Tensor:
        if n is None:
            return (
                self.op.measure(x, torch.zeros_like(x))
                if not hasattr(self.op, "A")
                else self.op.A(x)
            )
        return self.op.measure(x, n)

    def _check(self, y: Tensor, x_shape: tuple[int, ...]) -> None:
        if not torch.isfinite(y).all():
            raise UsageError("y: contains NaN or Inf")
        if hasattr(self.op, "A"):
            got = tuple(self.op.A(torch.zeros(x_shape, dtype=y.dtype, device=y.device)).shape)
            if got != tuple(y.shape):
                raise UsageError(
                    f"y: shape {tuple(y.shape)} does not match the operator's output {got} for signals {x_shape}"
                )

    # -- the loop --------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        y: Tensor,
        *,
        x_init: Tensor | None = None,
        n_init: Tensor | None = None,
        x_shape: tuple[int, ...] | None = None,
        samples: int = 1,
        generator: torch.Generator | None = None,
        seed: int | list[int] | None = None,
        callback: Callback | None = None,
    ) -> SampleResult:
        """Sample the joint posterior for a batch of measurements ``y`` (B, ...).

        ``seed``: one int for the batch, or one per item (results then independent of batching).
        """
        t0 = time.perf_counter()
        dev = self.device
        y = y.to(dev, torch.float32)
        if x_shape is None:
            x_shape = (
                tuple(x_init.shape)
                if x_init is not None
                else tuple(self.op.A_adjoint(y).shape)
                if hasattr(self.op, "A_adjoint")
                else tuple(y.shape)
            )
        self._check(y, x_shape)
        B, K = y.shape[0], int(samples)
        seeds = None
        if isinstance(seed, (list, tuple)):
            if len(seed) != B:
                raise UsageError(f"seed: {len(seed)} seeds for a batch of {B}")
            seeds = [int(v) for v in seed]
        elif generator is None:
            generator = torch.Generator(device=dev)
            generator.manual_seed(0 if seed is None else int(seed))
        rep = lambda v: v.repeat_interleave(K, dim=0)  # noqa: E731
        yk = rep(y)
        xs = (B * K, *x_shape[1:])
        randn = _Noise(seeds, generator, dev)
        sde = self.sde
        beta_T = float(sde.beta(torch.tensor(sde.T, dtype=torch.float64)))
        late = self.t_start < sde.T - 1e-9
        ts = step_times(sde, self.steps, self.t_start, self.schedule)
        a0, b0 = float(sde.alpha(ts[0])), float(sde.beta(ts[0]))
        if late:  # CCDF: start from the noised initial guesses
            xi = rep(x_init.to(dev)) if x_init is not None else self._default_x_init(yk, xs)
            x = a0 * xi + b0 * randn(xs)
        elif self.reference_mode:
            x = randn(xs)
        else:
            x = randn(xs) * beta_T  # x_T ~ N(0, β_T² I)
        n = None
        if self.noise_prior is not None:
            if late:
                ni = rep(n_init.to(dev)) if n_init is not None else torch.zeros_like(yk)
                n = a0 * ni + b0 * randn(yk.shape)
            else:
                n = randn(yk.shape) * (1.0 if self.reference_mode else beta_T)
        self._nfe = 0
        total = len(ts) - 1
        graphed = any(
            getattr(p, "cuda_graphs", False) for p in (self.signal_prior, self.noise_prior)
        )
        for i in range(total):
            t, t_next = ts[i], ts[i + 1]
            # a new iteration for torch's CUDA graph trees: the last step's buffers are free
            if graphed:
                torch.compiler.cudagraph_mark_step_begin()
            x, n = self._step(x, n, yk, t, t_next, randn, last=i == total - 1)
            if callback is not None:
                callback(i + 1, total, float(t_next))
        n_out = n if n is not None else (yk - self._A(x)) / getattr(self.op, "noise_scale", 1.0)
        x, n_out = x.reshape(B, K, *x.shape[1:]), n_out.reshape(B, K, *n_out.shape[1:])
        res = SampleResult(x.mean(1), n_out.mean(1), x_samples=x, n_samples=n_out)
        res.nfe, res.samples = self._nfe, K
        if K > 1:
            res.x_std, res.n_std = x.std(1), n_out.std(1)
        res.seconds = time.perf_counter() - t0
        return res

    def _default_x_init(self, y: Tensor, xs: tuple[int, ...]) -> Tensor:
        """Initial signal guess for late starts: Aᵀy rescaled to A's gain (y itself when A = I)."""
        if not hasattr(self.op, "A_adjoint"):
            return y.clone()
        return adjoint_guess(self.op, y)

    def _step(self, x, n, y, t, t_next, randn, last: bool):
        sde = self.sde
        B = x.shape[0]
        tv = torch.full((B,), float(t), dtype=torch.float64, device=x.device)
        a, b = float(sde.alpha(t)), float(sde.beta(t))
        f, g = float(sde.f(t)), float(sde.g(t))
        dt = float(t - t_next)
        joint = n is not None
        # a network is back-propagated only for its exact vector–Jacobian product
        dc = self.rule != "projection"
        need_x, need_n = (dc and v is None for v in self.jacobians)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(need_x)
            ng = n.detach().requires_grad_(need_n) if joint else None
            with torch.set_grad_enabled(need_x):
                sx = self._score(self.signal_prior, xg, tv)
            sn = None
            if joint:
                with torch.set_grad_enabled(need_n):
                    sn = self._score(self.noise_prior, ng, tv)
            if self.rule == "projection":
                dx, dn = self._projection(x, n, y, a, b, randn)
            else:
                dx, dn = self._dc_gradient(xg, ng, sx, sn, y, a, b, f, g, dt)
        sx, sn = sx.detach(), sn.detach() if joint else None
        sde_weights = self.weighting == "sde" and self.rule != "projection"
        wx, wn = (
            (self.lam * g * g * dt, self.kappa * g * g * dt)
            if sde_weights
            else (self.lam, self.kappa)
        )
        x = x + wx * dx
        if joint:
            n = n + wn * dn
        if self.rescore:  # Algorithm 1 literally: re-evaluate the scores after the DC step
            sx = self._score(self.signal_prior, x, tv)
            sn = self._score(self.noise_prior, n, tv) if joint else None
        x = self._prior_step(self.signal_prior, x, sx, t, t_next, randn, last)
        if joint:
            n = self._prior_step(self.noise_prior, n, sn, t, t_next, randn, last)
        return x.detach(), (n.detach() if joint else None)

    def _prior_step(self, prior, z, s, t, t_next, randn, last):
        """Move z from t to t_next along the prior's reverse process, given its score s."""
        sde = self.sde
        f, g = float(sde.f(t)), float(sde.g(t))
        dt = float(t - t_next)
        if self.solver == "em":
            return self._euler_maruyama(z, s, f, g, dt, randn, last)
        a, b = float(sde.alpha(t)), float(sde.beta(t))
        a1, b1 = float(sde.alpha(t_next)), float(sde.beta(t_next))
        if self.solver == "ddim":
            x0, eps = (z + b * b * s) / a, -b * s
            var = (b1 * b1 / (b * b)) * max(b * b - (a * b1 / a1) ** 2, 0.0)
            c = 0.0 if last else self.eta * math.sqrt(var)
            z1 = a1 * x0 + math.sqrt(max(b1 * b1 - c * c, 0.0)) * eps
            return z1 + c * randn(z.shape) if c > 0 else z1
        # Heun on the probability-flow ODE in EDM's variables: d(z/α)/d(β/α) = ε̂ = −β s
        d = -b * s
        z1 = a1 * (z / a + (b1 / a1 - b / a) * d)  # = the DDIM (η = 0) step
        if last:
            return z1
        tv = torch.full((z.shape[0],), float(t_next), dtype=torch.float64, device=z.device)
        d1 = -b1 * self._score(prior, z1, tv)
        return a1 * (z / a + (b1 / a1 - b / a) * 0.5 * (d + d1))

    @staticmethod
    def _euler_maruyama(z, s, f, g, dt, randn, last):
        z = z - (f * z - g * g * s) * dt
        return z if last else z + g * math.sqrt(dt) * randn(z.shape)

    def _tweedie(self, z, s, a, b, f, g, dt):
        if self.reference_mode:  # reference code: the Euler–Maruyama mean, not Tweedie
            return z - (f * z - g * g * s) * dt
        return (z + b * b * s) / a

    def _dc_gradient(self, x, n, sx, sn, y, a, b, f, g, dt):
        """Likelihood-score directions for x and n (before weighting by λ, κ).

        For a prior with a Gaussian Jacobian (variance v) the gradient is taken with respect to
        its Tweedie estimate and scaled by α v/(α² v + β²) instead of pulled back through it."""
        x0 = self._tweedie(x, sx, a, b, f, g, dt)
        n0 = self._tweedie(n, sn, a, b, f, g, dt) if n is not None else None
        vx, vn = self.jacobians
        if vx is not None:
            x = x0 = x0.detach().requires_grad_()
        if vn is not None and n is not None:
            n = n0 = n0.detach().requires_grad_()
        dx, dn = self._likelihood_gradient(x, n, x0, n0, y, a, b)

        def jacobian(v: float | None) -> float:  # 1: the network's own, already pulled back
            return 1.0 if v is None else a * v / (a * a * v + b * b)

        return jacobian(vx) * dx, (jacobian(vn) * dn if dn is not None else None)

    def _likelihood_gradient(self, x, n, x0, n0, y, a, b):
        """Gradients of the Gaussian likelihood of y at the Tweedie estimates x0, n0 with respect
        to ``x``, ``n`` (the noisy iterates, or the estimates themselves)."""
        alpha_n = getattr(self.op, "noise_scale", 1.0)
        if self.rule == "pigdm":
            r2 = b * b / (a * a + b * b)
            q2 = r2 if n is not None else float(self.noise_sigma) ** 2
            mu = self.op.A(x0) + (alpha_n * n0 if n is not None else 0.0)
            v = self.op.solve_cov((y - mu).detach(), r2, q2)
            if self.weighting == "paper":
                vx, vn = r2 * self.op.A_adjoint(v), q2 * alpha_n * v
            else:
                vx, vn = self.op.A_adjoint(v), alpha_n * v
            outs, vecs = [x0], [vx]
            if n is not None:
                outs.append(n0)
                vecs.append(vn)
            return self._vjp(outs, [x, n] if n is not None else [x], vecs)
        # DPS: gradient of the residual norm (ζ/‖r‖ normalisation), or of ‖r‖²/(2ρ²) for 'sde'
        mu = self._measure(x0, n0)
        res = (y - mu).reshape(y.shape[0], -1)
        inputs = [x, n] if n is not None else [x]
        if self.weighting == "paper":
            grads = torch.autograd.grad(-res.norm(dim=1).sum(), inputs)
            return grads[0], (grads[1] if n is not None else None)
        if self.weighting == "sde":
            grads = torch.autograd.grad(-(res**2).sum() / (2 * self.rho**2), inputs)
            return grads[0], (grads[1] if n is not None else None)
        # 'variance': Gaussian likelihood with Σ = (r² + q²α²)I, weighted by r², q² as ΠGDM does
        r2 = b * b / (a * a + b * b)
        q2 = r2 if n is not None else float(self.noise_sigma) ** 2
        grads = torch.autograd.grad(-0.5 * (res**2).sum() / (r2 + q2 * alpha_n**2), inputs)
        return r2 * grads[0], (q2 * grads[1] if n is not None else None)

    def _vjp(self, outs, inputs, vecs):
        if self.reference_mode:  # reference code: diagonal (Jᵀ1) ⊙ v instead of Jᵀ v
            diag = torch.autograd.grad([o.sum() for o in outs], inputs)
            got = [d * v for d, v in zip(diag, vecs)]
        else:
            got = list(torch.autograd.grad(outs, inputs, vecs))
        return got[0], (got[1] if len(got) > 1 else None)

    def _projection(self, x, n, y, a, b, randn):
        alpha_n = getattr(self.op, "noise_scale", 1.0)
        zx = randn(x.shape)
        if n is not None:
            y_t = a * y + b * (self.op.A(zx) + alpha_n * randn(y.shape))
            res = y_t - self.op.A(x) - alpha_n * n
            return self.op.A_adjoint(res), alpha_n * res
        y_t = a * y + b * self.op.A(zx)
        return self.op.A_adjoint(y_t - self.op.A(x)), None
