"""Import layering of events/, projections/, workers/ and ops/ (DESIGN.md "Folders").

Nothing under test is imported: each ``.py`` file is parsed with ``ast``, every
import statement in it (module level, function bodies, ``if TYPE_CHECKING:``)
is resolved to a module of the tree, and the rules below are checked. Tables
name sub-packages that may not exist yet; the rules apply to what exists.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages, lowest first: each may import itself and those before it.
LAYERS = ("events", "projections", "workers", "ops")

# projections/ sub-packages, highest first. Modules directly in projections/
# sit below `model`; projections/__init__.py may import anything.
PROJECTIONS_ORDER = ("read", "versions", "fold", "changes", "store", "model")

# Sub-package -> sibling sub-packages it may import (its own is always allowed).
# Modules directly in workers/ may import any sub-package.
WORKERS_ALLOWED: dict[str, set[str]] = {
    "natsio": set(),
    "broker": {"natsio"},
    "ingest": {"natsio", "broker"},
    "changefeed": {"natsio", "broker"},
    "projector": {"natsio", "broker", "changefeed"},  # wakes the change publisher
    "shipper": {"natsio", "projector"},  # a replica projects its log with the projector
}
# Modules directly in ops/ (settings, telemetry, wiring, ...) may not import ops.cli.
OPS_ALLOWED: dict[str, set[str]] = {"cli": {"api", "simulate", "mcp", "supervise"}, "api": {"mcp"},
                                    "simulate": set(), "mcp": set(), "supervise": set()}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    path: str  # its file, relative to the root
    line: int
    target: str  # the module of the tree it resolves to
    written: str  # e.g. "from ..store import env"
    type_only: bool  # under `if TYPE_CHECKING:`

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target} ({self.written})"


@dataclass
class Tree:
    modules: dict[str, Path] = field(default_factory=dict)  # dotted name -> file
    packages: set[str] = field(default_factory=set)  # every directory, dotted
    imports: list[Import] = field(default_factory=list)

    def resolve(self, name: str) -> str | None:
        """The longest prefix of a dotted name that is a module or package of the tree."""
        parts = name.split(".")
        while parts and ".".join(parts) not in self.modules.keys() | self.packages:
            parts.pop()
        return ".".join(parts) or None

    def subpackage(self, module: str) -> str | None:
        """`projections.store.env` -> "store"; None for modules directly in a package."""
        parts = module.split(".")
        return parts[1] if len(parts) > 2 or module in self.packages else None


def _import_nodes(nodes, type_only=False):
    """Yield (import statement, under TYPE_CHECKING?) anywhere below the given nodes."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_only
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in (
            getattr(node.test, "id", None), getattr(node.test, "attr", None)
        ):
            yield from _import_nodes(node.body, True)
            yield from _import_nodes(node.orelse, type_only)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), type_only)


def _targets(tree: Tree, node, source: str, is_init: bool):
    """(resolved target or None, statement as written) for each name a statement imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield tree.resolve(alias.name), f"import {alias.name}"
        return
    base = node.module or ""
    if node.level:  # relative: an __init__ is the package itself
        package = source.split(".") if is_init else source.split(".")[:-1]
        keep = len(package) - (node.level - 1)
        if keep < 1:
            return  # beyond the top-level package: fails at runtime anyway
        base = ".".join(package[:keep] + ([node.module] if node.module else []))
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        found = submodule if submodule in tree.modules or submodule in tree.packages else None
        written = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
        yield found or tree.resolve(base), written


def scan(root: Path) -> Tree:
    """Parse every module of the four packages under root and resolve its imports."""
    tree = Tree()
    for top in LAYERS:
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            for depth in range(1, len(parts)):
                tree.packages.add(".".join(parts[:depth]))
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree.modules[name] = path
    for source, path in tree.modules.items():
        syntax = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root).as_posix()
        for node, type_only in _import_nodes([syntax]):
            for target, written in _targets(tree, node, source, path.name == "__init__.py"):
                if target is not None:  # stdlib and third-party imports resolve to None
                    imp = Import(source, rel, node.lineno, target, written, type_only)
                    tree.imports.append(imp)
    return tree


def check_layers(tree: Tree) -> list[str]:
    rank = {top: i for i, top in enumerate(LAYERS)}
    order = " <- ".join(LAYERS)
    return [
        f"{imp.describe()}: layer rule: {src} may not import {dst} ({order})"
        for imp in tree.imports
        if rank[dst := imp.target.split(".")[0]] > rank[src := imp.source.split(".")[0]]
    ]


def _within(tree: Tree, top: str):
    """(import, source sub-package, target sub-package) for imports inside one package."""
    for imp in tree.imports:
        if imp.source.split(".")[0] == top == imp.target.split(".")[0]:
            yield imp, tree.subpackage(imp.source), tree.subpackage(imp.target)


def check_projections(tree: Tree) -> list[str]:
    def rank(sub):  # unlisted sub-packages are reported by check_unlisted
        return 0 if sub is None else len(PROJECTIONS_ORDER) - PROJECTIONS_ORDER.index(sub)

    order = " > ".join(PROJECTIONS_ORDER) + " > modules directly in projections/"
    return [
        f"{imp.describe()}: projections sub-package rule: "
        f"{src or 'a module directly in projections/'} may not import {dst} ({order})"
        for imp, src, dst in _within(tree, "projections")
        if imp.source != "projections"
        and {src, dst} - {None} <= set(PROJECTIONS_ORDER)
        and rank(dst) > rank(src)
    ]


def _check_table(tree: Tree, top: str, table: dict[str, set[str]]) -> list[str]:
    return [
        f"{imp.describe()}: {top} sub-package rule: {src} may not import {dst} "
        f"(allowed: {', '.join(sorted(table[src])) or 'no other sub-package'})"
        for imp, src, dst in _within(tree, top)
        if src in table and dst not in (None, src) and dst not in table[src]
    ]


def check_workers(tree: Tree) -> list[str]:
    return _check_table(tree, "workers", WORKERS_ALLOWED)


def check_ops(tree: Tree) -> list[str]:
    return [
        f"{imp.describe()}: ops rule: modules directly in ops/ may not import ops.cli"
        for imp, src, dst in _within(tree, "ops")
        if src is None and dst == "cli"
    ] + _check_table(tree, "ops", OPS_ALLOWED)


def check_unlisted(tree: Tree) -> list[str]:
    tables = {"projections": PROJECTIONS_ORDER, "workers": WORKERS_ALLOWED, "ops": OPS_ALLOWED}
    return [
        f"{package.replace('.', '/')}/: sub-package missing from the {top} layer table in this file"
        for package in sorted(tree.packages)
        if (top := package.split(".")[0]) in tables
        and package.count(".") == 1
        and package.split(".")[1] not in tables[top]
    ]


def check_cycles(tree: Tree) -> list[str]:
    """Strongly connected components (size > 1) and self-loops of the runtime import graph."""
    edges: dict[str, dict[str, Import]] = {name: {} for name in tree.modules}
    for imp in tree.imports:
        if not imp.type_only:
            edges[imp.source].setdefault(imp.target, imp)
    reach: dict[str, set[str]] = {}  # module -> modules reachable in one step or more
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            if (node := todo.pop()) not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        reach[start] = seen
    components = {frozenset({m} | {n for n in reach[m] if m in reach.get(n, ())}) for m in edges}
    found = []
    for component in sorted(sorted(c) for c in components):
        inside = [edges[a][b] for a in component for b in component if b in edges[a]]
        if len(component) > 1 or inside:
            inside.sort(key=lambda imp: (imp.path, imp.line))
            lines = "".join(f"\n      {imp.describe()}" for imp in inside)
            found.append(f"import cycle among {', '.join(component)}:{lines}")
    return found


CHECKS = {"layers": check_layers, "projections": check_projections, "workers": check_workers,
          "ops": check_ops, "unlisted": check_unlisted, "cycles": check_cycles}


def violations(root: Path) -> dict[str, list[str]]:
    """Every rule's violations in the tree under root."""
    tree = scan(root)
    return {rule: check(tree) for rule, check in CHECKS.items()}


@pytest.fixture(scope="module")
def real() -> dict[str, list[str]]:
    """The violations of the repository's own tree, scanned once."""
    return violations(ROOT)


@pytest.mark.parametrize("rule", CHECKS)
def test_real_tree_follows_rule(real, rule):
    """The repository breaks none of the layering rules; the message lists every violation."""
    found = real[rule]
    assert not found, f"{len(found)} violation(s) of the {rule} rule:\n  " + "\n  ".join(found)


FAKE_TREE = {
    "events/__init__.py": "",
    "events/types.py": "from workers import loop\n",  # upward: events -> workers
    "workers/loop.py": "from projections.model import keys\n",
    "workers/broker/__init__.py": "",
    "workers/natsio/client.py": "from ..broker import Broker\n",  # natsio is the lowest
    "projections/errors.py": "",
    "projections/model/keys.py": (
        "from ..errors import E\n\n\ndef late():\n    from projections.read.reader import R\n"
    ),
    "projections/read/reader.py": "from projections.store.env import Env\n",
    "projections/fold/apply.py": "from ..store import env\n",
    "projections/store/env.py": (
        "from typing import TYPE_CHECKING\nfrom .. import errors\n"
        "if TYPE_CHECKING:\n    from ..fold.apply import f\n"  # upward, and a type-only cycle
    ),
    "ops/__init__.py": "",
    "ops/a.py": "from . import b\nfrom .cli import main\n",  # top-level ops -> cli
    "ops/cli/__init__.py": "",
    "ops/b.py": "def f():\n    from .a import thing\n",
    "ops/api/__init__.py": "from .app import make\n",
    "ops/api/app.py": "from . import make_settings\n",  # a name of the parent __init__
}


def test_checker_reports_synthetic_violations(tmp_path):
    """A fake tree's upward imports (one in a function, one type-only) and cycles are caught,
    and nothing else is reported."""
    for rel, text in FAKE_TREE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = violations(tmp_path)

    assert len(found["layers"]) == 1 and "events.types imports workers.loop" in found["layers"][0]
    upward = "\n".join(found["projections"])
    assert len(found["projections"]) == 2
    assert "keys.py:5: projections.model.keys imports projections.read.reader" in upward
    assert "projections.store.env imports projections.fold.apply" in upward
    assert [v.splitlines()[0] for v in found["cycles"]] == [
        "import cycle among ops.a, ops.b:",
        "import cycle among ops.api, ops.api.app:",
    ]
    assert [v.split(": ", 2)[1] for v in found["workers"] + found["ops"]] == [
        "workers.natsio.client imports workers.broker (from ..broker import Broker)",
        "ops.a imports ops.cli (from .cli import main)",
    ]
    assert not found["unlisted"]
