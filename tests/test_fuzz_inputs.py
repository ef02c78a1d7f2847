"""Hostile and careless inputs (issue 16): every broken file, crafted weight file and bad value
gives exit code 2 and one line naming the file (and key), never a traceback, never runs code,
and leaves the inputs as they were.

The broken files are made here, from a small valid scan. The property-based tests (hypothesis)
feed the readers, the ROI parser and the config loaders generated inputs: each either works or
raises UsageError, nothing else. Example counts are small so this file runs in well under a
minute on 2 cores; set USDEHAZE_FUZZ_RANDOM=1 to draw new examples on each run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rois import px_roi, rect

from usdehaze.cli._app import run_app
from usdehaze.errors import UsageError
from usdehaze.ultrasound.io import load_scan, write_scan
from usdehaze.ultrasound.simulate import polar_grid

# The same 50 examples per test on every run (CI stays reproducible, nothing written to
# .hypothesis/); USDEHAZE_FUZZ_RANDOM=1 draws new ones each run to look further.
FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=not os.environ.get("USDEHAZE_FUZZ_RANDOM"),
    database=None,
)
SHAPE = (24, 16)  # (z, x) of the corpus' scans
FRAMES = 4


# -- helpers ------------------------------------------------------------------------------------
def snapshot(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (a file or a folder)."""
    out = {}
    for p in paths:
        for q in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if q.is_file():
                out[str(q)] = hashlib.sha256(q.read_bytes()).hexdigest()
    return out


def refused(capsys, args: list[str], *names: str, inputs: tuple[Path, ...] = ()) -> str:
    """Run the CLI in-process; assert exit 2, one stderr line holding every one of ``names``,
    no traceback, and ``inputs`` unchanged. Returns the line."""
    before = snapshot(*inputs)
    capsys.readouterr()
    code = run_app([str(a) for a in args])
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, (args, code, err, out.out[-500:])
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "Traceback" not in out.out
    for n in names:
        assert str(n) in err, (n, err)
    assert snapshot(*inputs) == before, "an input changed"
    return err


def iq_frames(frames: int = FRAMES, shape=SHAPE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(frames, *shape)) + 1j * rng.normal(size=(frames, *shape))).astype(
        np.complex64
    )


def good_scan(path: Path, iq: np.ndarray | None = None) -> Path:
    """A valid zea sector scan (the shape of what usdehaze simulate writes)."""
    iq = iq_frames() if iq is None else iq
    x, z, axes = polar_grid(iq.shape[1:])
    return write_scan(path, iq, x, z, axes=axes)


def uff_file(
    path: Path,
    *,
    sector: bool = False,
    depth_axis=None,
    origin_distance=None,
    imag_shape=None,
    scan_z=None,
) -> Path:
    """A USTB UFF file written with h5py, with one field replaced for the broken variants."""
    nz, nx = SHAPE
    iq = iq_frames()
    px = iq.transpose(2, 1, 0).reshape(-1, FRAMES)  # (x·z, frames), depth fastest
    with h5py.File(path, "w") as f:
        g = f.create_group("b_data")
        g.attrs["class"] = "uff.beamformed_data"
        g["data/real"] = px.real[:, None, None, :].astype(np.float32)
        imag = px.imag[:, None, None, :].astype(np.float32)
        g["data/imag"] = imag if imag_shape is None else np.zeros(imag_shape, np.float32)
        s = g.create_group("scan")
        if sector:
            s.attrs["class"] = "uff.sector_scan"
            s["azimuth_axis"] = np.linspace(-0.5, 0.5, nx)
            s["depth_axis"] = np.linspace(0.01, 0.05, nz) if depth_axis is None else depth_axis
            if origin_distance is not None:
                s["origin/distance"] = origin_distance
        else:
            s.attrs["class"] = "uff.linear_scan"
            s["x_axis"] = np.linspace(-2e-3, 2e-3, nx)
            s["z_axis"] = np.linspace(0.01, 0.03, nz)
        if scan_z is not None:
            s["z"] = scan_z
    return path


def corrupt_h5_chunk(path: Path, dataset: str, index: int = 0) -> None:
    """Overwrite one stored chunk of ``dataset`` with 0xFF bytes (metadata stays readable)."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(index)
    data = bytearray(path.read_bytes())
    data[info.byte_offset : info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(data))


class Evil:
    """Unpickling this calls open(marker, 'w'): proof that a file ran code when it appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- the corpus of broken files -----------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """name -> (path, [words the error must hold]); every file made here from scratch."""
    d = tmp_path_factory.mktemp("corpus")
    c: dict[str, tuple[Path, list[str]]] = {}
    nz, nx = SHAPE
    iq = iq_frames()

    def plain(name, **attrs):
        p = d / f"{name}.h5"
        with h5py.File(p, "w") as f:
            f["iq"] = iq
            f["iq"].attrs.update(attrs)
        return p

    c["plain_pitch_text"] = (plain("plain_pitch_text", pitch="abc"), ["key 'iq'", "pitch"])
    c["plain_pitch_nan"] = (plain("plain_pitch_nan", pitch=np.nan), ["key 'iq'", "pitch"])
    c["plain_pitch_negative"] = (plain("plain_pitch_neg", pitch=-1e-4), ["key 'iq'", "pitch"])

    p = d / "legacy_x_axis_text.h5"
    with h5py.File(p, "w") as f:
        f["data/beamformed_data"] = np.stack([iq.real, iq.imag], -1)
        f["scan/x_axis"] = np.array([b"a"] * nx)
        f["scan/z_axis"] = np.linspace(0, 0.03, nz)
    c["legacy_x_axis_text"] = (p, ["key 'scan/x_axis'"])

    p = d / "legacy_fc_text.h5"
    with h5py.File(p, "w") as f:
        f["data/beamformed_data"] = np.stack([iq.real, iq.imag], -1)
        f["scan/center_frequency"] = b"fast"
    c["legacy_fc_text"] = (p, ["key 'scan/center_frequency'"])

    p = d / "legacy_complex_iq_axis.h5"
    with h5py.File(p, "w") as f:
        f["data/beamformed_data"] = np.stack([iq, iq], -1)
    c["legacy_complex_iq_axis"] = (p, ["key 'data/beamformed_data'", "twice"])

    c["uff_depth_text"] = (
        uff_file(d / "uff_depth_text.uff", sector=True, depth_axis=np.array([b"x"] * nz)),
        ["key 'b_data/scan/depth_axis'"],
    )
    c["uff_origin_text"] = (
        uff_file(d / "uff_origin_text.uff", sector=True, origin_distance=b"far"),
        ["key 'b_data/scan/origin/distance'"],
    )
    c["uff_scan_z_text"] = (
        uff_file(d / "uff_scan_z_text.uff", scan_z=np.array([b"z"] * (nz * nx))),
        ["key 'b_data/scan/z'"],
    )
    c["uff_imag_shape"] = (
        uff_file(d / "uff_imag_shape.uff", imag_shape=(nz * nx, 1, 1, FRAMES - 1)),
        ["key 'b_data/data/imag'", "shape"],
    )

    def zea(name, edit):
        p = good_scan(d / f"{name}.h5")
        with h5py.File(p, "a") as f:
            edit(f)
        return p

    def axes_json(text):
        return lambda f: f["usdehaze"].attrs.__setitem__("axes", text)

    c["zea_axes_not_json"] = (zea("zea_axes_not_json", axes_json("{not json")), ["'axes'"])
    c["zea_axes_list"] = (zea("zea_axes_list", axes_json("[1, 2]")), ["'axes'"])
    c["zea_axes_text"] = (
        zea("zea_axes_text", axes_json('{"theta": "wide", "r": [1]}')),
        ["'axes'", "theta"],
    )
    c["zea_axes_nan"] = (
        zea("zea_axes_nan", axes_json(json.dumps({"theta": [math.nan] * nx}))),
        ["'axes'", "theta"],
    )
    c["zea_axes_length"] = (
        zea("zea_axes_length", axes_json(json.dumps({"theta": [0.1, 0.2], "r": [1.0] * nz}))),
        ["theta"],
    )

    def nan_coords(f):
        key = "tracks/track_0/data/beamformed_data/coordinates"
        c_ = f[key][()]
        c_[3, 4, 0] = np.nan
        del f[key]
        f[key] = c_

    c["zea_nan_coordinates"] = (
        zea("zea_nan_coordinates", nan_coords),
        ["key 'tracks/track_0/data/beamformed_data/coordinates'", "NaN"],
    )

    def complex_iq_axis(f):
        key = "tracks/track_0/data/beamformed_data/values"
        del f[key]
        f[key] = np.stack([iq, iq], -1)

    c["zea_complex_iq_axis"] = (
        zea("zea_complex_iq_axis", complex_iq_axis),
        ["key 'tracks/track_0/data/beamformed_data/values'", "twice"],
    )

    p = d / "huge_shape.h5"
    with h5py.File(p, "w") as f:  # declared, never written: the file stays a few kB
        f.create_dataset("iq", shape=(2, 400_000, 400_000), dtype=np.complex64, chunks=(1, 64, 64))
    c["huge_shape"] = (p, ["key 'iq'", "memory", "limit"])

    p = d / "truncated.h5"
    p.write_bytes(good_scan(d / "whole.h5").read_bytes()[:300])
    c["truncated"] = (p, ["truncated.h5"])

    p = d / "random.h5"
    p.write_bytes(np.random.default_rng(1).bytes(4096))
    c["random_bytes"] = (p, ["random.h5"])
    return c


READER_CASES = [
    "plain_pitch_text",
    "plain_pitch_nan",
    "plain_pitch_negative",
    "legacy_x_axis_text",
    "legacy_fc_text",
    "legacy_complex_iq_axis",
    "uff_depth_text",
    "uff_origin_text",
    "uff_scan_z_text",
    "uff_imag_shape",
    "zea_axes_not_json",
    "zea_axes_list",
    "zea_axes_text",
    "zea_axes_nan",
    "zea_axes_length",
    "zea_nan_coordinates",
    "zea_complex_iq_axis",
    "huge_shape",
    "truncated",
    "random_bytes",
]


@pytest.mark.parametrize("case", READER_CASES)
def test_broken_scan_files_are_one_line(corpus, capsys, case):
    path, words = corpus[case]
    refused(capsys, ["info", path], path, *words, inputs=(path,))


def test_corrupt_hdf5_chunk_is_one_line_naming_file_and_key(tmp_path, capsys):
    p = tmp_path / "chunks.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("iq", data=iq_frames(), chunks=(1, *SHAPE), compression="gzip")
    corrupt_h5_chunk(p, "iq", 0)
    assert run_app(["info", str(p)]) == 0  # the metadata is fine
    refused(capsys, ["show", p, "-o", tmp_path / "f.png"], p, "key 'iq'", "frames 0:1", inputs=(p,))
    assert not (tmp_path / "f.png").exists()


def test_corrupt_zarr_chunk_is_one_line_naming_store_and_key(tmp_path, capsys):
    import zarr

    p = tmp_path / "chunks.zarr"
    g = zarr.open_group(str(p), mode="w")
    g.create_array("iq", shape=(FRAMES, *SHAPE), chunks=(1, *SHAPE), dtype="complex64")[:] = (
        iq_frames()
    )
    chunk_files = [q for q in (p / "iq").rglob("*") if q.is_file() and q.name != "zarr.json"]
    assert chunk_files
    for q in chunk_files:
        q.write_bytes(b"\x00garbage" * 7)
    refused(capsys, ["show", p, "-o", tmp_path / "f.png"], p, "key 'iq'", inputs=(p,))


def test_reader_errors_keep_their_own_words(corpus, capsys):
    """A reader's UsageError passes through as it is, not wrapped as 'unreadable'."""
    path, _ = corpus["plain_pitch_text"]
    err = refused(capsys, ["info", path, "--key", "nope"], path, "key 'nope': not found")
    assert "unreadable" not in err


def test_complex_zea_values_with_a_channel_axis_of_one_read_as_iq(tmp_path):
    """The documented meaning of complex zea values: IQ, with a channel axis of 1."""
    iq = iq_frames()
    p = good_scan(tmp_path / "c1.h5", iq)
    with h5py.File(p, "a") as f:
        key = "tracks/track_0/data/beamformed_data/values"
        del f[key]
        f[key] = iq[..., None]
    with load_scan(p) as s:
        np.testing.assert_array_equal(s.frames(0, FRAMES), iq)


# -- frame ranges --------------------------------------------------------------------------------
GOOD_ROI = px_roi(("a", rect([0, 0], [7.5, 23]), rect([8, 0], [15, 23])))  # inside good_scan


@pytest.fixture(scope="module")
def scan4(tmp_path_factory):
    d = tmp_path_factory.mktemp("scan4")
    p = good_scan(d / "four.h5")
    roi = d / "roi.json"
    roi.write_text(json.dumps(GOOD_ROI))
    return p, roi


@pytest.mark.parametrize("spec", ["-7", "-5", "4", "-7:", "2:9", "3:1", ":-4"])
def test_frame_ranges_out_of_the_file_are_refused_not_wrapped(scan4, capsys, spec, tmp_path):
    scan, roi = scan4
    refused(capsys, ["gcnr", "--roi", roi, scan, f"--frames={spec}"], scan, spec, inputs=(scan,))
    refused(
        capsys, ["run", scan, "-o", tmp_path / "o.h5", f"--frames={spec}"], scan, inputs=(scan,)
    )
    assert not (tmp_path / "o.h5").exists()


def test_show_frame_minus_7_on_4_frames_is_refused(scan4, capsys, tmp_path):
    scan, _ = scan4
    out = tmp_path / "f.png"
    refused(capsys, ["show", scan, "-o", out, "--frame=-7"], scan, "--frame", inputs=(scan,))
    assert not out.exists()


def test_negative_frame_counts_from_the_end_once(scan4, capsys):
    scan, roi = scan4
    capsys.readouterr()
    assert run_app(["gcnr", "--roi", str(roi), str(scan), "--frames=-4", "--json"]) == 0
    assert [r["frame"] for r in json.loads(capsys.readouterr().out)["pairs"]] == [0]


@FUZZ
@given(n=st.integers(1, 40), a=st.integers(-60, 60), b=st.one_of(st.none(), st.integers(-60, 60)))
def test_parse_frames_is_python_indexing_or_refused(n, a, b):
    from usdehaze.ultrasound.scan import parse_frames

    frames = list(range(n))
    spec = str(a) if b is None else f"{a}:{b}"
    try:
        got = parse_frames(spec, n, "f.h5")
    except UsageError as exc:
        assert str(exc).startswith("f.h5: --frames") and len(str(exc).splitlines()) == 1
        if b is None:
            assert not -n <= a < n
        else:
            assert not (-n <= a <= n and -n <= b <= n) or not frames[a:b]
        return
    if b is None:
        assert list(got) == [frames[a]]
    else:
        assert list(got) == frames[a:b] and -n <= a <= n and -n <= b <= n


# -- values checked where they enter ------------------------------------------------------------
def _yaml(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, key",
    [
        ("dynamic_range: 0\n", "dynamic_range"),
        ("dynamic_range: -60\n", "dynamic_range"),
        ("lam: .nan\n", "lam"),
        ("kappa: .inf\n", "kappa"),
        ("gamma: 0\n", "gamma"),
        ("start_sigma: -1\n", "start_sigma"),
        ("noise_sigma: 0\n", "noise_sigma"),
        ("seed: 99999999999999999999\n", "seed"),
        ("seed: -1\n", "seed"),
        ("steps: abc\n", "steps"),
        ("nested: {a: [1, .nan]}\n", "nested.a[1]"),
    ],
)
def test_bad_run_config_values_name_the_file_and_key(scan4, capsys, tmp_path, text, key):
    scan, _ = scan4
    cfg = _yaml(tmp_path, text)
    out = tmp_path / "o.h5"
    refused(capsys, ["run", scan, "-o", out, "--config", cfg], cfg, key, inputs=(scan, cfg))
    assert not out.exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("--gamma", "0"),
        ("--gamma", "nan"),
        ("--start-sigma", "0"),
        ("--start-sigma", "inf"),
        ("--seed", str(2**40)),
        ("--seed", "-3"),
        ("--steps", "1000000000"),
        ("--samples", "100000"),
        ("--batch", "0"),
    ],
)
def test_bad_run_options_are_refused(scan4, capsys, tmp_path, option, value):
    scan, _ = scan4
    out = tmp_path / "o.h5"
    key = option.lstrip("-").replace("-", "_")
    refused(capsys, ["run", scan, "-o", out, f"{option}={value}"], key, inputs=(scan,))
    assert not out.exists()


def test_yaml_alias_bomb_and_recursion_and_size_are_refused_fast(scan4, capsys, tmp_path):
    import time

    scan, _ = scan4
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    bomb = _yaml(tmp_path, "\n".join(lines) + "\n", "bomb.yaml")
    t0 = time.monotonic()
    refused(capsys, ["run", scan, "--config", bomb], bomb, "alias", "limit", inputs=(scan, bomb))
    assert time.monotonic() - t0 < 10
    many = _yaml(tmp_path, "a: &a 1\nb: [" + ", ".join(["*a"] * 150) + "]\n", "many_aliases.yaml")
    refused(capsys, ["run", scan, "--config", many], many, "100 YAML aliases", inputs=(many,))
    rec = _yaml(tmp_path, "a: &a [*a]\n", "recursive.yaml")
    refused(capsys, ["run", scan, "--config", rec], rec, "recursive", inputs=(rec,))
    big = _yaml(tmp_path, "# " + "x" * (1 << 20) + "\nsteps: 2\n", "big.yaml")
    refused(capsys, ["run", scan, "--config", big], big, "limit", inputs=(big,))
    deep = _yaml(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    refused(capsys, ["run", scan, "--config", deep], deep, inputs=(deep,))


@pytest.mark.parametrize(
    "args, words",
    [
        (["simulate", "OUT", "--haze-db", "nan"], ["--haze-db"]),
        (["simulate", "OUT", "--haze-db", "1e308"], ["--haze-db", "60"]),
        (["simulate", "OUT", "--frames", "100000"], ["--frames 100000", "limit"]),
        (["simulate", "OUT", "--frames", "0"], ["--frames 0"]),
        (["simulate", "OUT", "--seed", str(2**33)], ["--seed"]),
        (["evaluate", "--frames", "0"], ["--frames 0"]),
        (["evaluate", "--frames", "100000000"], ["--frames 100000000", "limit"]),
        (["bench", "io", "--batch", "0"], ["--batch 0"]),
        (["bench", "dehaze", "--frames", "0"], ["--frames 0"]),
        (["bench", "sampler", "--size", "0"], ["--size 0"]),
        (["bench", "sampler", "--size", "20"], ["--size 20"]),
    ],
)
def test_bad_option_values_are_refused_before_any_work(capsys, tmp_path, args, words):
    out = tmp_path / "sim.h5"
    refused(capsys, [out if a == "OUT" else a for a in args], *words)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "option, value",
    [
        ("--bins", "2000000000"),
        ("--bins", "1"),
        ("--dynamic-range", "0"),
        ("--dynamic-range", "inf"),
    ],
)
def test_gcnr_bins_and_range_are_bounded(scan4, capsys, option, value):
    scan, roi = scan4
    refused(capsys, ["gcnr", "--roi", roi, scan, f"{option}={value}"], option, inputs=(scan, roi))


# -- ROI files ----------------------------------------------------------------------------------
def _pair(target: dict) -> dict:
    return px_roi(("p", target, {"shape": "circle", "center": [8, 12], "radius": 4}))


def test_roi_limits_name_the_file(scan4, capsys, tmp_path):
    scan, _ = scan4
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused(capsys, ["gcnr", "--roi", deep, scan], deep, "nested", inputs=(deep, scan))
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 40 + "]" * 40)
    refused(capsys, ["gcnr", "--roi", nested, scan], nested, "limit", inputs=(nested,))
    pts = [[float(i % 16), float(i % 24)] for i in range(2001)]
    many = tmp_path / "many.json"
    many.write_text(json.dumps(_pair({"shape": "polygon", "points": pts})))
    refused(capsys, ["gcnr", "--roi", many, scan], many, "points", "2000", inputs=(many,))
    big = tmp_path / "big.json"
    big.write_text(json.dumps(_pair({"shape": "polygon", "points": pts * 60})))
    assert big.stat().st_size > 1 << 20
    refused(capsys, ["gcnr", "--roi", big, scan], big, "limit", inputs=(big,))
    nan = tmp_path / "nan.json"
    nan.write_text(
        json.dumps(_pair({"shape": "circle", "center": [1, 2], "radius": 3})).replace("3}", "NaN}")
    )
    refused(capsys, ["gcnr", "--roi", nan, scan], nan, "NaN", inputs=(nan,))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    refused(capsys, ["gcnr", "--roi", binary, scan], binary, inputs=(binary,))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.sampled_from([10**400, -(10**400), 2**64])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SHAPE_WORDS = [
    "shape",
    "circle",
    "annulus",
    "rectangle",
    "polygon",
    "center",
    "radius",
    "inner",
    "outer",
    "min",
    "max",
    "points",
]


@FUZZ
@given(
    value=json_values,
    where=st.sampled_from(["top", "version", "units", "pairs", "pair", "target", "field"]),
    field=st.sampled_from(SHAPE_WORDS),
)
def test_roi_parser_takes_anything_and_answers_roi_or_usage_error(value, where, field):
    from usdehaze.ultrasound.roi import Roi, roi_from_dict

    d = _pair({"shape": "circle", "center": [8, 4], "radius": 3})
    if where == "top":
        d = value
    elif where in ("version", "units", "pairs"):
        d[where] = value
    elif where == "pair":
        d["pairs"][0] = value
    elif where == "target":
        d["pairs"][0]["target"] = value
    else:
        d["pairs"][0]["target"][field] = value
    try:
        roi = roi_from_dict(d, "r.json")
    except UsageError as exc:
        assert str(exc).startswith("r.json") and "\n" not in str(exc)
        return
    assert isinstance(roi, Roi)
    for p in roi.pairs:  # what is accepted is finite and well formed
        for shape in (p.target, p.background):
            assert json.loads(json.dumps(shape, allow_nan=False)) == shape


# -- configs ------------------------------------------------------------------------------------
@FUZZ
@given(text=st.text(max_size=200))
def test_read_yaml_answers_a_mapping_or_one_line(text):
    from usdehaze.config import read_yaml
    from usdehaze.limits import non_finite_key

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.yaml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cfg = read_yaml(p)
        except UsageError as exc:
            assert str(exc).startswith(str(p)) and "\n" not in str(exc)
            return
    assert isinstance(cfg, dict) and non_finite_key(cfg) is None


DEHAZE_KEYS = (
    "steps lam kappa gamma start_sigma dynamic_range seed eta rho method batch noise_sigma"
)
DEHAZE_KEYS = [*DEHAZE_KEYS.split(), "bogus"]  # and one no config has


@FUZZ
@given(cfg=st.dictionaries(st.sampled_from(DEHAZE_KEYS), json_values, max_size=4))
def test_dehaze_config_from_any_mapping_is_valid_or_one_line(cfg):
    from usdehaze.ultrasound.dehaze import DehazeConfig

    try:
        c = DehazeConfig.from_dict(cfg, "c.yaml")
    except UsageError as exc:
        assert str(exc).startswith("c.yaml") and "\n" not in str(exc)
        return
    for k, v in c.flat().items():
        if isinstance(v, float):
            assert math.isfinite(v), k
    assert c.lam > 0 and c.kappa > 0 and c.gamma > 0 and c.dynamic_range > 0
    assert 0 <= c.seed <= 2**32 - 1


TRAIN_KEYS = "steps batch lr ema grad_clip warmup seed out sde network threads log_every".split()


@FUZZ
@given(extra=st.dictionaries(st.sampled_from(TRAIN_KEYS), json_values, max_size=4))
def test_training_config_from_any_mapping_is_valid_or_one_line(extra):
    from usdehaze.core.training import config_from_dict

    try:
        tc = config_from_dict({"data": {"path": "x.npz"}, **extra}, "t.yaml")
    except UsageError as exc:
        assert str(exc).startswith("t.yaml") and "\n" not in str(exc)
        return
    assert isinstance(tc.steps, int) and tc.steps >= 1 and tc.lr > 0 and 0 <= tc.ema < 1


def test_training_config_wrong_types_and_garbage_data(capsys, tmp_path):
    bad = _yaml(tmp_path, "data: {path: d.npz}\nsteps: many\n", "t.yaml")
    refused(capsys, ["train", bad], bad, "key 'steps'", inputs=(bad,))
    ok = _yaml(tmp_path, "data: {path: d.npz}\nsteps: 10\n", "t0.yaml")
    refused(capsys, ["train", ok, "--steps", "0"], "key 'steps'", inputs=(ok,))  # not ignored
    bad = _yaml(tmp_path, "data: {path: d.npz}\nsde: {kind: ve, sigma: -1}\n", "t2.yaml")
    refused(capsys, ["train", bad], bad, "sigma", inputs=(bad,))
    for net in ("{base: abc}", "{base: 1000000}", "[unet]", "{arch: transformer}"):
        bad = _yaml(tmp_path, f"data: {{path: d.npz}}\nnetwork: {net}\n", "t4.yaml")
        refused(capsys, ["train", bad], bad, "key 'network'", inputs=(bad,))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "run"
    cfg = _yaml(
        tmp_path,
        f"data: {{path: {garbage}}}\nnetwork: {{arch: unet, base: 8, mults: [1, 2]}}\n"
        f"steps: 2\nbatch: 2\nout: {out}\n",
        "t3.yaml",
    )
    refused(capsys, ["train", cfg, "--device", "cpu"], garbage, inputs=(garbage, cfg))


def test_experiment_config_wrong_types(capsys, tmp_path):
    cfg = _yaml(
        tmp_path,
        "signal: {train: {kind: digits}, test: {kind: digits}}\nnoise: {kind: sine}\n"
        "task: {kind: denoise}\nmethods: {joint: {}}\nsize: big\n",
        "e.yaml",
    )
    refused(capsys, ["experiment", cfg, "--out", tmp_path / "o"], cfg, "key 'size'", inputs=(cfg,))
    assert not (tmp_path / "o").exists()


# -- weights never run code ---------------------------------------------------------------------
@pytest.fixture
def prior_copy(tiny_iq_priors, tmp_path):
    """A writable copy of the tiny iq tissue prior: (weights, config) paths."""
    src = Path(tiny_iq_priors[0])
    w = tmp_path / "tissue.safetensors"
    shutil.copy(src, w)
    shutil.copy(src.with_suffix(".json"), w.with_suffix(".json"))
    return w, w.with_suffix(".json")


def test_pickled_prior_never_runs(scan4, capsys, tmp_path):
    scan, _ = scan4
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"ema": Evil(marker)}, evil)
    out = tmp_path / "o.h5"
    refused(
        capsys,
        ["run", scan, "-o", out, "--tissue-prior", evil],
        evil,
        "safetensors",
        inputs=(scan, evil),
    )
    assert not marker.exists() and not out.exists()
    # the same bytes under the safetensors name, with a matching checksum: still only data
    w = tmp_path / "evil.safetensors"
    shutil.copy(evil, w)
    from usdehaze.core.priors import sha256

    w.with_suffix(".json").write_text(
        json.dumps(
            {
                "network": {"arch": "unet", "base": 8, "mults": [1, 2], "channels": 2},
                "sde": {"kind": "ve"},
                "sha256": sha256(w),
            }
        )
    )
    refused(capsys, ["run", scan, "-o", out, "--tissue-prior", w], w, inputs=(scan, w))
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x80\x02random bytes"])
def test_empty_or_random_pt_prior_is_one_line(scan4, capsys, tmp_path, content):
    scan, _ = scan4
    pt = tmp_path / "w.pt"
    pt.write_bytes(content)
    refused(
        capsys, ["run", scan, "-o", tmp_path / "o.h5", "--haze-prior", pt], pt, inputs=(scan, pt)
    )


def test_crafted_training_checkpoint_never_runs(capsys, tmp_path):
    marker = tmp_path / "pwned"
    data = tmp_path / "d.npz"
    np.savez(data, images=np.zeros((4, 8, 8), np.float32))
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"net": Evil(marker), "step": 1}, out / "checkpoint.pt")
    cfg = _yaml(
        tmp_path,
        f"data: {{path: {data}, patch: 8}}\nnetwork: {{arch: unet, base: 8, mults: [1, 2]}}\n"
        f"steps: 2\nbatch: 2\nout: {out}\n",
        "t.yaml",
    )
    ckpt = out / "checkpoint.pt"
    err = refused(
        capsys, ["train", cfg, "--resume", "--device", "cpu"], ckpt, inputs=(ckpt, cfg, data)
    )
    assert "could run code" in err and "\x1b" not in err
    assert not marker.exists()
    for content in (b"", b"garbage"):
        ckpt.write_bytes(content)
        refused(capsys, ["train", cfg, "--resume", "--device", "cpu"], ckpt, inputs=(ckpt,))


@pytest.mark.parametrize("content", ["evil", b"", b"garbage"])
def test_baseline_checkpoint_loads_weights_only(tmp_path, content):
    """The GAN/Glow loop's checkpoint: a crafted pickle is refused, not run; an empty or random
    file is one line too."""
    from usdehaze.natural.baselines.fit import fit

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "gan.pt"
    if content == "evil":
        torch.save({"modules": Evil(marker)}, ckpt)
    else:
        ckpt.write_bytes(content)
    net = torch.nn.Linear(2, 2)
    with pytest.raises(UsageError, match="gan.pt: not a checkpoint of this model") as exc:
        fit(
            {"n": net},
            {"n": torch.optim.SGD(net.parameters(), lr=0.1)},
            lambda batch, gen: 0.0,
            np.zeros((4, 1, 2, 2), np.float32),
            steps=1,
            batch=2,
            checkpoint=ckpt,
            progress=False,
        )
    assert "\x1b" not in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()


def _rewrite(cfg_path: Path, edit) -> None:
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps(edit(cfg)))


PRIOR_EDITS = {
    "string top level": (lambda c: "a prior", "JSON object"),
    "integer sha256": (lambda c: {**c, "sha256": 12}, "key 'sha256'"),
    "string network": (lambda c: {**c, "network": "unet"}, "key 'network'"),
    "string sde": (lambda c: {**c, "sde": "ve"}, "key 'sde'"),
    "unknown sde key": (lambda c: {**c, "sde": {**c["sde"], "speed": 3}}, "key 'speed'"),
    "negative sigma": (lambda c: {**c, "sde": {**c["sde"], "sigma": -1}}, "key 'sigma'"),
    "bad normalisation": (lambda c: {**c, "normalisation": "db"}, "key 'normalisation'"),
    "bad domain": (
        lambda c: {**c, "normalisation": {"domain": "rf"}},
        "key 'normalisation.domain'",
    ),
    "text dynamic range": (
        lambda c: {**c, "normalisation": {"domain": "db", "dynamic_range": "60"}},
        "key 'normalisation.dynamic_range'",
    ),
    "unknown top key": (lambda c: {**c, "exec": "rm -rf"}, "key 'exec'"),
    "huge network": (lambda c: {**c, "network": {**c["network"], "base": 10**6}}, "limit"),
    "deep network": (lambda c: {**c, "network": {**c["network"], "blocks": 10**6}}, "limit"),
    "text ood threshold": (lambda c: {**c, "ood": {"threshold": "high"}}, "key 'ood.threshold'"),
}


@pytest.mark.parametrize("case", sorted(PRIOR_EDITS))
def test_every_prior_json_field_is_validated(prior_copy, case):
    from usdehaze.core.priors import load_prior

    w, cfg = prior_copy
    edit, words = PRIOR_EDITS[case]
    _rewrite(cfg, edit)
    with pytest.raises(UsageError) as exc:
        load_prior(w)
    msg = str(exc.value)
    assert msg.startswith(str(cfg)) and words in msg and "\n" not in msg, msg


def test_nan_json_constant_in_a_prior_is_refused(prior_copy):
    from usdehaze.core.priors import load_prior

    w, cfg = prior_copy
    cfg.write_text(cfg.read_text().replace('"sigma": 25.0', '"sigma": NaN'))
    with pytest.raises(UsageError, match="NaN is not valid JSON"):
        load_prior(w)


def test_all_nan_weights_with_a_matching_checksum_are_refused(prior_copy, scan4, capsys, tmp_path):
    from safetensors.torch import load_file, save_file

    from usdehaze.core.priors import sha256

    w, cfg = prior_copy
    state = {k: torch.full_like(v, math.nan) for k, v in load_file(str(w)).items()}
    save_file(state, str(w))
    _rewrite(cfg, lambda c: {**c, "sha256": sha256(w)})
    scan, _ = scan4
    out = tmp_path / "o.h5"
    refused(capsys, ["run", scan, "-o", out, "--tissue-prior", w], w, "NaN", inputs=(scan, w, cfg))
    assert not out.exists()


# -- JSON output ---------------------------------------------------------------------------------
def _strict_json(text: str):
    def no_constant(name):
        raise ValueError(f"{name} in output")

    return json.loads(text, parse_constant=no_constant)


def test_gcnr_json_on_all_zero_frames_is_valid_json(capsys, tmp_path, scan4):
    _, roi = scan4
    zero = good_scan(tmp_path / "zero.h5", np.zeros((2, *SHAPE), np.complex64))
    capsys.readouterr()
    assert run_app(["gcnr", "--roi", str(roi), str(zero), "--json", "--domain", "envelope"]) == 0
    out = _strict_json(capsys.readouterr().out)
    values = [v for r in out["pairs"] for v in r.values()]
    assert None in values  # the undefined figures (0/0) are null, not NaN


@FUZZ
@given(value=json_values)
def test_json_dumps_never_writes_nan_or_infinity(value):
    from usdehaze.jsonio import clean, dumps

    back = _strict_json(dumps({"v": value, "arr": np.array([math.nan, 1.0, -math.inf])}))
    assert back["arr"] == [None, 1.0, None]
    assert back["v"] == clean(value)


# -- no display ----------------------------------------------------------------------------------
def test_view_without_a_display_is_one_line(scan4, capsys, monkeypatch):
    import sys

    if sys.platform in ("darwin", "win32"):
        pytest.skip("always a display there")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    scan, _ = scan4
    refused(capsys, ["view", scan], scan, "display", inputs=(scan,))


# -- readers under generated files --------------------------------------------------------------
dims = st.integers(0, 5)
arrays = st.tuples(
    st.sampled_from(["f4", "c8", "i2", "S3", "f8"]),
    st.lists(dims, min_size=1, max_size=5),
)
meta_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**31), 2**31),
    st.text(max_size=5),
    st.lists(st.floats(allow_nan=True), max_size=4),
)
LAYOUT_KEYS = {
    "plain": ["iq"],
    "legacy": [
        "data/beamformed_data",
        "scan/x_axis",
        "scan/z_axis",
        "scan/xlims",
        "scan/zlims",
        "scan/center_frequency",
    ],
    "zea": [
        "tracks/track_0/data/beamformed_data/values",
        "tracks/track_0/data/beamformed_data/coordinates",
        "tracks/track_0/data/envelope_data/values",
    ],
    "uff": [
        "b_data/data/real",
        "b_data/data/imag",
        "b_data/scan/x_axis",
        "b_data/scan/z_axis",
        "b_data/scan/depth_axis",
        "b_data/scan/azimuth_axis",
    ],
}


def _array(kind: str, shape: list[int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "S3":
        return np.full(shape, b"abc", dtype="S3")
    a = rng.normal(size=shape) * 10
    if kind == "c8":
        return (a + 1j * a).astype(np.complex64)
    return a.astype(kind)


@FUZZ
@given(
    layout=st.sampled_from(sorted(LAYOUT_KEYS)),
    datasets=st.lists(arrays, min_size=1, max_size=4),
    attr=meta_values,
    seed=st.integers(0, 10),
)
def test_readers_answer_a_scan_or_one_line(layout, datasets, attr, seed):
    keys = LAYOUT_KEYS[layout]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f.h5"
        with h5py.File(p, "w") as f:
            for key, (kind, shape) in zip(keys, datasets):
                f[key] = _array(kind, shape, seed)
            if layout == "uff":
                f["b_data"].attrs["class"] = "uff.beamformed_data"
                if "b_data/scan" in f:
                    f["b_data/scan"].attrs["class"] = (
                        "uff.linear_scan" if seed % 2 else "uff.sector_scan"
                    )
            first = f[keys[0]]
            first.attrs["pitch"] = attr
            if layout == "zea":
                f.create_group("usdehaze").attrs["axes"] = (
                    json.dumps({"theta": attr}) if seed % 2 else str(attr)
                )
        before = snapshot(p)
        try:
            with load_scan(p) as s:
                block = s.frames(0, 1)
                nz, nx = s.shape
                assert block.shape == (1, nz, nx) and block.dtype == np.complex64
                assert np.isfinite(block).all()
                assert np.isfinite(s.x).all() and np.isfinite(s.z).all()
        except UsageError as exc:
            assert str(exc).startswith(str(p)) and "\n" not in str(exc), str(exc)
        assert snapshot(p) == before


@FUZZ
@given(
    kind=st.sampled_from(["f4", "c8", "i2", "f8", "u1"]),
    shape=st.lists(dims, min_size=1, max_size=5),
    attr=meta_values,
    bare=st.booleans(),
)
def test_zarr_reader_answers_a_scan_or_one_line(kind, shape, attr, bare):
    import zarr

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.zarr"
        a = (
            zarr.open_array(str(p), mode="w", shape=shape, dtype=kind)
            if bare
            else zarr.open_group(str(p), mode="w").create_array("iq", shape=shape, dtype=kind)
        )
        if a.size:
            a[...] = _array(kind, shape, 0)
        a.attrs["pitch"] = attr
        before = snapshot(p)
        try:
            with load_scan(p) as s:
                block = s.frames(0, 1)
                assert block.shape == (1, *s.shape) and np.isfinite(block).all()
        except UsageError as exc:
            assert str(exc).startswith(str(p)) and "\n" not in str(exc), str(exc)
        assert snapshot(p) == before


@FUZZ
@given(garbage=st.binary(min_size=1, max_size=64), at=st.integers(0, 10_000))
def test_damaged_hdf5_chunks_give_data_or_one_line(garbage, at):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.h5"
        with h5py.File(p, "w") as f:
            f.create_dataset("iq", data=iq_frames(2), chunks=(1, *SHAPE), compression="gzip")
            info = f["iq"].id.get_chunk_info(0)
        data = bytearray(p.read_bytes())
        pos = info.byte_offset + at % info.size
        data[pos : pos + len(garbage)] = garbage[: info.size - at % info.size]
        p.write_bytes(bytes(data))
        try:
            with load_scan(p) as s:
                block = s.frames(0, 2)
                assert block.shape == (2, *SHAPE)
        except UsageError as exc:
            assert str(exc).startswith(str(p)) and "\n" not in str(exc), str(exc)


def test_evaluate_cases_with_a_garbage_shard_is_one_line(capsys, tmp_path):
    cases = tmp_path / "val"
    cases.mkdir()
    shard = cases / "a.npz"
    shard.write_bytes(b"PK\x03\x04 garbage")
    refused(
        capsys,
        ["evaluate", "--cases", cases, "--frames", "1"],
        shard,
        "corpus shard",
        inputs=(shard,),
    )
    np.savez(shard, tissue=np.zeros((2, 4, 4)), meta=np.array("{}"))
    refused(capsys, ["evaluate", "--cases", cases, "--frames", "1"], shard, "haze", inputs=(shard,))


@pytest.mark.parametrize("content", [b"", b"\x00" * 8, b"random bytes, not safetensors"])
def test_empty_or_random_safetensors_with_a_matching_checksum_is_one_line(prior_copy, content):
    from usdehaze.core.priors import load_prior, sha256

    w, cfg = prior_copy
    w.write_bytes(content)
    _rewrite(cfg, lambda c: {**c, "sha256": sha256(w)})
    with pytest.raises(UsageError) as exc:
        load_prior(w)
    msg = str(exc.value)
    assert msg.startswith(str(w)) and "do not fit" in msg and "\n" not in msg, msg
