"""What a joint sample leaves of the input unexplained (usdehaze.core.residual): handed back to
tissue and haze by their local power, so that they add up to the input exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from usdehaze.cli._app import run_app
from usdehaze.core.residual import split_residual
from usdehaze.core.sampler import SampleResult
from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.logcomp import iq_to_mulaw, to_db
from usdehaze.ultrasound.models.iq import IQ


def _field(rng: np.random.Generator, shape: tuple[int, ...], power: float) -> np.ndarray:
    return (
        np.sqrt(power / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    ).astype(np.complex64)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    pa=st.floats(1e-4, 1e3),
    pb=st.floats(1e-4, 1e3),
    window=st.integers(1, 9),
)
def test_the_parts_add_up_to_the_input_and_move_no_further_than_the_residual(seed, pa, pb, window):
    rng = np.random.default_rng(seed)
    shape = (2, 12, 10)
    y, a, b = _field(rng, shape, pa + pb), _field(rng, shape, pa), _field(rng, shape, pb)
    a2, b2 = split_residual(y, a, b, window)
    assert a2.dtype == a.dtype and b2.dtype == b.dtype
    scale = np.abs(y).max() + np.abs(a).max() + np.abs(b).max()
    np.testing.assert_allclose(a2 + b2, y, atol=1e-5 * scale)
    r = np.abs(y - a - b)
    assert np.all(np.abs(a2 - a) <= r * (1 + 1e-4) + 1e-6 * scale)
    assert np.all(np.abs(b2 - b) <= r * (1 + 1e-4) + 1e-6 * scale)


def test_it_splits_as_the_gaussian_posterior_mean_by_local_power():
    """Fields of constant magnitude 2 and 1 (powers 4 and 1, any phases): the signal takes
    4/5 of the residual, the noise 1/5, everywhere."""
    rng = np.random.default_rng(3)
    phase = lambda: np.exp(2j * np.pi * rng.random((16, 16)))  # noqa: E731
    a, b, y = 2 * phase(), 1 * phase(), 3 * phase()
    a2, b2 = split_residual(y, a, b)
    r = y - a - b
    np.testing.assert_allclose(a2 - a, 0.8 * r, atol=1e-6)
    np.testing.assert_allclose(b2 - b, 0.2 * r, atol=1e-6)


def test_where_one_part_is_absent_the_other_takes_the_input():
    """No haze in the lower half (beyond the window's reach): the tissue there is the input
    itself, whatever the sampler made of it; a pixel with both parts zero gives it to tissue."""
    rng = np.random.default_rng(4)
    y, a = _field(rng, (20, 8), 1.0), _field(rng, (20, 8), 0.5)
    b = _field(rng, (20, 8), 0.3)
    b[10:] = 0
    a2, b2 = split_residual(y, a, b)
    np.testing.assert_allclose(a2[13:], y[13:], atol=1e-6)
    assert np.all(b2[13:] == 0)
    a2, _ = split_residual(y, np.zeros_like(y), np.zeros_like(y))
    np.testing.assert_allclose(a2, y, atol=1e-6)


def test_it_refuses_parts_of_other_shapes_and_an_empty_window():
    z = np.zeros((4, 4))
    with pytest.raises(ValueError, match="shapes"):
        split_residual(z, z, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="window"):
        split_residual(z, z, z, 0)


@pytest.mark.parametrize("residual", ["split", "keep"])
def test_the_iq_model_decodes_each_draw_with_its_residual_handed_back_or_kept(residual):
    """IQ.decode on known draws (tissue and haze that miss the input): split gives the dB of
    split_residual's parts, keep the dB of the draws as they are."""
    rng = np.random.default_rng(5)
    iq = _field(rng, (1, 16, 12), 1.0)
    cfg = DehazeConfig(gamma=0.8, residual=residual, samples=2)
    model = IQ(cfg)
    m = model.encode(iq, "cpu")
    scale, ref = m.context["scale"], m.context["ref"]
    tissue = [0.7 * iq, 0.5 * iq]  # two draws, each leaving part of the input out
    haze = [_field(rng, iq.shape, 0.02), _field(rng, iq.shape, 0.05)]
    draws = lambda parts: torch.from_numpy(np.stack([iq_to_mulaw(p, scale) for p in parts], 1))  # noqa: E731
    res = SampleResult(
        x=torch.zeros(1),
        n=torch.zeros(1),
        x_samples=draws(tissue),
        n_samples=draws([h / 0.8 for h in haze]),
    )
    out = model.decode(res, m)
    want_t, want_h = [], []
    for t, h in zip(tissue, haze):
        if residual == "split":
            t, h = split_residual(iq, t, h)
        want_t.append(to_db(t, 60, ref))
        want_h.append(to_db(h, 60, ref))
    np.testing.assert_allclose(out["tissue"], np.mean(want_t, 0), atol=0.02)
    np.testing.assert_allclose(out["haze"], np.mean(want_h, 0), atol=0.05)
    assert "tissue_std" in out and "haze_std" in out


def test_an_unknown_residual_is_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "o.h5"
    capsys.readouterr()
    assert run_app(["run", "--demo", "-o", str(out), "--residual", "drop", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "residual 'drop': expected one of split, keep" in err[0], err
    assert not out.exists()
