"""The layers of docs/design.md, checked on the source: imports point down, bench/ on top, no private names.

Every module of softcalc/ is parsed with :mod:`ast` (nothing is imported):

- nothing outside softcalc/bench/ imports softcalc.bench (imports inside functions count). The one place
  outside it that names bench is the CLI's registry of command modules, ``softcalc.cli.COMMANDS``, which
  loads ``softcalc bench`` (softcalc/bench/command.py) by name; a test checks that it names nothing else
  of bench;
- no module imports a private name (``from softcalc.x import _name``) of another (inside functions too);
- the module-level imports among softcalc modules (those under ``if TYPE_CHECKING:`` left out) form no
  cycle. An edge is the module an import statement names (``from softcalc.a import b`` names softcalc.a.b
  when that is a module); the implicit import of a parent package is not an edge, since a package's
  ``__init__`` re-exporting its modules is not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "softcalc"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, module_level: bool) -> Iterator[tuple[int, str, str | None]]:
    """(line, module, name) of each import of ``path``: ``name`` is None for ``import module``.

    ``module_level``: only what runs on import (not inside functions, not under ``if TYPE_CHECKING:``).
    """
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def walk(node: ast.AST) -> Iterator[tuple[int, str, str | None]]:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if module_level and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                yield from ((child.lineno, alias.name, None) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolved against the package
                    parent = package[: len(package) - child.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                yield from ((child.lineno, base, alias.name) for alias in child.names)
            elif isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_module"):
                if (
                    child.args
                    and isinstance(child.args[0], ast.Constant)
                    and isinstance(child.args[0].value, str)
                ):
                    yield child.lineno, child.args[0].value, None
                yield from walk(child)
            else:
                yield from walk(child)

    yield from walk(ast.parse(path.read_text(), str(path)))


def target(base: str, name: str | None) -> str:
    """The softcalc module an import names."""
    return f"{base}.{name}" if name is not None and f"{base}.{name}" in MODULES else base


def is_bench(module: str) -> bool:
    return module == "softcalc.bench" or module.startswith("softcalc.bench.")


def test_the_modules_are_found() -> None:
    assert {"softcalc.bench.phonons", "softcalc.cli.phonons", "softcalc.phonons.comparison"} <= set(MODULES)


def test_only_bench_imports_bench() -> None:
    found = sorted(
        {
            f"{module} line {line}: {target(base, name)}"
            for module, path in MODULES.items()
            if not is_bench(module)
            for line, base, name in imports(path, module_level=False)
            if is_bench(target(base, name))
        }
    )
    assert not found, (
        "imports of softcalc.bench outside bench/ (move what they need down a layer):\n" + "\n".join(found)
    )


def test_no_private_names_across_modules() -> None:
    found = [
        f"{module} line {line}: from {base} import {name}"
        for module, path in MODULES.items()
        for line, base, name in imports(path, module_level=False)
        if base.split(".")[0] == "softcalc"
        and name is not None
        and name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))
    ]
    assert not found, "private names imported from another module (make them public):\n" + "\n".join(found)


def import_graph() -> dict[str, set[str]]:
    """Module -> the softcalc modules its module-level imports name."""
    graph = {}
    for module, path in MODULES.items():
        names = {target(base, name) for _, base, name in imports(path, module_level=True)}
        graph[module] = {n for n in names if n in MODULES and n != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph["softcalc.cli.phonons"] >= {"softcalc.phonons.comparison"}  # the graph sees real imports
    assert cycles(graph) == []


def test_the_cli_registry_names_only_the_bench_command() -> None:
    from softcalc.cli import COMMANDS

    named = [m for m in COMMANDS if is_bench(m)]
    assert named == ["softcalc.bench.command"], named
    assert set(COMMANDS) <= set(MODULES)
