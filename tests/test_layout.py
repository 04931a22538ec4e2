"""The layout the README promises: dependencies between the subpackages point one way (no import
cycles, at any depth of a module, functions included)."""
import ast
from pathlib import Path

import collbench

SRC = Path(collbench.__file__).resolve().parent
LAYERS = ["errors", "units", "fileio", "algorithms", "results", "model", "calibration",
          "runtime", "reports", "validation", "cli"]


def unit_of(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py") if rel else ""


def imported_units(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg = list(path.relative_to(SRC).parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            target = base + (node.module.split(".") if node.module else [])
            if not target and node.module is None:          # from . import x (top level)
                target = [a.name for a in node.names][:1]
            if target:
                out.add(target[0])
            elif node.names:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("collbench."):
            out.add(node.module.split(".")[1])
    return out


def test_dependencies_point_one_way():
    edges = {}
    for path in SRC.rglob("*.py"):
        u = unit_of(path)
        if u in ("__init__", "__main__", ""):
            continue
        deps = {d for d in imported_units(path) if d in LAYERS and d != u}
        edges.setdefault(u, set()).update(deps)
    assert set(edges) <= set(LAYERS), set(edges) - set(LAYERS)
    for u, deps in edges.items():
        for d in deps:
            assert LAYERS.index(d) < LAYERS.index(u), f"{u} imports {d}: against the layering"
