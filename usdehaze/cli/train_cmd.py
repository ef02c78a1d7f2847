"""``usdehaze train CONFIG.yaml``: train a score prior by denoising score matching."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app
from usdehaze.config import read_yaml
from usdehaze.errors import UsageError


@app.command()
def train(
    config: Path = typer.Argument(..., help="Training config (YAML); see docs/training.md."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start over, replacing the run already in OUT."
    ),
    out: str = typer.Option(None, "--out", help="Run folder (overrides the config's 'out')."),
    steps: int = typer.Option(None, "--steps", help="Total steps (overrides the config)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    export_only: bool = typer.Option(
        False, "--export-only", help="Export the checkpoint's EMA prior now, without training."
    ),
    export: Path = typer.Option(
        None, "--export", help="Prior file to write (overrides the config's export.path)."
    ),
) -> None:
    """Train a score prior (single process, or DDP under torchrun with the same command)."""
    from usdehaze.core.training import config_from_dict, export_checkpoint
    from usdehaze.core.training import train as run

    cfg = read_yaml(config)
    if out:
        cfg["out"] = out
    if steps is not None:  # --steps 0 is checked like the config's own value, not ignored
        cfg["steps"] = steps
    if export:
        cfg["export"] = {**(cfg.get("export") or {}), "path": str(export)}
    tc = config_from_dict(cfg, str(config))
    _check_not_shipped(tc, config)
    _check_outputs(tc, config)
    if export_only:  # the checkpoint first: without one, missing data is beside the point
        ckpt = Path(tc.out) / "checkpoint.pt"
        if not ckpt.is_file():
            raise UsageError(
                f"{ckpt.resolve()}: no checkpoint to export (config {config}, key 'out'); "
                f"train first: usdehaze train {config}"
            )
        path, step = export_checkpoint(tc, device=device)
        typer.echo(f"exported the EMA prior of step {step} -> {path}")
        return
    _check_data(tc, config)
    _check_restart(tc, config, resume, overwrite)
    if resume and not (Path(tc.out) / "checkpoint.pt").is_file():
        raise UsageError(
            f"{(Path(tc.out) / 'checkpoint.pt').resolve()}: --resume given but no checkpoint "
            f"there (config {config}, key 'out'); leave out --resume to start"
        )
    run(
        tc,
        device=device,
        resume=resume,
        resume_hint=f"usdehaze train {config} --resume",
        desc=config.stem,
    )


def _check_restart(tc, config: Path, resume: bool, overwrite: bool) -> None:
    """A run already in OUT (or the prior it exported, its run folder gone) is continued
    (--resume) or replaced (--overwrite), never restarted silently: they would be lost."""
    if resume and overwrite:
        raise UsageError(f"{config}: --resume and --overwrite: give one (continue, or start over)")
    ckpt = Path(tc.out) / "checkpoint.pt"
    if resume or overwrite:
        return
    if ckpt.is_file():
        raise UsageError(
            f"{ckpt.resolve()}: a training run is already there (config {config}, key 'out'); "
            f"continue it with --resume, or start over with --overwrite"
        )
    prior = Path((tc.export or {}).get("path", Path(tc.out) / "prior")).with_suffix(".safetensors")
    if prior.is_file():  # its run folder is gone, the prior it exported is not
        raise UsageError(
            f"{prior.resolve()}: a prior exported by an earlier training is there (config "
            f"{config}, key 'export.path'); start over with --overwrite (it is replaced at the "
            f"end), or export elsewhere with --export"
        )


def _check_data(tc, config: Path) -> None:
    """Missing training data names where it was looked for and what makes it."""
    path = Path(tc.data["path"])
    if path.exists():
        return
    made_by = tc.data.get("made_by")
    hint = (
        f"make it first, from the repository root: {made_by}"
        if made_by
        else "point data.path at your images (docs/training.md)"
    )
    raise UsageError(
        f"{path.resolve()}: training data not found (config {config}, key 'data.path', "
        f"relative to the working directory); {hint}"
    )


def _check_not_shipped(tc, config: Path) -> None:
    """Training writes to run folders, never into the package's shipped priors: replacing those
    is the explicit step pipelines/ship_priors.py."""
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    shipped = WEIGHTS_DIR.resolve()
    export = Path((tc.export or {}).get("path", Path(tc.out) / "prior"))
    for key, target in (("export.path", export), ("out", Path(tc.out))):
        resolved = target.resolve()
        if resolved == shipped or shipped in resolved.parents:
            raise UsageError(
                f"{resolved}: config {config}, key '{key}': inside the shipped priors' folder "
                f"{shipped}; train into a run folder, then replace the shipped priors on purpose "
                "with python pipelines/ship_priors.py"
            )


def _check_outputs(tc, config: Path) -> None:
    """Before any training: the exported prior pair replaces only a usdehaze prior, the run
    folder is no input and holds no checkpoint.pt, loss.csv or loss.png that training did not
    write (a folder with a checkpoint.pt is a training run folder), via usdehaze.outputs."""
    from usdehaze.outputs import check_output

    inputs = [config, Path(tc.data["path"])]
    export = Path((tc.export or {}).get("path", Path(tc.out) / "prior"))
    for suffix in (".safetensors", ".json"):
        check_output(export.with_suffix(suffix), inputs, option="export.path")
    run = Path(tc.out)
    if not run.exists():  # where it will be made: parent a folder, writable, name not too long
        check_output(run, inputs, option="out", folder=True)
        return
    if not run.is_dir():
        raise UsageError(f"{run}: config {config}, key 'out': a file, expected a folder")
    data = Path(tc.data["path"]).resolve()
    if data.is_dir() and (run.resolve() == data or data in run.resolve().parents):
        raise UsageError(
            f"{run}: config {config}, key 'out': the training data folder {tc.data['path']} "
            "(or inside it); checkpoints and logs would go among the data, choose another 'out'"
        )
    written = [run / n for n in ("checkpoint.pt", "loss.csv", "loss.png")]
    for path in written:
        for inp in inputs:
            if path.exists() and inp.exists() and path.resolve() == inp.resolve():
                raise UsageError(
                    f"{path}: config {config}, key 'out': training would overwrite its input; choose another 'out'"
                )
    if not written[0].is_file():
        theirs = [p for p in written if p.exists()]
        if theirs:
            raise UsageError(
                f"{theirs[0]}: config {config}, key 'out': a folder that is not a training run's "
                "(no checkpoint.pt) holds this file; it is left alone, choose another 'out'"
            )
