"""``usdehaze bench``: benchmarks that print figures (io, sampler, dehaze). Subcommands live in
their own modules and register on :data:`bench_app`."""

from __future__ import annotations

import typer

from usdehaze.cli._app import app

bench_app = typer.Typer(
    help="Benchmarks that print speed and memory figures.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(bench_app, name="bench")
