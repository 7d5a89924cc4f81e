"""The package's layout: which of its modules import which.

Read from the source (every import statement, at module level or inside a
function, except those under ``if TYPE_CHECKING:``), so that an import made
only on a rare path counts too.  ``from pyns_boot import NAME`` counts as an
import of the module that defines NAME: a submodule, or for a lazy public
name of the package, the module pyns_boot.__getattr__ loads it from.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from nsutil import REPO

pytestmark = pytest.mark.unit

PACKAGE = REPO / "pyns_boot"
DEVELOPMENT_DOCS = REPO / "docs" / "development.md"


def module_name(path: Path) -> str:
    return "pyns_boot" if path.stem == "__init__" else "pyns_boot." + path.stem


def lazy_names() -> dict[str, str]:
    """pyns_boot._LAZY_MODULES, read from the source: public name -> the module that defines it."""
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["_LAZY_MODULES"]:
            names = ast.literal_eval(node.value)
            assert isinstance(names, dict)
            return names
    raise AssertionError("pyns_boot/__init__.py has no _LAZY_MODULES")


def imported_modules(path: Path, modules: set[str], lazy: dict[str, str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "pyns_boot")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "pyns_boot":
            for alias in node.names:
                submodule = "pyns_boot." + alias.name
                found.add(submodule if submodule in modules else lazy.get(alias.name, "pyns_boot"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pyns_boot."):
            found.add(str(node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import (the package imports itself by name)")
    found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.glob("*.py"))
    modules = {module_name(p) for p in paths}
    lazy = lazy_names()
    assert set(lazy.values()) <= modules, lazy
    graph = {module_name(p): imported_modules(p, modules, lazy) for p in paths}
    for source, targets in graph.items():
        assert targets <= modules, f"{source} imports {targets - modules}, which is not a module of the package"
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph (a list of modules, the first one repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "pyns_boot._cli_namespaces" in graph["pyns_boot.cli"]
    assert "pyns_boot._errors" in graph["pyns_boot._cli_namespaces"]
    assert "pyns_boot._status" in graph["pyns_boot.cli"]  # from pyns_boot import status: the lazy name's module
    assert graph["pyns_boot._errors"] == set()


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def documented_layout() -> dict[str, set[str]]:
    """docs/development.md's layout table: module -> the package modules its "imported by" cell names."""
    rows: dict[str, set[str]] = {}
    for line in DEVELOPMENT_DOCS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        found = re.fullmatch(r"`pyns_boot/(\w+)\.py`", cells[0]) if len(cells) == 3 else None
        if found is None:
            continue
        module = module_name(Path(found.group(1) + ".py"))
        assert module not in rows, f"{module} has two rows in {DEVELOPMENT_DOCS}"
        names = re.findall(r"`(_{0,2}[a-z][a-z_]*)`", cells[2])
        rows[module] = {"pyns_boot" if name == "pyns_boot" else "pyns_boot." + name for name in names}
    return rows


def test_the_development_docs_draw_the_layout() -> None:
    """Every module has one row in docs/development.md, and its "imported by" cell is the truth: the
    modules whose source imports it, and the package itself for the modules of its lazy public names."""
    graph = import_graph()
    lazy = set(lazy_names().values())
    importers = {module: {s for s, targets in graph.items() if module in targets} for module in graph}
    for module in lazy:
        importers[module].add("pyns_boot")
    documented = documented_layout()
    assert set(documented) == set(graph), (
        f"rows for modules that do not exist: {sorted(set(documented) - set(graph))}; "
        f"modules without a row: {sorted(set(graph) - set(documented))}"
    )
    wrong = {m: (sorted(documented[m]), sorted(importers[m])) for m in graph if documented[m] != importers[m]}
    assert not wrong, f"{DEVELOPMENT_DOCS}: imported by (documented, real): {wrong}"


def test_the_layout_is_the_designs() -> None:
    """The package sits at the root of the clone as the design names it: pyns_boot/hook.py (the Python side of the
    start-up hook) and pyns_boot/_setns.c (the C core); the start-up files, tests/ and examples/ beside it."""
    for path in (
        "pyns_boot/hook.py",
        "pyns_boot/_setns.c",
        "pyns_boot.pth",
        "tests/support",
        "examples",
        "bin/pyns-boot",
    ):
        assert (REPO / path).exists(), path
    assert not (REPO / "src").exists(), "the package moved from src/ to the root (docs/development.md, Layout)"
    helpers = {p.stem for p in (REPO / "tests").glob("*.py")} - {"conftest"}
    assert all(name.startswith("test_") for name in helpers), "test helpers live in tests/support/: " + str(helpers)


C_FILE_LINES = 500
DOCS_BYTES = 90_000


def test_each_c_file_holds_at_most_500_lines() -> None:
    """One concern a file (docs/development.md, Layout): a file that grows past this is two concerns."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.[ch]")}
    assert {name: n for name, n in sizes.items() if n > C_FILE_LINES} == {}


def test_the_reference_docs_stay_reference_sized() -> None:
    """docs/ and benchmarks/README.md: what is true now, each number once; history goes to CHANGELOG.md."""
    pages = [*(REPO / "docs").glob("*.md"), REPO / "benchmarks" / "README.md"]
    assert sum(p.stat().st_size for p in pages) <= DOCS_BYTES


def test_every_mutation_of_the_mutation_pass_applies() -> None:
    """scripts/mutate.py plants each bug by replacing a text that must occur exactly once: a move or a rename of
    the code it names would otherwise stop the pass halfway (docs/development.md, "The mutation pass")."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("mutate", REPO / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["mutate"]
    counts = {
        (mutation.name, path): (REPO / path).read_text().count(old)
        for mutation in module.MUTATIONS
        for path, old, _new in mutation.edits
    }
    assert {key: n for key, n in counts.items() if n != 1} == {}
