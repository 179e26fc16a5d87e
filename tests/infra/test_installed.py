"""Installed, not path-hacked: the library, the Lambda handlers, the CDK app and the layer build are packages of the
distribution (pyproject's [tool.setuptools.packages.find]), so they import by name from any folder, and none of them
edits ``sys.path`` to find the others."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("serverless_mlops", "functions", "infra", "layers")


@pytest.mark.parametrize("module", ["functions.observability", "infra.config", "layers.build"])
def test_each_package_imports_from_outside_the_repository(tmp_path: Path, module: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["POWERTOOLS_METRICS_NAMESPACE"] = "test"
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
        cwd=tmp_path,  # not the repository root: only the installed distribution can resolve the name
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(ROOT)


def _path_edits(path: Path) -> list[int]:
    """Lines of ``path`` that change ``sys.path`` (``sys.path.insert/append/extend``, or assign to it)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif isinstance(node, ast.Assign | ast.AugAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Subscript):
                target = target.value
        if isinstance(target, ast.Attribute) and target.attr == "path" and isinstance(target.value, ast.Name) and target.value.id == "sys":
            lines.append(node.lineno)
    return sorted(lines)


def test_no_package_edits_sys_path() -> None:
    edits = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in ("functions", "infra", "layers")
        for path in sorted((ROOT / package).glob("*.py")) + sorted((ROOT / package).glob("*/*.py"))
        for line in _path_edits(path)
    ]
    assert edits == []


def test_the_path_edit_finder_sees_each_spelling(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("import sys\nsys.path.insert(0, 'x')\nsys.path.append('y')\nsys.path[:] = []\nsys.path += ['z']\nprint(sys.path)\n")
    assert _path_edits(script) == [2, 3, 4, 5]
