"""``usdehaze experiment CONFIG.yaml``: one natural-image experiment (docs/natural.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def experiment(
    config: Path = typer.Argument(
        ..., help="Experiment config (YAML), e.g. configs/natural_small.yaml."
    ),
    out: str = typer.Option(None, "--out", help="Run folder (overrides the config's 'out')."),
    models: str = typer.Option(
        None, "--models", help="Folder to load/keep trained models (overrides 'models_dir')."
    ),
    only: str = typer.Option(
        None, "--only", help="Comma-separated subset of the config's methods."
    ),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda (overrides the config)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train or load the priors and baselines, run every method, write results.md/.csv and figure.png."""
    from usdehaze.natural.experiment import load_config, run_experiment

    cfg = load_config(config)
    if device:
        cfg["device"] = device
    if models:
        cfg["models_dir"] = models
    res = run_experiment(
        cfg, str(config), out, only.split(",") if only else None, progress=not quiet
    )
    typer.echo(res["markdown"].read_text())
    typer.echo(f"wrote {res['markdown']}, {res['csv']}, {res['figure']}")
