"""Closed-form Gaussian posteriors for sampler tests: x ~ N(mx, Sx), n ~ N(mn, Sn), y = A x + α n."""

from __future__ import annotations

import torch


def dense(op, shape):
    d = int(torch.tensor(shape).prod())
    eye = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return op.A(eye).reshape(d, -1).T


def joint_posterior(A, alpha, mx, Sx, mn, Sn, y):
    """Mean and covariance of (x, n) | y for a noise-free linear observation y = A x + α n."""
    dx, dn = mx.numel(), mn.numel()
    H = torch.cat([A, alpha * torch.eye(dn, dtype=torch.float64)], dim=1)
    m = torch.cat([mx, mn])
    S = torch.block_diag(Sx, Sn)
    G = S @ H.T @ torch.linalg.inv(H @ S @ H.T)
    mean = m + G @ (y - H @ m)
    cov = S - G @ H @ S
    return mean[:dx], mean[dx:], cov[:dx, :dx], cov[dx:, dx:]


def random_cov(d, seed, scale=1.0, floor=0.2):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=g, dtype=torch.float64)
    return scale * (M @ M.T / d + floor * torch.eye(d, dtype=torch.float64))
