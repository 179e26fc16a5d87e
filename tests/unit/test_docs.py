"""The documentation cannot rot silently: every module and file it names exists, the README's architecture diagram
names real modules on every arrow, and the CLI reference page is what the `mlops` app generates."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the pages a reader follows: the front page, the manual, and the READMEs of the handlers and the layers
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "functions" / "README.md", ROOT / "layers" / "README.md"]
# what `make docs` runs to write docs/cli.md (the Makefile must run this very command)
CLI_DOCS = ["-m", "typer", "serverless_mlops.cli", "utils", "docs", "--name", "mlops", "--title", "CLI reference"]

_PATH = re.compile(r"(?<![\w./-])((?:serverless_mlops|functions|infra|layers|tests|benchmarks|models|docs)/[\w./*-]*)")
_DOTTED = re.compile(r"(?<![\w./-])((?:serverless_mlops|functions|infra)(?:\.[A-Za-z_]\w*)+)")
_NOT_IN_A_CLONE = ("layers/build/",)  # made by a build, not committed


def named_paths(text: str) -> set[str]:
    """Repository paths a page names (``serverless_mlops/store/registry.py``, ``tests/events/*.json``)."""
    found = {match.rstrip(".") for match in _PATH.findall(text)}
    return {path for path in found if not path.startswith(_NOT_IN_A_CLONE)}


def named_modules(text: str) -> set[str]:
    """Dotted names a page gives (``serverless_mlops.drift.service.run_check``, ``functions.inference.app``)."""
    return set(_DOTTED.findall(text))


def path_exists(path: str, root: Path = ROOT) -> bool:
    if "*" in path:
        return any(root.glob(path.rstrip("/")))
    return (root / path).exists()


@cache
def _top_level_names(module: Path) -> frozenset[str]:
    names: set[str] = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return frozenset(names)


def module_problem(dotted: str, root: Path = ROOT) -> str | None:
    """None if ``dotted`` is a module of the tree (a package, a module, or a name defined at a module's top level),
    else what is missing."""
    parts = dotted.split(".")
    where = root
    for index, part in enumerate(parts):
        if (where / part / "__init__.py").is_file():
            where = where / part
            continue
        if (where / f"{part}.py").is_file():
            module = where / f"{part}.py"
        elif index and (where / "__init__.py").is_file():
            module = where / "__init__.py"
            if part in _top_level_names(module):
                return None
            return f"{'.'.join(parts[: index + 1])}: no module {part!r} in {where.relative_to(root)}/ and no such name"
        else:
            return f"{'.'.join(parts[: index + 1])}: no such package or module"
        rest = parts[index + 1 :]
        if rest and rest[0] not in _top_level_names(module):
            return f"{dotted}: {module.relative_to(root)} defines no {rest[0]!r}"
        return None
    return None


def test_the_finders_see_paths_and_modules_and_report_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "serverless_mlops" / "store").mkdir(parents=True)
    (tmp_path / "serverless_mlops" / "__init__.py").write_text("")
    (tmp_path / "serverless_mlops" / "store" / "__init__.py").write_text("from x import Thing\n")
    (tmp_path / "serverless_mlops" / "store" / "registry.py").write_text("class Registry: ...\nLIMIT: int = 3\n")
    text = (
        "see `serverless_mlops/store/registry.py`. The module `serverless_mlops.store.registry.Registry` and "
        "serverless_mlops.store.Thing; not arn:aws:lambda:function/x nor s3://b/serverless_mlops/x, nor layers/build/y."
    )
    assert named_paths(text) == {"serverless_mlops/store/registry.py"}
    assert named_modules(text) == {"serverless_mlops.store.registry.Registry", "serverless_mlops.store.Thing"}
    assert path_exists("serverless_mlops/store/registry.py", tmp_path)
    assert path_exists("serverless_mlops/*/registry.py", tmp_path)
    assert not path_exists("serverless_mlops/registry.py", tmp_path)  # moved: the page must follow
    assert module_problem("serverless_mlops.store.registry.Registry", tmp_path) is None
    assert module_problem("serverless_mlops.store.registry.LIMIT", tmp_path) is None
    assert module_problem("serverless_mlops.store.Thing", tmp_path) is None
    assert module_problem("serverless_mlops.store", tmp_path) is None
    assert module_problem("serverless_mlops.registry", tmp_path) is not None
    assert "defines no 'DynamoDBRegistry'" in str(module_problem("serverless_mlops.store.registry.DynamoDBRegistry", tmp_path))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_path_and_module_a_page_names_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = sorted(path for path in named_paths(text) if not path_exists(path))
    wrong = sorted(problem for dotted in named_modules(text) if (problem := module_problem(dotted)))
    assert missing == [], f"{page.relative_to(ROOT)} names paths that do not exist"
    assert wrong == [], f"{page.relative_to(ROOT)} names modules that do not exist"


def architecture_diagram() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```mermaid\n(.*?)```", section, re.DOTALL)
    assert match, "the README's Architecture section lost its Mermaid diagram"
    return match.group(1)


def test_the_architecture_diagram_names_an_existing_module_on_every_arrow() -> None:
    arrows = [line for line in architecture_diagram().splitlines() if "-->" in line or "-.->" in line]
    assert len(arrows) >= 8  # spec -> train -> registry -> serve -> capture -> drift -> retrain -> registry, and more
    labels = {line.strip(): re.findall(r"[\w./-]+\.py", line.split("|")[1]) if line.count("|") >= 2 else [] for line in arrows}
    unlabelled = [line for line, modules in labels.items() if not modules]
    assert unlabelled == [], 'every arrow names the modules that carry it: A -->|"model/fit.py<br/>store/lifecycle.py"| B'
    # paths under serverless_mlops/ (model/fit.py), or from the repository root (functions/inference/app.py)
    named = {module for modules in labels.values() for module in modules}
    missing = sorted(m for m in named if not (path_exists(m, ROOT / "serverless_mlops") or path_exists(m)))
    assert missing == []


def test_the_cli_reference_is_what_the_app_generates(tmp_path: Path) -> None:
    generated = tmp_path / "cli.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AWS_"))}
    command = [sys.executable, *CLI_DOCS, "--output", str(generated)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == generated.read_text(encoding="utf-8"), "docs/cli.md is stale: run make docs"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(PY) " + " ".join(CLI_DOCS).replace("CLI reference", '"CLI reference"') + " --output docs/cli.md" in makefile


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """What `make docs` builds: a broken link, a missing anchor or a missing included README section fails the build."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")]
    built = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
    tour = (tmp_path / "site" / "local-stack" / "index.html").read_text(encoding="utf-8")
    assert "tick" in tour  # the README's five-minute tour, included into the local stack page
