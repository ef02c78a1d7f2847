"""``usdehaze view``: open a scan or result file in napari with the usdehaze widgets."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def view(
    file: Path = typer.Argument(..., help="Scan (HDF5/zarr/UFF) or usdehaze result file."),
    roi: Path = typer.Option(
        None, "--roi", help="roi.json for the gCNR widget (default: FILE's .roi.json if present)."
    ),
) -> None:
    """Open FILE in napari with the Dehaze and gCNR widgets docked (needs usdehaze[napari])."""
    from usdehaze.errors import UsageError

    if not file.exists():
        raise UsageError(f"{file}: no such file")
    if roi is not None and not roi.is_file():
        raise UsageError(f"{roi}: no such ROI file")
    try:
        import napari
    except ImportError:
        raise UsageError("usdehaze view needs napari: pip install 'usdehaze[napari]'") from None
    from usdehaze.napari._launch import open_viewer
    from usdehaze.napari._reader import napari_get_reader

    if napari_get_reader(str(file)) is None:
        raise UsageError(f"{file}: not a scan or usdehaze result file usdehaze can read")
    open_viewer(file, roi)
    napari.run()
