"""``make lock``: resolve every environment's lock (``locks/*.txt``) from pyproject's ranges, with hashes, through uv.

    python layers/lock.py                 # every lock, keeping each pin its lock has where pyproject's ranges still allow it
    python layers/lock.py --upgrade       # every lock, resolved anew: the newest releases pyproject allows
    python layers/lock.py layer-training  # one lock
    python layers/lock.py --check         # no resolving: say which locks disagree with pyproject (exit 1 if any)
    python layers/lock.py --out DIR       # write the locks into DIR instead (make check-latest does; a new DIR: newest)
    python layers/lock.py --lowest --out DIR  # the lowest releases pyproject's own ranges allow (make check-lowest)

``make lock`` after a change to pyproject moves only what the change forces: uv reads the lock it is about to
replace and prefers its pins (``uv pip compile --output-file`` of an existing file), so a new range, a new
dependency or a new floor re-resolves that and nothing else. Taking newer releases is ``--upgrade``, on purpose
(``make check-latest`` first shows what they would do). ``--lowest`` (uv's ``--resolution lowest-direct``: each
requirement pyproject names at its floor, what they pull in at its newest) checks that the floors are true; it
writes only into a scratch folder.

Why uv: it resolves for a platform and a Python other than its own (``--python-platform x86_64-manylinux_2_34
--python-version 3.12``), which the layers need and pip-tools cannot do (pip-compile resolves for the interpreter
running it), it writes pip's requirements format with ``--hash`` lines, so every environment installs with plain
``pip install --require-hashes --no-deps``, and it resolves these groups in seconds. uv is needed only to lock; it is
pinned in the development lock like everything else.

The locks:

- ``dev``: the development venv (``make install``): the core and every dependency group, plus setuptools (the build
  backend of ``pip install -e .``), for Python 3.11 on every platform (``--universal``; markers choose).
- ``layer-inference``, ``layer-training``: each Lambda layer (``layers/build.py``): the core plus the group, without
  what the runtime provides, for the runtime's Python and platform, wheels only.
- ``layer-inference-py312-manylinux_2_34_aarch64``, ``layer-training-…``: the same for Graviton (``architecture:
  arm64``). A new one starts from the x86_64 lock's pins (uv prefers them), so both architectures install the same
  versions; ``--upgrade`` moves both.
- ``bench``, ``bench-evidently``: the optional benchmark venvs (``benchmarks/requirements-*.txt``); ``bench`` also
  pins scikit-learn and onnxruntime at the development lock's versions, so mlflow serves the same model the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from layers import lockfile
from layers.build import PYPROJECT, lock_inputs
from layers.lockfile import LOCKS, ROOT, UNIVERSAL, LockInputs
from layers.rules import EXTENDS, PLATFORM, PLATFORMS

DEV_PYTHON = "3.11"  # the oldest Python pyproject allows (requires-python); a universal lock covers the newer ones
BENCH = ROOT / "benchmarks"
LAYERS = ("inference", "training", "training-lightgbm", "training-xgboost")


def _requirements_file(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def uv_platform(platform: str) -> str:
    """layers/build.py's pip platform tag (``manylinux_2_34_x86_64``) as uv names it (``x86_64-manylinux_2_34``)."""
    match = re.fullmatch(r"(manylinux_\d+_\d+)_(x86_64|aarch64)", platform)
    if not match:
        raise lockfile.LockError(f"platform {platform!r}: expected a manylinux_2_NN_<x86_64|aarch64> tag")
    return f"{match.group(2)}-{match.group(1)}"


def groups(pyproject: Path = PYPROJECT, locks: Path = LOCKS) -> dict[str, LockInputs]:
    """What each lock is resolved from, read from pyproject (and, for ``bench``, the development lock's pins)."""
    document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = document["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    build_requires = document.get("build-system", {}).get("requires", [])
    every = [*project.get("dependencies", []), *(req for group in extras.values() for req in group), *build_requires]
    found = {
        "dev": LockInputs(
            "dev", tuple(every), DEV_PYTHON, description="the development venv (make install): the core, every group, setuptools."
        )
    }
    for name in LAYERS:
        # the runtime's platform first: an architecture's new lock starts from its pins; an estimator family's layer
        # (EXTENDS) is x86_64 only, as the training layer it extends is deployed (X86_ONLY)
        platforms = [PLATFORM] if name in EXTENDS else PLATFORMS.values()
        for platform in platforms:
            inputs = lock_inputs(name, platform=platform, pyproject=pyproject)
            found[inputs.group] = inputs
    dev_lock = locks / "dev.txt"
    dev_pins = lockfile.pins(dev_lock) if dev_lock.is_file() else {}
    same_as_dev = [f"{name}=={dev_pins[name]}" for name in ("scikit-learn", "onnxruntime") if name in dev_pins]
    found["bench"] = LockInputs(
        "bench",
        (*_requirements_file(BENCH / "requirements-bench.txt"), *same_as_dev),
        DEV_PYTHON,
        description="the benchmark venv .venv-bench (benchmarks/inference.py): mlflow, Starlette, uvicorn.",
    )
    found["bench-evidently"] = LockInputs(
        "bench-evidently",
        tuple(_requirements_file(BENCH / "requirements-evidently.txt")),
        DEV_PYTHON,
        description="the Evidently venv .venv-bench-evidently (benchmarks/drift.py).",
    )
    return {name: dataclasses.replace(inputs, folder=locks) for name, inputs in found.items()}


def install(venv: Path, lock: Path, *, editable: bool = False, timeout: float = 1800) -> Path:
    """Create ``venv`` if needed and install exactly what ``lock`` pins (``--require-hashes --no-deps``), plus this
    project in editable mode with ``editable``, as ``make install`` does; returns its python. Raises what
    ``subprocess.run`` raises (``CalledProcessError`` with pip's stderr, ``TimeoutExpired``, ``OSError``)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True, timeout=300)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*pip, "--require-hashes", "--requirement", str(lock)], check=True, capture_output=True, text=True, timeout=timeout)
    if editable:
        subprocess.run([*pip, "--no-build-isolation", "--editable", str(ROOT)], check=True, capture_output=True, text=True, timeout=timeout)
    return python


def uv() -> str:
    """The uv that the development lock pins (beside this interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        raise lockfile.LockError("uv is not installed: `make install` installs the version the development lock pins")
    return found


def resolve(inputs: LockInputs, *, upgrade: bool = False, lowest: bool = False) -> Path:
    """Resolve ``inputs`` with uv into its lock file (header first); returns the path.

    The lock already there is uv's preference (its pins stay unless the ranges exclude them), unless ``upgrade`` (the
    newest releases the ranges allow) or ``lowest`` (each direct requirement at its floor) says otherwise."""
    tool = " ".join(subprocess.run([uv(), "--version"], capture_output=True, text=True, check=True).stdout.split()[:2])
    command = [uv(), "pip", "compile", "-", "--quiet", "--no-config", "--generate-hashes", "--no-header"]
    command += ["--python-version", inputs.python, "--index-url", "https://pypi.org/simple", "--no-emit-index-url"]
    command += ["--universal"] if inputs.platform == UNIVERSAL else ["--python-platform", uv_platform(inputs.platform)]
    command += ["--only-binary", ":all:"] if inputs.only_binary else []
    command += ["--resolution", "lowest-direct"] if lowest else []
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "lock.txt"
        seed = inputs.path if inputs.path.is_file() else _same_layer_on_the_runtime_platform(inputs)
        if seed is not None and seed.is_file() and not (upgrade or lowest):
            shutil.copyfile(seed, output)  # uv prefers the versions an existing output file pins
        result = subprocess.run(
            [*command, "--output-file", str(output)],
            input="\n".join(inputs.requirements) + "\n",
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "UV_NO_PROGRESS": "1"},
        )
        if result.returncode != 0:
            problem = " ".join(result.stderr.split())[-800:]
            raise lockfile.LockError(f"{inputs.path.name}: uv could not resolve group {inputs.group!r}: {problem}")
        body = output.read_text(encoding="utf-8")
    inputs.path.parent.mkdir(parents=True, exist_ok=True)
    inputs.path.write_text(inputs.header(tool) + body, encoding="utf-8")
    return inputs.path


def _same_layer_on_the_runtime_platform(inputs: LockInputs) -> Path | None:
    """For a layer's lock on another platform (``layer-inference-py312-manylinux_2_34_aarch64``), the same layer's lock
    on the runtime's platform, whose pins the new one starts from; None for any other lock."""
    if not inputs.group.startswith("layer-") or inputs.platform == PLATFORM:
        return None
    name = inputs.group.removeprefix("layer-").split("-py", 1)[0]
    return dataclasses.replace(lock_inputs(name), folder=inputs.folder).path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Resolve the locks (locks/*.txt) from pyproject.toml's ranges, with hashes.")
    parser.add_argument("groups", nargs="*", help="the locks to resolve (default: all)")
    parser.add_argument("--check", action="store_true", help="resolve nothing; report locks that disagree with pyproject")
    parser.add_argument("--out", type=Path, help="write the locks into this folder instead of locks/")
    parser.add_argument("--upgrade", action="store_true", help="the newest releases pyproject allows, not the pins the locks have")
    parser.add_argument("--lowest", action="store_true", help="each requirement at pyproject's floor (only with --out: never locks/)")
    args = parser.parse_args(argv)
    try:
        if args.lowest and (args.out is None or args.out.resolve() == LOCKS.resolve()):
            raise lockfile.LockError("--lowest writes the floors' locks into a scratch folder: name it with --out DIR (not locks/)")
        out = args.out.resolve() if args.out else LOCKS
        every = groups(locks=out)
        unknown = sorted(set(args.groups) - set(every))
        if unknown:
            raise lockfile.LockError(f"no lock named {', '.join(unknown)}; locks: {', '.join(every)}")
        wanted = args.groups or list(every)
        if args.check:
            found = [problem for name in wanted for problem in lockfile.problems(every[name])]
            for problem in found:
                print(problem, file=sys.stderr)
            return 1 if found else 0
        for name in wanted:
            if name == "bench" and "dev" in wanted:
                every = groups(locks=out)  # bench pins the development lock's versions: read the one just written
            path = resolve(every[name], upgrade=args.upgrade, lowest=args.lowest)
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(lockfile.pins(path))} packages")
    except lockfile.LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
