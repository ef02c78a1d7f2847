"""Joint posterior sampling of signal x and structured noise n from y = A·x + α·n (Algorithm 1).

Two reverse diffusions, one per prior, coupled by a data-consistency (DC) step built on a
Gaussian approximation of p(y | x_t, n_t). Each step evaluates each network once: the score
s(x_t, t) gives both the Tweedie estimate for the DC step and the prior step's drift (as DPS
does), and one backward pass per network gives the exact vector–Jacobian products.

``JointSampler`` is the loop only; it takes its pieces built (as deepinv's PosteriorDiffusion
does), each with its own parameters, and looks up no names. What varies is registered elsewhere
in core:
- the measurement model (usdehaze.core.operators.MeasurementModel: ``measure``, ``noiseless``
  and the declared ``linear`` / ``adjoint`` / ``cov_solve``; LinearOperator derives from it),
- the DC rule (usdehaze.core.dc_rules.DC_RULES: pigdm, dps, projection; with their weightings,
  Gaussian Jacobians and reference shortcuts), refused at construction when the model lacks
  what the rule needs,
- the prior step (usdehaze.core.solvers.SOLVERS: em, ddim, heun), which declares its network
  evaluations per step; the loop counts NFE from them (and checks them against its calls).
With ``noise_prior=None`` the noise is Gaussian N(0, σ_n² I) (single-prior DPS / ΠGDM baselines).
Random draws come from one generator per batch item when ``seed`` is a sequence, so an item's
result does not depend on what it is batched with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from usdehaze.core.dc_rules import DCRule, StepState
from usdehaze.core.device import resolve_device
from usdehaze.core.operators import adjoint_guess
from usdehaze.core.sde import SDE
from usdehaze.core.solvers import SOLVERS, EulerMaruyama, Solver
from usdehaze.errors import UsageError

SCHEDULES = ("linear", "karras")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
__all__ = [
    "PRECISIONS",
    "SCHEDULES",
    "SOLVERS",
    "JointSampler",
    "SampleResult",
    "step_times",
]
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

    ``nfe``: prior (network) evaluations the loop ran, each on the whole batch of B × K draws
    (from the solver's declaration, checked against the calls made); ``nfe_per_item`` = nfe × K:
    the evaluations each measurement got."""

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
    """``JointSampler(signal_prior, noise_prior, rule, sde, solver=..., steps=...)(y)``.

    ``rule``: a built DC rule (``make_rule("pigdm", model, weighting=...)``, usdehaze.core.
    dc_rules), which holds the measurement model and its own parameters; ``solver``: a built
    prior step (``make_solver("ddim", eta=0)``; default Euler–Maruyama); ``lam`` / ``kappa``
    weigh the DC step of x / n; ``rescore`` re-evaluates the scores after the DC step
    (Algorithm 1 literally); ``reference_mode`` starts from unit-variance noise, as the public
    reference code does (its rule shortcuts are the rule's ``reference_mode``)."""

    def __init__(
        self,
        signal_prior: Callable[[Tensor, Tensor], Tensor],
        noise_prior: Callable[[Tensor, Tensor], Tensor] | None,
        rule: DCRule,
        sde: SDE,
        solver: Solver | None = None,
        *,
        steps: int = 600,
        lam: float = 1.0,
        kappa: float = 1.0,
        start_sigma: float | None = None,
        t_start: float | None = None,
        reference_mode: bool = False,
        rescore: bool = False,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        schedule: str = "linear",
    ) -> None:
        if schedule not in SCHEDULES:
            raise UsageError(f"schedule '{schedule}': expected one of {', '.join(SCHEDULES)}")
        solver = EulerMaruyama() if solver is None else solver
        for got, want, how in ((rule, DCRule, "make_rule"), (solver, Solver, "make_solver")):
            if not isinstance(got, want):  # a name, as before pieces were built outside
                raise UsageError(
                    f"JointSampler: expected a built {want.kind} ({how}(...)), got {got!r}"
                )
        if steps < 1:
            raise UsageError(f"steps {steps}: expected at least 1")
        self.signal_prior, self.noise_prior, self.sde = signal_prior, noise_prior, sde
        self.dc, self.prior_step, self.op = rule, solver, rule.model
        self.steps, self.lam, self.kappa = int(steps), float(lam), float(kappa)
        self.reference_mode, self.rescore, self.schedule = reference_mode, rescore, schedule
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise UsageError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self._amp = PRECISIONS[precision]
        if start_sigma is not None and t_start is None:
            t_start = sde.t_of_beta(float(start_sigma))
        self.t_start = sde.T if t_start is None else min(float(t_start), sde.T)

    def planned_nfe(self) -> int:
        """Network evaluations one call runs on its batch, from the solver's declaration: per
        step and prior, the solver's evaluations plus one when ``rescore``."""
        priors = 1 + int(self.noise_prior is not None)
        per = [self.prior_step.evaluations_at(i == self.steps - 1) for i in range(self.steps)]
        return priors * (sum(per) + self.steps * int(bool(self.rescore)))

    # -- helpers ---------------------------------------------------------------------------
    def _score(self, prior, z: Tensor, t: Tensor) -> Tensor:
        """The prior's score; under autocast the networks run in bf16/fp16, the sampler in fp32.

        A CUDA-graphed network writes its output into static memory that its next replay
        overwrites: the score is cloned so that it outlives the call. Every call is counted
        (checked against ``planned_nfe``)."""
        self._calls += 1
        if self._amp is not None:
            with torch.autocast(self.device.type, dtype=self._amp):
                s = prior(z, t).float()
        else:
            s = prior(z, t)
        return s.clone() if getattr(prior, "cuda_graphs", False) else s

    def _check(self, y: Tensor, x_shape: tuple[int, ...]) -> None:
        if not torch.isfinite(y).all():
            raise UsageError("y: contains NaN or Inf")
        if self.op.linear:
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
        y = y.to(self.device, torch.float32)
        x_shape = self._signal_shape(y, x_init, x_shape)
        self._check(y, x_shape)
        B, K = y.shape[0], int(samples)
        randn = self._noise_source(B, seed, generator)
        yk = y.repeat_interleave(K, dim=0)
        ts = step_times(self.sde, self.steps, self.t_start, self.schedule)
        x, n = self._initial_state(yk, (B * K, *x_shape[1:]), ts, randn, K, x_init, n_init)
        x, n = self._run_steps(x, n, yk, ts, randn, callback)
        res = self._result(x, n, yk, B, K)
        res.seconds = time.perf_counter() - t0
        return res

    def _signal_shape(
        self, y: Tensor, x_init: Tensor | None, x_shape: tuple[int, ...] | None
    ) -> tuple[int, ...]:
        """The signal batch's shape: as given, else x_init's, else Aᵀy's (y's without adjoint)."""
        if x_shape is not None:
            return x_shape
        if x_init is not None:
            return tuple(x_init.shape)
        return tuple(self.op.A_adjoint(y).shape) if self.op.adjoint else tuple(y.shape)

    def _noise_source(
        self, batch: int, seed: int | list[int] | None, generator: torch.Generator | None
    ) -> _Noise:
        """The normal draws: one generator per item (a seed list), the given one, or seeded."""
        seeds = None
        if isinstance(seed, (list, tuple)):
            if len(seed) != batch:
                raise UsageError(f"seed: {len(seed)} seeds for a batch of {batch}")
            seeds = [int(v) for v in seed]
        elif generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0 if seed is None else int(seed))
        return _Noise(seeds, generator, self.device)

    def _initial_state(
        self,
        yk: Tensor,
        xs: tuple[int, ...],
        ts: Tensor,
        randn: _Noise,
        samples: int,
        x_init: Tensor | None,
        n_init: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        """x_T and n_T: pure noise at t = T, or the noised initial guesses for a late start."""
        sde, dev = self.sde, self.device
        beta_T = float(sde.beta(torch.tensor(sde.T, dtype=torch.float64)))
        late = self.t_start < sde.T - 1e-9
        a0, b0 = float(sde.alpha(ts[0])), float(sde.beta(ts[0]))
        if late:  # CCDF: start from the noised initial guesses
            xi = (
                x_init.to(dev).repeat_interleave(samples, dim=0)
                if x_init is not None
                else self._default_x_init(yk, xs)
            )
            x = a0 * xi + b0 * randn(xs)
        elif self.reference_mode:
            x = randn(xs)
        else:
            x = randn(xs) * beta_T  # x_T ~ N(0, β_T² I)
        if self.noise_prior is None:
            return x, None
        if late:
            ni = (
                n_init.to(dev).repeat_interleave(samples, dim=0)
                if n_init is not None
                else torch.zeros_like(yk)
            )
            return x, a0 * ni + b0 * randn(yk.shape)
        return x, randn(yk.shape) * (1.0 if self.reference_mode else beta_T)

    def _run_steps(
        self,
        x: Tensor,
        n: Tensor | None,
        yk: Tensor,
        ts: Tensor,
        randn: _Noise,
        callback: Callback | None,
    ) -> tuple[Tensor, Tensor | None]:
        """Every step from ts[0] to ts[-1], then the network evaluations checked against the plan."""
        self._calls = 0
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
        if self.planned_nfe() != self._calls:  # a solver's declaration disagrees with its run
            raise RuntimeError(
                f"solver '{self.prior_step.name}': declared {self.planned_nfe()} network evaluations, "
                f"ran {self._calls}"
            )
        return x, n

    def _result(
        self, x: Tensor, n: Tensor | None, yk: Tensor, batch: int, samples: int
    ) -> SampleResult:
        """Means over the K draws of each item (and their std when K > 1), with the NFE."""
        n_out = n if n is not None else (yk - self.op.noiseless(x)) / self.op.noise_scale
        x = x.reshape(batch, samples, *x.shape[1:])
        n_out = n_out.reshape(batch, samples, *n_out.shape[1:])
        res = SampleResult(x.mean(1), n_out.mean(1), x_samples=x, n_samples=n_out)
        res.nfe, res.samples = self.planned_nfe(), samples
        if samples > 1:
            res.x_std, res.n_std = x.std(1), n_out.std(1)
        return res

    def _default_x_init(self, y: Tensor, xs: tuple[int, ...]) -> Tensor:
        """Initial signal guess for late starts: Aᵀy rescaled to A's gain (y itself when A = I)."""
        if not self.op.adjoint:
            return y.clone()
        return adjoint_guess(self.op, y)

    def _step(self, x, n, y, t, t_next, randn, last: bool):
        """One step: each prior's score, the DC rule's update, each prior's solver step."""
        sde = self.sde
        B = x.shape[0]
        tv = torch.full((B,), float(t), dtype=torch.float64, device=x.device)
        a, b = float(sde.alpha(t)), float(sde.beta(t))
        f, g = float(sde.f(t)), float(sde.g(t))
        dt = float(t - t_next)
        joint = n is not None
        need_x, need_n = self.dc.backprops()
        with torch.enable_grad():
            xg = x.detach().requires_grad_(need_x)
            ng = n.detach().requires_grad_(need_n) if joint else None
            with torch.set_grad_enabled(need_x):
                sx = self._score(self.signal_prior, xg, tv)
            sn = None
            if joint:
                with torch.set_grad_enabled(need_n):
                    sn = self._score(self.noise_prior, ng, tv)
            dx, dn = self.dc.direction(StepState(xg, ng, sx, sn, y, a, b, f, g, dt, randn))
        sx, sn = sx.detach(), sn.detach() if joint else None
        wx, wn = self.dc.step_weights(self.lam, self.kappa, g, dt)
        x = x + wx * dx
        if joint:
            n = n + wn * dn
        if self.rescore:  # Algorithm 1 literally: re-evaluate the scores after the DC step
            sx = self._score(self.signal_prior, x, tv)
            sn = self._score(self.noise_prior, n, tv) if joint else None
        x = self._solve(self.signal_prior, x, sx, t, t_next, randn, last)
        if joint:
            n = self._solve(self.noise_prior, n, sn, t, t_next, randn, last)
        return x.detach(), (n.detach() if joint else None)

    def _solve(self, prior, z, s, t, t_next, randn, last):
        """Move z from t to t_next along the prior's reverse process, given its score s."""
        score = lambda zz, tt: self._score(prior, zz, tt)  # noqa: E731
        return self.prior_step.step(self.sde, z, s, t, t_next, randn, last, score)


def sample_each(
    sampler: JointSampler,
    y: Tensor,
    seeds: list[int],
    *,
    workers: int = 1,
    samples: int = 1,
    callback: Callback | None = None,
    x_init: Tensor | None = None,
    n_init: Tensor | None = None,
) -> SampleResult:
    """``sampler(y, seed=seeds, ...)`` with each item sampled on its own, so that an item's
    result depends only on its measurement, its seed and the settings: bit for bit the same
    whatever it is batched with, however many ``workers`` share the batch and however many
    CPU threads torch has (issue 31 item 12: one batch of 4 against 4 batches of 1 changed
    94 % of the demo's pixels by up to 60 dB, the sampler amplifying differences of 1e-6 in
    the network's output). The items run with one torch thread, ``workers`` at once
    (usdehaze.core.device.each_alone). The callback is called ``steps`` times, as a batched
    call does, as the items' steps add up; an exception in one item (a cancel raised by the
    callback) stops the others at their next step."""
    import copy
    import threading

    from usdehaze.core.device import Stopped, each_alone

    B = y.shape[0]
    if len(seeds) != B:
        raise UsageError(f"seed: {len(seeds)} seeds for a batch of {B}")
    lock, stop = threading.Lock(), threading.Event()
    done = {"steps": 0, "said": 0}

    def item_callback(i: int, total: int, t: float) -> None:
        if stop.is_set():
            raise Stopped
        with lock:
            done["steps"] += 1
            due = done["steps"] // B
            calls = range(done["said"] + 1, due + 1) if callback is not None else range(0)
            done["said"] = max(done["said"], due)
            for k in calls:  # one call per B item-steps, under the lock: in order
                callback(k, total, t)

    def one(b: int) -> SampleResult:
        part = slice(b, b + 1)
        kw = {
            "x_init": None if x_init is None else x_init[part],
            "n_init": None if n_init is None else n_init[part],
        }
        own = copy.copy(sampler)  # its own network-call count: items may run concurrently
        return own(y[part], samples=samples, seed=[seeds[b]], callback=item_callback, **kw)

    return _joined(each_alone(B, one, workers, on_error=stop.set))


def _joined(parts: list[SampleResult]) -> SampleResult:
    """The items' results as one batch's (nfe: each item's, seconds: the slowest)."""

    def cat(name: str) -> Tensor | None:
        got = [getattr(p, name) for p in parts]
        return None if got[0] is None else torch.cat(got)

    first = parts[0]
    return SampleResult(
        cat("x"),
        cat("n"),
        cat("x_std"),
        cat("n_std"),
        cat("x_samples"),
        cat("n_samples"),
        nfe=first.nfe,
        seconds=max(p.seconds for p in parts),
        samples=first.samples,
    )
