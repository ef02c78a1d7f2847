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


def _import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports, at the top or inside a function alike."""
    root = Path(usdehaze.core.__file__).parents[1]
    mods = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in mods:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    graph[m].add(sub if sub in mods else node.module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (or a module
    importing itself), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_the_package_counting_function_level_imports():
    """A function-level import hides a cycle from the interpreter, not from the design: none in
    the package (dehaze → driver → ood / harm, student and the napari widgets included)."""
    graph = _import_graph()
    assert "usdehaze.ultrasound.driver" in graph["usdehaze.ultrasound.dehaze"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles(graph) == []
