"""Readers across layouts: reported keys reopen, sector apex, zea parameters, UFF group names,
legacy limits, inputs untouched, and `usdehaze info` on bad files."""

import hashlib
import json
import os

import h5py
import numpy as np
import pytest

from usdehaze.cli._app import run_app
from usdehaze.errors import UsageError
from usdehaze.ultrasound.io import load_scan, write_scan
from usdehaze.ultrasound.simulate import polar_grid

os.environ.setdefault("KERAS_BACKEND", "torch")


def _iq(frames=3, shape=(12, 8), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(frames, *shape)) + 1j * rng.normal(size=(frames, *shape))).astype(
        np.complex64
    )


def _zea(tmp_path):
    x, z, axes = polar_grid((12, 8))
    iq = _iq()
    return write_scan(tmp_path / "s.h5", iq, x, z, axes=axes, extras={"tissue": 2 * iq}), iq


def _legacy(tmp_path):
    iq, p = _iq(), tmp_path / "l.h5"
    with h5py.File(p, "w") as f:
        f["data/beamformed_data"] = np.stack([iq.real, iq.imag], -1).astype(np.float32)
    return p, iq


def _uff(tmp_path, name="b_data"):
    import pyuff_ustb as pyuff

    scan = pyuff.LinearScan(x_axis=np.linspace(-2e-3, 2e-3, 8), z_axis=np.linspace(0.01, 0.03, 12))
    iq = _iq()
    # pyuff-ustb linear scans: depth runs fastest in the pixel axis
    px = iq.transpose(2, 1, 0).reshape(-1, 3)  # (x·z, frames), z fastest
    p = tmp_path / "u.uff"
    pyuff.BeamformedData(scan=scan, data=px[:, None, None, :]).write(str(p), name, overwrite=True)
    return p, iq


def _plain(tmp_path):
    iq, p = _iq(), tmp_path / "p.h5"
    with h5py.File(p, "w") as f:
        f["frames/iq"] = iq
    return p, iq


def _zarr(tmp_path):
    import zarr

    iq, p = _iq(), tmp_path / "p.zarr"
    g = zarr.open_group(str(p), mode="w")
    g.create_array("iq", shape=iq.shape, dtype="complex64")[:] = iq
    return p, iq


BUILDERS = {"zea": _zea, "legacy": _legacy, "uff": _uff, "plain": _plain, "zarr": _zarr}


def _snapshot(p):
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return {
        str(q): (hashlib.sha256(q.read_bytes()).hexdigest(), q.stat().st_mtime_ns)
        for q in files
        if q.is_file()
    }


@pytest.mark.parametrize("layout", sorted(BUILDERS))
def test_reported_key_reopens_the_same_data_and_input_untouched(tmp_path, layout):
    p, iq = BUILDERS[layout](tmp_path)
    before = _snapshot(p)
    with load_scan(p) as s:
        first = s.frames()
        key = s.key
    np.testing.assert_allclose(first, iq, rtol=1e-6, atol=1e-6)
    with load_scan(p, key=key) as s:  # the key `usdehaze info` prints is a valid --key
        assert s.key == key
        np.testing.assert_array_equal(s.frames(), first)
    assert _snapshot(p) == before


def test_zea_extra_by_full_path(tmp_path):
    p, iq = _zea(tmp_path)
    for key in ("tissue", "usdehaze/extras/tissue", "/usdehaze/extras/tissue/values"):
        with load_scan(p, key=key) as s:
            np.testing.assert_array_equal(s.frames(), 2 * iq)
    with load_scan(p, key="tracks/track_0/data/beamformed_data") as s:
        np.testing.assert_array_equal(s.frames(), iq)


@pytest.mark.parametrize("apex", [0.0, 0.02])
def test_sector_apex_recovered_from_zea_coordinates(tmp_path, apex):
    from zea.beamform.pixelgrid import polar_pixel_grid
    from zea.data.file import File

    nz, nx = 12, 8
    coords = polar_pixel_grid((-0.5, 0.5), (0.005, 0.06), nz, nx, distance_to_apex=apex)
    iq = _iq(2, (nz, nx))
    vals = np.stack([iq.real, iq.imag], -1).astype(np.float32)
    File.create(
        tmp_path / "z.h5",
        data={"beamformed_data": {"values": vals, "coordinates": coords.astype(np.float32)}},
        overwrite=True,
        warn_missing_optional_fields=False,
    )
    with load_scan(tmp_path / "z.h5") as s:
        assert s.grid == "polar"
        np.testing.assert_allclose(s.axes["origin"], [0.0, -apex], atol=1e-6)
        np.testing.assert_allclose(s.axes["r"], np.linspace(0.005, 0.06, nz) + apex, atol=1e-6)
        np.testing.assert_allclose(s.axes["theta"], np.linspace(-0.5, 0.5, nx), atol=1e-5)
        # the axes describe the same pixels as x, z
        o = s.axes["origin"]
        rr, tt = np.meshgrid(s.axes["r"], s.axes["theta"], indexing="ij")
        np.testing.assert_allclose(o[0] + rr * np.sin(tt), s.x, atol=1e-6)
        np.testing.assert_allclose(o[1] + rr * np.cos(tt), s.z, atol=1e-6)


def test_zea_parameters_from_track_scan_and_probe(tmp_path):
    x, z, axes = polar_grid((12, 8))
    p = write_scan(tmp_path / "s.h5", _iq(), x, z, axes=axes, probe="S5-1")
    with h5py.File(p, "a") as f:  # where zea itself keeps them
        f["tracks/track_0/scan/center_frequency"] = np.full(4, 2.5e6, np.float32)  # per transmit
        f["tracks/track_0/scan/sound_speed"] = np.float32(1480.0)
    with load_scan(p) as s:
        assert (s.probe, s.center_frequency, s.sound_speed) == ("S5-1", 2.5e6, 1480.0)
    with h5py.File(p, "a") as f:
        del f["tracks/track_0/scan/center_frequency"]
        f["probe/probe_center_frequency"] = np.float32(3e6)
    with load_scan(p) as s:
        assert s.center_frequency == 3e6
    p2 = write_scan(tmp_path / "t.h5", _iq(), x, z, axes=axes, center_frequency=4e6)
    with h5py.File(p2, "a") as f:  # usdehaze's own value wins
        f["tracks/track_0/scan/center_frequency"] = np.float32(1e6)
    with load_scan(p2) as s:
        assert s.center_frequency == 4e6


def test_zea_coordinates_must_match_values(tmp_path):
    p, _ = _zea(tmp_path)
    with h5py.File(p, "a") as f:
        del f["tracks/track_0/data/beamformed_data/coordinates"]
        f["tracks/track_0/data/beamformed_data/coordinates"] = np.zeros((8, 12, 3), np.float32)
    with pytest.raises(UsageError, match=r"coordinates': expected \(12, 8, 3\)"):
        load_scan(p)


def test_uff_any_group_name_and_choice(tmp_path):
    p, iq = _uff(tmp_path, name="b_data")
    with load_scan(p) as s:
        assert s.layout == "uff" and s.key == "b_data/data"
        np.testing.assert_allclose(s.frames(), iq, rtol=1e-6)
    import pyuff_ustb as pyuff

    with h5py.File(p, "r") as f:  # a second beamformed group in the same file
        scan_again = pyuff.LinearScan(
            x_axis=f["b_data/scan/x_axis"][()].ravel(), z_axis=f["b_data/scan/z_axis"][()].ravel()
        )
    px = (3 * iq).transpose(2, 1, 0).reshape(-1, 3)
    pyuff.BeamformedData(scan=scan_again, data=px[:, None, None, :]).write(str(p), "b_das")
    with pytest.raises(UsageError, match=r"several UFF beamformed data groups.*--key"):
        load_scan(p)
    with load_scan(p, key="b_das") as s:
        np.testing.assert_allclose(s.frames(), 3 * iq, rtol=1e-6)


def test_legacy_limits_and_axis_lengths(tmp_path):
    p, iq = _legacy(tmp_path)
    with h5py.File(p, "a") as f:
        f["scan/xlims"] = np.array([-0.02, 0.02])
        f["scan/zlims"] = np.array([0.0, 0.11])
    with load_scan(p) as s:
        np.testing.assert_allclose(s.axes["x"], np.linspace(-0.02, 0.02, 8))
        np.testing.assert_allclose(s.z[:, 3], np.linspace(0.0, 0.11, 12))
        assert s.extent_mm == pytest.approx((-20.0, 20.0, 0.0, 110.0))
    with h5py.File(p, "a") as f:
        f["scan/x_axis"] = np.linspace(-0.01, 0.01, 9)
        f["scan/z_axis"] = np.linspace(0.0, 0.03, 12)
    with pytest.raises(UsageError, match=r"key 'scan/x_axis': expected 8 values.*got 9"):
        load_scan(p)


@pytest.mark.parametrize("where", ["dataset", "group", "root"])
def test_legacy_sector_stated_on_the_dataset_its_group_or_the_root(tmp_path, where):
    """Issue 30 item 10: a legacy file without axes that states its sector on the dataset's own
    ``description`` (or its group's) gets that polar grid, as it did from the root's; the root
    saying something else (no sector) does not hide it."""
    p, _ = _legacy(tmp_path)
    text = "cardiac loop, polar, 9.75–120 mm, ±30°"
    with h5py.File(p, "a") as f:
        f.attrs["description"] = text if where == "root" else "a cardiac loop from the archive"
        ds = f["data/beamformed_data"]
        target = {"dataset": ds, "group": ds.parent, "root": f}[where]
        target.attrs["description"] = text
    with load_scan(p) as s:
        assert s.grid == "polar"
        np.testing.assert_allclose(s.axes["r"][[0, -1]], [9.75e-3, 120e-3])
        np.testing.assert_allclose(np.rad2deg(s.axes["theta"][[0, -1]]), [-30.0, 30.0])
        assert "9.75-120 mm" in s.geometry_note


def _bad_files(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["labels"] = np.arange(4)
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("iq", shape=(0, 4, 4), dtype=np.complex64)
    with h5py.File(tmp_path / "rank.h5", "w") as f:
        f["iq"] = np.zeros((2, 3, 4, 5), np.complex64)
    (tmp_path / "empty.zarr").mkdir()
    zea_file, _ = _zea(tmp_path)
    return [
        ([str(junk)], "not an HDF5 file"),
        ([str(tmp_path / "none.h5")], "no known layout"),
        ([str(tmp_path / "empty.h5")], "empty dataset"),
        ([str(tmp_path / "rank.h5"), "--key", "iq"], "expected complex (frames, z, x)"),
        ([str(tmp_path / "empty.zarr")], "not a zarr store"),
        ([str(zea_file), "--key", "haze"], "key 'haze': not found"),
    ]


def test_info_bad_files_one_line_exit_2(tmp_path, capsys):
    for args, message in _bad_files(tmp_path):
        capsys.readouterr()
        assert run_app(["info", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and args[0] in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_info_json_fields(tmp_path, capsys):
    p, _ = _uff(tmp_path)
    capsys.readouterr()
    assert run_app(["info", str(p), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["layout"], d["frames"], d["shape"], d["grid"]) == ("uff", 3, [12, 8], "cartesian")
    assert d["extent_mm"] == pytest.approx([-2.0, 2.0, 10.0, 30.0], abs=1e-4)
    assert run_app(["info", str(p), "--key", d["key"]]) == 0
    assert "uff" in capsys.readouterr().out


def test_zea_envelope_two_columns_wide_is_not_taken_for_iq(tmp_path):
    from zea.data.file import File

    env = np.abs(_iq(2, (6, 2))).astype(np.float32)
    coords = np.zeros((6, 2, 3), np.float32)
    coords[..., 0], coords[..., 2] = np.meshgrid([-1e-3, 1e-3], np.linspace(0.01, 0.02, 6))
    File.create(
        tmp_path / "e.h5",
        data={"envelope_data": {"values": env, "coordinates": coords}},
        overwrite=True,
        warn_missing_optional_fields=False,
    )
    with load_scan(tmp_path / "e.h5") as s:
        assert s.magnitude_only and s.shape == (6, 2)
        got = s.frames()
        assert got.shape == (2, 6, 2)
        np.testing.assert_allclose(got.real, env, rtol=1e-6)
        assert not got.imag.any()


def test_write_scan_checks_grid_and_axes_and_keeps_nested_attrs(tmp_path):
    x, z, axes = polar_grid((12, 8))
    iq = _iq()
    target = tmp_path / "w.h5"
    bad = [
        ({"grid": "spiral", "axes": axes}, "grid 'spiral'"),
        ({"axes": {**axes, "theta": axes["theta"][:-1]}}, r"axes\['theta'\]: expected 8 values"),
        ({"grid": "cartesian", "axes": {"x": x[0], "z": z[:4, 0]}}, r"axes\['z'\]: expected 12"),
        ({"axes": axes, "extras": {"haze": iq[:2]}}, "extra"),
    ]
    for kwargs, message in bad:
        with pytest.raises(UsageError, match=message):
            write_scan(target, iq, x, z, **kwargs)
        assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing left behind
    p = write_scan(target, iq, x, z, axes=axes, attrs={"seed": 7, "config": {"haze_db": -6}})
    with h5py.File(p, "r") as f:
        assert f["usdehaze"].attrs["seed"] == 7
        assert json.loads(f["usdehaze"].attrs["config"]) == {"haze_db": -6}
