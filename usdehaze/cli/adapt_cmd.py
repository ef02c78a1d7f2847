"""``usdehaze adapt``: fine-tune the tissue and haze priors on a lab's own scans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from usdehaze.cli import _options as o
from usdehaze.cli._app import app


def _scans(flag: str, what: str) -> Any:
    """A repeatable option ``flag`` of scan files, folders or quoted globs (``what`` they hold)."""
    return Annotated[
        Optional[list[str]],  # noqa: UP045 - typer reads this type at run time
        typer.Option(
            flag,
            help=f"{what}: file, folder or quoted glob; repeat the option for several.",
        ),
    ]


def _option(kind: type, *flags: str, help: str) -> Any:  # noqa: A002 - typer's name
    """An option of type ``kind`` named ``flags``; its default stands in the signature."""
    return Annotated[kind, typer.Option(*flags, help=help)]


def _optional(kind: type, flag: str, help: str) -> Any:  # noqa: A002 - typer's name
    """An option ``flag`` of type ``kind`` that may be left out (None)."""
    return _option(Optional[kind], flag, help=help)  # noqa: UP045 - typer reads it at run time


# adapt's own options, one line each in its signature
Tissue = _scans("--tissue", "Tissue-only scans (good windows, phantoms)")
Haze = _scans("--haze", "Haze-only scans, or hazy scans with --haze-roi")
Out = _option(Path, "-o", "--out", help="Folder for the adapted priors.")
Minutes = _optional(
    float,
    "--minutes",
    "Training time of both priors together, split evenly (default 20; none with --steps alone).",
)
Steps = _optional(int, "--steps", "Steps per prior (with --minutes: whichever ends first).")
HazeRoi = _optional(
    Path,
    "--haze-roi",
    "roi.json whose target regions are haze only (cavities) in the --haze scans.",
)
Base = _optional(Path, "--from", "Folder of priors to start from (default: the shipped iq priors).")
Seed = _option(int, "--seed", help="Random seed (patches, noise levels, noise).")
Restart = _option(
    bool, "--restart", help="Discard OUT's checkpoints and start over from the base priors."
)
Student = _option(
    bool,
    "--student",
    help="Also refresh the fast dehazer (run --method fast) for the adapted priors.",
)
StudentMinutes = _option(
    float, "--student-minutes", help="Time for the student's refresh (teacher + fine-tuning)."
)


@app.command()
def adapt(
    *,  # keyword-only: the required --out keeps its place in --help
    tissue: Tissue = None,
    haze: Haze = None,
    out: Out,
    minutes: Minutes = None,
    steps: Steps = None,
    haze_roi: HazeRoi = None,
    base: Base = None,
    device: o.Device = None,
    seed: Seed = 0,
    restart: Restart = False,
    student: Student = False,
    student_minutes: StudentMinutes = 5.0,
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
    _report(res, out)
    log(f"done in {time.perf_counter() - t0:.0f} s; use them: usdehaze run SCAN --priors {out}")


def _report(res: Any, out: Path) -> None:
    """One line per adapted prior (steps, minutes; unchanged when nothing was left to train)
    and one for the refreshed fast dehazer, on stdout."""
    for role, path in res.priors.items():
        typer.echo(
            f"{path}  ({res.steps[role]} steps, {res.seconds[role] / 60:.1f} min"
            + ("" if res.written else ", unchanged: nothing left to train")
            + ")"
        )
    if res.student is not None:
        typer.echo(f"{res.student}  (fast dehazer: usdehaze run SCAN --priors {out} --method fast)")
