"""``usdehaze bench io``: streaming read speed and peak memory."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli.bench_cmd import bench_app


@bench_app.command("io")
def bench_io(
    file: Path = typer.Option(
        None, "--file", help="Scan to read (default: a generated 200-frame 512×256 file)."
    ),
    frames: int = typer.Option(200, "--frames", help="Frames of the generated file."),
    batch: int = typer.Option(16, "--batch", help="Frames per read."),
) -> None:
    """Read a scan in frame batches; print frames/s and peak memory against the file size."""
    from usdehaze.ultrasound.bench_io import run

    r = run(file, frames, batch=batch)
    typer.echo(
        f"read {r['frames']} frames in {r['seconds']:.2f} s: {r['frames_per_s']:.0f} frames/s; "
        f"peak traced memory {r['peak_mb']:.1f} MB for a {r['file_mb']:.0f} MB file (batch {r['batch']})"
    )
