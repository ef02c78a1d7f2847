"""``usdehaze simulate``: write a simulated hazy sector scan with ground truth and its roi.json."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def simulate(
    out: Path = typer.Argument(..., help="Output scan file (.h5)."),
    kind: str = typer.Option("cardiac", "--kind", help="cardiac (apical-like) or cyst."),
    frames: int = typer.Option(8, "--frames", help="Number of frames."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same scan)."),
    haze_db: float = typer.Option(
        -12.0, "--haze-db", help="Haze power relative to the myocardium, dB."
    ),
) -> None:
    """Simulated hazy sector scan with ground-truth tissue and haze (keys 'tissue', 'haze') and a roi.json."""
    from usdehaze.ultrasound.simulate import write_simulation

    path, roi = write_simulation(out, kind, frames, seed, haze_db)
    typer.echo(f"{path}\n{roi}")
