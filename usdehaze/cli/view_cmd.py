"""``usdehaze view``: open a scan or result file in napari with the usdehaze widgets."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


def has_display() -> bool:
    """Whether Qt can open a window: on Linux and other X11/Wayland systems a DISPLAY or
    WAYLAND_DISPLAY, or a QT_QPA_PLATFORM chosen by the user (e.g. offscreen); macOS and
    Windows always have one."""
    import os
    import sys

    if sys.platform in ("darwin", "win32") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


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
    if not has_display():  # before Qt is imported: without a display Qt aborts the process
        raise UsageError(
            f"{file}: usdehaze view needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set); "
            f"for a figure without one: usdehaze show {file} -o figure.png"
        )
    try:
        import napari
    except ImportError:
        raise UsageError("usdehaze view needs napari: pip install 'usdehaze[napari]'") from None
    from usdehaze.napari._launch import open_viewer
    from usdehaze.napari._reader import check_readable

    check_readable(file)  # the reason usdehaze info gives, before any window opens
    open_viewer(file, roi)
    napari.run()
