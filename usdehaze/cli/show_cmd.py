"""``usdehaze show``: render a scan or a result (input / tissue / haze) to a PNG."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def show(
    file: Path = typer.Argument(..., help="Scan or usdehaze result file."),
    out: Path = typer.Option(..., "-o", "--out", help="Figure to write (PNG, PDF, SVG)."),
    key: str = typer.Option(
        None, "--key", help="One image only (scan dataset or input|tissue|haze)."
    ),
    frame: int = typer.Option(0, "--frame", help="Frame index."),
    roi: Path = typer.Option(None, "--roi", help="roi.json whose regions are outlined."),
    dynamic_range: float = typer.Option(
        60.0, "--dynamic-range", help="dB shown below the maximum."
    ),
) -> None:
    """Scan-converted B-mode image(s) with mm axes, dB colourbar and ROI outlines."""
    from usdehaze.errors import UsageError
    from usdehaze.outputs import check_output
    from usdehaze.ultrasound.images import open_images
    from usdehaze.ultrasound.plot import bmode_figure, save_figure
    from usdehaze.ultrasound.results import is_result_file
    from usdehaze.ultrasound.roi import load_roi, pair_masks
    from usdehaze.ultrasound.scan import parse_frames

    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UsageError(f"{out}: -o: expected a .png, .pdf or .svg file name")
    if dynamic_range <= 0:
        raise UsageError(f"--dynamic-range {dynamic_range}: expected a positive number of dB")
    check_output(out, [file, *([roi] if roi else [])])  # before any work
    regions = load_roi(roi) if roi else None
    keys = [key] if key or not is_result_file(file) else ["input", "tissue", "haze"]
    images = {}
    for k in keys:
        with open_images(file, k, dynamic_range) as src:
            (f,) = parse_frames(str(frame), src.n_frames, file, "--frame")
            name = src.key.rsplit("/", 2)[-2] if src.key.endswith("/values") else src.key
            images[name] = src.read_db(f, f + 1)[0]
            geometry = (src.x, src.z, src.grid, src.axes)
    if regions is not None:  # same checks as gcnr: regions outside the image are errors
        pair_masks(regions, geometry[0], geometry[1], str(file))
    fig = bmode_figure(
        images,
        *geometry,
        dynamic_range=dynamic_range,
        roi=regions,
        title=f"{file.name} frame {f}",
    )
    typer.echo(str(save_figure(fig, out)))
