"""The package's import graph reads as the flow: no cycle, imports point down the stages only, small modules.

Stages, bottom to top (README, "Architecture"): core -> corpus -> instruct -> mixture -> engines ->
evaluation -> study -> commands -> demo -> cli. A module may import its own stage and any stage below it.
Every ``import`` counts, the lazy ones inside functions too (they run, just later). ``from a import b``
is an edge to the module ``a.b`` when that is a module, else to ``a``. A package's ``__init__`` that its
own submodule imports makes a cycle like any other module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clinie_nemo"
STAGES = ("core", "corpus", "instruct", "mixture", "engines", "evaluation", "study", "commands", "demo", "cli",
          "__main__")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (AST, every import statement)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # the root package (__version__) belongs to every stage


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if not state.get(dep) and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if not state.get(start) and (found := visit(start)):
            return found
    return None


def test_every_module_belongs_to_a_stage() -> None:
    top = {stage_of(m) for m in _modules()} - {None}
    assert top <= set(STAGES), f"not a stage of the flow: {sorted(top - set(STAGES))} (add it to STAGES and the README)"
    entries = [p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))]
    assert len(entries) <= 12, f"the package root holds {len(entries)} entries: {sorted(entries)}"


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_point_down_the_flow() -> None:
    upward = []
    for module, deps in import_graph().items():
        here = stage_of(module)
        for dep in deps:
            there = stage_of(dep)
            if here and there and STAGES.index(there) > STAGES.index(here):
                upward.append(f"{module} -> {dep} ({here} imports the later stage {there})")
    assert not upward, "\n".join(sorted(upward))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small_and_says_what_it_is(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: {len(text.splitlines())} lines (at most {MAX_LINES})"
    if text.strip():
        assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(PACKAGE)} does not open with a docstring"


def test_the_graph_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import inside a function is an edge, and find_cycle finds a two-module cycle."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "clinie_nemo.commands" in graph["clinie_nemo.demo.runner"]  # `from clinie_nemo.commands import main` in a method
