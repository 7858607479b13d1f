#!/usr/bin/env python3
"""Print the project's import graph from the source (ast, nothing is imported): the edges between
apps with how many module imports make each, then the module edges inside and across apps.
`python3 scripts/import_graph.py [--modules]`. An edge against the stack's direction
(common <- accounts <- orders <- payments <- dunning <- api <- backoffice <- demo) is marked "UP"."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = ["common", "config", "accounts", "webhooks", "orders", "payments", "dunning", "api", "backoffice", "demo"]
SKIP = {".venv", "tests", "scripts", "migrations", "node_modules", ".git"}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if set(rel.parts) & SKIP or rel.parts[0] not in STACK:
            continue
        name = ".".join(rel.with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def main() -> None:
    mods = modules()
    known = set(mods)
    app_edges: dict[tuple[str, str], int] = defaultdict(int)
    mod_edges = []
    for name, path in sorted(mods.items()):
        for target in sorted(imports_of(name, path, known)):
            a, b = name.split(".")[0], target.split(".")[0]
            mod_edges.append((name, target))
            if a != b:
                app_edges[(a, b)] += 1
    print("app edges (importer -> imported, module imports):")
    for (a, b), n in sorted(app_edges.items(), key=lambda e: (STACK.index(e[0][0]), STACK.index(e[0][1]))):
        up = "  UP" if STACK.index(b) > STACK.index(a) and "config" not in (a, b) else ""
        print(f"  {a} -> {b} ({n}){up}")
    if "--modules" in sys.argv:
        print("module edges:")
        for a, b in mod_edges:
            print(f"  {a} -> {b}")


if __name__ == "__main__":
    main()
