"""The package's shape, checked statically: no import circles, no private names imported across modules,
no SQL outside store.py. Run alone with `python -m pytest -q tests/test_architecture.py` (no model needed)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "prototok"


def module_name(path: Path) -> str:
    parts = ("prototok", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative levels resolved against the importer's package)."""
    if not node.level:
        return node.module or ""
    is_pkg = MODULES[importer].name == "__init__.py"
    base = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_pkg else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str) -> list[tuple[str, str | None]]:
    """(imported prototok module, imported name or None) for every import in the module, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.startswith("prototok")]
        elif isinstance(node, ast.ImportFrom):
            mod = resolve(name, node)
            if not mod.startswith("prototok"):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((sub, None) if sub in MODULES else (mod, a.name))
    return out


def graph() -> dict[str, set[str]]:
    return {name: {m for m, _ in imports(name) if m in MODULES and m != name} for name in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path [a, b, ..., a], or None (iterative DFS, white/grey/black)."""
    state: dict[str, int] = {}
    for root in sorted(edges):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(edges[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(edges[nxt]))))
                path.append(nxt)
    return None


def test_cycle_finder_finds_a_circle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circles():
    """Every import counts, including those inside functions: a lazy import only hides a circle."""
    assert find_cycle(graph()) is None


def test_no_private_name_is_imported_from_another_module():
    bad = [
        f"{name} imports {mod}.{attr}"
        for name in MODULES
        for mod, attr in imports(name)
        if attr and attr.startswith("_") and attr != "__version__"
    ]
    assert bad == []


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|CREATE\s+TABLE|ALTER\s+TABLE|PRAGMA)\b", re.IGNORECASE)


def test_sql_lives_in_store_only():
    bad = []
    for name, path in MODULES.items():
        if name == "prototok.store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                bad.append(f"{name}: {node.value[:60]!r}")
    assert bad == []


def test_nothing_outside_a_method_branches_on_its_name():
    """Methods are registered objects (prototok.methods); callers ask the registry, never compare names or the
    layout string a method's files carry."""
    names = {"mem", "cram", "onepass"}
    bad = [
        f"{name}: {node.value!r}"
        for name, path in MODULES.items()
        if name != "prototok.methods" and not name.startswith("prototok.baselines")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert bad == []
