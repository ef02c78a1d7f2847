"""``usdehaze train CONFIG.yaml``: train a score prior by denoising score matching."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app
from usdehaze.config import read_yaml


@app.command()
def train(
    config: Path = typer.Argument(..., help="Training config (YAML); see docs/training.md."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    out: str = typer.Option(None, "--out", help="Run folder (overrides the config's 'out')."),
    steps: int = typer.Option(None, "--steps", help="Total steps (overrides the config)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    export_only: bool = typer.Option(
        False, "--export-only", help="Export the checkpoint's EMA prior now, without training."
    ),
    export: Path = typer.Option(
        None, "--export", help="Prior file to write (overrides the config's export.path)."
    ),
) -> None:
    """Train a score prior (single process, or DDP under torchrun with the same command)."""
    from usdehaze.core.training import config_from_dict, export_checkpoint
    from usdehaze.core.training import train as run

    cfg = read_yaml(config)
    if out:
        cfg["out"] = out
    if steps:
        cfg["steps"] = steps
    if export:
        cfg["export"] = {**(cfg.get("export") or {}), "path": str(export)}
    tc = config_from_dict(cfg, str(config))
    if export_only:
        path, step = export_checkpoint(tc, device=device)
        typer.echo(f"exported the EMA prior of step {step} -> {path}")
        return
    run(tc, device=device, resume=resume)
