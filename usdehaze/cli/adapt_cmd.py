"""``usdehaze adapt``: fine-tune the tissue and haze priors on a lab's own scans."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli import _options as o
from usdehaze.cli._app import app


@app.command()
def adapt(
    tissue: list[str] = typer.Option(
        None,
        "--tissue",
        help="Tissue-only scans (good windows, phantoms): file, folder or quoted glob; repeat the option for several.",
    ),
    haze: list[str] = typer.Option(
        None,
        "--haze",
        help="Haze-only scans, or hazy scans with --haze-roi: file, folder or quoted glob; repeat the option for several.",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the adapted priors."),
    minutes: float = typer.Option(
        None,
        "--minutes",
        help="Training time of both priors together, split evenly (default 20; none with --steps alone).",
    ),
    steps: int = typer.Option(
        None, "--steps", help="Steps per prior (with --minutes: whichever ends first)."
    ),
    haze_roi: Path = typer.Option(
        None,
        "--haze-roi",
        help="roi.json whose target regions are haze only (cavities) in the --haze scans.",
    ),
    base: Path = typer.Option(
        None, "--from", help="Folder of priors to start from (default: the shipped iq priors)."
    ),
    device: o.Device = None,
    seed: int = typer.Option(0, "--seed", help="Random seed (patches, noise levels, noise)."),
    restart: bool = typer.Option(
        False, "--restart", help="Discard OUT's checkpoints and start over from the base priors."
    ),
    student: bool = typer.Option(
        False,
        "--student",
        help="Also refresh the fast dehazer (run --method fast) for the adapted priors.",
    ),
    student_minutes: float = typer.Option(
        5.0, "--student-minutes", help="Time for the student's refresh (teacher + fine-tuning)."
    ),
    quiet: o.Quiet = False,
) -> None:
    """Fine-tune the priors on your scanner's scans; then: usdehaze run SCAN --priors OUT.

    Ctrl-C keeps the last checkpoint (and OUT's previous priors); rerunning the same command resumes.
    """
    import time

    from usdehaze.ultrasound.adapt import AdaptSettings
    from usdehaze.ultrasound.adapt import adapt as run
    from usdehaze.ultrasound.adapt_student import StudentRefresh

    if minutes is None and steps is None:
        minutes = 20.0
    settings = AdaptSettings(minutes=minutes, steps=steps, device=device or "auto", seed=seed)

    def log(message: str) -> None:
        if not quiet:
            typer.echo(message, err=True)

    t0 = time.perf_counter()
    try:
        refresh = StudentRefresh(minutes=student_minutes, seed=seed) if student else None
        res = run(
            tissue or [],
            haze or [],
            out,
            settings,
            haze_roi,
            base,
            restart,
            not quiet,
            log,
            refresh,
            warn=lambda m: typer.echo(f"warning: {m}", err=True),  # also with --quiet
        )
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: checkpoints kept in {out}/checkpoints, earlier priors in {out} "
            "unchanged; rerun the same command to resume",
            err=True,
        )
        raise
    for role, path in res.priors.items():
        typer.echo(
            f"{path}  ({res.steps[role]} steps, {res.seconds[role] / 60:.1f} min"
            + ("" if res.written else ", unchanged: nothing left to train")
            + ")"
        )
    if res.student is not None:
        typer.echo(f"{res.student}  (fast dehazer: usdehaze run SCAN --priors {out} --method fast)")
    log(f"done in {time.perf_counter() - t0:.0f} s; use them: usdehaze run SCAN --priors {out}")
