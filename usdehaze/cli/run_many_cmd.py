"""``usdehaze run-many``: dehaze many scans into one zarr store, sharded over torchrun processes."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command("run-many")
def run_many(
    inputs: list[Path] = typer.Argument(..., help="Beamformed IQ scans (HDF5/zarr)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output zarr store (NAME.zarr)."),
    key: str = typer.Option(None, "--key", help="Dataset to read when several fit."),
    frames: str = typer.Option(None, "--frames", help="START:STOP of every scan (default all)."),
    config: Path = typer.Option(None, "--config", help="YAML with DehazeConfig keys."),
    steps: int = typer.Option(None, "--steps", help="Sampler steps."),
    solver: str = typer.Option(None, "--solver", help="em, ddim or heun."),
    samples: int = typer.Option(None, "--samples", help="Posterior samples per frame."),
    seed: int = typer.Option(None, "--seed", help="Random seed (frame i uses seed + i)."),
    batch: int = typer.Option(None, "--batch", help="Frames per sampler batch."),
    device: str = typer.Option(
        None, "--device", help="auto, cpu or cuda (cuda: LOCAL_RANK's GPU)."
    ),
    tissue_prior: Path = typer.Option(None, "--tissue-prior", help="Tissue prior."),
    haze_prior: Path = typer.Option(None, "--haze-prior", help="Haze prior."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over instead of resuming."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Dehaze every frame of INPUTS into OUT.zarr (one group per scan, one chunk per frame).

    Under ``torchrun --nproc-per-node N -m usdehaze run-many ...`` the frames are shared among
    the N processes (and nodes); rerunning the same command resumes, skipping finished frames.
    """
    import os

    from tqdm import tqdm

    from usdehaze.cli.run_cmd import build_config
    from usdehaze.ultrasound.batch_run import run_many as run

    cfg = build_config(
        config,
        {
            "steps": steps,
            "solver": solver,
            "samples": samples,
            "seed": seed,
            "batch": batch,
            "device": device,
            "tissue_prior": str(tissue_prior) if tissue_prior else None,
            "haze_prior": str(haze_prior) if haze_prior else None,
        },
    )
    rank = int(os.environ.get("RANK", "0"))
    bar = tqdm(unit="frame", disable=quiet or rank != 0, desc="run-many (rank 0)")

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        run(inputs, out, cfg, key, frames, overwrite, progress=on_progress, log=typer.echo)
    finally:
        bar.close()
