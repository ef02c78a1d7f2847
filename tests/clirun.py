"""The CLI as a user starts it: ``python -m usdehaze`` in a child process running this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def usdehaze(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m usdehaze ARGS`` in a child (this checkout on PYTHONPATH), output as text."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "usdehaze", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
