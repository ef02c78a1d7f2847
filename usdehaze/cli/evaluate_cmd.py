"""``usdehaze evaluate``: the dehazing quality table on held-out simulated frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from usdehaze.cli._app import app
from usdehaze.cli._options import Steps


@app.command()
def evaluate(
    frames: int = typer.Option(20, "--frames", help="Held-out simulated frames (one per seed)."),
    only: list[str] = typer.Option(
        None, "--only", help="Run only methods whose name contains this."
    ),
    config: Path = typer.Option(
        None, "--config", help="YAML with DehazeConfig keys for the joint method."
    ),
    steps: Steps = None,
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
    cases: Path = typer.Option(
        None,
        "--cases",
        help="A corpus split folder (e.g. runs/corpus/val from pipelines/make_corpus.py) "
        "instead of the simulated frames; --frames caps how many.",
    ),
    priors: Path = typer.Option(
        None, "--priors", help="Folder with tissue and haze priors (usdehaze adapt, training)."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the table as JSON."),
) -> None:
    """gCNR, KS, haze removed, tissue kept, PSNR, LV level and time per method, as Markdown.

    gCNR alone rewards despeckling; haze removed (the share of the cavity contrast lost to haze
    that comes back) and tissue kept (myocardium level against the image's median tissue level,
    minus the clean one's) tell haze removal apart. Each frame is then labelled helped or harmed
    from its truth, and the out-of-distribution, do-no-harm and gross-failure checks' false
    alarms on helped frames and misses on harmed ones are listed, per method and per frame. --json also holds the per-frame median share,
    myocardium shift, haze correlation and the per-haze-level figures.
    """
    from usdehaze.ultrasound.dehaze import build_config

    _check_request(frames, json_out, [config, cases, priors])
    base = build_config(
        config, {"steps": steps, "device": device, "priors": str(priors) if priors else None}
    )
    methods = _chosen_methods(base, only)
    chosen = _corpus_cases(cases, frames) if cases is not None else None
    methods = _installed(methods)
    if chosen is None:
        from usdehaze.ultrasound.evaluate import eval_set

        typer.echo(f"evaluate: simulating {frames} held-out frames ...", err=True)
        chosen = eval_set(frames)
    table = _rows(methods, chosen)
    _print_tables(table)
    if json_out:
        _write_json(json_out, table)


def _check_request(frames: int, json_out: Path | None, inputs: list[Path | None]) -> None:
    """Before any work: --frames within the limit, and a --json output that is none of the
    ``inputs`` nor a file not ours."""
    from usdehaze.errors import UsageError
    from usdehaze.limits import MAX_EVALUATE_FRAMES

    if not 1 <= frames <= MAX_EVALUATE_FRAMES:
        raise UsageError(f"--frames {frames}: expected 1 to {MAX_EVALUATE_FRAMES} (the limit)")
    if json_out:
        from usdehaze.outputs import check_output

        check_output(json_out, [p for p in inputs if p], option="--json")


def _chosen_methods(base: Any, only: list[str] | None) -> dict:
    """The table's rows (name: config) from ``base``; with --only, those whose name contains one
    of ``only`` (none matching is an error that lists the rows)."""
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.evaluate import default_methods

    methods = default_methods(base)
    if only:
        methods = {k: v for k, v in methods.items() if any(o.lower() in k.lower() for o in only)}
        if not methods:
            raise UsageError(
                f"--only {', '.join(only)}: matches no method; the rows are: "
                + ", ".join(default_methods(base))
            )
    return methods


def _corpus_cases(cases: Path, frames: int) -> Any:
    """Up to ``frames`` cases of the corpus split folder ``cases`` (no shards: an error that
    says how to make them)."""
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.corpus.store import cases as corpus_cases
    from usdehaze.ultrasound.corpus.store import shards

    if not shards(cases):
        raise UsageError(
            f"{cases}: no corpus shards (*.npz); make them: python pipelines/make_corpus.py"
            " (full-wave scans: python pipelines/make_fullwave.py)"
        )
    return corpus_cases(cases, limit=frames)


def _rows(methods: dict, chosen: Any) -> dict:
    """Every method's row on the cases ``chosen``, one line on stderr as each row starts."""
    from usdehaze.ultrasound.evaluate import evaluate as run

    table: dict = {}
    for k, (name, cfg) in enumerate(methods.items(), 1):  # one line as each row starts
        typer.echo(f"evaluate: [{k}/{len(methods)}] {name} on {len(chosen)} frames ...", err=True)
        table |= run({name: cfg}, len(chosen), log=lambda s: typer.echo(s, err=True), cases=chosen)
    return table


def _print_tables(table: dict) -> None:
    """The tables on stdout, as Markdown: per method, per haze level, the checks, per scan."""
    from usdehaze.ultrasound.evaluate import (
        CHECKS_NOTE,
        markdown,
        markdown_by_level,
        markdown_checks,
        markdown_scans,
    )

    typer.echo(markdown(table))
    typer.echo("\ngCNR per haze level (haze relative to the myocardium):\n")
    typer.echo(markdown_by_level(table))
    typer.echo("\nHaze removed (%) per haze level:\n")
    typer.echo(markdown_by_level(table, "haze_removed"))
    typer.echo(f"\nThe checks against the truth ({CHECKS_NOTE}):\n")
    typer.echo(markdown_checks(table))
    typer.echo("\nPer scan: the truth's verdict, haze removed, the checks that fired:\n")
    typer.echo(markdown_scans(table))


def _write_json(json_out: Path, table: dict) -> None:
    """The table as JSON (NaN/Infinity as null), marked as evaluate's, written atomically."""
    from usdehaze import __version__
    from usdehaze.atomic import atomic_path
    from usdehaze.jsonio import dumps
    from usdehaze.outputs import MARKER, writing

    doc = {MARKER: "evaluate", "usdehaze_version": __version__, **table}
    with writing(json_out), atomic_path(json_out) as tmp:
        tmp.write_text(dumps(doc, indent=2))  # NaN/Infinity as null


def _installed(methods: dict) -> dict:
    """Before any work: rows whose method needs a package that is not installed (BM3D: bm3d,
    from the baselines extra) are skipped with a one-line note; none left is an error."""
    from usdehaze import extras
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.methods import METHODS

    kept = {}
    for name, cfg in methods.items():
        gone = extras.missing(METHODS[cfg.method].extras)
        if gone:
            typer.echo(
                f"usdehaze: skipping row '{name}': it needs {extras.install_hint(gone)}", err=True
            )
        else:
            kept[name] = cfg
    if methods and not kept:
        raise UsageError("evaluate: no row left to run (see the lines above)")
    return kept
