"""Hostile inputs, second pass (issue 31): weights finite but scaled, special files, a
rendezvous with no partner, damaged results and run-many stores, resumes over changed content
and small wrong acceptances. Each is one line naming the file (or option), exit 2, no traceback,
no hang, inputs unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_fuzz_inputs import good_scan, refused

from usdehaze.core.networks import build_network
from usdehaze.core.priors import load_prior, save_prior
from usdehaze.errors import UsageError


# -- 1. weights finite but scaled ---------------------------------------------------------------
def _rescaled_prior(src: Path, dst: Path, scale: float, only: str | None = None) -> Path:
    """A copy of prior ``src`` at ``dst`` with its weights (or those whose name starts with
    ``only``) multiplied by ``scale``, saved with a matching checksum, as a careless hand could."""
    prior = load_prior(src)
    net = build_network(prior.meta["network"])
    state = {
        k: v * scale if (only is None or k.startswith(only)) and v.is_floating_point() else v
        for k, v in prior.net.state_dict().items()
    }
    net.load_state_dict(state)
    assert all(torch.isfinite(v).all() for v in state.values())
    return save_prior(
        dst,
        net,
        network=prior.meta["network"],
        sde=prior.sde,
        normalisation=prior.meta.get("normalisation"),
    )


@pytest.mark.parametrize("scale, only", [(1e30, None), (1e12, "out.")])
def test_prior_with_scaled_weights_refused_at_load(tiny_priors, tmp_path, scale, only):
    bad = _rescaled_prior(tiny_priors[0], tmp_path / "tissue", scale, only)
    with pytest.raises(UsageError, match="probe input") as e:
        load_prior(bad)
    assert str(bad) in str(e.value) and len(str(e.value).splitlines()) == 1
    load_prior(tiny_priors[0])  # the original still loads


def test_run_with_a_scaled_priors_folder_is_one_line(tiny_iq_priors, tmp_path, capsys):
    folder = tmp_path / "priors"
    folder.mkdir()
    for src, name in zip(tiny_iq_priors, ("tissue_iq", "haze_iq")):
        if name == "haze_iq":
            _rescaled_prior(src, folder / name, 1e30)
        else:
            shutil.copy(src, folder / f"{name}.safetensors")
            shutil.copy(src.with_suffix(".json"), folder / f"{name}.json")
    scan = good_scan(tmp_path / "scan.h5")
    out = tmp_path / "r.h5"
    args = ["run", scan, "-o", out, "--priors", folder, "--steps", "2", "-q"]
    refused(capsys, args, "haze_iq.safetensors", "probe input", inputs=(scan, folder))
    assert not out.exists()


def _scaled_student(src: Path, dst: Path, scale: float, only: str | None = None) -> Path:
    from safetensors.torch import load_file

    from usdehaze.core.student import OnePassUNet, StudentNet, save_student
    from usdehaze.jsonio import read_json

    meta = read_json(src.with_suffix(".json"), "student", 1 << 20)
    net = OnePassUNet(StudentNet(**meta["network"]))
    state = load_file(str(src))
    net.load_state_dict(
        {k: v * scale if only is None or k.startswith(only) else v for k, v in state.items()}
    )
    extra = {k: v for k, v in meta.items() if k not in ("format", "network", "checksum", "bytes")}
    return save_student(dst, net, extra)


@pytest.mark.parametrize("scale, only", [(1e30, None), (1e12, "head.")])
def test_student_with_scaled_weights_refused_at_load(tiny_student, tmp_path, scale, only):
    from usdehaze.core.student import load_student

    bad = _scaled_student(tiny_student, tmp_path / "student_iq", scale, only)
    with pytest.raises(UsageError, match="probe input") as e:
        load_student(bad)
    assert str(bad) in str(e.value) and len(str(e.value).splitlines()) == 1
    load_student(tiny_student)


def test_run_fast_with_a_scaled_student_is_one_line(tiny_student, tmp_path, capsys):
    bad = _scaled_student(tiny_student, tmp_path / "student_iq", 1e30)
    scan = good_scan(tmp_path / "scan.h5")
    out = tmp_path / "r.h5"
    args = ["run", scan, "-o", out, "--method", "fast", "--student", bad, "-q"]
    refused(capsys, args, "student_iq.safetensors", "probe input", inputs=(scan, tmp_path))
    assert not out.exists()
