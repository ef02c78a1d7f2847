"""Log compression conventions and inverses."""

import numpy as np
import pytest

from usdehaze.ultrasound.logcomp import (
    db_to_envelope,
    db_to_unit,
    mu_law,
    mu_law_inverse,
    to_db,
    unit_to_db,
)


def test_to_db_per_frame_and_global():
    iq = np.ones((2, 3, 4), np.complex64)
    iq[0] *= 10
    iq[0, 0, 0] = 100  # frame 0 max
    db = to_db(iq)
    assert db[0, 0, 0] == 0 and np.isclose(db[0, 1, 1], -20) and np.allclose(db[1], 0)
    g = to_db(iq, normalise="global")
    assert np.isclose(g[1, 0, 0], -40)
    assert to_db(np.zeros((1, 2, 2), np.complex64)).min() == -60  # clipped, no -inf or NaN
    assert np.isclose(to_db(iq, normalise=1000.0)[0, 0, 0], -20)


def test_unit_mapping_round_trip():
    db = np.linspace(-60, 0, 13)
    u = db_to_unit(db)
    assert u[0] == -1 and u[-1] == 1
    np.testing.assert_allclose(unit_to_db(u), db, atol=1e-5)
    assert unit_to_db(np.array([2.0, -3.0])).tolist() == [0, -60]


@pytest.mark.parametrize("mu", [255.0, 10.0])
def test_mu_law_round_trip(mu):
    x = np.linspace(-1, 1, 101)
    np.testing.assert_allclose(mu_law_inverse(mu_law(x, mu), mu), x, atol=1e-12)
    c = x + 0.5j * x[::-1]
    np.testing.assert_allclose(mu_law_inverse(mu_law(c, mu), mu), c, atol=1e-12)
    assert mu_law(np.array([1.0]), mu)[0] == pytest.approx(1.0)


def test_envelope_levels_round_trip_and_magnitude_input():
    rng = np.random.default_rng(0)
    iq = (rng.normal(size=(3, 8, 9)) + 1j * rng.normal(size=(3, 8, 9))) * np.array([1, 5, 50])[
        :, None, None
    ]
    db = to_db(iq, dynamic_range=200)
    assert np.allclose(db.reshape(3, -1).max(axis=1), 0)  # per frame: each max is 0 dB
    env = np.abs(iq) / np.abs(iq).reshape(3, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(db_to_envelope(db), env, rtol=1e-5)
    np.testing.assert_array_equal(to_db(np.abs(iq).astype(np.float32), 200), db)  # |IQ| given
    clipped = to_db(iq, dynamic_range=10)
    assert clipped.min() == -10 and np.array_equal(clipped, np.maximum(db, -10))
    # μ-law is odd, monotonic and maps [-1, 1] onto itself
    y = mu_law(np.linspace(-1, 1, 201))
    assert np.all(np.diff(y) > 0) and np.allclose(y, -y[::-1]) and y[0] == -1


def test_iq_mulaw_channels_round_trip():
    from usdehaze.ultrasound.logcomp import iq_reference, iq_to_mulaw, mulaw_to_iq

    rng = np.random.default_rng(5)
    iq = (rng.normal(size=(2, 6, 5)) + 1j * rng.normal(size=(2, 6, 5))) * [[[1.0]], [[50.0]]]
    ref = iq_reference(iq)
    assert ref.shape == (2, 1, 1)
    assert np.allclose(ref[:, 0, 0], [np.max(np.abs([iq[k].real, iq[k].imag])) for k in range(2)])
    u = iq_to_mulaw(iq, ref)
    assert u.shape == (2, 2, 6, 5) and u.dtype == np.float32 and np.abs(u).max() == 1.0
    np.testing.assert_allclose(mulaw_to_iq(u, ref), iq, rtol=1e-4, atol=1e-4 * 50)
    assert iq_to_mulaw(iq * 10, ref).max() == 1.0  # beyond the reference: clipped, not wrapped
    np.testing.assert_allclose(  # per-frame references as 0 dB
        to_db(iq, normalise=np.abs(iq).reshape(2, -1).max(axis=1)[:, None, None]),
        to_db(iq),
        atol=1e-5,
    )


@pytest.mark.parametrize("mu", [255.0, 10.0])
def test_mu_law_on_torch_tensors_is_the_numpy_one(mu):
    """One μ-law for numpy and torch: the same values, and tensors stay differentiable."""
    import torch

    x = np.linspace(-1, 1, 201)
    t = torch.tensor(x, requires_grad=True)
    y = mu_law(t, mu)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(y.detach().numpy(), mu_law(x, mu), rtol=1e-14, atol=1e-15)
    back = mu_law_inverse(y, mu)
    np.testing.assert_allclose(back.detach().numpy(), mu_law_inverse(mu_law(x, mu), mu), atol=1e-14)
    back.sum().backward()
    # C⁻¹(C(x)) = x (but at exactly 0, where sign(x) carries the gradient 0, as it always did)
    np.testing.assert_allclose(t.grad.numpy()[x != 0], 1.0, atol=1e-9)
