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
