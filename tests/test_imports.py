"""The package's imports keep three rules, read from the source with ``ast`` (nothing is imported):

a. the first-party import graph has no cycle;
b. no first-party import sits inside a function (a late import that dodges a cycle);
c. no module reaches for another module's private name (``_x``, not a dunder), by import or by ``mod._x``.

The graph: module -> module for ``import tritonnn.x``, ``from tritonnn.x import y`` and relative imports, where
``from pkg import name`` means the submodule ``pkg.name`` when there is such a file, and importing ``a.b.c`` also
imports the packages ``a.b`` and ``a``, except those that contain the importer (a submodule always loads its own
parents; that is no cycle). Imports under ``if TYPE_CHECKING:`` are no edges; imports inside functions are (b
reports them too). ``kernels/`` is the package ``tritonnn.kernels``.

Private modules: ``from . import _backend`` or ``from ._aot import AotCase`` is fine when the private module is in
the importer's own package (the same directory) or in a package that contains it (``from .._process import
is_chief`` in ``tritonnn/callbacks/``); from any other package (a subpackage, a sibling) it is a violation, as is
every private function, class or variable imported or reached as ``mod._x`` (``mod`` a name the file's imports
bind to a first-party module; ``mod._x`` passes only where it is itself a private module the importer may use,
the attribute form of the import exception).
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"tritonnn": REPO / "tritonnn", "tritonnn.kernels": REPO / "kernels"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Site:
    """Where an import (or an attribute access) is written."""

    path: str  # relative to the tree's base folder
    line: int
    text: str  # the statement, on one line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


@dataclass
class Scan:
    """What one pass over the tree found: the modules, the import graph (with the first site of each edge) and the
    violations of rules b and c (rule a is the graph's cycles, see ``cycles``)."""

    modules: dict[str, Path]
    edges: dict[tuple[str, str], Site] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)
    private: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return (
            [f"cannot parse: {u}" for u in self.unreadable]
            + [f"(a) import cycle: {cycle}" for cycle in cycles(self.edges)]
            + [f"(b) late first-party import: {v}" for v in self.late]
            + [f"(c) private name from another module: {v}" for v in self.private]
        )


def module_files(roots: Mapping[str, Path]) -> dict[str, Path]:
    """Module name -> file, for every .py below each root (root folder -> its dotted package name)."""
    modules = {}
    for package, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            parts = [package, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


class _FileScanner(ast.NodeVisitor):
    """One file's imports: the edges they add, late first-party imports, private names reached for."""

    def __init__(self, scan: Scan, module: str, path: str, source: str, first_party: set[str]) -> None:
        self.scan, self.module, self.path, self.source, self.first_party = scan, module, path, source, first_party
        self.modules = scan.modules
        self.package = module if scan.modules[module].name == "__init__.py" else module.rpartition(".")[0]
        self.scope: list[tuple[str, bool]] = []  # (name, is a function) from the module down
        self.type_only = False
        self.bound: dict[str, str] = {}  # name -> the first-party module an import bound it to

    # -- helpers ----------------------------------------------------------------------------------------------------

    def site(self, node: ast.AST) -> Site:
        text = ast.get_source_segment(self.source, node) or type(node).__name__
        return Site(self.path, node.lineno, " ".join(text.split()))

    def is_first_party(self, name: str) -> bool:
        return name.split(".")[0] in self.first_party

    def known_prefix(self, name: str) -> str | None:
        """The longest prefix of ``name`` that is a module of the tree."""
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            prefix = ".".join(parts[:n])
            if prefix in self.modules:
                return prefix
        return None

    def add_edges(self, target: str | None, site: Site) -> None:
        """``target`` and the packages above it, less the importer and the packages that contain it."""
        if target is None or self.type_only:
            return
        parts = target.split(".")
        for n in range(len(parts), 0, -1):
            dep = ".".join(parts[:n])
            if dep in self.modules and dep != self.module and not self.module.startswith(dep + "."):
                via = site if dep == target else Site(site.path, site.line, f"{site.text}  (loads {target}, in {dep})")
                self.scan.edges.setdefault((self.module, dep), via)

    def may_use_private_module_of(self, package: str) -> bool:
        """Whether the importer may use the private modules of ``package``: those of its own package (the same
        directory) and of the packages that contain it (``tritonnn._process`` from ``tritonnn.callbacks.x``: the
        package's own internals); a subpackage's or a sibling's are another package's."""
        return package == self.package or self.package.startswith(package + ".")

    def private_module_of_another_package(self, name: str) -> str | None:
        """The first private module along the dotted ``name`` that is not in the importer's own package."""
        parts = name.split(".")
        for i, part in enumerate(parts):
            if is_private(part) and not self.may_use_private_module_of(".".join(parts[:i])):
                return ".".join(parts[: i + 1])
        return None

    def resolve_from(self, node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            return node.module if node.module and self.is_first_party(node.module) else None
        base = self.package.split(".")
        if node.level - 1 >= len(base):
            return None  # above the top package: Python refuses it; nothing to check here
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def where(self) -> str:
        names = [name for name, _ in self.scope]
        return ".".join(names)

    def in_function(self) -> bool:
        return any(is_function for _, is_function in self.scope)

    def note_late(self, node: ast.AST) -> None:
        if self.in_function() and not self.type_only:
            self.scan.late.append(f"{self.site(node)}  (in {self.where()})")

    # -- visitors ---------------------------------------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self.scope.append((node.name, True))
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        self.scope.append((node.name, False))
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            outer, self.type_only = self.type_only, True
            for stmt in node.body:
                self.visit(stmt)
            self.type_only = outer
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        site = self.site(node)
        first_party = [a for a in node.names if self.is_first_party(a.name)]
        if first_party:
            self.note_late(node)
        for alias in first_party:
            self.add_edges(self.known_prefix(alias.name), site)
            hidden = self.private_module_of_another_package(alias.name)
            if hidden:
                self.scan.private.append(f"{site}  (private module {hidden})")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self.resolve_from(node)
        if source is None:
            return
        site = self.site(node)
        self.note_late(node)
        hidden = self.private_module_of_another_package(source)
        if hidden:
            self.scan.private.append(f"{site}  (private module {hidden})")
        names = []  # the private functions, classes and variables it imports
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            is_module = alias.name != "*" and sub in self.modules
            self.add_edges(sub if is_module else self.known_prefix(source), site)
            if hidden is None and is_private(alias.name):
                if not is_module:
                    names.append(alias.name)
                elif not self.may_use_private_module_of(source):
                    self.scan.private.append(f"{site}  (private module {sub})")
        if names:
            verb = "is" if len(names) == 1 else "are"
            self.scan.private.append(f"{site}  ({', '.join(names)} {verb} private to {source})")

    def bind(self, tree: ast.Module) -> None:
        """Record the names the file's imports (anywhere in it) bind to first-party modules, before the visit:
        ``import a.b.c`` binds a to the package a, ``import a.b.c as z`` z to a.b.c, ``from a import b`` b to a.b
        when that is a module."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name, module = (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2
                    if self.is_first_party(module) and module in self.modules:
                        self.bound[name] = module
            elif isinstance(node, ast.ImportFrom) and (source := self.resolve_from(node)) is not None:
                for alias in node.names:
                    if f"{source}.{alias.name}" in self.modules:
                        self.bound[alias.asname or alias.name] = f"{source}.{alias.name}"

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in self.bound:
            self.visit(base)
            return
        current = self.bound[base.id]
        for attr in reversed(chain):
            sub = f"{current}.{attr}"
            if is_private(attr) and not (sub in self.modules and self.may_use_private_module_of(current)):
                what = f"private module {sub}" if sub in self.modules else f"{attr} is private to {current}"
                self.scan.private.append(f"{self.site(node)}  ({what}; {base.id} is {self.bound[base.id]})")
                return
            if sub not in self.modules:
                return
            current = sub


def scan_tree(roots: Mapping[str, Path], base: Path) -> Scan:
    """Read every module below ``roots`` (dotted package name -> folder); paths in messages are relative to base."""
    scan = Scan(module_files(roots))
    first_party = {package.split(".")[0] for package in roots}
    for module, path in scan.modules.items():
        rel = path.relative_to(base).as_posix()
        source = path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(source, filename=rel)
        except SyntaxError as exc:
            scan.unreadable.append(f"{rel}:{exc.lineno}: {exc.msg}")
            continue
        scanner = _FileScanner(scan, module, rel, source, first_party)
        scanner.bind(tree)
        scanner.visit(tree)
    return scan


def cycles(edges: Mapping[tuple[str, str], Site]) -> list[str]:
    """Every cycle needed to cover each edge that lies on one: per strongly connected component, for each of its
    edges (u, v) not yet on a reported cycle, the shortest way back from v to u. Each cycle is a list of modules,
    then the import that makes each step."""
    graph: dict[str, list[str]] = defaultdict(list)
    for u, v in sorted(edges):
        graph[u].append(v)
    component = {}
    for i, members in enumerate(_components(graph)):
        for m in members:
            component[m] = i
    covered: set[tuple[str, str]] = set()
    found = []
    for u, v in sorted(edges):
        if (u, v) in covered or u not in component or component[u] != component.get(v):
            continue
        path = _shortest_path(graph, v, u, component)
        loop = [u, *path]
        steps = list(zip(loop, loop[1:], strict=False))
        covered.update(steps)
        lines = [f"[{', '.join(loop)}]"] + [f"      {a} -> {b}  at {edges[a, b]}" for a, b in steps]
        found.append("\n".join(lines))
    return found


def _components(graph: Mapping[str, list[str]]) -> Iterator[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    nodes = sorted(set(graph) | {v for vs in graph.values() for v in vs})
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            succ = graph.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    members.append(m)
                    if m == node:
                        break
                if len(members) > 1:
                    yield sorted(members)


def _shortest_path(graph: Mapping[str, list[str]], start: str, goal: str, component: Mapping[str, int]) -> list[str]:
    """Modules from start to goal (both included), breadth first inside their component."""
    before = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in graph.get(node, []):
            if nxt not in before and component.get(nxt) == component[start]:
                before[nxt] = node
                queue.append(nxt)
    path = [goal]
    while path[-1] != start:
        path.append(before[path[-1]])
    return path[::-1]


# -- the package ---------------------------------------------------------------------------------------------------


def test_the_package_keeps_its_import_rules():
    scan = scan_tree(ROOTS, REPO)
    assert len(scan.modules) > 40, f"scanned only {sorted(scan.modules)}"
    assert "tritonnn.kernels.dense" in scan.modules and "tritonnn.layers" in scan.modules
    assert len(scan.edges) > 40, "the import graph is nearly empty: the scanner reads no imports"
    violations = scan.violations()
    if violations:
        pytest.fail(
            f"{len(violations)} import-rule violations in {len(scan.modules)} modules:\n" + "\n".join(violations),
            pytrace=False,
        )


# -- the checker, on small trees -----------------------------------------------------------------------------------


def write_tree(base: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def scan_files(tmp_path: Path, files: Mapping[str, str]) -> Scan:
    """A package ``pkg`` in pkg/, and ``eng/`` installed as ``pkg.eng`` (as kernels/ is tritonnn.kernels)."""
    write_tree(tmp_path, files)
    roots = {"pkg": tmp_path / "pkg", "pkg.eng": tmp_path / "eng"}
    roots = {name: root for name, root in roots.items() if root.is_dir()}
    return scan_tree(roots, tmp_path)


CLEAN = {
    "pkg/__init__.py": "from . import a, b, sub\nfrom .a import thing\nfrom . import eng\n__version__ = '1'\n",
    "pkg/_priv.py": "def helper():\n    return 1\n",
    "pkg/a.py": (
        "import json\nfrom typing import TYPE_CHECKING\n\nimport pkg.b\nfrom . import _priv\n"
        "from ._priv import helper\nfrom .b import other, __version__\nfrom pkg.eng import ops\n\n"
        "if TYPE_CHECKING:\n    from .sub.c import C\n\n"
        "thing = _priv.helper() + helper() + pkg.b.other()\n\n\ndef late():\n    import argparse\n"
        "    from json import _default_decoder\n\n    return argparse, json, _default_decoder\n"
    ),
    "pkg/b.py": "import typing\n\nif typing.TYPE_CHECKING:\n    from . import a\n__version__ = '1'\n\n\ndef other():\n"
    "    return 2\n",
    "pkg/sub/__init__.py": "from . import c\n",
    "pkg/sub/c.py": "from . import d\nfrom .. import b\nfrom ..a import thing\n\n\nclass C:\n    x = d.y + b.other()\n",
    "pkg/sub/d.py": "import pkg.sub\n\ny = pkg.sub.__name__\n",
    "eng/__init__.py": "from . import _backend, ops\nfrom ._backend import use\n",
    "eng/_backend.py": "def use():\n    return True\n",
    "eng/ops.py": (
        "from .. import eng\nfrom . import _backend\nfrom ._backend import use\n\n"
        "ok = _backend.use() and use() and eng._backend.use()\n"
    ),
}


def test_checker_passes_a_clean_tree_and_reads_its_graph(tmp_path):
    scan = scan_files(tmp_path, CLEAN)
    assert scan.violations() == []
    assert set(scan.modules) == {
        "pkg", "pkg._priv", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.sub.d", "pkg.eng", "pkg.eng._backend",
        "pkg.eng.ops",
    }  # fmt: skip
    edges = set(scan.edges)
    # from pkg import name -> the submodule; a package importing its own submodules is an edge
    assert {("pkg", "pkg.a"), ("pkg", "pkg.sub"), ("pkg", "pkg.eng"), ("pkg.sub", "pkg.sub.c")} <= edges
    # importing pkg.eng.ops also imports pkg.eng; relative imports resolve from the mapped folder
    assert {("pkg.a", "pkg.eng.ops"), ("pkg.a", "pkg.eng"), ("pkg.eng.ops", "pkg.eng._backend")} <= edges
    assert ("pkg.sub.c", "pkg.a") in edges and ("pkg.sub.c", "pkg.b") in edges
    # never to the importer's own packages, never for TYPE_CHECKING imports
    assert not {(u, v) for u, v in edges if u.startswith(v + ".")}
    assert ("pkg.a", "pkg.sub.c") not in edges and ("pkg.b", "pkg.a") not in edges


def test_checker_finds_cycles_with_their_imports(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "from pkg.a import f\n",
        # a cycle only through a parent package: m imports p.q (so p), p's __init__ imports m
        "pkg/m.py": "from .p.q import thing\n",
        "pkg/p/__init__.py": "from .. import m\n",
        "pkg/p/q.py": "thing = 1\n",
    }
    violations = scan_files(tmp_path, files).violations()
    assert len(violations) == 2, violations
    assert violations[0].startswith("(a) import cycle: [pkg.a, pkg.b, pkg.a]")
    assert "pkg/a.py:1: from . import b" in violations[0] and "pkg/b.py:1: from pkg.a import f" in violations[0]
    assert violations[1].startswith("(a) import cycle: [pkg.m, pkg.p, pkg.m]")
    assert "pkg/m.py:1: from .p.q import thing  (loads pkg.p.q, in pkg.p)" in violations[1]


def test_checker_finds_late_first_party_imports(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    import json\n    from . import b\n",
        "pkg/b.py": (
            "class K:\n    async def m(self):\n        import pkg.a\n\n        def inner():\n"
            "            from .a import f\n"
        ),
    }
    late = scan_files(tmp_path, files).late
    assert late == [
        "pkg/a.py:3: from . import b  (in f)",
        "pkg/b.py:3: import pkg.a  (in K.m)",
        "pkg/b.py:6: from .a import f  (in K.m.inner)",
    ]


def test_checker_finds_private_names_from_other_modules(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/_priv.py": "",
        "pkg/a.py": "_gather = _index = public = 1\n",
        "pkg/b.py": "from .a import _gather, _index, public\n\n\ndef f():\n    return a._gather\n\n\nfrom . import a\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import _priv\nimport pkg\n\ny = pkg._priv\n",  # a containing package's: fine
        "pkg/sub/e.py": "from ..eng import _backend\n",  # a sibling package's: not
        "pkg/d.py": (
            "from .eng import _backend\nfrom pkg.eng._backend import use\nimport pkg.eng as e\n\nz = e._backend\n"
        ),
        "eng/__init__.py": "",
        "eng/_backend.py": "def use():\n    pass\n",
    }
    private = scan_files(tmp_path, files).private
    assert private == [
        "pkg/b.py:1: from .a import _gather, _index, public  (_gather, _index are private to pkg.a)",
        "pkg/b.py:5: a._gather  (_gather is private to pkg.a; a is pkg.a)",
        "pkg/d.py:1: from .eng import _backend  (private module pkg.eng._backend)",
        "pkg/d.py:2: from pkg.eng._backend import use  (private module pkg.eng._backend)",
        "pkg/d.py:5: e._backend  (private module pkg.eng._backend; e is pkg.eng)",
        "pkg/sub/e.py:1: from ..eng import _backend  (private module pkg.eng._backend)",
    ]
