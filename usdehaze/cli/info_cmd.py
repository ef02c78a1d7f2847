"""``usdehaze info``: what is inside a scan file."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def info(
    file: Path = typer.Argument(..., help="Scan file (HDF5, zarr)."),
    key: str = typer.Option(None, "--key", help="Dataset to read when several fit."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Layout, datasets, frames, shape, grid, physical extent, probe, dtype, compression."""
    raise NotImplementedError("info: implemented with the readers (issue 2)")
