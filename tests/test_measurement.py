"""Ultrasound measurement models against the physics they stand for."""

import numpy as np
import pytest
import torch

from usdehaze.ultrasound.measurement import Additive, LogPowerSum


def _to_u(db, dr=60.0):
    return 1 + 2 * db / dr


def test_logsum_adds_powers_of_speckle():
    # Complex Gaussian tissue and haze: the envelope power of their sum is the sum of powers.
    rng = np.random.default_rng(0)
    shape = (200_000,)
    t = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * 1.0
    h = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * 0.3
    db = lambda p: 10 * np.log10(p)  # noqa: E731
    x, n = _to_u(db(np.mean(abs(t) ** 2)) - 10), _to_u(db(np.mean(abs(h) ** 2)) - 10)
    y_model = LogPowerSum().measure(torch.tensor(x), torch.tensor(n)).item()
    y_true = _to_u(db(np.mean(abs(t + h) ** 2)) - 10)
    assert abs(y_model - y_true) < 0.002  # 0.06 dB


def test_logsum_is_a_smooth_max_and_gamma_scales_haze():
    m = LogPowerSum(dynamic_range=60)
    x = torch.tensor([0.9, -0.9, 0.0])
    n = torch.tensor([-0.9, 0.9, 0.0])
    y = m.measure(x, n)
    assert torch.allclose(y[:2], torch.tensor([0.9, 0.9]), atol=1e-3)  # 48 dB apart: max wins
    assert abs(y[2].item() - _to_u(10 * np.log10(2)) + 1) < 1e-4  # equal powers: +3.01 dB
    strong = LogPowerSum(dynamic_range=60, gamma=10.0).measure(x, n)
    assert (
        abs((strong[1] - y[1]).item() * 30 - 10) < 0.01
    )  # γ = 10 raises haze-dominated pixels by 10 dB


def test_logsum_gradient_goes_to_the_dominant_component():
    x = torch.tensor([0.8, -0.8], requires_grad=True)
    n = torch.tensor([-0.8, 0.8], requires_grad=True)
    LogPowerSum().measure(x, n).sum().backward()
    assert x.grad[0] > 0.99 and x.grad[1] < 0.01
    assert n.grad[1] > 0.99 and n.grad[0] < 0.01


def test_additive():
    assert Additive().measure(torch.tensor(0.25), torch.tensor(0.5)).item() == 0.75
    # linear, A = I: what the pigdm and projection rules ask of it
    from usdehaze.core.operators import LinearOperator

    m, v = Additive(), torch.tensor([[1.0, 4.0]])
    assert isinstance(m, LinearOperator) and m.linear and m.config() == {"kind": "additive"}
    assert torch.equal(m.A(v), v) and torch.equal(m.A_adjoint(v), v)
    torch.testing.assert_close(m.solve_cov(v, 0.5, 1.5), v / 2.0)  # (r² + q²)⁻¹ v


def test_joint_models_build_their_own_measurement_classes(tiny_priors):
    """The additive model runs with Additive itself (no Identity with a name patched on)."""
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer

    t, h = tiny_priors
    cfg = dict(tissue_prior=str(t), haze_prior=str(h), device="cpu", steps=2)
    op = Dehazer(DehazeConfig(model="additive", rule="pigdm", **cfg)).sampler().op
    assert type(op) is Additive and op.name == "additive"
    op = Dehazer(DehazeConfig(model="logsum", gamma=2.0, **cfg)).sampler().op
    assert type(op) is LogPowerSum and op.config()["gamma"] == 2.0


def test_mulaw_iq_sum_is_exact_in_iq():
    """C(C⁻¹x + γC⁻¹n) of companded I/Q is the companded sum of the linear IQ, per pixel."""
    from usdehaze.ultrasound.logcomp import mu_law
    from usdehaze.ultrasound.measurement import MuLawIQSum

    rng = np.random.default_rng(4)
    t, h = rng.uniform(-0.5, 0.5, 1000), rng.uniform(-0.3, 0.3, 1000)
    for gamma in (1.0, 0.5):
        m = MuLawIQSum(gamma=gamma)
        y = m.measure(torch.tensor(mu_law(t)), torch.tensor(mu_law(h))).numpy()
        np.testing.assert_allclose(y, mu_law(t + gamma * h), atol=1e-10)
    v = torch.linspace(-1, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(m.compress(m.expand(v)), v)
    from usdehaze.ultrasound.logcomp import MU, mu_law_inverse

    assert m.mu == MU  # the one μ of usdehaze.ultrasound.logcomp
    np.testing.assert_allclose(m.expand(v).numpy(), mu_law_inverse(v.numpy()), atol=1e-15)
    assert m.expand(torch.tensor([3.0])).item() == 1.0  # estimates outside [-1, 1] are clipped


def test_mulaw_iq_sum_gradient_follows_the_linear_sum():
    """Where haze dominates a pixel, a change of the tissue's companded value moves y little."""
    from usdehaze.ultrasound.measurement import MuLawIQSum

    m = MuLawIQSum()
    x = torch.tensor([0.1, 0.9], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([0.9, 0.1], dtype=torch.float64, requires_grad=True)
    m.measure(x, n).sum().backward()
    assert x.grad[0] < 0.05 * n.grad[0] and n.grad[1] < 0.05 * x.grad[1]


def test_ultrasound_models_declare_the_core_interface():
    """LogPowerSum and MuLawIQSum are nonlinear core MeasurementModels: the rules that need a
    linear operator refuse them in one line; noiseless is no haze, which for LogPowerSum is not
    n = 0 (haze at -DR/2 dB)."""
    from usdehaze.core.dc_rules import DC_RULES, make_rule
    from usdehaze.core.operators import MeasurementModel
    from usdehaze.core.priors import GaussianPrior
    from usdehaze.core.sampler import JointSampler
    from usdehaze.core.sde import VESDE
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.measurement import MuLawIQSum

    x = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
    log, iq = LogPowerSum(dynamic_range=60), MuLawIQSum()
    assert torch.equal(log.noiseless(x), x)
    assert (log.measure(x, torch.zeros_like(x)) - x).max() > 0.1  # n = 0 adds haze at -30 dB
    torch.testing.assert_close(log.measure(x, torch.full_like(x, -200.0)), x)  # haze → 0
    torch.testing.assert_close(iq.noiseless(x), iq.measure(x, torch.zeros_like(x)))  # C⁻¹(0) = 0
    sde = VESDE()
    prior = GaussianPrior(torch.zeros(1, 4), torch.eye(4, dtype=torch.float64), sde)
    linear_rules = [r for r, c in DC_RULES.items() if "linear" in c.needs]
    assert linear_rules
    for model in (log, iq):
        assert isinstance(model, MeasurementModel) and model.capabilities() == set()
        for rule in linear_rules:
            with pytest.raises(UsageError, match=f"rule '{rule}': needs a linear operator") as e:
                JointSampler(prior, prior, make_rule(rule, model), sde)
            assert "\n" not in str(e.value)
        JointSampler(prior, prior, make_rule("dps", model), sde)
    assert Additive().capabilities() == {"linear", "adjoint", "cov_solve"}
