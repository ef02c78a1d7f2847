"""Command-line options of ``run`` and ``run-many``.

The dehazing settings are not listed here: :func:`with_settings` makes one option per
DehazeConfig setting (its fields and the parameters the registered rules and solvers declare) (its name with dashes, ``--x/--no-x`` for a boolean, a path for the priors
section), with the help text and section (the help panel) its field declares
(usdehaze.ultrasound.dehaze) and its default (with its unit, and the baseline methods' own). The options that are not settings (inputs, output, frames, the
YAML, quiet, strict) are defined once below.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import Field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.dehaze_config import setting_default

# help panels of ``--help``, one per config section (None: the top level, ``method``)
PANELS = {
    None: "Method",
    "model": "Model",
    "sampler": "Sampler",
    "rule": "Data consistency",
    "solver": "Prior step",
    "runtime": "Runtime",
    "priors": "Priors",
}
# the settings as the CLI is built: the fields and those the registered rules and solvers declare
_FIELDS = DehazeConfig.settings()


def option_name(f: Field) -> str:
    """A setting's option: ``--dynamic-range``; ``--compile/--no-compile`` for a boolean."""
    flag = "--" + f.name.replace("_", "-")
    return f"{flag}/--no-{flag[2:]}" if isinstance(f.default, bool) else flag


def setting(name: str, panel: bool = True) -> Any:
    """The option (an ``Annotated`` type for typer) of DehazeConfig field ``name``: None when
    not given, so the config file's value or the default stands; ``panel``: listed under its
    section in ``--help``."""
    f = _FIELDS[name]
    kind = Path if f.metadata.get("path") else type(f.default)
    text = f.metadata["help"]
    text = text() if callable(text) else text
    option = typer.Option(
        option_name(f),
        # the default typer would show is None (not given: the YAML's value or the default)
        help=f"{text} [default: {setting_default(name)}]",
        rich_help_panel=PANELS.get(f.metadata["section"]) if panel else None,
    )
    return Annotated[Optional[kind], option]  # noqa: UP045 - typer reads this type at run time


def with_settings(command: Any) -> Any:
    """Decorator of a command: after its own options, one option per DehazeConfig field
    (:func:`setting`); the command gets the values as ``settings``, a dict of every field (None:
    not given; paths as strings), for ``build_config``."""
    sig = inspect.signature(command, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "settings"]
    clash = {p.name for p in own} & set(_FIELDS)
    if clash or "settings" not in sig.parameters:
        raise TypeError(f"{command.__name__}: takes settings; options named like one: {clash}")
    added = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=setting(n))
        for n in _FIELDS
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        settings = {n: kwargs.pop(n, None) for n in _FIELDS}
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
        return command(**kwargs, settings=settings)

    params = own + added
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


Device = setting("device", panel=False)  # adapt's --device: the same option
Steps = setting("steps", panel=False)  # evaluate's and bench dehaze's --steps: the same option
Key = Annotated[str | None, typer.Option("--key", help="Dataset to read when several fit.")]
Frames = Annotated[
    str | None, typer.Option("--frames", help="START:STOP or an index (default all).")
]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML with DehazeConfig keys in sections model, sampler, rule, solver, runtime "
        "and priors (configs/dehaze_default.yaml; flat keys, the old spelling, still load); "
        "options override it.",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Fallback = Annotated[
    str,
    typer.Option(
        "--fallback",
        help="A frame whose result looks wrecked (brightest tissue darkened, dark/bright order "
        "inverted, tissue moved into the haze, dark regions invented): none (default: keep it, "
        "say so in a warning and in the file) or input (write the input in its place).",
    ),
]

Strict = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse (exit 2, nothing written) a scan that looks unlike the priors' training data, instead of warning; stop at a frame whose result looks wrecked (the frames before it kept).",
    ),
]
