"""Test helpers for processes started by the tests (torchrun and its workers, GUI scripts)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(text: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A Python script (``text``) run as ``cwd/probe.py ARGS`` in a fresh interpreter on this
    checkout, one torch thread, output as text (10 minutes at most)."""
    path = cwd / "probe.py"
    path.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=cwd,
    )


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun's workers have their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
