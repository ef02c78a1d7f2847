"""``usdehaze experiment CONFIG.yaml``: one natural-image experiment (docs/natural.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from usdehaze.cli._app import app


@app.command()
def experiment(
    config: Path = typer.Argument(
        ..., help="Experiment config (YAML), e.g. configs/natural_small.yaml."
    ),
    out: str = typer.Option(None, "--out", help="Run folder (overrides the config's 'out')."),
    models: str = typer.Option(
        None, "--models", help="Folder to load/keep trained models (overrides 'models_dir')."
    ),
    only: str = typer.Option(
        None, "--only", help="Comma-separated subset of the config's methods."
    ),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda (overrides the config)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train or load the priors and baselines, run every method, write results.md/.csv and figure.png."""
    from usdehaze.natural.experiment import load_config, run_experiment

    cfg = load_config(config)
    if device:
        cfg["device"] = device
    if models:
        cfg["models_dir"] = models
    chosen = _check_extras(cfg, config, only.split(",") if only else None)
    res = run_experiment(cfg, str(config), out, chosen, progress=not quiet)
    typer.echo(res["markdown"].read_text())
    typer.echo(f"wrote {res['markdown']}, {res['csv']}, {res['figure']}")


def _check_extras(cfg: dict, config: Path, only: list[str] | None) -> list[str] | None:
    """Before any work: refuse (one line) when the metrics or a dataset need a package that is
    not installed; skip, with a one-line note each, methods that do. Returns the methods to run."""
    from usdehaze import extras
    from usdehaze.errors import UsageError

    extras.require(extras.METRIC_NEEDS, "usdehaze experiment (SSIM)")
    for section in ("signal", "noise"):
        for split in ("train", "test"):
            spec = (
                (cfg.get(section) or {}).get(split) if isinstance(cfg.get(section), dict) else None
            )
            kind = spec.get("kind") if isinstance(spec, dict) else None
            if kind in extras.DATASET_NEEDS:
                extras.require(
                    extras.DATASET_NEEDS[kind], f"{config}: {section}.{split} dataset '{kind}'"
                )
    methods = cfg.get("methods") if isinstance(cfg.get("methods"), dict) else {}
    wanted = only or list(methods)
    kept = []
    for name in wanted:
        gone = extras.missing(extras.METHOD_NEEDS.get(name, ()))
        if gone and name in methods:
            typer.echo(
                f"usdehaze: skipping method '{name}': it needs {extras.install_hint(gone)}",
                err=True,
            )
        else:
            kept.append(name)
    if not kept and wanted:
        raise UsageError(f"{config}: no method left to run (see the lines above)")
    return kept if len(kept) < len(wanted) else only
