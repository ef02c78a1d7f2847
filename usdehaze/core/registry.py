"""One registry of named pieces (DC rules, solvers, data models): register by name, look up.

A ``Registry`` is a dict of name → class in registration order (so ``list(REG)`` is the
choices a help text shows), with ``register``, a class decorator that refuses an empty or
duplicate name, and ``lookup``, which answers an unknown name with one ``UsageError`` line
"SOURCE: KIND 'x': expected one of a, b, c". Each registry of the package is one of these, so
adding a piece and refusing a wrong name work the same way everywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, fields
from typing import Any, Generic, TypeVar

from usdehaze.errors import UsageError

T = TypeVar("T", bound=type)


class Registry(dict[str, T], Generic[T]):
    """Named classes of one ``kind`` ("rule", "solver", "model"); ``requires``: class attributes
    every registered class must set (besides ``name``)."""

    def __init__(self, kind: str, requires: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.kind, self.requires = kind, requires

    def register(self, cls: T) -> T:
        """Class decorator: make ``cls`` available by its ``name`` (an empty, duplicate or
        incomplete declaration is a programming error: ValueError at import)."""
        name = getattr(cls, "name", "")
        if not name or name in self:
            raise ValueError(f"{self.kind} name '{name}': empty or already registered")
        missing = [a for a in self.requires if not getattr(cls, a, None)]
        if missing:
            raise ValueError(f"{cls.__name__}: a {self.kind} needs {', '.join(missing)}")
        self[name] = cls
        return cls

    def lookup(self, name: str, source: str | None = None) -> T:
        """The class registered as ``name``; else one UsageError line naming ``source`` (a file,
        an option; None: no prefix) and the choices."""
        try:
            return self[name]
        except (KeyError, TypeError):  # TypeError: an unhashable value from a config file
            where = f"{source}: " if source else ""
            raise UsageError(
                f"{where}{self.kind} '{name}': expected one of {', '.join(self)}"
            ) from None


def setting(default: Any, help: str | Callable[[], str], **meta: Any) -> Any:
    """A field of a piece's ``Params`` that users set (an option of ``usdehaze run``, a key of
    its config): its default, its ``help`` (a string, or a function that makes it when the CLI
    is built), ``unit`` (what a number is measured in) and ``range`` ((minimum or None,
    maximum, must be > 0): the values the config accepts). A field without help is set by
    code only (a method, a test)."""
    return field(default=default, metadata={"help": help, **meta})


def params_of(piece: type, given: Mapping[str, Any]) -> Any:
    """``piece.Params`` (a DC rule's or solver's parameter dataclass) from ``given``; a name it
    does not declare is one UsageError line naming the piece and the parameters it has."""
    names = [f.name for f in fields(piece.Params)]
    for k in given:
        if k not in names:
            has = ", ".join(names) or "none"
            raise UsageError(
                f"{piece.kind} '{piece.name}': no parameter '{k}' (its parameters: {has})"
            )
    return piece.Params(**given)


def param_names(piece: type) -> tuple[str, ...]:
    """The parameters a rule or solver declares (its ``Params`` fields), in order."""
    return tuple(f.name for f in fields(piece.Params))


def import_modules(package: str, path: Iterable[str], first: Iterable[str] = ()) -> None:
    """Import the modules ``first`` of ``package`` in that order (the order a registry lists
    its pieces), then every other module but ``base`` and private ones: a piece registered in a
    new module of the package is available with no other edit."""
    for name in first:
        importlib.import_module(f"{package}.{name}")
    for m in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if m.name != "base" and not m.name.startswith("_"):
            importlib.import_module(f"{package}.{m.name}")
