"""Readers and writer: round trips through each format's own library, errors, read-only inputs."""

import hashlib
import os

import h5py
import numpy as np
import pytest

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io import load_scan, write_scan
from usdehaze.ultrasound.simulate import polar_grid


def _iq(frames=3, shape=(12, 8), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(frames, *shape)) + 1j * rng.normal(size=(frames, *shape))).astype(
        np.complex64
    )


def _digest(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def test_zea_round_trip_with_extras(tmp_path):
    x, z, axes = polar_grid((12, 8))
    iq, truth = _iq(), _iq(seed=1)
    p = write_scan(
        tmp_path / "s.h5",
        iq,
        x,
        z,
        grid="polar",
        axes=axes,
        probe="P4-2",
        center_frequency=3e6,
        sound_speed=1540,
        extras={"tissue": truth},
    )
    before = _digest(p)
    with load_scan(p) as s:
        assert (s.layout, s.n_frames, s.shape, s.grid, s.probe) == (
            "zea",
            3,
            (12, 8),
            "polar",
            "P4-2",
        )
        np.testing.assert_array_equal(s.frames(1, 3), iq[1:3])
        np.testing.assert_allclose(s.x, x, atol=1e-7)
        np.testing.assert_allclose(s.axes["theta"], axes["theta"])
        assert s.center_frequency == 3e6 and s.sound_speed == 1540
    with load_scan(p, key="tissue") as s:
        np.testing.assert_array_equal(s.frames(), truth)
    assert _digest(p) == before  # read-only


def test_zea_opens_our_file(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import zea

    x, z, axes = polar_grid((12, 8))
    iq = _iq()
    p = write_scan(tmp_path / "s.h5", iq, x, z, axes=axes)
    with zea.File(p) as f:
        vals = f.tracks[0].data.beamformed_data.values[:]
        coords = f.tracks[0].data.beamformed_data.coordinates[:]
    np.testing.assert_array_equal(vals[..., 0] + 1j * vals[..., 1], iq)
    np.testing.assert_allclose(coords[..., 0], x, atol=1e-7)


def test_reads_files_written_by_zea(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from zea.data.file import File

    x, z, _ = polar_grid((12, 8))
    iq = _iq()
    coords = np.zeros((12, 8, 3), np.float32)
    coords[..., 0], coords[..., 2] = x, z
    vals = np.stack([iq.real, iq.imag], -1).astype(np.float32)
    File.create(
        tmp_path / "z.h5",
        data={"beamformed_data": {"values": vals, "coordinates": coords}},
        probe={"name": "X5-1"},
        overwrite=True,
        warn_missing_optional_fields=False,
    )
    with load_scan(tmp_path / "z.h5") as s:  # Blosc-compressed by zea's defaults
        assert s.layout == "zea" and s.grid == "polar" and s.probe == "X5-1"
        np.testing.assert_array_equal(s.frames(), iq)
        np.testing.assert_allclose(s.axes["r"], np.hypot(x, z)[:, 0], rtol=1e-5)
    File.create(
        tmp_path / "e.h5",
        data={"envelope_data": {"values": np.abs(iq), "coordinates": coords}},
        overwrite=True,
        warn_missing_optional_fields=False,
    )
    with load_scan(tmp_path / "e.h5") as s:
        assert s.magnitude_only
        np.testing.assert_allclose(s.frames().real, np.abs(iq), rtol=1e-6)


@pytest.mark.parametrize("n_ch", [1, 2])
def test_legacy_layout(tmp_path, n_ch):
    iq = _iq()
    p = tmp_path / "l.h5"
    with h5py.File(p, "w") as f:
        f["data/beamformed_data"] = np.stack([iq.real, iq.imag], -1)[..., :n_ch].astype(np.float32)
        f["scan/x_axis"] = np.linspace(-0.01, 0.01, 8)
        f["scan/z_axis"] = np.linspace(0.0, 0.03, 12)
        f["scan/center_frequency"] = 5e6
        f.attrs["probe"] = "L11-4v"
    with load_scan(p) as s:
        assert s.layout == "zea-legacy" and s.probe == "L11-4v" and s.center_frequency == 5e6
        got = s.frames()
        if n_ch == 2:
            np.testing.assert_array_equal(got, iq)
        else:  # RF: analytic signal along depth keeps the real part
            np.testing.assert_allclose(got.real, iq.real, atol=1e-5)
        assert s.grid == "cartesian" and np.isclose(s.z[-1, 0], 0.03)


@pytest.mark.parametrize("kind", ["linear", "sector"])
def test_uff_pixel_order_round_trip(tmp_path, kind):
    import pyuff_ustb as pyuff

    nz, nx, F = 7, 5, 2
    if kind == "linear":
        scan = pyuff.LinearScan(
            x_axis=np.linspace(-2e-3, 2e-3, nx), z_axis=np.linspace(1e-2, 3e-2, nz)
        )
    else:
        origin = pyuff.Point(distance=0.0, azimuth=0.0, elevation=0.0)
        scan = pyuff.SectorScan(
            azimuth_axis=np.linspace(-0.4, 0.4, nx),
            depth_axis=np.linspace(1e-2, 3e-2, nz),
            origin=origin,
        )
    # value encodes the physical position of each pixel: 1000·z + x (mm)
    px_x, px_z = np.asarray(scan.x).reshape(-1), np.asarray(scan.z).reshape(-1)
    value = 1000 * px_z * 1e3 + px_x * 1e3
    data = (value[:, None, None, None] + 1j * np.arange(F)[None, None, None, :]).astype(
        np.complex64
    )
    pyuff.BeamformedData(scan=scan, data=data).write(
        str(tmp_path / "u.uff"), "beamformed_data", overwrite=True
    )
    with load_scan(tmp_path / "u.uff") as s:
        assert s.layout == "uff" and s.n_frames == F and s.shape == (nz, nx)
        got = s.frames()
        np.testing.assert_allclose(got[0].real, 1000 * s.z * 1e3 + s.x * 1e3, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(got[1].imag, 1.0)
        assert s.grid == ("cartesian" if kind == "linear" else "polar")


def test_plain_hdf5_and_zarr(tmp_path):
    import zarr

    iq = _iq()
    p = tmp_path / "p.h5"
    with h5py.File(p, "w") as f:
        f["iq"] = iq
        f["other"] = np.zeros(3)
    with load_scan(p) as s:
        assert s.layout == "plain-hdf5" and s.key == "iq"
        np.testing.assert_array_equal(s.frames(), iq)
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"], f["b"] = iq, np.stack([iq.real, iq.imag], -1)
    with pytest.raises(UsageError, match="several fit"):
        load_scan(tmp_path / "two.h5")
    with load_scan(tmp_path / "two.h5", key="b") as s:
        np.testing.assert_allclose(s.frames(), iq)
    z = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    z.create_array("frames", shape=(3, 12, 8, 2), dtype="float32")[:] = np.stack(
        [iq.real, iq.imag], -1
    )
    with load_scan(tmp_path / "p.zarr") as s:
        assert s.layout == "plain-zarr"
        np.testing.assert_allclose(s.frames(0, 2), iq[:2])


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_scan(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(UsageError, match="not an HDF5 file"):
        load_scan(junk)
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["labels"] = np.arange(4)
    with pytest.raises(UsageError, match=r"no known layout.*tried zea, zea legacy, UFF.*labels"):
        load_scan(tmp_path / "none.h5")
    iq = _iq()
    iq[1, 2, 3] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["iq"] = iq
    with load_scan(tmp_path / "nan.h5") as s:
        s.frames(0, 1)
        with pytest.raises(UsageError, match="key 'iq': contains NaN"):
            s.frames(1, 2)
        with pytest.raises(UsageError, match="out of range"):
            s.frames(2, 5)
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("iq", shape=(0, 4, 4), dtype=np.complex64)
    with pytest.raises(UsageError, match="empty"):
        load_scan(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "rank.h5", "w") as f:
        f["data/beamformed_data"] = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(UsageError, match="expected \\(frames, z, x, n_ch\\)"):
        load_scan(tmp_path / "rank.h5")
