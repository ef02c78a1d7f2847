"""``usdehaze gcnr``: contrast figures (gCNR, KS, CNR, contrast) for ROI pairs in a scan or result."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def gcnr(
    file: Path = typer.Argument(..., help="Scan (HDF5/zarr) or usdehaze result file."),
    roi: Path = typer.Option(
        ..., "--roi", help="roi.json with target/background pairs (docs/roi.md)."
    ),
    key: str = typer.Option(
        None, "--key", help="Scan dataset, or input|tissue|haze for result files (default tissue)."
    ),
    frames: str = typer.Option(
        None, "--frames", help="Frames as START:STOP or an index (default all)."
    ),
    bins: int = typer.Option(256, "--bins", help="Histogram bins for gCNR."),
    domain: str = typer.Option(
        "db", "--domain", help="db (after the dynamic-range clip) or envelope."
    ),
    dynamic_range: float = typer.Option(
        60.0, "--dynamic-range", help="dB range kept below the maximum."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """gCNR, KS, CNR (both conventions) and contrast per ROI pair and frame."""
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.contrast import roi_stats
    from usdehaze.ultrasound.images import open_images
    from usdehaze.ultrasound.roi import load_roi
    from usdehaze.ultrasound.scan import parse_frames

    if domain not in ("db", "envelope"):
        raise UsageError(f"--domain {domain}: expected db or envelope")
    from usdehaze.jsonio import dumps
    from usdehaze.limits import MAX_BINS

    if not 2 <= bins <= MAX_BINS:
        raise UsageError(f"--bins {bins}: expected 2 to {MAX_BINS} (the limit)")
    regions = load_roi(roi)
    with open_images(file, key, dynamic_range) as src:
        # a result's regions are those of the scan it was made from
        made_from = Path(str(src.meta.get("source", ""))).name if src.kind == "result" else ""
        elsewhere = regions.drawn_elsewhere(file.name, made_from)
        if elsewhere:
            typer.echo(f"usdehaze: warning: {elsewhere}; measured here all the same", err=True)
        rows = roi_stats(src, regions, parse_frames(frames, src.n_frames, file), bins, domain)
    if as_json:
        out = {"file": str(file), "key": src.key, "domain": domain, "bins": bins}
        out["dynamic_range"] = dynamic_range
        typer.echo(dumps({**out, "pairs": rows}, indent=2))  # NaN/Infinity as null
        return
    _print_table(rows, f"{file} [{src.key}] ({domain}, {bins} bins, {dynamic_range:g} dB)")


def _print_table(rows: list[dict], title: str) -> None:
    """The figures per pair and frame as a table (a result's source frame numbers too, where
    they differ from the file's own), at least 120 columns wide."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    # a result's frames keep the scan's numbering beside the file's own (what --frames takes)
    sourced = any(r["source_frame"] != r["frame"] for r in rows)
    for col in (
        "pair",
        "frame",
        *(("source frame",) if sourced else ()),
        "gCNR",
        "KS",
        "CNR",
        "CNR dB",
        "contrast dB",
        "n target",
        "n background",
    ):
        table.add_column(col, justify="right" if col != "pair" else "left")
    for r in rows:
        table.add_row(
            escape(r["name"]),
            str(r["frame"]),
            *((str(r["source_frame"]),) if sourced else ()),
            f"{r['gcnr']:.3f}",
            f"{r['ks']:.3f}",
            f"{r['cnr']:.3f}",
            f"{r['cnr_db']:.2f}",
            f"{r['contrast_db']:.2f}",
            str(r["n_target"]),
            str(r["n_background"]),
        )
    Console(width=max(120, Console().width)).print(table)
