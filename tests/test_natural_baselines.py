"""Baselines on easy synthetic cases: each must beat its noisy input; Glow/wavelet exactness."""

import math

import numpy as np
import pytest
import torch

from usdehaze.core.operators import GaussianMatrix, Identity, ScaledBlend
from usdehaze.errors import UsageError
from usdehaze.natural.baselines.classical import (
    Wavelet,
    bm3d_denoise,
    lasso_wavelet,
    operator_norm2,
)
from usdehaze.natural.baselines.gan import GANConfig, csgm, train_gan
from usdehaze.natural.baselines.glow import Glow, GlowConfig, flow_map, train_glow
from usdehaze.natural.tasks import ReshapedPrior, build_task

torch.set_num_threads(1)


def psnr(a, b):
    return float(10 * torch.log10(4.0 / ((a - b) ** 2).mean()))


def blocks(n, size=16, seed=0):
    """Piecewise-constant images in [-1, 1] (sparse in wavelets, easy for every prior)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, size, size), -0.5)
    for i in range(n):
        a, b = torch.randint(0, size // 2, (2,), generator=g).tolist()
        x[i, 0, a : a + size // 2, b : b + size // 2] = 0.6
    return x


def test_wavelet_is_orthonormal_and_its_adjoint_is_its_inverse():
    w = Wavelet((2, 16, 16), "db4")
    rng = np.random.default_rng(0)
    x, c = rng.standard_normal((2, 16, 16)), rng.standard_normal((2, *w.coef_shape))
    np.testing.assert_allclose(w.inverse(w.forward(x)), x, atol=1e-10)
    assert np.linalg.norm(w.forward(x)) == pytest.approx(np.linalg.norm(x))
    assert float((w.forward(x) * c).sum()) == pytest.approx(float((x * w.inverse(c)).sum()))


def test_operator_norm_by_power_iteration():
    assert operator_norm2(ScaledBlend(0.5, 0.5), (1, 1, 8, 8)) == pytest.approx(0.25, rel=1e-4)
    op = GaussianMatrix((1, 8, 8), 2.0, seed=3)
    exact = float(torch.linalg.matrix_norm(op.matrix, 2) ** 2)
    assert operator_norm2(op, (1, 1, 8, 8), iters=100) == pytest.approx(exact, rel=1e-3)


def test_bm3d_improves_gaussian_denoising():
    x = blocks(1, 32)
    y = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    xh = bm3d_denoise(Identity(), y, 0.0, 0.3)
    assert psnr(xh, x) > psnr(y, x) + 6


def test_bm3d_refuses_compressed_sensing():
    op = GaussianMatrix((1, 8, 8), 2.0)
    with pytest.raises(UsageError, match="denoising task"):
        bm3d_denoise(op, torch.zeros(1, 32), 0.0, 0.1)


def test_lasso_recovers_sparse_images_from_half_the_measurements():
    x = blocks(2, 16)
    op = GaussianMatrix((1, 16, 16), 2.0, seed=0)
    y = op.A(x) + 0.02 * torch.randn(2, op.m, generator=torch.Generator().manual_seed(2))
    xh = lasso_wavelet(op, y, x.shape, lam=0.01, iters=150, wavelet="haar")
    aty = op.A_adjoint(y)
    assert psnr(xh, x) > psnr(aty.clamp(-1, 1), x) + 10
    assert psnr(xh, x) > 25


def test_lasso_uses_the_noise_mean_of_a_blend():
    x = blocks(1, 16)
    n = torch.full_like(x, -1.0)  # digits' black background: mean -1
    op = ScaledBlend(0.5, 0.5)
    xh = lasso_wavelet(op, op.measure(x, n), x.shape, noise_mean=-1.0, lam=0.001, iters=60)
    assert psnr(xh, x) > 35


def test_glow_encode_decode_inverse_and_exact_logdet():
    torch.manual_seed(0)
    m = Glow(GlowConfig(channels=1, size=8, levels=2, depth=2, hidden=8))
    for p in m.parameters():  # leave the zero initialisation so couplings do something
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 8, 8)
    z, ld = m.encode(x)
    xr, ld2 = m.decode(z)
    torch.testing.assert_close(xr, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ld, ld2, atol=1e-4, rtol=0)
    J = torch.autograd.functional.jacobian(
        lambda v: m.encode(v.reshape(1, 1, 8, 8))[0][0], x[0].reshape(-1)
    )
    assert float(torch.linalg.slogdet(J.detach())[1]) == pytest.approx(
        float(ld[0].detach()), abs=1e-3
    )
    with pytest.raises(UsageError, match="levels"):
        GlowConfig(channels=1, size=12, levels=3)


@pytest.mark.slow
def test_flow_map_removes_structured_noise():
    """Signal: blocks; noise: vertical stripes of random sign. Both Glows learn in seconds."""
    torch.manual_seed(0)
    xs = blocks(400, 8, seed=3).numpy()
    rng = np.random.default_rng(0)
    stripes = np.zeros((400, 1, 8, 8), np.float32)
    stripes[:, :, :, ::2] = rng.choice([-1.0, 1.0], (400, 1, 1, 1)) * 0.8
    stripes += 0.05 * rng.standard_normal(stripes.shape).astype(np.float32)
    cfg = GlowConfig(channels=1, size=8, levels=1, depth=3, hidden=16)
    gx, _ = train_glow(xs, cfg, steps=120, batch=32, lr=3e-3, seed=0, progress=False)
    gn, _ = train_glow(stripes, cfg, steps=120, batch=32, lr=3e-3, seed=1, progress=False)
    x = torch.from_numpy(xs[:4])
    n = torch.from_numpy(stripes[:4])
    y = Identity().measure(x, n)
    xh = flow_map(gx, gn, Identity(), y, x_shape=x.shape, steps=150, lr=0.05, lam=0.5)
    assert psnr(xh, x) > psnr(y, x) + 3


@pytest.mark.slow
def test_gan_csgm_improves_on_the_noisy_input(tmp_path):
    torch.manual_seed(0)
    xs = blocks(256, 8, seed=4).numpy()
    cfg = GANConfig(channels=1, size=8, latent=8, gen=[32], disc=[32])
    G, log = train_gan(
        xs,
        cfg,
        steps=300,
        batch=32,
        lr=2e-3,
        seed=0,
        checkpoint=tmp_path / "gan.pt",
        progress=False,
    )
    assert (tmp_path / "gan.pt").is_file() and log[-1][0] == 300
    x = torch.from_numpy(xs[:4])
    y = x + 1.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    xh = csgm(G, Identity(), y, 0.0, steps=150, lr=0.05, lam=0.01, restarts=2)
    assert psnr(xh, x) > psnr(y, x) + 5
    with pytest.raises(UsageError, match="size = 4"):
        GANConfig(channels=1, size=16, gen=[8], disc=[8])


def test_cs_task_noise_shape_and_reshaped_prior():
    task = build_task({"kind": "cs", "ratio": 2, "seed": 1}, (1, 8, 8))
    assert task.noise_shape == (1, 4, 8) and task.operator.m == 32
    n = torch.randn(3, 1, 4, 8)
    assert torch.equal(task.to_image(task.to_measurement(n)), n)

    def prior(z, t):  # a score that depends on the image layout: rows scaled differently
        return -z * torch.arange(1, z.shape[2] + 1, dtype=z.dtype).reshape(1, 1, -1, 1)

    flat = task.to_measurement(n)
    out = ReshapedPrior(prior, task.noise_shape)(flat, torch.tensor([0.5]))
    assert torch.equal(out, task.to_measurement(prior(n, None)))
    with pytest.raises(UsageError, match="ratio"):
        build_task({"kind": "cs", "ratio": 3}, (1, 8, 8))
    with pytest.raises(UsageError, match="unknown for task"):
        build_task({"kind": "denoise", "beta": 2}, (1, 8, 8))


TASK_OPERATORS = [  # a task's keys, and the core operator they meant before the one factory
    ({"kind": "blend"}, ScaledBlend(0.5, 0.5)),
    ({"kind": "blend", "beta": 0.3, "alpha": 0.6}, ScaledBlend(0.3, 0.6)),
    ({"kind": "denoise"}, Identity(1.0)),
    ({"kind": "denoise", "alpha": 0.4}, Identity(0.4)),
    ({"kind": "cs", "ratio": 2, "seed": 1, "alpha": 0.5}, GaussianMatrix((1, 8, 8), 2.0, 1, 0.5)),
    ({"kind": "cs"}, GaussianMatrix((1, 8, 8), 2.0, seed=5)),  # build_task's seed
]


@pytest.mark.parametrize("cfg,want", TASK_OPERATORS)
def test_task_operators_come_from_the_core_factory_and_round_trip(cfg, want):
    from usdehaze.core.operators import operator_from_config

    op = build_task(cfg, (1, 8, 8), seed=5).operator
    back = operator_from_config(op.config())
    assert op.config() == want.config() == back.config()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 8, 8, generator=g)
    n = torch.randn(want.out_shape((2, 1, 8, 8)), generator=g)
    for other in (want, back):
        assert torch.equal(other.measure(x, n), op.measure(x, n))


def test_the_shipped_natural_configs_tasks_build():
    """The task keys users write today (configs/natural_*.yaml) still build their operators."""
    from pathlib import Path

    import yaml

    kinds = set()
    for path in sorted((Path(__file__).parents[1] / "configs").glob("natural_*.yaml")):
        task = yaml.safe_load(path.read_text())["task"]
        kinds.add(build_task(task, (1, 8, 8), source=f"{path.name}: task").kind)
    assert kinds == {"blend", "denoise", "cs"}
    with pytest.raises(UsageError, match="key 'kind': expected blend, denoise, cs, got 'inpaint'"):
        build_task({"kind": "inpaint"}, (1, 8, 8))


def test_cs_measurement_adjoint_through_the_task_layout():
    """<A x, n> = <x, Aᵀ n> with n laid out as the noise images the priors see."""
    task = build_task({"kind": "cs", "ratio": 2}, (1, 8, 8))
    g = torch.Generator().manual_seed(0)
    x, n = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, *task.noise_shape, generator=g)
    lhs = (task.operator.A(x) * task.to_measurement(n)).sum()
    rhs = (x * task.operator.A_adjoint(task.to_measurement(n))).sum()
    assert math.isclose(float(lhs), float(rhs), rel_tol=1e-4)


def _gaussian_context(task_cfg):
    """Smooth Gaussian signal, Gaussian noise with a mean far from zero; analytic priors."""
    from usdehaze.core.priors import GaussianPrior
    from usdehaze.core.sde import VESDE
    from usdehaze.natural.methods import Context

    task = build_task(task_cfg, (1, 4, 4), seed=0)
    sde = VESDE(25.0)
    idx = torch.arange(16, dtype=torch.float64)
    r, c = idx // 4, idx % 4
    dist2 = (r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2
    cov_x = 0.1 * torch.exp(-dist2 / 4.0)
    dn = math.prod(task.noise_shape)
    mean_n, cov_n = (
        torch.full((dn,), -0.5, dtype=torch.float64),
        0.09 * torch.eye(dn, dtype=torch.float64),
    )
    ctx = Context(task, sde, torch.device("cpu"), mean_n.float().reshape(1, *task.noise_shape), 0.3)
    ctx.models["prior_signal"] = GaussianPrior(torch.zeros(16), cov_x, sde)
    ctx.models["prior_noise"] = GaussianPrior(mean_n, cov_n, sde)
    g = torch.Generator().manual_seed(0)
    L = torch.linalg.cholesky(cov_x + 1e-9 * torch.eye(16, dtype=torch.float64))
    x = (torch.randn(6, 16, generator=g, dtype=torch.float64) @ L.T).float().reshape(6, 1, 4, 4)
    n = (mean_n + 0.3 * torch.randn(6, dn, generator=g, dtype=torch.float64)).float()
    y = task.operator.measure(x, task.to_measurement(n.reshape(6, *task.noise_shape)))
    return ctx, x, y


@pytest.mark.parametrize("task_cfg", [{"kind": "blend"}, {"kind": "cs", "ratio": 2}])
def test_diffusion_methods_beat_the_naive_estimate_with_gaussian_priors(task_cfg):
    from usdehaze.natural.methods import RUNNERS

    ctx, x, y = _gaussian_context(task_cfg)
    op = ctx.task.operator
    naive = op.A_adjoint(y - op.noise_scale * ctx.mean_meas)  # pseudo-inverse direction
    gain = (op.A(naive) * y).sum() / (op.A(naive) ** 2).sum()
    base = psnr((naive * gain).clamp(-1, 1), x)
    for name, cfg in (
        ("joint", {"steps": 60}),
        ("pigdm", {"steps": 60}),
        ("dps", {"steps": 60, "lam": 0.5}),
    ):
        xh = RUNNERS[name](ctx, y, cfg, 0)
        assert xh.shape == x.shape
        assert psnr(xh, x) > base + 1, name  # one posterior sample each
