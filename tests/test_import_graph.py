"""The house's import graph: the engine at the ground, no import circles among the project's modules.

Read from the source with ``ast`` (nothing is imported), counting every import, also those inside functions:
a lazy import still makes one module depend on the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NS = "unitoken_eval"  # the installed namespace the repository's folders live under
ENGINE = "harness"
PLUGINS = ("tasks", "model_adapters", "results", "integrations")
PACKAGES = (ENGINE, *PLUGINS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NS, *parts])


def _part(module: str) -> str:
    """The repository folder a module name belongs to ('' for names outside the project)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == NS else ""


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``path``; ``from pkg import sub`` counts as importing
    the submodule ``pkg.sub`` where that is a module, else ``pkg`` itself."""
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub if sub in known else target, node.lineno))
    return out


def _graph() -> dict[str, list[tuple[str, int]]]:
    known = _modules()
    graph: dict[str, list[tuple[str, int]]] = {}
    for name, path in known.items():
        edges: dict[str, int] = {}
        for t, line in _imports(path, name, known):
            if t in known and t != name:
                edges.setdefault(t, line)
        graph[name] = sorted(edges.items())
    return graph


def test_the_engine_imports_no_plugin():
    bad = []
    for name, path in _modules().items():
        if _part(name) != ENGINE:
            continue
        for target, line in _imports(path, name, _modules()):
            if _part(target) in PLUGINS:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "the engine must not import a plugin package:\n" + "\n".join(bad)


def _cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w, _ in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_project_modules():
    graph = _graph()
    cycles = _cycles(graph)
    detail = []
    for comp in cycles:
        members = set(comp)
        edges = [f"  {a} -> {b} (line {line})" for a in comp for b, line in graph[a] if b in members]
        detail.append(", ".join(comp) + "\n" + "\n".join(edges))
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_the_checks_see_a_planted_upward_import_and_a_cycle(tmp_path, monkeypatch):
    """The walkers above must be able to fail: an engine module importing a task, two modules importing
    each other."""
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "harness" / "a.py").write_text(f"def f():\n    from {NS}.tasks.b import x\n")
    (tmp_path / "tasks" / "b.py").write_text("from . import c\n")
    (tmp_path / "tasks" / "c.py").write_text(f"import {NS}.tasks.b\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    with pytest.raises(AssertionError, match=r"harness/a.py:2 imports unitoken_eval.tasks.b"):
        test_the_engine_imports_no_plugin()
    assert _cycles(_graph()) == [[f"{NS}.tasks.b", f"{NS}.tasks.c"]]


def test_plugin_authors_find_the_contract_in_one_module():
    import unitoken_eval.harness.plugin as plugin

    for name in ("Task", "GroupTask", "ModelAdapter", "ScoreContext", "Sample", "UnderstandRequest",
                 "GenerateRequest", "Prediction", "TaskResult", "Headline", "TaskError", "AdapterError",
                 "SampleErrors", "NotScored", "Judge", "JudgeUnavailable", "parse_model_args", "tolerate"):
        assert name in plugin.__all__ and hasattr(plugin, name), name
    fake = (ROOT / "tests" / "unitoken_eval_testkit" / "fake_plugins.py").read_text(encoding="utf-8")
    assert "from unitoken_eval.harness.plugin import" in fake and "unitoken_eval.harness.types" not in fake
