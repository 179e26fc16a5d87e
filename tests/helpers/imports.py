"""The import graph of the project's packages, read from the source with ``ast``, and the two rules it must keep.

- **No circles**: no module reaches itself through imports (a strongly connected component of more than one module).
- **Layers**: :data:`Layering` lists components (package or module prefixes) from the bottom up; a module may import
  its own component and any component of a lower layer, never one of a higher layer nor a sibling of its own layer
  (siblings stay independent of each other), except through an explicit, reasoned allowance.

Every import counts, at module level or inside a function, under ``TYPE_CHECKING`` or not: a lazy import is still a
dependency the layering has to carry. Only imports of modules under the given roots are in the graph.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}"


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name; subfolders count only when they are packages (hold an
    ``__init__.py``), so build output and data folders under ``root`` stay out."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if not all((root.joinpath(*parts[:depth]) / "__init__.py").is_file() for depth in range(1, len(parts))):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _resolve(name: str, known: Mapping[str, Path]) -> str | None:
    """The longest known module that ``name`` is, or is inside of (``a.b.c`` → ``a.b`` when ``c`` is a function)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: Mapping[str, Path]) -> Iterable[str]:
    """The known modules an import statement imports: ``from a import b`` is module ``a.b`` when there is one, else ``a``."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (found := _resolve(alias.name, known)) is not None:
                yield found
        return
    base = node.module or ""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        name = f"{base}.{alias.name}"
        found = name if name in known else _resolve(base, known)
        if found is not None:
            yield found


def import_graph(roots: Mapping[str, Path]) -> dict[str, list[Import]]:
    """Module → its imports of other modules under ``roots`` ({package name: folder})."""
    known: dict[str, Path] = {}
    for package, root in roots.items():
        known.update(modules(root, package))
    graph: dict[str, list[Import]] = {}
    for module, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, Import] = {}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for imported in _targets(node, module, is_package, known):
                if imported != module and imported not in edges:
                    edges[imported] = Import(module, imported, path, node.lineno)
        graph[module] = sorted(edges.values(), key=lambda edge: (edge.line, edge.imported))
    return graph


def _package_edges(graph: Mapping[str, Sequence[Import]]) -> dict[str, set[str]]:
    """A package's ``__init__`` runs before any of its modules: importing ``a.b`` also imports ``a``. Without these
    edges a circle through a package's ``__init__`` would go unseen."""
    edges = {module: {edge.imported for edge in imports} for module, imports in graph.items()}
    for module in graph:
        for target in list(edges[module]):
            ancestor = target.rpartition(".")[0]
            while ancestor and ancestor in graph:
                if ancestor != module and not module.startswith(ancestor + "."):
                    edges[module].add(ancestor)
                ancestor = ancestor.rpartition(".")[0]
    return edges


def cycles(graph: Mapping[str, Sequence[Import]]) -> list[list[str]]:
    """The import circles: each strongly connected component of more than one module, sorted (Tarjan's algorithm)."""
    edges = _package_edges(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative, so a deep graph cannot hit the recursion limit
        work: list[tuple[str, list[str]]] = [(start, sorted(edges.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                target = pending.pop()
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(edges.get(target, ()))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(found)


@dataclass(frozen=True)
class Layering:
    """Components by layer, bottom first; ``allowed`` maps (importer prefix, imported module) to the reason it may."""

    layers: Sequence[Sequence[str]]
    allowed: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def component(self, module: str) -> tuple[int, str] | None:
        """(layer, component) of ``module``: the longest component prefix that names it or a package holding it.
        A component ``pkg.__init__`` is the package module ``pkg`` alone, not its submodules."""
        best: tuple[int, str] | None = None
        for level, components in enumerate(self.layers):
            for prefix in components:
                if prefix.endswith(".__init__"):
                    matches = module == prefix.removesuffix(".__init__")
                else:
                    matches = module == prefix or module.startswith(prefix + ".")
                if matches and (best is None or len(prefix) > len(best[1])):
                    best = (level, prefix)
        return best

    def violations(self, graph: Mapping[str, Sequence[Import]]) -> list[str]:
        """Each import against the layering, with the reason; modules in no component are reported too."""
        problems: list[str] = []
        for module in sorted(graph):
            where = self.component(module)
            if where is None:
                problems.append(f"{module}: in no layer (add it to the layering)")
                continue
            for edge in graph[module]:
                target = self.component(edge.imported)
                if target is None or target[1] == where[1]:
                    continue
                if any(edge.importer.startswith(prefix) and edge.imported == imported for prefix, imported in self.allowed):
                    continue
                if target[0] > where[0]:
                    problems.append(f"{edge}: {where[1]} (layer {where[0]}) must not import the higher {target[1]} (layer {target[0]})")
                elif target[0] == where[0]:
                    problems.append(f"{edge}: {where[1]} and {target[1]} are siblings in layer {where[0]}; siblings stay independent")
        return problems
