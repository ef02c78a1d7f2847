"""Out-of-distribution score: the Tweedie consistency check of a prior on data, the ultrasound
score of scans with the shipped priors, and its warning in ``usdehaze run`` and ``run-many``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from usdehaze.core.priors import GaussianPrior, denoising_check
from usdehaze.core.sde import VESDE, VPSDE

sys.path.insert(0, str(Path(__file__).parent))
from gaussian_truth import random_cov  # noqa: E402


@pytest.mark.parametrize("sde", [VESDE(), VPSDE()])
def test_denoising_check_is_one_on_the_priors_own_data_only(sde):
    """Exact Gaussian prior: ⟨ε̂, ε⟩/‖ε̂‖² ≈ 1 on its own data; data at twice or half the scale
    pulls it below or above 1, although half-scale data has the *lower* denoising error."""
    cov = random_cov(16, 0, scale=0.1)
    prior = GaussianPrior(torch.zeros(16), cov, sde)
    z = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = (z @ torch.linalg.cholesky(cov).T).float().reshape(2000, 1, 4, 4)
    sigmas = [0.05, 0.1, 0.2]
    same, wide, narrow = (denoising_check(prior, s * x, sigmas) for s in (1.0, 2.0, 0.5))
    assert all(abs(c.log_ratio) < 0.05 for c in same)
    assert all(c.log_ratio < -0.5 for c in wide) and all(c.log_ratio > 0.4 for c in narrow)
    assert all(n.error < s.error for n, s in zip(narrow, same))  # why the error alone is no test
    again = denoising_check(prior, x, sigmas)
    assert again == same  # seeded: the same noise every time
    assert denoising_check(prior, x, sigmas, seed=1) != same


class _Blind:
    """A prior whose score is always zero: it explains nothing."""

    sde = VESDE()

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x_t)


def test_denoising_check_of_a_blind_prior_is_infinitely_off():
    (c,) = denoising_check(_Blind(), torch.zeros(2, 1, 4, 4), [0.1])
    assert c.ratio == 0.0 and math.isinf(c.log_ratio) and c.error == pytest.approx(1.0, abs=0.2)
