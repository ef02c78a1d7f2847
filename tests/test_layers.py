"""The layers: ``usdehaze.core`` is domain-agnostic and never reaches up into the ultrasound,
natural-image, CLI or napari code (docs/architecture.md: imports only point down)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import usdehaze.core

UPPER = ("usdehaze.ultrasound", "usdehaze.natural", "usdehaze.cli", "usdehaze.napari")
CORE = Path(usdehaze.core.__file__).parent

# imports every module of usdehaze.core (walked from the package), then lists what got loaded
PROBE = r"""
import importlib, json, pkgutil, sys
import usdehaze.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "usdehaze.core.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def _upper(name: str) -> bool:
    return any(name == u or name.startswith(u + ".") for u in UPPER)


def test_importing_every_core_module_loads_nothing_above_core():
    r = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd="/"
    )
    got = json.loads(r.stdout)
    files = {p.relative_to(CORE).with_suffix("") for p in CORE.rglob("*.py")}
    expected = {("usdehaze.core." + ".".join(f.parts)).removesuffix(".__init__") for f in files}
    # every module of core was imported (a module that failed to import fails check=True above)
    assert expected - {"usdehaze.core"} <= set(got["imported"])
    assert [m for m in got["loaded"] if _upper(m)] == []


def test_no_core_module_imports_an_upper_layer_even_lazily():
    """Imports inside functions run only when called: read every core file's import statements."""
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [f"{path.relative_to(CORE)}:{node.lineno}: {n}" for n in names if _upper(n)]
    assert found == []


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)]
    return out


def test_no_library_module_or_pipeline_imports_the_cli():
    """Library code lives in the library: nothing outside usdehaze/cli (and the entry point
    usdehaze/__main__.py) imports usdehaze.cli, lazily or not; pipelines neither."""
    root = CORE.parents[1]
    files = [
        p
        for p in sorted((root / "usdehaze").rglob("*.py"))
        if "cli" not in p.relative_to(root / "usdehaze").parts[:1] and p.name != "__main__.py"
    ] + sorted((root / "pipelines").rglob("*.py"))
    found = [
        f"{p.relative_to(root)}:{line}: {name}"
        for p in files
        for line, name in _imports(p)
        if name == "usdehaze.cli" or name.startswith("usdehaze.cli.")
    ]
    assert found == []
