"""The typer application object and the one place user errors become exit code 2."""

from __future__ import annotations

import errno
import os
import sys

import typer

from usdehaze import __version__
from usdehaze.errors import UsageError


def _option_conventions() -> None:
    """Two conventions of every option's ``--help`` line, kept here once for all commands:
    a flag shows no type (typer >= 0.29 shows ``<bool>``, which reads as an argument: users
    wrote ``--demo true`` and got "true: no such file"), and an option that takes several
    values says to repeat it (``--batch 1 --batch 4``)."""
    from typer.core import TyperOption

    if getattr(TyperOption, "_usdehaze_conventions", False):
        return
    init = TyperOption.__init__
    display = TyperOption.display_type_rich

    def __init__(self, *args, **kwargs):  # noqa: N807 - wraps typer's
        init(self, *args, **kwargs)
        if self.multiple and "repeat" not in (self.help or ""):
            self.help = f"{(self.help or '').rstrip()} Several: repeat the option.".lstrip()

    def display_type_rich(self, ctx):
        if self.is_flag and not self.count:
            return None  # a flag, not an option with an argument
        shown = display(self, ctx)
        if self.multiple and shown and shown.startswith("<list[") and shown.endswith("]>"):
            return f"<{shown[6:-2]}>"  # one value per use: --batch 1 --batch 4
        return shown

    TyperOption.__init__ = __init__
    TyperOption.display_type_rich = display_type_rich
    TyperOption._usdehaze_conventions = True


_option_conventions()

app = typer.Typer(
    name="usdehaze",
    help="Remove structured noise (ultrasound haze) with two jointly sampled diffusion priors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown, not Rich markup: Rich would eat "[napari]" as a style tag and print ``x`` raw.
    rich_markup_mode="markdown",
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
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code:
            # typer >= 0.29 turns Ctrl-C into Exit(130) and, here, returns its code
            if code == 130:
                print("usdehaze: interrupted", file=sys.stderr)
            return code
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        code = _exit_code(exc)
        if code is None:  # not a kind it answers: raised again, with its own traceback
            raise
        return code
    return 0


def _exit_code(exc: BaseException) -> int | None:
    """The exit code of a command that raised ``exc``, after its one line on stderr (a usage
    error, Ctrl-C, a full device, a click usage error); None for any other exception."""
    if isinstance(exc, UsageError):
        print(f"usdehaze: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, KeyboardInterrupt):
        print("usdehaze: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, typer.Exit):  # --version, --help
        return exc.exit_code
    if isinstance(exc, SystemExit):
        return int(exc.code or 0)
    if isinstance(exc, OSError) and exc.errno in _FULL:
        print(f"usdehaze: error: {_full_device(exc)}", file=sys.stderr)
        return 2
    return _click_exit_code(exc)


def _click_exit_code(exc: BaseException) -> int | None:
    """A click usage error as one line and its exit code (0 where the help was the answer), an
    abort as 130; None for any other exception."""
    usage, abort = _click_errors()
    if isinstance(exc, usage):
        if not str(exc.format_message()).strip():  # no arguments: the help was the answer
            return 0
        print(f"usdehaze: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, abort):
        print("usdehaze: aborted", file=sys.stderr)
        return 130
    return None


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the device or quota is full


def _full_device(exc: OSError) -> str:
    """One line for a write that found its device full, naming the file, or stdout when the
    stream being written was stdout (then pointed at /dev/null: the exit's flush of what it
    still holds cannot fail again)."""
    where = exc.filename
    if where is None and _writing_stdout(exc):
        where = "standard output"
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real descriptor (tests)
            pass
    return (
        f"{where or 'an output file'}: {exc.strerror or 'device full'}; free some space and rerun"
    )


def _writing_stdout(exc: BaseException) -> bool:
    """True when a frame of the failed write held stdout (click's echo, a print's caller)."""
    streams = [s for s in (sys.stdout, sys.__stdout__) if s is not None]
    streams += [s.buffer for s in list(streams) if hasattr(s, "buffer")]
    tb = exc.__traceback__
    while tb is not None:
        if any(v is s for v in tb.tb_frame.f_locals.values() for s in streams):
            return True
        tb = tb.tb_next
    return False


def _one_line(exc: Exception) -> str:
    """A click usage error as one line, pointing to the command's --help."""
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) if ctx is not None else None
    if path:
        message += f" (see: {path} --help)"
    return message


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's usage-error and abort classes, from wherever this typer takes them.

    typer >= 0.29 vendors click as ``typer._click`` (its errors are not click's, and click itself
    may not be installed: the base dependencies do not pull it in); older typer releases use
    click. Collect whichever are importable, plus ``typer.Abort``.
    """
    import importlib

    usage: list[type] = []
    abort: list[type] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "ClickException"):
            usage.append(module.ClickException)
        if hasattr(module, "Abort"):
            abort.append(module.Abort)
    if hasattr(typer, "Abort"):
        abort.append(typer.Abort)
    return tuple(usage), tuple(abort)
