"""Operators: adjointness <Ax, y> = <x, Aᵀy> and the ΠGDM covariance solve against dense algebra."""

import pytest
import torch

from usdehaze.core.operators import (
    Blur,
    GaussianMatrix,
    Identity,
    LinearOperator,
    Mask,
    ScaledBlend,
)

SHAPE = (2, 1, 6, 5)


def _ops():
    g = torch.Generator().manual_seed(0)
    return {
        "identity": Identity(),
        "blend": ScaledBlend(0.5, 0.5),
        "mask": Mask((torch.rand(SHAPE[1:], generator=g) > 0.4).float()),
        "cs": GaussianMatrix(SHAPE[1:], ratio=2.0, seed=1),
        "blur": Blur.gaussian(1.0, size=3, noise_scale=0.7),
    }


def _dense(op):
    """A as a dense matrix, column by column."""
    d = torch.tensor(SHAPE[1:]).prod().item()
    eye = torch.eye(d, dtype=torch.float64).reshape(d, *SHAPE[1:])
    return op.A(eye).reshape(d, -1).T


@pytest.mark.parametrize("name", list(_ops()))
def test_adjoint(name):
    op = _ops()[name]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    y = torch.randn(op.out_shape(SHAPE), generator=g, dtype=torch.float64)
    lhs = (op.A(x) * y).sum()
    rhs = (x * op.A_adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10), (lhs, rhs)


@pytest.mark.parametrize("name", list(_ops()))
def test_solve_cov_matches_dense(name):
    op = _ops()[name]
    A = _dense(op)
    m = A.shape[0]
    g = torch.Generator().manual_seed(3)
    v = torch.randn(op.out_shape(SHAPE), generator=g, dtype=torch.float64)
    r2 = torch.tensor([0.3, 2.0], dtype=torch.float64)
    q2 = torch.tensor([0.5, 0.1], dtype=torch.float64)
    got = op.solve_cov(v, r2, q2)
    for b in range(2):
        S = r2[b] * A @ A.T + q2[b] * op.noise_scale**2 * torch.eye(m, dtype=torch.float64)
        want = torch.linalg.solve(S, v[b].reshape(-1))
        assert torch.allclose(got[b].reshape(-1), want, atol=1e-5), name
    # and the generic conjugate-gradient path agrees with the closed form
    cg = LinearOperator.solve_cov(op, v, r2, q2, iters=200, tol=1e-12)
    assert torch.allclose(cg, got, atol=1e-6)


def test_measure_scales_noise():
    op = ScaledBlend(0.5, 0.25)
    x, n = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)
    assert torch.allclose(op.measure(x, n), torch.full((1, 1, 2, 2), 1.0))


def _recorded():
    """One of every registered model, as a result or an experiment records it."""
    from usdehaze.ultrasound.measurement import Additive, LogPowerSum, MuLawIQSum

    return [
        *_ops().values(),
        GaussianMatrix(SHAPE[1:], ratio=3.0, seed=7, noise_scale=0.5),
        LogPowerSum(50.0, 0.7),
        Additive(),
        MuLawIQSum(gamma=0.8, mu=100.0),
    ]


def test_every_registered_model_round_trips_through_its_config():
    """operator_from_config(op.config()), through JSON as results store it, measures the same."""
    import json

    from usdehaze.core.operators import OPERATORS, operator_from_config

    ops = _recorded()
    assert {op.name for op in ops} == set(OPERATORS)  # a new registered model gets a case here
    g = torch.Generator().manual_seed(4)
    x = torch.rand(SHAPE, generator=g) * 2 - 1
    for op in ops:
        cfg = json.loads(json.dumps(op.config()))
        assert cfg["kind"] == op.name
        back = operator_from_config(cfg)
        assert type(back) is type(op)
        again = json.loads(json.dumps(back.config()))
        if op.name == "Blur":  # the kernel is normalised again: equal up to float rounding
            k0, k1 = (torch.tensor(c.pop("kernel")) for c in (cfg, again))
            assert torch.allclose(k0, k1, atol=1e-7)
        assert again == cfg
        n = torch.rand(op.out_shape(SHAPE) if op.linear else SHAPE, generator=g) * 2 - 1
        assert torch.allclose(back.measure(x, n), op.measure(x, n), atol=1e-6), op.name
        assert torch.allclose(back.noiseless(x), op.noiseless(x), atol=1e-6), op.name


def test_a_wrong_operator_config_is_one_line():
    from usdehaze.core.operators import operator_from_config
    from usdehaze.errors import UsageError

    with pytest.raises(UsageError, match=r"^x.yaml: operator 'Nope': expected one of Identity, "):
        operator_from_config({"kind": "Nope"}, "x.yaml")
    with pytest.raises(UsageError, match=r"^x.yaml: Identity: .*'beta'"):
        operator_from_config({"kind": "Identity", "beta": 2}, "x.yaml")
    with pytest.raises(UsageError, match=r"^operator: expected a mapping with 'kind'"):
        operator_from_config(["Identity"])
