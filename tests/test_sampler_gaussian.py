"""The joint sampler against closed-form Gaussian posteriors.

Which combinations are exact: with unit-covariance Gaussian priors, ΠGDM's r_t² = β_t²/(1 + β_t²)
is the true variance of x_0 | x_t, so its Gaussian likelihood is exact, and with ``weighting="sde"``
the sampler discretises the true conditional reverse SDE: mean and covariance must match the
analytic posterior (up to Monte-Carlo and discretisation error). With non-diagonal covariances,
DPS and projection the likelihood is approximate: we check that the estimate moves most of the way
from the prior mean to the posterior mean and stays consistent with y.
"""

import pytest
import torch
from gaussian_truth import dense, joint_posterior, random_cov

from usdehaze.core.dc_rules import DC_RULES, make_rule
from usdehaze.core.operators import (
    Blur,
    GaussianMatrix,
    Identity,
    Mask,
    MeasurementModel,
    ScaledBlend,
)
from usdehaze.core.priors import GaussianPrior
from usdehaze.core.registry import param_names
from usdehaze.core.sampler import JointSampler
from usdehaze.core.sde import VESDE, VPSDE
from usdehaze.core.solvers import SOLVERS, Solver, make_solver, register_solver
from usdehaze.errors import UsageError

SHAPE = (1, 2, 2)
D = 4
CHAINS = 3000


def _ops():
    g = torch.Generator().manual_seed(5)
    return {
        "identity": Identity(),
        "blend": ScaledBlend(0.5, 0.5),
        "mask": Mask(torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])),
        "cs": GaussianMatrix(SHAPE, ratio=2.0, seed=3),
        "blur": Blur(torch.rand(2, 2, generator=g) + 0.5),
    }


def _problem(op, Sx, Sn, seed=0):
    sde = VESDE()
    g = torch.Generator().manual_seed(seed)
    mx = torch.randn(D, generator=g, dtype=torch.float64) * 0.5
    mn = torch.randn(D, generator=g, dtype=torch.float64) * 0.5
    A = dense(op, SHAPE)
    x = mx + torch.linalg.cholesky(Sx) @ torch.randn(D, generator=g, dtype=torch.float64)
    n_shape = tuple(op.out_shape((1, *SHAPE)))[1:]
    dn = int(torch.tensor(n_shape).prod())
    mn = mn[:dn]
    Sn = Sn[:dn, :dn]
    n = mn + torch.linalg.cholesky(Sn) @ torch.randn(dn, generator=g, dtype=torch.float64)
    y = A @ x + op.noise_scale * n
    truth = joint_posterior(A, op.noise_scale, mx, Sx, mn, Sn, y)
    sig = GaussianPrior(mx.reshape(1, -1), Sx, sde)
    noi = GaussianPrior(mn.reshape(1, -1), Sn, sde)
    return sde, sig, noi, y.float().reshape(1, *n_shape), truth, (mx, mn)


def _sampler(sig, noi, op, sde, rule="pigdm", solver="em", **kw):
    """A JointSampler of built pieces: each keyword the rule or the solver declares (its
    ``Params``) goes to that piece, the rest to the sampler (``reference_mode`` to both: the
    rule's shortcuts, the sampler's start)."""
    r, v = DC_RULES.lookup(rule), SOLVERS.lookup(solver)
    own = param_names(r) + param_names(v)
    rest = {k: x for k, x in kw.items() if k not in own or k == "reference_mode"}
    built_rule = make_rule(rule, op, **{k: kw[k] for k in param_names(r) if k in kw})
    built_solver = make_solver(solver, **{k: kw[k] for k in param_names(v) if k in kw})
    return JointSampler(sig, noi, built_rule, sde, built_solver, **rest)


def _run(sampler, y, seed=0):
    Y = y.repeat(CHAINS, *([1] * (y.dim() - 1)))
    res = sampler(Y, seed=seed)
    return res.x.reshape(CHAINS, -1).double(), res.n.reshape(CHAINS, -1).double()


@pytest.mark.parametrize("name", ["identity", "blend", "mask", "cs", "blur"])
def test_pigdm_sde_weighting_is_exact_for_unit_covariance(name):
    op = _ops()[name]
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, (mx_t, mn_t, Cx, Cn), _ = _problem(op, eye, eye)
    s = _sampler(sig, noi, op, sde, rule="pigdm", steps=400, weighting="sde")
    x, n = _run(s, y)
    # Monte-Carlo error of a mean is ~ sd/sqrt(3000) ≈ 0.02; discretisation adds a little.
    assert torch.allclose(x.mean(0), mx_t, atol=0.08), (x.mean(0), mx_t)
    assert torch.allclose(n.mean(0), mn_t, atol=0.08), (n.mean(0), mn_t)
    assert torch.allclose(torch.cov(x.T), Cx, atol=0.1), (torch.cov(x.T), Cx)
    assert torch.allclose(torch.cov(n.T), Cn, atol=0.1)


# How each registered DC rule is held to the closed-form posterior, one entry per weighting it
# declares (a rule or weighting registered without one fails the coverage test below):
# "exact": unit-covariance priors, where the rule's likelihood is exact under these settings:
#   mean and covariance of x | y and n | y must match;
# "approximate": correlated priors: the mean moves most of the way from the prior mean to the
#   posterior mean, and the estimates explain y.
RULE_TESTS = {
    "pigdm": {
        "sde": ("exact", {}),
        "paper": ("approximate", {}),
        "variance": ("approximate", {}),
    },
    "dps": {
        "paper": ("approximate", {"lam": 0.5, "kappa": 0.5}),
        "sde": ("approximate", {"rho": 0.3}),
        "variance": ("approximate", {}),
    },
    "projection": {
        w: ("approximate", {"lam": 0.5, "kappa": 0.5}) for w in DC_RULES["projection"].weightings
    },
}
# each solver's settings in the exact test: the reverse SDE's solvers take the whole likelihood
# score g²Δt ∇log p(y | x_t) (ddim with η = 1 is ancestral); the probability-flow ODE's half
SOLVER_TESTS = {"em": {}, "ddim": {"eta": 1.0}, "heun": {"lam": 0.5, "kappa": 0.5}}
CASES = [
    (rule, weighting, solver)
    for rule, cls in DC_RULES.items()
    for weighting in cls.weightings
    for solver in SOLVERS
]


def test_every_registered_rule_weighting_and_solver_has_posterior_test_settings():
    assert {r: set(c.weightings) for r, c in DC_RULES.items()} == {
        r: set(w) for r, w in RULE_TESTS.items()
    }
    assert set(SOLVER_TESTS) == set(SOLVERS)
    assert any(tier == "exact" for w in RULE_TESTS.values() for tier, _ in w.values())


@pytest.mark.parametrize("rule,weighting,solver", CASES)
def test_every_rule_and_solver_against_the_gaussian_posterior(rule, weighting, solver):
    tier, kw = RULE_TESTS[rule][weighting]
    op = Identity()
    if tier == "exact":
        eye = torch.eye(D, dtype=torch.float64)
        sde, sig, noi, y, (mx_t, mn_t, Cx, Cn), _ = _problem(op, eye, eye)
        kw = {**kw, **SOLVER_TESTS[solver]}
        s = _sampler(
            sig, noi, op, sde, rule=rule, weighting=weighting, steps=200, solver=solver, **kw
        )
        x, n = _run(s, y)
        assert torch.allclose(x.mean(0), mx_t, atol=0.08), (x.mean(0), mx_t)
        assert torch.allclose(n.mean(0), mn_t, atol=0.08), (n.mean(0), mn_t)
        assert torch.allclose(torch.cov(x.T), Cx, atol=0.1), (torch.cov(x.T), Cx)
        assert torch.allclose(torch.cov(n.T), Cn, atol=0.1)
        return
    Sx, Sn = random_cov(D, 1, 1.0), random_cov(D, 2, 0.5)
    sde, sig, noi, y, (mx_t, mn_t, _, _), (mx, mn) = _problem(op, Sx, Sn, seed=3)
    if solver == "ddim":
        kw = {**kw, "eta": 1.0}
    s = _sampler(sig, noi, op, sde, rule=rule, weighting=weighting, steps=100, solver=solver, **kw)
    x, n = _run(s, y)
    prior_err = (mx - mx_t).norm()
    err = (x.mean(0) - mx_t).norm()
    assert err < 0.5 * prior_err, (err, prior_err)
    consistency = (x.mean(0) + n.mean(0) - y.reshape(-1).double()).norm()
    assert consistency < 0.15 * y.norm(), consistency


def test_single_prior_gaussian_noise_baseline_is_exact():
    """ΠGDM with no noise prior and Gaussian noise σ: the textbook posterior of x | y."""
    op = Identity()
    sde = VESDE()
    eye = torch.eye(D, dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    mx = torch.randn(D, generator=g, dtype=torch.float64)
    sigma = 0.5
    y = (mx + torch.randn(D, generator=g, dtype=torch.float64)).reshape(1, *SHAPE)
    post_cov = torch.linalg.inv(eye + eye / sigma**2)
    post_mean = post_cov @ (mx + y.reshape(-1) / sigma**2)
    s = _sampler(
        GaussianPrior(mx.reshape(1, -1), eye, sde),
        None,
        op,
        sde,
        rule="pigdm",
        steps=400,
        noise_sigma=sigma,
        weighting="sde",
    )
    x, n = _run(s, y.float())
    assert torch.allclose(x.mean(0), post_mean, atol=0.06)
    assert torch.allclose(torch.cov(x.T), post_cov, atol=0.05)
    assert torch.allclose(n.mean(0), y.reshape(-1).double() - post_mean, atol=0.06)


def test_reference_mode_differs_and_is_worse():
    """The reference code's shortcuts (EM mean for Tweedie, diagonal Jacobian, N(0, 1) start)
    land further from the posterior than the exact default when covariances are correlated."""
    op = _ops()["mask"]
    Sx, Sn = random_cov(D, 7, 1.0, floor=0.05), random_cov(D, 8, 0.5)
    sde, sig, noi, y, (mx_t, mn_t, _, _), _ = _problem(op, Sx, Sn, seed=4)
    good = _sampler(sig, noi, op, sde, rule="pigdm", steps=200)
    ref = _sampler(sig, noi, op, sde, rule="pigdm", steps=200, reference_mode=True)
    xg, ng = _run(good, y)
    xr, nr = _run(ref, y)
    err_g = (xg.mean(0) - mx_t).norm() + (ng.mean(0) - mn_t).norm()
    err_r = (xr.mean(0) - mx_t).norm() + (nr.mean(0) - mn_t).norm()
    assert err_r > 1.5 * err_g, (err_r, err_g)


def test_late_start_and_samples():
    op = Identity()
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, (mx_t, _, Cx, _), _ = _problem(op, eye, eye, seed=6)
    s = _sampler(sig, noi, op, sde, rule="pigdm", steps=50, start_sigma=2.0)
    assert s.t_start < 0.6
    res = s(y, samples=64, seed=1, x_init=y, n_init=torch.zeros_like(y))
    assert res.x.shape == y.shape and res.x_std.shape == y.shape
    assert float(res.x_std.mean()) > 0.1  # K draws differ: a posterior, not a point
    again = s(y, samples=64, seed=1, x_init=y, n_init=torch.zeros_like(y))
    assert torch.equal(res.x, again.x)  # same seed, same answer
    steps = []
    s(y, seed=2, callback=lambda i, total, t: steps.append((i, total)))
    assert steps[-1] == (50, 50) and len(steps) == 50


def test_bad_input_is_one_line_error():
    op = Identity()
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, *_ = _problem(op, eye, eye)
    with pytest.raises(UsageError, match="rule 'foo'"):
        _sampler(sig, noi, op, sde, rule="foo")
    s = _sampler(sig, noi, op, sde, steps=2)
    with pytest.raises(UsageError, match="NaN"):
        s(torch.full_like(y, float("nan")))
    with pytest.raises(UsageError, match="does not match"):
        s(y, x_shape=(1, 1, 3, 3))


def test_dps_variance_weighting_equals_pigdm_for_identity():
    """For A = I, DPS with Σ = (r² + q²)I and ΠGDM's weights takes exactly ΠGDM's step."""
    op = Identity()
    Sx, Sn = random_cov(D, 11, 1.0), random_cov(D, 12, 0.5)
    sde, sig, noi, y, *_ = _problem(op, Sx, Sn, seed=2)
    a = _sampler(sig, noi, op, sde, rule="pigdm", steps=20)(y.repeat(8, 1, 1, 1), seed=3)
    b = _sampler(sig, noi, op, sde, rule="dps", weighting="variance", steps=20)(
        y.repeat(8, 1, 1, 1), seed=3
    )
    assert torch.allclose(a.x, b.x, atol=1e-4) and torch.allclose(a.n, b.n, atol=1e-4)


def _prior_only(sde_cls, solver, steps, eta=0.0):
    """Unconditional draws (λ = κ = 0) from correlated Gaussian priors: covariance errors."""
    sde = sde_cls()
    Sx, Sn = random_cov(D, 1, 1.0), random_cov(D, 2, 0.5)
    mx = torch.tensor([0.5, -0.3, 0.2, 0.1], dtype=torch.float64)
    sig, noi = GaussianPrior(mx.reshape(1, -1), Sx, sde), GaussianPrior(-mx.reshape(1, -1), Sn, sde)
    own = {"eta": eta} if solver == "ddim" else {}  # DDIM's parameter, no other solver's
    s = _sampler(sig, noi, Identity(), sde, steps=steps, lam=0, kappa=0, solver=solver, **own)
    res = s(torch.zeros(CHAINS, *SHAPE), seed=0)
    x, n = res.x.reshape(CHAINS, -1).double(), res.n.reshape(CHAINS, -1).double()
    err = max(float((torch.cov(x.T) - Sx).abs().max()), float((torch.cov(n.T) - Sn).abs().max()))
    return err, float((x.mean(0) - mx).abs().max()), res.nfe


@pytest.mark.parametrize("sde_cls", [VESDE, VPSDE])
@pytest.mark.parametrize(
    "solver,eta,steps", [("ddim", 0.0, 200), ("ddim", 1.0, 200), ("heun", 0.0, 100)]
)
def test_solvers_converge_to_the_prior(sde_cls, solver, eta, steps):
    cov_err, mean_err, nfe = _prior_only(sde_cls, solver, steps, eta)
    assert cov_err < 0.1 and mean_err < 0.07, (cov_err, mean_err)
    assert nfe == (4 * steps - 2 if solver == "heun" else 2 * steps)  # Heun: Euler on the last step


@pytest.mark.parametrize(
    "noise_prior,solver,rescore,samples",
    [
        (True, "em", False, 1),
        (False, "ddim", False, 1),
        (True, "heun", False, 3),
        (False, "em", True, 2),
    ],
)
def test_nfe_counts_the_prior_evaluations_that_ran(noise_prior, solver, rescore, samples):
    """nfe is what the loop ran (each prior call counted), whatever the rule, solver or prior
    count: a single-prior run with 5 DDIM steps is 5, not the joint method's 2 per step."""
    sde = VESDE()
    calls = []

    def counted(prior):
        return lambda z, t: calls.append(z.shape[0]) or prior(z, t)

    eye = torch.eye(D, dtype=torch.float64)
    sig = counted(GaussianPrior(torch.zeros(1, D), eye, sde))
    noi = counted(GaussianPrior(torch.zeros(1, D), eye, sde)) if noise_prior else None
    s = _sampler(
        sig,
        noi,
        Identity(),
        sde,
        rule="dps",
        steps=5,
        solver=solver,
        rescore=rescore,
        noise_sigma=None if noise_prior else 0.5,
    )
    res = s(torch.zeros(2, *SHAPE), samples=samples, seed=0)
    assert res.nfe == len(calls) and set(calls) == {2 * samples}  # each call: the whole batch
    per_step = (1 + int(noise_prior)) * (2 if rescore else 1)
    assert res.nfe == per_step * 5 + (4 * (1 + int(noise_prior)) if solver == "heun" else 0)
    assert res.nfe_per_item == res.nfe * samples


@pytest.mark.parametrize("sde_cls", [VESDE, VPSDE])
def test_heun_is_second_order(sde_cls):
    """At 10 steps Heun's covariance error is well below DDIM's (first order, same ODE)."""
    heun, _, _ = _prior_only(sde_cls, "heun", 10)
    ddim, _, _ = _prior_only(sde_cls, "ddim", 10)
    assert heun < 0.5 * ddim, (heun, ddim)


def test_per_item_seeds_make_results_independent_of_batching():
    op = Identity()
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, *_ = _problem(op, eye, eye, seed=6)
    Y = torch.cat([y, 2 * y, -y])
    s = _sampler(sig, noi, op, sde, rule="pigdm", steps=20, start_sigma=2.0)
    both = s(Y, seed=[5, 6, 7], samples=2)
    alone = s(Y[1:2], seed=[6], samples=2)
    assert torch.allclose(both.x[1:2], alone.x, atol=1e-6)
    assert not torch.allclose(both.x[0], s(Y[:1], seed=[6], samples=2).x[0])
    with pytest.raises(UsageError, match="2 seeds for a batch of 3"):
        s(Y, seed=[1, 2])
    with pytest.raises(UsageError, match="solver 'rk4'"):
        _sampler(sig, noi, op, sde, solver="rk4")


@pytest.mark.parametrize("rule,weighting", [("pigdm", "paper"), ("dps", "variance")])
def test_gaussian_jacobian_is_exact_for_isotropic_priors(rule, weighting):
    """For priors N(m, v I) the Tweedie Jacobian is the scalar α v/(α² v + β²): the Jacobian-free
    step with the right v takes the exact step (no backward pass through that prior), a wrong v
    does not."""
    op = Identity()
    vx, vn = 0.7, 0.3
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, *_ = _problem(op, vx * eye, vn * eye, seed=4)
    Y = y.repeat(16, 1, 1, 1)
    kw = {"rule": rule, "weighting": weighting, "steps": 30, "start_sigma": 3.0}
    exact = _sampler(sig, noi, op, sde, **kw)(Y, seed=1)
    free = _sampler(sig, noi, op, sde, signal_jacobian=vx, noise_jacobian=vn, **kw)(Y, seed=1)
    assert torch.allclose(exact.x, free.x, atol=1e-4) and torch.allclose(exact.n, free.n, atol=1e-4)
    wrong = _sampler(sig, noi, op, sde, signal_jacobian=5.0, **kw)(Y, seed=1)
    assert (wrong.x - exact.x).abs().max() > 1e-2


def test_gaussian_jacobian_runs_that_prior_forward_only():
    op = Identity()
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, *_ = _problem(op, eye, eye, seed=4)
    grad_on = {"signal": [], "noise": []}

    def spy(prior, name):
        def score(z, t):
            grad_on[name].append(torch.is_grad_enabled() and z.requires_grad)
            return prior(z, t)

        return score

    s = _sampler(
        spy(sig, "signal"),
        spy(noi, "noise"),
        op,
        sde,
        rule="dps",
        steps=5,
        weighting="variance",
        start_sigma=2.0,
        noise_jacobian=1.0,
    )
    s(y, seed=0)
    assert all(grad_on["signal"]) and not any(grad_on["noise"]) and len(grad_on["noise"]) == 5
    with pytest.raises(UsageError, match="noise_jacobian -1"):
        _sampler(sig, noi, op, sde, noise_jacobian=-1.0)


class _Squash(MeasurementModel):
    """A nonlinear model, y = x + ½ tanh(n)(1 + x²): no adjoint, no covariance solve. It records
    which of measure / noiseless the sampler called."""

    def __init__(self) -> None:
        self.calls: set[str] = set()

    def measure(self, x, n):
        self.calls.add("measure")
        return x + 0.5 * torch.tanh(n) * (1 + x * x)

    def noiseless(self, x):
        self.calls.add("noiseless")
        return x


LINEAR_RULES = [r for r, c in DC_RULES.items() if "linear" in c.needs]


def test_the_registry_declares_what_each_rule_needs():
    assert set(LINEAR_RULES) == {"pigdm", "projection"}
    assert "cov_solve" in DC_RULES["pigdm"].needs and not DC_RULES["dps"].needs


@pytest.mark.parametrize("rule", LINEAR_RULES)
def test_a_rule_needing_a_linear_operator_refuses_a_nonlinear_model(rule):
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, *_ = _problem(Identity(), eye, eye)
    with pytest.raises(UsageError, match=f"rule '{rule}': needs a linear operator") as e:
        _sampler(sig, noi, _Squash(), sde, rule=rule)
    assert "\n" not in str(e.value) and "_Squash" in str(e.value) and "use dps" in str(e.value)


def test_dps_runs_a_nonlinear_model_and_asks_it_for_noiseless_without_a_noise_prior():
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, *_ = _problem(Identity(), eye, eye)
    joint, single = _Squash(), _Squash()
    res = _sampler(sig, noi, joint, sde, rule="dps", steps=5)(y, seed=0)
    assert torch.isfinite(res.x).all() and joint.calls == {"measure"}
    res = _sampler(sig, None, single, sde, rule="dps", steps=5, noise_sigma=0.5)(y, seed=0)
    # no noise prior: the mean measurement is noiseless(x), never measure(x, 0)
    assert single.calls == {"noiseless"}
    torch.testing.assert_close(res.n, y - res.x)


def test_an_operator_without_the_declared_interface_is_refused_in_one_line():
    class Duck:  # the methods, but nothing declared
        linear, noise_scale = True, 1.0
        A = A_adjoint = staticmethod(lambda v: v)

        def solve_cov(self, v, r2, q2):
            return v / (r2 + q2)

    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, *_ = _problem(Identity(), eye, eye)
    with pytest.raises(UsageError, match="Duck is not a usdehaze.core.operators.MeasurementModel"):
        _sampler(sig, noi, Duck(), sde, rule="pigdm")


def test_a_weighting_the_rule_does_not_declare_is_refused_in_one_line():
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, *_ = _problem(Identity(), eye, eye)
    with pytest.raises(UsageError, match="rule 'dps': weighting 'exact': expected one of paper"):
        _sampler(sig, noi, Identity(), sde, rule="dps", weighting="exact")


def test_pigdm_variance_weighting_is_pigdm_paper_step():
    """An explicit choice: ΠGDM's step is weighted by the variances r_t², q_t² already (the
    unweighted likelihood score at step λ it fell into before diverged: NaN frames)."""
    op = _ops()["blur"]
    Sx, Sn = random_cov(D, 11, 1.0), random_cov(D, 12, 0.5)
    sde, sig, noi, y, *_ = _problem(op, Sx, Sn, seed=2)
    Y = y.repeat(8, 1, 1, 1)
    runs = [
        _sampler(sig, noi, op, sde, rule="pigdm", weighting=w, steps=100)(Y, seed=3)
        for w in ("paper", "variance")
    ]
    assert torch.isfinite(runs[0].x).all()
    assert torch.equal(runs[0].x, runs[1].x) and torch.equal(runs[0].n, runs[1].n)


def test_nfe_is_counted_from_the_solvers_declarations_and_checked():
    eye = torch.eye(D, dtype=torch.float64)
    sde, sig, noi, y, *_ = _problem(Identity(), eye, eye)
    for name, cls in SOLVERS.items():
        s = _sampler(sig, noi, Identity(), sde, steps=4, solver=name)
        res = s(y, seed=0, samples=3)
        assert res.nfe == s.planned_nfe() == 2 * (3 * cls.evaluations + cls.evaluations_last)
        assert res.nfe_per_item == 3 * res.nfe

    @register_solver
    class Twice(Solver):  # evaluates its prior once more per step than it declares
        name = "test-twice"

        def step(self, sde, z, s, t, t_next, randn, last, score):
            return score(z, t.reshape(1).expand(z.shape[0])) * 0 + z

    try:
        s = _sampler(sig, noi, Identity(), sde, steps=3, solver="test-twice")
        with pytest.raises(
            RuntimeError, match="solver 'test-twice': declared 6 network evaluations, ran 12"
        ):
            s(y, seed=0)
    finally:
        SOLVERS.pop("test-twice")


def test_the_architecture_docs_example_rule_runs():
    """docs/architecture.md's example of adding a DC rule: registered, refused for a nonlinear
    model, and moving to the Gaussian posterior."""
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    code = doc.split("<!-- example: dc rule -->\n```python\n")[1].split("```")[0]
    try:
        exec(code, {})
        assert "landweber" in DC_RULES
        Sx, Sn = random_cov(D, 1, 1.0), random_cov(D, 2, 0.5)
        sde, sig, noi, y, (mx_t, _, _, _), (mx, _) = _problem(Identity(), Sx, Sn, seed=3)
        with pytest.raises(UsageError, match="rule 'landweber': needs a linear operator"):
            _sampler(sig, noi, _Squash(), sde, rule="landweber")
        s = _sampler(sig, noi, Identity(), sde, rule="landweber", steps=100, lam=0.5, kappa=0.5)
        x, n = _run(s, y)
        assert (x.mean(0) - mx_t).norm() < 0.5 * (mx - mx_t).norm()
        assert (x.mean(0) + n.mean(0) - y.reshape(-1).double()).norm() < 0.15 * y.norm()
        # its own parameter: taken by it alone, and a setting of the config's rule section
        from usdehaze.ultrasound.dehaze_config import DehazeConfig
        from usdehaze.ultrasound.pieces import build_pieces

        half = _sampler(sig, noi, Identity(), sde, rule="landweber", steps=5, damping=0.5)
        assert half.dc.params.damping == 0.5
        with pytest.raises(UsageError, match="rule 'pigdm': no parameter 'damping'"):
            make_rule("pigdm", Identity(), damping=0.5)
        cfg = DehazeConfig.from_dict(
            {
                "model": "additive",
                "rule": {"rule": "landweber", "weighting": "paper", "damping": 0.5},
            }
        )
        assert "damping" in DehazeConfig.keys("rule")
        assert build_pieces(cfg, Identity())[0].params.damping == 0.5
    finally:
        DC_RULES.pop("landweber", None)
