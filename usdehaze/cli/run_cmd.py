"""``usdehaze run``: dehaze a beamformed IQ scan with the shipped priors (the main job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from usdehaze.cli import _options as o
from usdehaze.cli._app import app


@app.command()
@o.with_settings
def run(
    scan: Path = typer.Argument(
        None,
        help="Beamformed IQ scan (HDF5/zarr), or a B-mode DICOM cine, video or image stack; "
        "see docs/formats.md.",
    ),
    out: Path = typer.Option(
        None,
        "-o",
        "--out",
        help="Result file (.h5, or .zarr); for B-mode input also a DICOM cine (.dcm, from a "
        "DICOM) or an input | dehazed video (.mp4, .mov, .avi); default SCAN.dehazed.h5.",
    ),
    demo: bool = typer.Option(False, "--demo", help="Dehaze the embedded simulated demo scan."),
    key: o.Key = None,
    frames: o.Frames = None,
    config: o.Config = None,
    quiet: o.Quiet = False,
    strict: o.Strict = False,
    fallback: o.Fallback = "none",
    *,
    settings: dict[str, Any],
) -> None:
    """Dehaze SCAN into tissue and haze estimates; the input is never modified.

    Ctrl-C stops cleanly: the output then holds the frames finished so far (complete = false).
    A scan that looks unlike the priors' training data gets one warning line on stderr (or, with
    --strict, is refused); the result records ood_score and ood_warning.
    """
    import time

    from usdehaze.ultrasound.dehaze import build_config
    from usdehaze.ultrasound.io import load_scan

    scan, out = _input_and_output(scan, out, demo)
    cfg = build_config(config, settings)  # the options of every DehazeConfig field
    out = out or scan.with_name(scan.stem + ".dehazed.h5")
    _check_output(scan, out, fallback)
    with load_scan(scan, key) as s:
        sel, runs = _plan(s, scan, out, cfg, frames)
        t0 = time.perf_counter()
        path = _dehaze(s, out, cfg, sel, runs, quiet, strict=strict, fallback=fallback)
    typer.echo(f"{path}  ({len(sel)} frames, {time.perf_counter() - t0:.1f} s)")


def _input_and_output(scan: Path | None, out: Path | None, demo: bool) -> tuple[Path, Path | None]:
    """The scan to read (SCAN, or the embedded demo scan with --demo) and the output option
    (--demo's default: demo_scan.dehazed.h5); a missing or doubly given scan is refused."""
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.simulate import demo_scan_path

    if demo:
        if scan is not None:  # --demo takes no value: "--demo true" reads true as SCAN
            raise UsageError(
                f"run: --demo is a flag (no value) that dehazes the embedded demo scan; "
                f"'{scan}' was read as SCAN: give either SCAN or --demo"
            )
        scan = demo_scan_path()
        out = out or Path("demo_scan.dehazed.h5")
    if scan is None:
        raise UsageError("run: give a SCAN file or --demo")
    if not scan.exists():  # a typo answered at once, before the config loads torch
        raise UsageError(f"{scan}: no such file")
    return scan, out


def _check_output(scan: Path, out: Path, fallback: str) -> None:
    """Before anything is read: --fallback's value, and an output that is neither an input nor
    a file not ours, with a suffix the writers know."""
    from usdehaze.errors import UsageError
    from usdehaze.outputs import check_output
    from usdehaze.ultrasound.sinks import output_kind

    if fallback not in ("none", "input"):
        raise UsageError(f"--fallback '{fallback}': expected none or input")
    check_output(out, [scan])  # before any work: never over an input or a file not ours
    output_kind(out)  # a suffix it cannot write: refused before anything is read


def _plan(s: Any, scan: Path, out: Path, cfg: Any, frames: str | None) -> tuple[Any, Any]:
    """The frames to dehaze and the settings that run on the open scan ``s`` (auto: refine,
    joint or fast); says once on stderr when the scan holds magnitude data only."""
    from usdehaze.ultrasound.methods import for_scan
    from usdehaze.ultrasound.scan import parse_frames
    from usdehaze.ultrasound.sinks import check_kind

    sel = parse_frames(frames, s.n_frames, scan)
    check_kind(out, s)
    runs, note = for_scan(cfg, s)  # what runs on this scan (auto: refine, joint or fast)
    if s.magnitude_only and not note:  # a note: run_dehaze says it once loaded
        said = (
            f"scan-converted B-mode, model {cfg.model}"
            if s.domain == "display"
            else "only magnitude data; dehazing runs on the log-compressed envelope"
        )
        typer.echo(f"{scan}: {said}", err=True)
    return sel, runs


def _dehaze(s: Any, out: Path, cfg: Any, sel: Any, runs: Any, quiet: bool, **how: Any) -> Path:
    """Dehaze frames ``sel`` of the open scan ``s`` into ``out`` under a progress bar (``how``:
    strict, fallback); the result's path. On Ctrl-C, says what was kept."""
    import sys

    from tqdm import tqdm

    from usdehaze.ultrasound.dehaze import run_dehaze
    from usdehaze.ultrasound.methods import METHODS

    stepwise = METHODS[runs.method].stepwise  # the others count frames, not sampler steps
    steps_total = len(sel) * (runs.steps if stepwise else 1)
    bar = tqdm(
        total=steps_total,
        unit="step",
        disable=quiet,
        desc=f"dehaze {len(sel)} frame(s)",
        dynamic_ncols=True,
        delay=0.5,  # not before the out-of-distribution check: a refusal stays one line
    )
    state = {"frames": 0}

    def on_step(i: int, total: int, t: float) -> None:
        bar.update(len(range(0, min(cfg.batch, len(sel) - state["frames"]))))

    def on_batch(done: int, total: int, seconds: float) -> None:
        state["frames"] = done
        bar.set_postfix(frames=f"{done}/{total}", s_per_frame=f"{seconds / done:.1f}")
        if not stepwise:
            bar.update(done - bar.n)

    try:
        path = run_dehaze(
            s,
            out,
            cfg,
            sel,
            progress=on_batch,
            step_callback=on_step,
            warn=lambda m: bar.write(m, file=sys.stderr),
            **how,
        )
    except KeyboardInterrupt:
        bar.close()
        typer.echo(
            f"interrupted: {state['frames']} finished frame(s) kept in {out} (complete = false)"
            if state["frames"]
            else f"interrupted before any frame finished: {out} not written",
            err=True,
        )
        raise
    bar.close()
    return path
