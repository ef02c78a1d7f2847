"""Issue 32 item 8: a pipeline script without its extra ends in one line naming the extra,
before any work (not a 25-46-line traceback after starting); its user errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# sys.modules[name] = None: importing it fails, as in a venv without the extra
RUN = (
    "import runpy, sys\n"
    "for m in sys.argv[2].split(','):\n"
    "    sys.modules[m] = None\n"
    "script = sys.argv[1]\n"
    "sys.argv = [script, *sys.argv[3:]]\n"
    "runpy.run_path(script, run_name='__main__')\n"
)


def _script(cwd: Path, name: str, blocked: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    script = str(ROOT / "pipelines" / name)
    return subprocess.run(
        [sys.executable, "-c", RUN, script, blocked, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "name, argv",
    [
        ("make_corpus.py", []),
        ("check_speckle.py", []),
        ("make_demo_scan.py", []),
        ("adapt_check.py", ["--acquisition", "val_p4_diverging"]),
    ],
)
def test_without_the_sim_extra_one_line_before_any_work(tmp_path, name, argv):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = _script(tmp_path, name, "pymust", *argv)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"pipelines/{name}" in lines[0] and "pymust" in lines[0] and "[sim]" in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing started


def test_a_pipelines_user_error_is_one_line(tmp_path):
    r = _script(tmp_path, "adapt_check.py", "", "--acquisition", "nonsense")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: --acquisition nonsense")
