"""Reading YAML config files with one-line errors that name the file (shared by every command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usdehaze.errors import UsageError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a missing file, bad YAML or a non-mapping is a UsageError."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{path}: expected a YAML mapping at the top level")
    return cfg
