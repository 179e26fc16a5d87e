"""The layering of the real tree: no import circles, and no import against the order below, in every module that exists
in ``serverless_mlops``, ``functions``, ``infra`` and ``layers`` (read with ``ast``, so a module added or split later is
checked without touching this file; tests/helpers/imports.py is the checker, tested on synthetic trees in
test_import_layering.py).

Bottom up (a module may import its own component and any lower layer; siblings in one layer stay independent):

0. ``errors`` and the layer tooling ``layers`` (the build of the Lambda layers)
1. ``settings`` (a missing or bad variable is a ConfigurationError naming it)
2. ``aws`` (boto3 clients built from the settings)
3. ``model``: what a model is, how it is fitted
4. ``store``: the artifact store, the registry, the capture format
5. ``serving``: the ONNX model, the endpoint, the model cache, the capture writer
6. ``drift``; ``cost`` (a month's bill from a price table, for ``mlops cost``)
7. ``quality``: ground truth, realized and estimated performance (may read captures the drift check's way)
7½. ``release`` (the release workflow; below ``retraining``, whose Promote may hand a version over to it)
8. ``retraining`` and ``batch`` (their ``contract`` modules are where ``functions`` and ``infra`` meet)
9. ``functions`` and ``infra``: siblings, the deployed handlers and the CDK app
10. ``local``: the laptop stand-in for AWS (synthesizes ``infra``'s app, runs ``functions``' handlers)
11. ``ui``: the read-only web console (reads the registry, the reports and the workflows' executions)
12. ``cli``
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.imports import Import, Layering, cycles, import_graph

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("serverless_mlops", "functions", "infra", "layers")
DOMAIN = "serverless_mlops"

LAYERING = Layering(
    layers=[
        [f"{DOMAIN}.__init__", f"{DOMAIN}.errors", "layers"],
        [f"{DOMAIN}.settings"],
        [f"{DOMAIN}.aws"],
        [f"{DOMAIN}.model"],
        [f"{DOMAIN}.store"],
        [f"{DOMAIN}.serving"],
        [f"{DOMAIN}.drift", f"{DOMAIN}.cost"],  # cost: prices times usage, for the CLI
        [f"{DOMAIN}.quality"],
        [f"{DOMAIN}.release"],
        [f"{DOMAIN}.retraining", f"{DOMAIN}.batch"],
        ["functions", "infra"],
        [f"{DOMAIN}.local"],
        [f"{DOMAIN}.ui"],
        [f"{DOMAIN}.cli"],
    ],
    allowed={
        (f"{DOMAIN}.store.lifecycle", f"{DOMAIN}.retraining.table"): (
            "Backends, the one bundle of AWS backends the CLI, handlers and local mode build from the settings, carries "
            "the retraining table beside the store and registry (built lazily in from_settings)"
        ),
    },
)


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph({package: ROOT / package for package in PACKAGES})


def test_the_graph_reads_every_package(graph: dict[str, list[Import]]) -> None:
    # a checker that read nothing would pass everything
    for package in PACKAGES:
        assert package in graph
        assert any(module.startswith(package + ".") for module in graph)
    assert any(edge.imported.startswith(f"{DOMAIN}.store") for edge in graph[f"{DOMAIN}.serving.endpoint"])


def test_no_import_circles(graph: dict[str, list[Import]]) -> None:
    assert cycles(graph) == []


def test_no_import_against_the_layering(graph: dict[str, list[Import]]) -> None:
    assert LAYERING.violations(graph) == []


def test_every_allowance_is_still_needed_and_reasoned(graph: dict[str, list[Import]]) -> None:
    """An allowance whose import is gone would silently allow it again later: drop it with the import."""
    edges = {(edge.importer, edge.imported) for imports in graph.values() for edge in imports}
    for (importer, imported), reason in LAYERING.allowed.items():
        assert any(source.startswith(importer) and target == imported for source, target in edges), (importer, imported)
        assert len(reason) > 40, (importer, imported)


def test_every_subpackage_says_what_it_owns_and_may_import() -> None:
    """Each package's __init__.py opens with a docstring that names what it may (or may never) import."""
    packages = [ROOT / package for package in PACKAGES] + sorted(path.parent for path in (ROOT / DOMAIN).glob("*/__init__.py"))
    for package in packages:
        init = package / "__init__.py"
        text = init.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{init}: no docstring"
        docstring = text[3 : text.index('"""', 3)]
        assert "import" in docstring.lower(), f"{init}: its docstring does not say what it may import"
