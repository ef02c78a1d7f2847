"""Result files: round trips in HDF5 and zarr, and interrupted runs that leave valid files."""

import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.ultrasound.results import ResultWriter, is_result_file, load_result

SHAPE = (6, 5)


def _frames(i):
    base = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    return {"input": base + i, "tissue": base - i, "haze": -base * i}


def _geometry():
    z, x = np.meshgrid(
        np.linspace(0.01, 0.1, SHAPE[0]), np.linspace(-0.02, 0.02, SHAPE[1]), indexing="ij"
    )
    return x, z


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_round_trip(tmp_path, suffix):
    x, z = _geometry()
    out = tmp_path / f"r{suffix}"
    with ResultWriter(
        out,
        3,
        SHAPE,
        x=x,
        z=z,
        grid="polar",
        # one angle per column, one radius per row
        axes={"theta": np.linspace(0.1, 0.2, SHAPE[1]), "r": np.linspace(0.01, 0.1, SHAPE[0])},
        attrs={"seed": 7, "config": {"steps": 10}},
    ) as w:
        for i in range(3):
            w.write(i, **_frames(i))
    assert is_result_file(out)
    with load_result(out) as r:
        assert r.n_frames == 3 and r.grid == "polar"
        for i in range(3):
            for k, v in _frames(i).items():
                np.testing.assert_array_equal(r.frames(k, i, i + 1)[0], v)
        np.testing.assert_allclose(r.x, x, rtol=1e-6)
        assert r.attrs["seed"] == 7 and r.attrs["config"] == {"steps": 10}
        assert r.attrs["complete"] is True or r.attrs["complete"] == 1
        np.testing.assert_allclose(r.axes["theta"], np.linspace(0.1, 0.2, SHAPE[1]))
        with pytest.raises(UsageError, match="key 'tissue_std'"):
            r.frames("tissue_std")


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_interrupted_run_keeps_finished_frames(tmp_path, suffix):
    x, z = _geometry()
    out = tmp_path / f"r{suffix}"
    with pytest.raises(KeyboardInterrupt):
        with ResultWriter(out, 5, SHAPE, x=x, z=z, attrs={"source_frames": [4, 5, 6, 7, 8]}) as w:
            w.write(0, **_frames(0))
            w.write(1, **_frames(1))
            raise KeyboardInterrupt
    with load_result(out) as r:
        assert r.n_frames == 2 and not r.attrs["complete"] and r.attrs["frames_done"] == 2
        assert list(r.attrs["source_frames"]) == [4, 5]  # those it holds (issue 32)
        assert list(r.attrs["source_frames_requested"]) == [4, 5, 6, 7, 8]
        np.testing.assert_array_equal(r.frames("haze", 1, 2)[0], _frames(1)["haze"])
    # no temp files left behind (a zarr store's lock file, taken by every writer, stays)
    assert [p.name for p in tmp_path.iterdir() if p.name != f".{out.name}.lock"] == [out.name]


def test_interrupt_before_any_frame_keeps_old_file(tmp_path):
    x, z = _geometry()
    out = tmp_path / "r.h5"
    out.write_bytes(b"old contents")
    with pytest.raises(KeyboardInterrupt):
        with ResultWriter(out, 5, SHAPE, x=x, z=z):
            raise KeyboardInterrupt
    assert out.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]


def test_not_a_result_file(tmp_path):
    p = tmp_path / "x.h5"
    p.write_bytes(b"junk")
    assert not is_result_file(p)
    with pytest.raises(UsageError, match="not a usdehaze result file"):
        load_result(p)


def test_hdf5_result_opens_in_zea(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import zea

    x, z = _geometry()
    out = tmp_path / "r.h5"
    with ResultWriter(out, 2, SHAPE, x=x, z=z) as w:
        for i in range(2):
            w.write(i, **{k: -np.abs(v) for k, v in _frames(i).items()})
    with zea.File(out) as f:
        img = f.tracks[0].data.image.values[:]
    np.testing.assert_array_equal(img[1], -np.abs(_frames(1)["tissue"]))
