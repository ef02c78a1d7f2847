"""JSON in and out with one rule set: what usdehaze writes is always valid JSON (NaN and ±Infinity
become null), and what it reads is bounded in size and depth and holds no NaN/Infinity."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from usdehaze.errors import UsageError, first_line
from usdehaze.limits import MAX_JSON_DEPTH, bounded_file


def clean(obj: Any) -> Any:
    """``obj`` with every non-finite float (Python or numpy) replaced by None, numpy scalars and
    arrays as plain numbers and lists, tuples as lists; other leaves unchanged."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalar or array
        return clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN or Infinity (they become null): strict parsers,
    jq and JavaScript read the output. Other keyword arguments go to ``json.dumps``."""
    kwargs.setdefault("default", str)
    return json.dumps(clean(obj), allow_nan=False, **kwargs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def depth(obj: Any) -> int:
    """Nesting depth of dicts and lists (a scalar is 0), counted without recursion."""
    best, stack = 0, [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
        else:
            best = max(best, d)
            continue
        best = max(best, d + 1)
    return best


def read_json(path: str | Path, what: str, max_bytes: int) -> Any:
    """Parse the JSON file ``path`` (a ``what``, e.g. 'ROI file'): at most ``max_bytes`` and
    ``MAX_JSON_DEPTH`` levels, no NaN/Infinity; every failure is one UsageError naming the file."""
    path = bounded_file(path, what, max_bytes)
    try:
        text = path.read_bytes().decode("utf-8")
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UsageError(
            f"{path}: not valid {what}: nested deeper than {MAX_JSON_DEPTH} levels (the limit)"
        ) from None
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"{path}: not valid JSON ({first_line(exc)})") from None
    if depth(value) > MAX_JSON_DEPTH:
        raise UsageError(
            f"{path}: not valid {what}: nested deeper than {MAX_JSON_DEPTH} levels (the limit)"
        )
    return value
