"""The typer application object and the one place user errors become exit code 2."""

from __future__ import annotations

import sys

import typer

from usdehaze import __version__
from usdehaze.errors import UsageError

app = typer.Typer(
    name="usdehaze",
    help="Remove structured noise (ultrasound haze) with two jointly sampled diffusion priors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"usdehaze {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """usdehaze: dehaze ultrasound scans and remove structured noise from images."""


def run_app(argv: list[str] | None = None) -> int:
    """Run the app; a :class:`UsageError` prints one line on stderr and returns 2."""
    try:
        app(args=argv, standalone_mode=False)
    except UsageError as exc:
        print(f"usdehaze: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("usdehaze: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as exc:  # --version, --help
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            print("usdehaze: aborted", file=sys.stderr)
            return 130
        raise
    return 0
