"""Log compression conventions and inverses."""

import numpy as np
import pytest

from usdehaze.ultrasound.logcomp import db_to_unit, mu_law, mu_law_inverse, to_db, unit_to_db


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
