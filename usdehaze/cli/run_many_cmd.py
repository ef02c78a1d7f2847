"""``usdehaze run-many``: dehaze many scans into one zarr store, sharded over torchrun processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from usdehaze.cli import _options as o
from usdehaze.cli._app import app


@app.command("run-many")
@o.with_settings
def run_many(
    inputs: list[Path] = typer.Argument(..., help="Beamformed IQ scans (HDF5/zarr)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output zarr store (NAME.zarr)."),
    key: o.Key = None,
    frames: o.Frames = None,
    config: o.Config = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over instead of resuming."),
    quiet: o.Quiet = False,
    strict: o.Strict = False,
    fallback: o.Fallback = "none",
    *,
    settings: dict[str, Any],
) -> None:
    """Dehaze every frame of INPUTS into OUT.zarr (one group per scan, one chunk per frame).

    Under ``torchrun --nproc-per-node N -m usdehaze run-many ...`` the frames are shared among
    the N processes (and nodes); rerunning the same command resumes, skipping finished frames.
    A scan that looks unlike the priors' training data gets one warning line on stderr (with
    --strict: the command refuses before touching OUT); each scan records ood_score, ood_warning.
    Each frame's result gets run's gross-failure check, recorded per scan (wreck_flagged_frames);
    --fallback input writes the input for a flagged frame (fallback_frames); with --strict a
    flagged frame stops the run, as in run (the frames written before it kept).
    """
    import os
    import sys

    from tqdm import tqdm

    from usdehaze.ultrasound.batch_run import run_many as run
    from usdehaze.ultrasound.dehaze import build_config

    cfg = build_config(config, settings)  # the options of every DehazeConfig field
    rank = int(os.environ.get("RANK", "0"))
    bar = tqdm(unit="frame", disable=quiet or rank != 0, desc="run-many (rank 0)", delay=0.5)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        run(
            inputs,
            out,
            cfg,
            key,
            frames,
            overwrite,
            progress=on_progress,
            log=typer.echo,
            warn=lambda m: bar.write(m, file=sys.stderr),
            strict=strict,
            fallback=fallback,
        )
    finally:
        bar.close()
