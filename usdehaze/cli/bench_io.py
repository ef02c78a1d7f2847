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
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.bench_io import run

    if not 1 <= frames <= 100_000:
        raise UsageError(f"--frames {frames}: expected 1 to 100000 (the limit)")
    if not 1 <= batch <= 4096:
        raise UsageError(f"--batch {batch}: expected 1 to 4096 frames per read (the limit)")

    r = run(file, frames, batch=batch, progress=lambda s: typer.echo(s, err=True))
    typer.echo(
        f"read {r['frames']} frames in {r['seconds']:.2f} s: {r['frames_per_s']:.0f} frames/s; "
        f"peak traced memory {r['peak_mb']:.1f} MB for a {r['file_mb']:.0f} MB file (batch {r['batch']})"
    )
