"""HDF5 inputs are read as given, never beyond (issue 31 item 9): a crafted file whose dataset
points at another local file (external raw storage, a virtual dataset, an external link) is
refused in one line by every command that reads it, before anything of that file is read."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from usdehaze.cli._app import run_app


def _secret(tmp_path):
    p = tmp_path / "secret.bin"
    p.write_bytes(np.arange(64 * 64 * 2, dtype=np.float32).tobytes())
    return p


def _external(tmp_path):
    secret = _secret(tmp_path)
    path = tmp_path / "external.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "iq",
            shape=(2, 32, 32, 2),
            dtype="f4",
            external=[(str(secret), 0, secret.stat().st_size)],
        )
    return path, "external raw storage"


def _virtual(tmp_path):
    src = tmp_path / "other.h5"
    with h5py.File(src, "w") as f:
        f["data"] = np.ones((2, 32, 32, 2), np.float32)
    layout = h5py.VirtualLayout(shape=(2, 32, 32, 2), dtype="f4")
    layout[:] = h5py.VirtualSource(str(src), "data", shape=(2, 32, 32, 2))
    path = tmp_path / "virtual.h5"
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("iq", layout)
    return path, "virtual dataset"


def _linked(tmp_path):
    src = tmp_path / "other.h5"
    with h5py.File(src, "w") as f:
        f["data"] = np.ones((2, 32, 32, 2), np.float32)
    path = tmp_path / "linked.h5"
    with h5py.File(path, "w") as f:
        f["group/iq"] = h5py.ExternalLink(str(src), "data")
    return path, "external link"


@pytest.mark.parametrize("make", [_external, _virtual, _linked])
@pytest.mark.parametrize("command", [["info"], ["run", "-q"], ["show", "-o", "{d}/f.png"]])
def test_data_outside_the_file_is_refused(tmp_path, capsys, make, command):
    path, said = make(tmp_path)
    raw = path.read_bytes()
    capsys.readouterr()
    args = [c.format(d=tmp_path) for c in command]
    code = run_app([args[0], str(path), *args[1:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert said in err[0] and str(path) in err[0] and "key '" in err[0]
    assert path.read_bytes() == raw
    assert not list(tmp_path.glob("*.dehazed.h5")) and not (tmp_path / "f.png").exists()


def test_a_result_file_with_a_virtual_dataset_is_refused(tmp_path, capsys):
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.results import RESULT_FORMAT, load_result

    path, _ = _virtual(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["format"] = RESULT_FORMAT
    with pytest.raises(UsageError, match="virtual dataset"):
        load_result(path)


def test_training_data_with_external_storage_is_refused(tmp_path):
    from usdehaze.core.data import load_array
    from usdehaze.errors import UsageError

    path, _ = _external(tmp_path)
    with pytest.raises(UsageError, match="external raw storage"):
        load_array(path, "iq")
