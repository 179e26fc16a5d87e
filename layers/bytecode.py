"""The runtime's Python on this machine, and the bytecode it writes into a layer.

A layer ships ``.pyc`` files written by an interpreter of the runtime's Python version (``find_runtime_python``:
``MLOPS_LAYER_PYTHON``, this interpreter, PATH, pyenv, the system's), so a cold start on Lambda imports without
compiling (``precompile``). Split from ``layers/build.py``, which calls both.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from layers.rules import PYTHON_VERSION


class LayerBuildError(RuntimeError):
    """A layer cannot be built; the message names the layer and what failed."""


@dataclass(frozen=True)
class RuntimePython:
    """An interpreter of the runtime's Python version, which writes the bytecode the runtime reads."""

    executable: str
    version: str  # e.g. 3.12.1
    cache_tag: str  # e.g. cpython-312: the __pycache__/*.{cache_tag}.pyc name
    magic: str  # importlib.util.MAGIC_NUMBER in hex: the same for every 3.12.x release


_PROBE = (
    "import importlib.util, sys; "
    "print('%d.%d.%d' % sys.version_info[:3], sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex(), sys.executable)"
)


def _probe(executable: str) -> RuntimePython | None:
    try:
        result = subprocess.run([executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = result.stdout.strip().split(maxsplit=3)
    if result.returncode != 0 or len(fields) != 4:
        return None  # e.g. a pyenv shim for a version that is not installed
    version, cache_tag, magic, resolved = fields
    # the interpreter itself, not a launcher in front of it (a pyenv shim costs each process tens of milliseconds)
    return RuntimePython(resolved, version, cache_tag, magic)


def _candidates(python_version: str) -> list[str]:
    """Where a Python ``python_version`` may be: this interpreter, PATH, pyenv's versions, the system's."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    patch = re.compile(rf"{re.escape(python_version)}\.(\d+)")
    installed = sorted(
        (int(match.group(1)), folder / "bin" / "python")
        for folder in (pyenv.iterdir() if pyenv.is_dir() else [])
        if (match := patch.fullmatch(folder.name))
    )
    found = [sys.executable, shutil.which(f"python{python_version}"), *(str(path) for _patch, path in reversed(installed))]
    found += [f"/usr/bin/python{python_version}", f"/usr/local/bin/python{python_version}"]
    return list(dict.fromkeys(path for path in found if path and os.access(path, os.X_OK)))


@functools.cache
def find_runtime_python(python_version: str = PYTHON_VERSION) -> RuntimePython | None:
    """The first interpreter of ``python_version`` (MLOPS_LAYER_PYTHON if set, which must be one), or None."""
    override = os.environ.get("MLOPS_LAYER_PYTHON")
    if override:
        found = _probe(override)
        if found is None or not found.version.startswith(f"{python_version}."):
            what = f"is Python {found.version}" if found else "does not run"
            raise LayerBuildError(f"MLOPS_LAYER_PYTHON={override} {what}; the layers need a Python {python_version} interpreter")
        return found
    for candidate in _candidates(python_version):
        found = _probe(candidate)
        if found is not None and found.version.startswith(f"{python_version}."):
            return found
    return None


def precompile(target: Path, python: RuntimePython, *, sourceless: bool = False, ddir: str = "/opt/python") -> int:
    """Compile every module with the runtime's Python; returns how many .pyc files were written.

    Optimization level 0 (Lambda runs python without -O), unchecked hash-based .pyc: a layer is read-only and its
    files' mtimes do not survive zipping, so the runtime must use the bytecode without comparing timestamps.
    ``sourceless`` writes ``module.pyc`` beside ``module.py`` (compileall -b) and deletes the source. ``ddir`` is where
    the folder is on Lambda (/opt/python for a layer, /var/task for a code asset): sourceless tracebacks name it.
    """
    command = [python.executable, "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    command += ["-d", ddir, *(["-b"] if sourceless else []), str(target)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problem = " ".join((result.stdout + result.stderr).split())[-500:]
        raise LayerBuildError(f"layer at {target}: compiling with Python {python.version} failed: {problem}")
    if sourceless:
        for source in target.rglob("*.py"):
            source.unlink()
        return sum(1 for _ in target.rglob("*.pyc"))
    return sum(1 for _ in target.rglob(f"*.{python.cache_tag}.pyc"))
