"""Every command and snippet in README.md and docs/*.md, as written, with only the base install
(click and the optional extras blocked: tests/test_newcomer.py's list).

In one subprocess, in a scratch folder that has the repository's configs/, usdehaze/data/ and
usdehaze/weights/, the documents' code blocks run in order (README first): each `usdehaze`
command exits 0, or, where this table says why (your own files, an extra that is not
installed), refuses in one line with exit 2. Commands that take minutes are parsed against the
CLI instead (options, types, required arguments), their input files must exist (or be the
reader's own, listed below) and `--frames` must fit the scan; the output a later command reads
is made by a quick stand-in. Python blocks run as written. `pip`, `python pipelines/...` and the
napari tools are checked statically (extras in pyproject.toml, scripts and their options).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from test_newcomer import OPTIONAL

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Commands that take minutes: parsed and their inputs checked, not run (reason each).
SLOW = {
    "usdehaze run ": "dehazes frames: about 5 s per frame on 2 cores",
    "usdehaze run-many ": "dehazes every frame of its scans: a minute or more",
    "usdehaze evaluate --frames 20": "the whole quality table: about 15 minutes",
    "usdehaze bench dehaze": "times the plain Algorithm 1 loop and the default: minutes",
    "usdehaze bench sampler": "times six sampler settings: about 30 s",
    "usdehaze gcnr --roi roi.json out.zarr/": "reads out.zarr, made by the run-many above",
    "usdehaze info out.zarr": "reads out.zarr, made by the run-many above",
}
# Quick stand-ins that make what a later command reads (same output, 1 frame, 2 steps).
STAND_INS = {
    "usdehaze run --demo": "run --demo --frames 0:1 --steps 2 -q",
    "usdehaze run scan.h5 -o scan.dehazed.h5 --frames 0:4": (
        "run scan.h5 -o scan.dehazed.h5 --frames 0:1 --steps 2 -q"
    ),
}
# Inputs that are the reader's own (their scans, folders, adapted priors), never made here, or
# made by a SLOW command above (out.zarr: docs/cli.md's run-many).
USER_FILES = {
    "a.h5", "b.h5", "roi.json", "lab_priors", "lab", "out.zarr", "out.zarr/scans/000", "cine.dcm"
}  # fmt: skip
# Commands that, as written here, refuse in one line: what the line must say.
REFUSALS = {
    "usdehaze adapt ": "",  # your own scans and folders
    "usdehaze adapt --tissue clear.h5 ": None,  # docs/adapt.md's try: simulated, 2 steps, runs
    "usdehaze view ": "",  # napari is not installed (or the ROI file is yours)
    "usdehaze experiment ": "scikit-image",  # the baselines extra
    "usdehaze train configs/prior_tissue.yaml --export-only": "no checkpoint",
    "usdehaze train configs/prior_tissue_iq.yaml --export-only": "no checkpoint",
    "usdehaze train configs/": "pipelines/train_priors.py",  # the recipe makes the data
    "usdehaze evaluate --cases runs/corpus/val": "make_corpus.py",  # the corpus is made first
    "usdehaze evaluate --cases runs/fullwave": "make_fullwave.py",  # the scans are made first
    "usdehaze evaluate --cases runs/unseen12": "make_corpus.py",  # make_unseen.py makes them
}
PLACEHOLDER = re.compile(r"\[|\]|\bFILE\b|\bROI\.json\b|^[A-Z]$")


def _blocks(doc: Path) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", doc.read_text(), re.S | re.M)


def _lookup(table: dict[str, str], line: str) -> str | None:
    hits = [k for k in table if line.startswith(k)]
    return table[max(hits, key=len)] if hits else None


def _plan() -> tuple[list[dict], list[str]]:
    """The driver's jobs in document order, and the static checks' failures."""
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    jobs, problems, stood_in = [], [], set()
    for doc in DOCS:
        name = doc.relative_to(ROOT).as_posix()
        for lang, body in _blocks(doc):
            if lang == "python":
                jobs.append({"doc": name, "kind": "python", "code": body})
                continue
            if lang != "bash":
                continue
            for raw in body.splitlines():
                tokens = shlex.split(raw, comments=True)
                segments, cur = [], []
                for t in tokens:
                    if t == "&&":
                        segments.append(cur)
                        cur = []
                    else:
                        cur.append(t)
                segments.append(cur)
                for seg in filter(None, segments):
                    line = " ".join(seg)
                    where = f"{name}: {line}"
                    head = seg[0]
                    if head == "pip":
                        for spec in seg:
                            for group in re.findall(r"\.\[([\w,]+)\]", spec):
                                for extra in group.split(","):
                                    if extra not in extras:
                                        problems.append(f"{where}: no extra '{extra}'")
                    elif head == "python" and seg[1:3] == ["-m", "pytest"] or "=" in head:
                        continue  # the test suite itself
                    elif head == "python":
                        script = ROOT / seg[1]
                        if not script.is_file():
                            problems.append(f"{where}: {seg[1]} does not exist")
                            continue
                        text = script.read_text()
                        for mod in re.findall(r"^\s*import (\w+)$", text, re.M):
                            shared = script.parent / f"{mod}.py"  # a recipe's shared parser
                            text += shared.read_text() if shared.is_file() else ""
                        for opt in (t for t in seg[2:] if t.startswith("--")):
                            if f'"{opt}"' not in text:
                                problems.append(f"{where}: {seg[1]} has no option {opt}")
                    elif head == "torchrun":
                        k = seg.index("usdehaze")
                        jobs.append(
                            {"doc": name, "kind": "parse", "argv": seg[k + 1 :], "line": line}
                        )
                    elif head in ("napari", "npe2"):  # the napari extra's own tools
                        if not (ROOT / "usdehaze/napari/napari.yaml").is_file():
                            problems.append(f"{where}: no napari manifest")
                    elif head == "usdehaze":
                        if any(PLACEHOLDER.search(t) for t in seg[1:]):
                            continue  # a synopsis, not a command
                        job = {"doc": name, "argv": seg[1:], "line": line}
                        if _lookup(SLOW, line + " ") is not None:
                            jobs.append({**job, "kind": "parse"})
                            if line in STAND_INS and line not in stood_in:
                                stood_in.add(line)
                                argv = shlex.split(STAND_INS[line])
                                jobs.append({**job, "kind": "cli", "argv": argv, "expect": None})
                        else:
                            jobs.append({**job, "kind": "cli", "expect": _lookup(REFUSALS, line)})
                    else:
                        problems.append(f"{where}: unknown program {head!r}")
    return jobs, problems


DRIVER = r"""
import contextlib, io, json, os, signal, sys, time
from pathlib import Path
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]  # ./usdehaze/ holds data only
for _m in OPTIONAL:
    sys.modules[_m] = None
import typer.main
from usdehaze.cli import app
from usdehaze.cli._app import run_app

group = typer.main.get_command(app)
INPUTS = ("scan", "file", "inputs", "config", "roi", "priors", "tissue_prior", "haze_prior")

def parse(argv, user_files):
    cmd, args, name = group, list(argv), "usdehaze"
    while hasattr(cmd, "commands"):
        name, args = args[0], args[1:]
        cmd = cmd.commands[name]
    params = cmd.make_context(name, args).params
    paths = []
    for key in INPUTS:
        value = params.get(key)
        for p in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(p, Path):
                paths.append(p)
    for p in paths:
        if p.as_posix().rstrip("/") not in user_files and not p.exists():
            return f"{p}: input does not exist"
    if params.get("frames") and params.get("scan") and Path(params["scan"]).exists():
        from usdehaze.ultrasound.io import load_scan
        from usdehaze.ultrasound.scan import parse_frames
        with load_scan(params["scan"]) as s:
            parse_frames(params["frames"], s.n_frames, params["scan"])
    return None

class Slow(Exception):
    pass

def on_alarm(*_):
    raise Slow()

signal.signal(signal.SIGALRM, on_alarm)
jobs = json.loads(sys.stdin.read())
results = []
for job in jobs:
    out, err = io.StringIO(), io.StringIO()
    t0, rc, note = time.time(), None, None
    signal.alarm(LIMIT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if job["kind"] == "cli":
                rc = run_app(job["argv"])
            elif job["kind"] == "parse":
                note = parse(job["argv"], USER_FILES)
                rc = 0 if note is None else 2
            else:
                exec(compile(job["code"], job["doc"], "exec"), {"__name__": "__main__"})
                rc = 0
    except Slow:
        note = f"still running after {LIMIT} s: list it in SLOW with a reason"
    except BaseException as exc:
        note = f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
    results.append({"rc": rc, "note": note, "out": out.getvalue()[-1500:],
                    "err": err.getvalue()[-1500:], "seconds": round(time.time() - t0, 1)})
print("RESULTS " + json.dumps(results))
"""


def _workdir(tmp: Path) -> Path:
    """A scratch folder with the repository's configs, demo data, weights and pipelines."""
    (tmp / "usdehaze" / "data").mkdir(parents=True)
    for f in (ROOT / "usdehaze" / "data").iterdir():
        (tmp / "usdehaze" / "data" / f.name).symlink_to(f)
    (tmp / "usdehaze" / "weights").symlink_to(ROOT / "usdehaze" / "weights")
    (tmp / "configs").symlink_to(ROOT / "configs")
    (tmp / "pipelines").symlink_to(ROOT / "pipelines")
    return tmp


def test_static_parts_of_the_docs_hold():
    jobs, problems = _plan()
    assert not problems, "\n".join(problems)
    kinds = {j["kind"] for j in jobs}
    assert kinds == {"cli", "parse", "python"} and len(jobs) > 40


@pytest.mark.slow
def test_docs_commands_and_snippets_run_as_written(tmp_path):
    jobs, _ = _plan()
    work = _workdir(tmp_path / "work")
    # 90 s per command on an idle machine; a loaded one (load above its cores) gets as much more
    # time as it is loaded, at most 4x: the README's 1-frame Python example took 69 s at load 13
    # on 2 cores
    load = min(max(os.getloadavg()[0] / (os.cpu_count() or 1), 1.0), 4.0)
    limit = int(90 * load)
    code = f"OPTIONAL = {OPTIONAL!r}\nUSER_FILES = {sorted(USER_FILES)!r}\nLIMIT = {limit}\n"
    code += DRIVER
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    r = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=900 * load,
    )
    assert "RESULTS " in r.stdout, r.stderr[-3000:]
    results = json.loads(r.stdout.split("RESULTS ", 1)[1])
    failures = []
    for job, res in zip(jobs, results):
        what = f"{job['doc']}: {job.get('line') or job['kind']} [{job['kind']}]"
        err_lines = res["err"].strip().splitlines()
        if job["kind"] == "cli" and job.get("expect") is not None:
            one = len(err_lines) == 1 and err_lines[0].startswith("usdehaze: error:")
            if res["rc"] != 2 or not one or job["expect"] not in res["err"]:
                failures.append(
                    f"{what}: expected a one-line refusal ({job['expect']!r}), got {res}"
                )
        elif res["rc"] != 0:
            failures.append(f"{what}: {res}")
    slowest = sorted(zip(results, jobs), key=lambda rj: -rj[0]["seconds"])[:6]
    print("slowest:", [(r["seconds"], j.get("line") or j["doc"]) for r, j in slowest])
    assert not failures, "\n".join(failures)
    # the README's first command and its 'Use it' block leave what they say
    assert (work / "demo.png").is_file() and (work / "fig.png").is_file()
    assert (work / "scan.roi.json").is_file() and (work / "sim.png").is_file()
