"""The layers of docs/architecture.md, checked against the real imports of memif_ct.

Reads every module's source with ast (nothing is imported), so a new module or import that
breaks the table fails here with the offending edge named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import memif_ct

PACKAGE = Path(memif_ct.__file__).parent

FOUNDATION = {"_native", "constants", "errors", "macaddr"}
# module -> the memif_ct modules it may import (docs/architecture.md, "What may import what").
ALLOWED: dict[str, set[str]] = {
    "_native": {"constants", "errors"},
    "constants": set(),
    "errors": set(),
    "macaddr": {"constants", "errors"},
    "config": {"constants", "errors", "macaddr"},
    "wire": FOUNDATION | {"config"},
    "handshake": FOUNDATION | {"config", "wire"},
    "region": FOUNDATION | {"config"},
    "queue": FOUNDATION | {"config"},
}
_CONTROL = set(ALLOWED) | {"eventloop", "link", "connection", "control"}
ALLOWED |= {name: _CONTROL - {name} for name in ("eventloop", "link", "connection", "control")}
_API = _CONTROL | {"interface", "aio"}
ALLOWED |= {"interface": _CONTROL, "aio": _CONTROL | {"interface"}}
TOOLS = {"frames", "pcap", "tools", "cli", "__init__", "__main__"}
CONTROL_AND_BELOW = _CONTROL
ABOVE_CONTROL = {"interface", "aio", "tools", "cli"}


def modules() -> dict[str, set[str]]:
    """module name -> memif_ct modules it imports (at any level, including in functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(a.name for a in node.names)
                elif node.module and node.module.startswith("memif_ct."):
                    deps.add(node.module.split(".")[1])
                elif node.module == "memif_ct":
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("memif_ct."))
        graph[name] = {d for d in deps if (PACKAGE / f"{d}.py").exists() and d != name}
    return graph


def test_every_module_is_placed_in_a_layer():
    unplaced = set(modules()) - set(ALLOWED) - TOOLS
    assert unplaced == set(), f"add these modules to docs/architecture.md and this test: {unplaced}"


def test_imports_point_down_only():
    bad = [f"{mod} imports {dep}" for mod, deps in modules().items() if mod in ALLOWED
           for dep in sorted(deps - ALLOWED[mod])]
    assert bad == []


def test_control_plane_and_below_never_import_the_api_or_the_tools():
    bad = [f"{mod} imports {dep}" for mod, deps in modules().items() if mod in CONTROL_AND_BELOW
           for dep in deps & ABOVE_CONTROL]
    assert bad == []


def test_no_import_cycle():
    graph = modules()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)


def test_no_module_reaches_into_another_class_private_members():
    """``obj._name`` only on self/cls (dunder and ctypes' ``_fields_``-style names aside)."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("_")
                    and isinstance(node.value, ast.Name) and node.value.id not in ("self", "cls")):
                target = node.value.id
                # a module alias like _native._lib, or a foreign object's private member
                offenders.append(f"{path.name}:{node.lineno}: {target}.{node.attr}")
    assert offenders == []
