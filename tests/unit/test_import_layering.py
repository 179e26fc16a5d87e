"""The import-graph checker (tests/helpers/imports.py) on synthetic package trees: it must see a circle, a wrong-way
import and a sibling import, however the import is spelled, and pass a tree that keeps the rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.helpers.imports import Layering, cycles, import_graph

LAYERS = Layering(layers=[["pkg.__init__", "pkg.base"], ["pkg.store", "pkg.model"], ["pkg.serving"], ["pkg.cli"]])


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


GOOD = {
    "__init__.py": "",
    "base.py": "import json\n",
    "store/__init__.py": '"""the store"""\nfrom pkg.store.items import Item\n',
    "store/items.py": "from pkg import base\n",
    "store/ops.py": "from .items import Item\nfrom ..base import thing\n",
    "model.py": "import pkg.base\n",
    "serving.py": "from pkg.store import ops\nfrom pkg import model\n",
    "cli/__init__.py": "def main():\n    from pkg.serving import run  # lazy, still an edge\n",
}


def test_a_tree_that_keeps_the_rules_passes(tmp_path: Path) -> None:
    graph = import_graph({"pkg": tree(tmp_path, GOOD)})
    assert cycles(graph) == []
    assert LAYERS.violations(graph) == []
    # relative imports resolve, `from package import module` points at the module, lazy imports count
    assert {edge.imported for edge in graph["pkg.store.ops"]} == {"pkg.store.items", "pkg.base"}
    assert {edge.imported for edge in graph["pkg.serving"]} == {"pkg.store.ops", "pkg.model"}
    assert [edge.imported for edge in graph["pkg.cli"]] == ["pkg.serving"]


@pytest.mark.parametrize(
    ("spelling", "line", "expected"),
    [
        ("from pkg.serving import run\n", 2, "pkg.serving"),
        ("import pkg.serving\n", 2, "pkg.serving"),
        ("from .. import serving\n", 2, "pkg.serving"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.cli import main\n", 4, "pkg.cli"),
    ],
)
def test_a_lower_layer_importing_a_higher_one_is_reported_with_its_line(tmp_path: Path, spelling: str, line: int, expected: str) -> None:
    files = {**GOOD, "store/items.py": "from pkg import base\n" + spelling}
    problems = LAYERS.violations(import_graph({"pkg": tree(tmp_path, files)}))
    assert len(problems) == 1
    assert f"store/items.py:{line}: pkg.store.items imports {expected}:" in problems[0]
    assert "must not import the higher" in problems[0]


def test_siblings_of_one_layer_stay_independent_unless_allowed(tmp_path: Path) -> None:
    files = {**GOOD, "model.py": "import pkg.base\nfrom pkg.store.items import Item\n"}
    graph = import_graph({"pkg": tree(tmp_path, files)})
    (problem,) = LAYERS.violations(graph)
    assert "pkg.model and pkg.store are siblings in layer 1" in problem
    allowed = Layering(layers=LAYERS.layers, allowed={("pkg.model", "pkg.store.items"): "the item type is shared"})
    assert allowed.violations(graph) == []


def test_a_module_in_no_layer_is_reported(tmp_path: Path) -> None:
    files = {**GOOD, "stray.py": ""}
    assert LAYERS.violations(import_graph({"pkg": tree(tmp_path, files)})) == ["pkg.stray: in no layer (add it to the layering)"]


def test_a_circle_is_found_however_long(tmp_path: Path) -> None:
    files = {
        **GOOD,
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    import pkg.c\n",
        "c.py": "from .a import thing\n",
    }
    assert cycles(import_graph({"pkg": tree(tmp_path, files)})) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_a_circle_through_a_package_init_is_found(tmp_path: Path) -> None:
    # cli/__init__ → serving → cli.common: importing cli.common runs cli/__init__ first, which imports serving again
    files = {**GOOD, "cli/common.py": "", "serving.py": "from pkg.cli.common import x\n"}
    found = cycles(import_graph({"pkg": tree(tmp_path, files)}))
    assert found == [["pkg.cli", "pkg.serving"]]


def test_two_packages_form_one_graph(tmp_path: Path) -> None:
    root = tree(tmp_path, GOOD)
    other = tmp_path / "functions"
    other.mkdir()
    (other / "__init__.py").write_text("", encoding="utf-8")
    (other / "handler.py").write_text("from pkg.serving import run\nimport boto3\n", encoding="utf-8")
    graph = import_graph({"pkg": root, "functions": other})
    assert [edge.imported for edge in graph["functions.handler"]] == ["pkg.serving"]
    layering = Layering(layers=[*LAYERS.layers, ["functions"]])
    assert layering.violations(graph) == []


def test_folders_that_are_not_packages_stay_out(tmp_path: Path) -> None:
    files = {**GOOD, "build/vendored/numpy.py": "type NDArray = list  # not even 3.11 syntax\n"}
    assert "pkg.build.vendored.numpy" not in import_graph({"pkg": tree(tmp_path, files)})
