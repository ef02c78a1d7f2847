"""Issue 32 item 5: statements in docs/ checked against what the code and shipped files say
(each test reads the number or fact from its source, not a copy of it)."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import yaml

from usdehaze.ultrasound.dehaze_config import DehazeConfig
from usdehaze.ultrasound.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
DOCS = {p.name: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_roi_example_is_the_shipped_file_and_fits_the_demo():
    """roi.md prints configs/roi_example.json as it is, and every pair of it rasterises on the
    demo scan with the size checks gcnr and show apply (issue 32: the printed one did not)."""
    from usdehaze.ultrasound.io import load_scan
    from usdehaze.ultrasound.roi import load_roi, pair_masks
    from usdehaze.ultrasound.simulate import demo_scan_path

    block = re.search(r"```json\n(.*?)```", DOCS["roi.md"], re.S).group(1)
    shipped = ROOT / "configs" / "roi_example.json"
    assert json.loads(block) == json.loads(shipped.read_text())
    roi = load_roi(shipped)
    with load_scan(demo_scan_path()) as scan:
        masks = pair_masks(roi, scan.x, scan.z)
    assert [m[0] for m in masks] == [p.name for p in roi.pairs] and len(masks) >= 2
    for _, target, background in masks:
        assert target.sum() >= 64 and background.sum() >= 64 and not (target & background).any()


def test_fast_replaces_the_default_samplers_network_evaluations():
    """cli.md: the student's 1 evaluation is said against the default's count, which is steps ×
    the joint method's networks (the sampler's own count, 2 per step, docs/cli.md nfe)."""
    default = DehazeConfig()
    nfe = default.steps * len(METHODS[default.method].priors)
    said = re.search(r"instead of the default sampler's (\d+) \((\d+) steps", _flat(DOCS["cli.md"]))
    assert said and (int(said.group(1)), int(said.group(2))) == (nfe, default.steps)


def test_exact_preset_is_described_as_what_it_changes():
    """The exact preset runs the joint sampler, whose settings it changes in one: more steps;
    README and cli.md say so with its numbers."""
    exact = DehazeConfig.flatten(
        yaml.safe_load((ROOT / "configs" / "dehaze_exact.yaml").read_text())
    )
    assert exact.pop("method") == "joint"
    default = DehazeConfig()
    changed = {k: v for k, v in exact.items() if getattr(default, k) != v}
    assert changed == {"steps": exact["steps"]}, changed
    words = f"{exact['steps']} sampler steps instead of {default.steps}"
    for doc in ("README.md", "cli.md"):
        line = next(ln for ln in DOCS[doc].splitlines() if "dehaze_exact.yaml" in ln)
        assert words in line, (doc, line)


def test_demo_scan_origin_is_told_as_recorded():
    """The demo scan records its recipe; no document says it comes from `usdehaze simulate`."""
    import h5py

    from usdehaze.ultrasound.simulate import demo_scan_path

    with h5py.File(demo_scan_path(), "r") as f:
        recipe = json.loads(f["usdehaze"].attrs["simulation"])["recipe"]
    assert recipe == "pipelines/make_demo_scan.py"
    for name, text in DOCS.items():
        flat = _flat(text)
        assert not re.search(r"demo scan \(from `usdehaze simulate`\)", flat), name
        assert "demo scan is not from this simulator" not in flat or name == "simulate.md"


def test_simulate_md_names_which_shipped_priors_it_trained():
    """The default (iq) priors record the corpus as their data; the dB priors the simulator."""
    weights = ROOT / "usdehaze" / "weights"
    iq = json.loads((weights / "tissue_iq.json").read_text())["data"]["source"]
    db = json.loads((weights / "tissue.json").read_text())["data"]["source"]
    assert "corpus" in iq and "prior_data" in db
    flat = _flat(DOCS["simulate.md"])
    assert "are trained on this simulator" not in flat
    assert "**not** trained on this simulator but on the physics-based corpus" in flat


def test_training_md_gives_adapts_measured_result():
    """training.md quotes the haze removed after adapt from results.md's table, not 'unmeasured'."""
    row = next(
        ln for ln in DOCS["results.md"].splitlines() if ln.startswith("| **joint, adapted priors")
    )
    after = re.findall(r"\*\*([\d.]+)\*\*", row)[0]
    flat = _flat(DOCS["training.md"])
    assert "has not been measured" not in flat
    assert f"took haze removed from 0 % to {after} %" in flat


def test_install_instructions_name_the_checkout_not_the_index():
    """usdehaze is not on PyPI: the docs' install commands take an extra from the checkout
    (.[extra]); "usdehaze[extra]" is only what the errors of an installed usdehaze say."""
    for name, text in DOCS.items():
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            assert not re.search(r"pip install [\"']?usdehaze\[", block), name
    install = next(ln for ln in _flat(DOCS["napari.md"]).split(". ") if "Install the" in ln)
    assert 'pip install -e ".[napari]"' in install and "usdehaze[napari]" not in install


def test_architecture_md_gives_the_prior_protocols_signature():
    from usdehaze.core.priors import Prior

    params = list(inspect.signature(Prior.__call__).parameters)
    assert params == ["self", "x_t", "t"]
    flat = _flat(DOCS["architecture.md"])
    assert "a callable prior(x_t, t)" in flat and "score(x_t, t)" not in flat


def _documented_outputs() -> set[str]:
    """What the documents' usdehaze commands write: every -o/--out/--json file, and the scan
    and ROI file of ``usdehaze simulate OUT``."""
    import shlex

    outs = set()
    for text in DOCS.values():
        for body in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
            for raw in body.splitlines():
                tokens = shlex.split(raw, comments=True)
                segments: list[list[str]] = [[]]
                for t in tokens:
                    if t in ("&&", "|", ";"):
                        segments.append([])
                    else:
                        segments[-1].append(t)
                for seg in segments:
                    if "usdehaze" not in seg or any("[" in t for t in seg):
                        continue  # not a usdehaze command, or a synopsis
                    seg = seg[seg.index("usdehaze") :]
                    for i, t in enumerate(seg[:-1]):
                        if t in ("-o", "--out", "--json") and not seg[i + 1].startswith("-"):
                            outs.add(seg[i + 1])
                    if seg[1:2] == ["simulate"]:
                        outs |= {seg[2], str(Path(seg[2]).with_suffix(".roi.json"))}
    return outs


def test_outputs_of_documented_commands_are_git_ignored():
    """Following README and docs/ in the checkout leaves `git status` clean (issue 32)."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        import pytest

        pytest.skip("not a git checkout: nothing to ignore files from")
    outs = _documented_outputs()
    assert {"demo.png", "scan.h5", "scan.roi.json", "lab/", "cine.dehazed.dcm"} <= outs
    paths = [o for o in outs if not o.startswith("runs/")]  # runs/ is ignored as a whole
    r = subprocess.run(
        ["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    missed = [ln.split("\t")[-1] for ln in r.stdout.splitlines() if ln.startswith("::")]
    assert not missed, f"documented outputs not in .gitignore: {missed}"
    assert "runs/" in (ROOT / ".gitignore").read_text().splitlines()


def test_cli_md_prints_the_result_check_lines_as_run_says_them():
    """docs/cli.md's two example lines of the result check are what HarmCheck says for their own
    figures (the note's figures: the README walkthrough, measured by tests/test_walkthrough.py)."""
    from usdehaze.ultrasound.harm import CONTRAST_GAIN_DB, FrameHarm, HarmCheck

    text = DOCS["cli.md"]
    num = r"(-?[\d.]+)"
    warn = re.search(
        rf"^(\S+): the result separates .* \(gCNR {num} -> {num}, contrast {num} -> {num} dB, "
        rf"median of (\d+) frame.*$",
        text,
        re.M,
    )
    note = re.search(
        rf"^(\S+): the result takes little haze out .* {num} -> {num} dB, median of (\d+) frame.*$",
        text,
        re.M,
    )
    assert warn and note
    name, g0, g1, c0, c1, n = warn.groups()
    h = HarmCheck([FrameHarm(k, float(g0), float(g1), float(c0), float(c1)) for k in range(int(n))])
    assert h.warning and h.message(name) == warn.group(0)
    name, c0, c1, n = note.groups()
    h = HarmCheck([FrameHarm(k, 0.7, 0.7, float(c0), float(c1)) for k in range(int(n))])
    assert h.little_effect and h.little_effect_message(name) == note.group(0)
    assert f"less than {CONTRAST_GAIN_DB:g} dB" in _flat(text)
