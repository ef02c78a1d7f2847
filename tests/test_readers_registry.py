"""Readers are registered (issue 26): load_scan picks by priority and detect, LAYOUTS, napari's
filename_patterns and adapt's suffixes come from READERS, every reader module registers, and
docs/architecture.md's example of adding a reader runs."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import usdehaze.ultrasound.io as io_pkg
from usdehaze.ultrasound.io import LAYOUTS, READERS, filename_patterns, load_scan, suffixes
from usdehaze.ultrasound.io.registry import by_priority

ROOT = Path(__file__).parents[1]


def test_layouts_are_the_registry_by_priority():
    assert LAYOUTS == tuple(r.name for r in by_priority())
    order = [LAYOUTS.index(n) for n in ("zea", "zea-legacy", "uff", "plain")]
    assert order == sorted(order) and LAYOUTS[-1] == "plain"  # the fallback last
    assert {"dicom", "video", "images"} <= set(LAYOUTS)


def test_napari_filename_patterns_are_the_registrys():
    manifest = yaml.safe_load((ROOT / "usdehaze/napari/napari.yaml").read_text())
    readers = manifest["contributions"]["readers"]  # the scans' (roi.json has its own)
    (reader,) = [r for r in readers if r["command"] == "usdehaze.get_reader"]
    assert reader["filename_patterns"] == filename_patterns()
    assert {"*.dcm", "*.mp4", "*.h5", "*.zarr"} <= set(filename_patterns())
    # generic still-image suffixes only: left out (napari would offer usdehaze every photo)
    assert not {"*.png", "*.jpg", "*.tif", "*.gif"} & set(filename_patterns())


def test_adapt_suffixes_are_the_registrys():
    from usdehaze.ultrasound.adapt import SCAN_SUFFIXES

    assert SCAN_SUFFIXES == suffixes()


def test_every_reader_module_registers_a_reader():
    skip = ("_", "write_")
    modules = {
        m.name
        for m in pkgutil.iter_modules(io_pkg.__path__)
        if not m.name.startswith(skip) and m.name != "registry"
    }
    registered = {cls.__module__.rsplit(".", 1)[1] for cls in READERS.values()}
    assert modules <= registered
    for cls in READERS.values():
        assert cls.suffixes and all(s.startswith(".") and s == s.lower() for s in cls.suffixes)


def test_a_file_no_reader_reads_is_one_line(tmp_path):
    from usdehaze.errors import UsageError

    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(UsageError, match="not an HDF5 file"):
        load_scan(p)


def test_the_architecture_docs_example_reader_runs(tmp_path):
    doc = (ROOT / "docs" / "architecture.md").read_text()
    code = doc.split("<!-- example: reader -->\n```python\n")[1].split("```")[0]
    iq = (np.arange(2 * 6 * 4) + 1j).reshape(2, 6, 4).astype(np.complex64)
    np.save(tmp_path / "scan.npy", iq)
    try:
        exec(code, {})
        assert "npy" in READERS and "*.npy" in filename_patterns()
        with load_scan(tmp_path / "scan.npy") as s:
            assert s.layout == "npy" and s.shape == (6, 4)
            np.testing.assert_array_equal(s.frames(1, 2), iq[1:2])
    finally:
        READERS.pop("npy", None)
    assert "*.npy" not in filename_patterns()


def test_without_the_dicom_and_video_extras_the_line_names_them(tmp_path):
    """pydicom, imageio, av and tifffile are extras: the registry imports none of them, and a
    file that needs one says which extra to install, in one line, exit 2."""
    import os
    import subprocess
    import sys

    blocked = ["pydicom", "imageio", "imageio.v3", "av", "tifffile"]
    code = (
        "import sys\n"
        f"for _m in {blocked!r}:\n"
        "    sys.modules[_m] = None\n"
        "from usdehaze.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    (tmp_path / "a.dcm").write_bytes(b"\0" * 128 + b"DICM")
    (tmp_path / "a.mp4").write_bytes(b"\0" * 64)
    (tmp_path / "a.png").write_bytes(b"\0" * 64)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, extra in (("a.dcm", "dicom"), ("a.mp4", "video"), ("a.png", "video")):
        r = subprocess.run(
            [sys.executable, "-c", code, "info", str(tmp_path / name)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        err = r.stderr.strip()
        assert r.returncode == 2 and len(err.splitlines()) == 1, err
        assert f"pip install 'usdehaze[{extra}]'" in err and name in err
