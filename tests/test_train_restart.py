"""``usdehaze train`` never restarts over an existing run silently (issue 32 item 3)."""

from __future__ import annotations

import numpy as np

from usdehaze.cli._app import run_app


def _config(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.random.default_rng(0).uniform(-1, 1, (4, 16, 16)).astype("f4"))
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"data: {{path: {data}, key: images, patch: 16}}\n"
        "network: {arch: unet, base: 4, mults: [1, 2]}\n"
        f"steps: 2\nbatch: 2\ncheckpoint_every: 1\nlog_every: 1\nout: {tmp_path / 'run'}\n"
        f"export: {{path: {tmp_path / 'prior'}}}\n"
    )
    return cfg


def test_a_second_train_is_refused_unless_resumed_or_overwritten(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert run_app(["train", str(cfg), "--device", "cpu"]) == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    kept = ckpt.read_bytes()
    capsys.readouterr()
    assert run_app(["train", str(cfg), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err and "--overwrite" in err, err
    assert ckpt.read_bytes() == kept  # the run is untouched
    assert run_app(["train", str(cfg), "--device", "cpu", "--resume", "--overwrite"]) == 2
    assert ckpt.read_bytes() == kept
    assert run_app(["train", str(cfg), "--device", "cpu", "--overwrite"]) == 0
    assert run_app(["train", str(cfg), "--device", "cpu", "--resume", "--steps", "3"]) == 0


def test_an_exported_prior_without_its_run_is_not_replaced_silently(tmp_path, capsys):
    """The run folder removed, its exported prior kept: a new training refuses in one line
    (--overwrite or --export elsewhere), and --overwrite replaces it."""
    import shutil

    cfg = _config(tmp_path)
    assert run_app(["train", str(cfg), "--device", "cpu"]) == 0
    shutil.rmtree(tmp_path / "run")
    prior = tmp_path / "prior.safetensors"
    kept = prior.read_bytes()
    capsys.readouterr()
    assert run_app(["train", str(cfg), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(prior) in err and "--overwrite" in err, err
    assert prior.read_bytes() == kept and not (tmp_path / "run").exists()
    other = tmp_path / "other"
    assert run_app(["train", str(cfg), "--device", "cpu", "--export", str(other)]) == 0
    assert prior.read_bytes() == kept and (tmp_path / "other.safetensors").is_file()
    prior.write_bytes(kept[:-1] + b" ")  # marked, to see it replaced
    shutil.rmtree(tmp_path / "run")
    assert run_app(["train", str(cfg), "--device", "cpu", "--overwrite"]) == 0
    assert prior.read_bytes() == kept  # replaced by the same (seeded) training
