"""Result files: the input's masks round-trip; a NaN/Inf estimate is never kept as data."""

from __future__ import annotations

import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.ultrasound.results import ResultWriter, load_result

SHAPE = (12, 10)


def _frame(v=-10.0):
    return {k: np.full(SHAPE, v, np.float32) for k in ("input", "tissue", "haze")}


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_masks_round_trip(tmp_path, suffix):
    x, z = np.meshgrid(np.arange(SHAPE[1]) * 1e-4, np.arange(SHAPE[0]) * 1e-4)
    sector = np.zeros(SHAPE, bool)
    sector[2:, 1:-1] = True
    overlay = np.zeros(SHAPE, bool)
    overlay[0, :4] = True
    path = tmp_path / f"r{suffix}"
    with ResultWriter(path, 1, SHAPE, x=x, z=z, masks={"sector": sector, "overlay": overlay}) as w:
        w.write(0, **_frame())
    with load_result(path) as r:
        assert set(r.masks) == {"sector", "overlay"}
        assert np.array_equal(r.masks["sector"], sector)
        assert np.array_equal(r.masks["overlay"], overlay)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_estimate_stops_the_run_and_keeps_the_finished_frames(tmp_path, bad):
    x, z = np.meshgrid(np.arange(SHAPE[1]) * 1e-4, np.arange(SHAPE[0]) * 1e-4)
    path = tmp_path / "r.h5"
    with pytest.raises(UsageError, match="frame 1: the tissue estimate holds NaN or Inf"):
        with ResultWriter(path, 3, SHAPE, x=x, z=z) as w:
            w.write(0, **_frame())
            f = _frame()
            f["tissue"][3, 3] = bad
            w.write(1, **f)
    with load_result(path) as r:
        assert r.attrs["complete"] is False or r.attrs["complete"] == 0
        assert r.n_frames == 1
        assert np.isfinite(r.frames("tissue")).all()
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]  # no temporary left
