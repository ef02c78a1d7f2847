"""``usdehaze bench run``: where the time of an end-to-end ``usdehaze run`` goes, stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from usdehaze.cli import _options as o
from usdehaze.cli.bench_cmd import bench_app


@bench_app.command("run")
@o.with_settings
def bench_run(
    scan: Path = typer.Argument(
        None, help="Scan to dehaze (default: a simulated 40-frame 256×128 scan)."
    ),
    out: Path = typer.Option(None, "-o", "--out", help="Keep the result here (default: not kept)."),
    key: o.Key = None,
    frames: o.Frames = None,
    config: o.Config = None,
    *,
    settings: dict[str, Any],
) -> None:
    """Dehaze SCAN as `usdehaze run` does, with the same settings; print ms/frame per stage
    (read, encode, ood check, network, decode, scan conversion, result checks, write), frames/s
    end to end and against the network alone, and start-up (imports, loading) apart."""
    import tempfile

    from usdehaze.errors import UsageError
    from usdehaze.outputs import check_output
    from usdehaze.ultrasound.bench_run import report, run
    from usdehaze.ultrasound.dehaze import build_config

    if scan is not None and not scan.exists():
        raise UsageError(f"{scan}: no such file")
    cfg = build_config(config, settings)
    with tempfile.TemporaryDirectory() as tmp:
        if scan is None:
            from usdehaze.ultrasound.simulate import write_simulation

            typer.echo("bench run: simulating a 40-frame 256x128 scan ...", err=True)
            scan = write_simulation(Path(tmp) / "bench_scan.h5", frames=40)[0]
        if out is not None:
            check_output(out, [scan])
        report(run(scan, cfg, frames, key, out), log=typer.echo)
