"""One exception type for user mistakes: the CLI prints it as one line and exits 2."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from a user (file, key, argument). The message is one complete line.

    Convention: name the file, the key or field, and what was expected, e.g.
    ``scan.h5: key 'data/x': expected 3 dimensions (frames, z, x), got 2``.
    """


def where(path: object, key: str | None = None) -> str:
    """Format the 'file[: key 'k']' prefix used by every error message."""
    return f"{path}: key '{key}'" if key else f"{path}"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """What went wrong in ``exc`` as a short plain line for a UsageError: the first line of its
    message without terminal colour codes (torch puts them in its refusals), or its type name.
    An unpickling refusal is said plainly: the file holds objects that could run code."""
    import pickle
    import re

    if isinstance(exc, pickle.UnpicklingError):
        return "it holds Python objects besides tensors, numbers and containers, which could run code; refused"
    if isinstance(exc, EOFError):
        return "empty or truncated file"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:limit]
