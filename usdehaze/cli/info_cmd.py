"""``usdehaze info``: what is inside a scan or result file."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def info(
    file: Path = typer.Argument(..., help="Scan (HDF5, zarr) or usdehaze result file."),
    key: str = typer.Option(None, "--key", help="Dataset to read when several fit."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Layout, datasets, frames, shape, grid, physical extent, probe, dtype, compression."""
    from usdehaze.ultrasound.info import describe

    d = describe(file, key)
    if as_json:
        from usdehaze.jsonio import dumps

        typer.echo(dumps(d, indent=2))  # NaN/Infinity as null
        return
    width = max(len(k) for k in d)
    for k, v in d.items():
        if k == "extent_mm" and v:
            v = f"x {v[0]:.1f} … {v[1]:.1f} mm, z {v[2]:.1f} … {v[3]:.1f} mm"
        typer.echo(f"{k:<{width}}  {v}")
    if d.get("geometry"):  # the grid was inferred or assumed: say so where it is seen
        typer.echo(f"warning: {file}: {d['geometry']}", err=True)
