"""Build a Lambda layer without docker: ``pip install --platform … --only-binary=:all: --target …`` from its lock.

A layer is named after a dependency group (an extra) of ``pyproject.toml``: the core dependencies plus that group,
minus what the Lambda runtime already has (boto3, botocore, s3transfer). It installs exactly what its lock pins
(``locks/layer-<name>.txt``, written by ``make lock``: every version and hash, resolved for the runtime's Python and
platform), with ``--require-hashes --no-deps``, so a build on any day installs the same files; a lock that no longer
matches pyproject's ranges stops the build with the command that refreshes it. The result is stripped of
``__pycache__``, test suites, console scripts, type stubs, pip's bookkeeping and, per layer, of what its functions
never import (``PRUNE``) and of its libraries' static symbols (``STRIP_SYMBOLS``); then it is precompiled, in the
layer's bytecode mode (``BYTECODE``), by an interpreter of the runtime's Python version (bytecode is
version-specific), found on this machine or named by ``MLOPS_LAYER_PYTHON``. Layers are cached under
``layers/build/`` by a hash of everything that decides their content (the lock's content, platform, Python version,
bytecode mode and magic number, prune rules, stripping, this file's build format). Concurrent builders (pytest-xdist
workers, two ``cdk synth`` runs) share the cache safely: one builds under a lock, into a temporary folder renamed into place.

    python layers/build.py inference                       # build (or reuse) and print the folder and its size
    python layers/build.py inference --json                # the same as JSON (what SERVE's size benchmark reads)
    python layers/build.py training                        # pruned, stripped, sourceless: fits Lambda with its function
    python layers/build.py inference --bytecode sourceless # .pyc in place of .py; or none: .py only
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

from layers import elf, lockfile
from layers.bytecode import LayerBuildError, RuntimePython, find_runtime_python, precompile
from layers.rules import (
    BYTECODE,
    BYTECODE_MODES,
    EXTENDS,
    PLATFORM,
    PLATFORM_WHEELS,
    PROVIDE_LIBRARIES,
    PRUNE,
    PYTHON_VERSION,
    RUNTIME_PROVIDES,
    SIZE_BUDGET,
    STRIP_DIRS,
    STRIP_DIST_INFO,
    STRIP_SUFFIXES,
    STRIP_SYMBOLS,
    base_layer,
)

# what layers/bytecode.py holds, re-exported: callers (infra, benchmarks, tests) name the layer build's API from here
__all__ = [
    "CACHE",
    "LayerBuildError",
    "RuntimePython",
    "build_layer",
    "check_wheels",
    "find_runtime_python",
    "lock_inputs",
    "pip_platforms",
    "precompile",
    "requirements",
    "unzipped_size",
]

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CACHE = Path(os.environ.get("MLOPS_LAYER_CACHE", ROOT / "layers" / "build"))

# bump when the build steps change what a layer contains, so cached layers are rebuilt
BUILD_FORMAT = 4  # 4: installs from the lock


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise LayerBuildError(f"{PYPROJECT}: cannot read a package name from requirement {requirement!r}")
    return _canonical(match.group(1))


def requirements(name: str, pyproject: Path = PYPROJECT) -> list[str]:
    """The core dependencies plus the extra ``name`` (or the extras a layer of ``EXTENDS`` combines) from pyproject.toml,
    without what the Lambda runtime provides."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    wanted = list(project.get("dependencies", []))
    for group in EXTENDS.get(name, (name,)):
        if group not in extras:
            raise LayerBuildError(f"{pyproject}: no dependency group [{group}] for layer {name!r}; groups: {', '.join(sorted(extras))}")
        wanted += extras[group]
    return sorted({req.strip() for req in wanted if _requirement_name(req) not in RUNTIME_PROVIDES})


def lock_inputs(
    name: str, *, platform: str = PLATFORM, python_version: str = PYTHON_VERSION, pyproject: Path = PYPROJECT
) -> lockfile.LockInputs:
    """What the layer's lock (``locks/layer-<name>.txt``) is resolved from: its requirements, Python and platform.

    Another platform or Python than the runtime's has a lock of its own (``layer-<name>-py313-<platform>``)."""
    group = f"layer-{name}"
    groups = "] + [".join(EXTENDS.get(name, (name,)))
    if (platform, python_version) != (PLATFORM, PYTHON_VERSION):
        group += f"-py{python_version.replace('.', '')}-{platform}"
    return lockfile.LockInputs(
        group,
        tuple(requirements(name, pyproject)),
        python_version,
        platform,
        only_binary=True,
        description=f"the {name} Lambda layer (layers/build.py): the core plus [{groups}], without the runtime's boto3.",
    )


def pip_platforms(platform: str) -> list[str]:
    """Every platform tag a machine of ``platform`` runs: manylinux_2_34_x86_64 also runs manylinux_2_17 … 2_33 and manylinux2014."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(x86_64|aarch64)", platform)
    if not match:
        return [platform]
    glibc, arch = int(match.group(1)), match.group(2)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def cache_key(
    lock: str,
    platform: str,
    python_version: str,
    bytecode: str = "none",
    *,
    prune: list[str] | None = None,
    strip: bool = False,
    provide: dict[str, str] | None = None,
) -> str:
    """``lock`` is the content of the layer's lock file (what it installs, to the hash); ``bytecode`` names the mode and
    the bytecode format (magic number), e.g. ``pycache:cpython-312:cb0d0d0a``; ``prune`` the layer's PRUNE patterns and
    ``strip`` whether its libraries lose their symbols: changing any of them rebuilds it."""
    document = json.dumps(
        {
            "lock": hashlib.sha256(lock.encode()).hexdigest(),
            "platform": platform,
            "python": python_version,
            "bytecode": bytecode,
            "prune": sorted(prune or []),
            "strip": strip,
            "format": BUILD_FORMAT,
            # only when there are some, so the keys of layers that provide none stay what they were
            **({"provide": provide} if provide else {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def unzipped_size(path: Path | str) -> int:
    """Bytes of every regular file under ``path``: what Lambda counts against its 250 MB unzipped limit."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for file in files:
            full = os.path.join(dirpath, file)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_layer(name: str, *, platform: str = PLATFORM, python_version: str = PYTHON_VERSION, bytecode: str | None = None) -> Path:
    """Build (or reuse from the cache) the layer ``name``; returns the folder whose ``python/`` is the layer content.

    ``bytecode``: ``pycache`` (each module's ``.py`` plus its ``__pycache__/*.cpython-312.pyc``), ``sourceless``
    (a ``.pyc`` in place of each ``.py``: smaller, no source in tracebacks) or ``none``; by default the layer's own
    (``BYTECODE``). Without an interpreter of ``python_version`` on this machine the layer is built with ``none``
    and a one-line warning.
    """
    rules = base_layer(name)  # a layer of EXTENDS is built as its base layer is
    bytecode = bytecode or BYTECODE.get(rules, "pycache")
    if bytecode not in BYTECODE_MODES:
        raise LayerBuildError(f"layer {name!r}: unknown bytecode mode {bytecode!r}; choose one of {', '.join(BYTECODE_MODES)}")
    try:
        lock = lockfile.verified(lock_inputs(name, platform=platform, python_version=python_version))
    except lockfile.LockError as exc:
        raise LayerBuildError(f"layer {name!r}: {exc}") from exc
    python = find_runtime_python(python_version) if bytecode != "none" else None
    if bytecode != "none" and python is None:
        print(
            f"warning: layer {name!r}: no Python {python_version} interpreter here (set MLOPS_LAYER_PYTHON), so it ships without"
            " .pyc and every cold start compiles what it imports",
            file=sys.stderr,
        )
        bytecode = "none"
    mode = f"{bytecode}:{python.cache_tag}:{python.magic}" if python is not None else "none"
    label = {"pycache": "pyc", "sourceless": "sourceless", "none": "nopyc"}[bytecode]
    strip = rules in STRIP_SYMBOLS
    key = cache_key(
        lock.read_text(encoding="utf-8"),
        platform,
        python_version,
        mode,
        prune=list(PRUNE.get(rules, {})),
        strip=strip,
        provide=PROVIDE_LIBRARIES.get(name),
    )
    final = CACHE / f"{name}-py{python_version.replace('.', '')}-{platform}-{label}-{key}"
    if (final / "layer.json").is_file():
        return final
    with _locked(final.with_name(final.name + ".lock")):
        if (final / "layer.json").is_file():  # another builder finished while we waited
            return final
        if strip and shutil.which("strip") is None:  # only a build needs it, not a cached layer
            raise LayerBuildError(f"layer {name!r} strips its shared libraries' symbols to fit Lambda's limit: install GNU binutils")
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
        try:
            manifest = _build_into(staging, name, lock, platform, python_version, bytecode, python, strip)
            (staging / "layer.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if final.exists():  # a half-built folder from a killed build of an older format: replace it
                shutil.rmtree(final)
            os.rename(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return final


def _build_into(
    staging: Path,
    name: str,
    lock: Path,
    platform: str,
    python_version: str,
    bytecode: str,
    python: RuntimePython | None,
    strip: bool = False,
) -> dict[str, object]:
    target = staging / "python"
    started = time.monotonic()
    platform_args = [arg for tag in pip_platforms(platform) for arg in ("--platform", tag)]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), *platform_args, "--only-binary=:all:",
        "--python-version", python_version, "--implementation", "cp",
        "--require-hashes", "--no-deps", "--requirement", str(lock),
        # the lock was resolved for the runtime's Python; pip with --no-deps checks Requires-Python against its own
        "--ignore-requires-python",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problem = next((line for line in result.stderr.splitlines() if line.startswith("ERROR")), result.stderr.strip()[-500:])
        raise LayerBuildError(f"layer {name!r} ({platform}, Python {python_version}): pip install failed: {problem}")
    try:
        check_wheels(target, platform)
    except LayerBuildError as exc:
        raise LayerBuildError(f"layer {name!r}: {exc}") from exc
    removed = _remove_distributions(target, RUNTIME_PROVIDES)
    _strip(target)
    pruned = _prune(target, PRUNE.get(base_layer(name), {}))
    provided = _provide_libraries(staging, target, PROVIDE_LIBRARIES.get(name, {}))
    stripped = strip_symbols(target) if strip else None
    installed_bytes = unzipped_size(target)
    compiled = precompile(target, python, sourceless=bytecode == "sourceless") if python is not None else 0
    installed = sorted("==".join(meta.name.removesuffix(".dist-info").split("-", 1)) for meta in target.glob("*.dist-info"))
    return {
        "layer": name,
        "requirements": requirements(name),
        "lock": {"file": lock.name, "sha256": hashlib.sha256(lock.read_bytes()).hexdigest()},
        "platform": platform,
        "python_version": python_version,
        "installed": installed,
        "left_to_runtime": sorted(removed),
        "pruned": pruned,
        "stripped": stripped,
        "bytecode": {"mode": bytecode, "python": python.version if python else None, "pyc_files": compiled},
        "precompiled": compiled > 0,
        "source_bytes": installed_bytes,
        **({"provided": provided} if provided else {}),
        "unzipped_bytes": unzipped_size(target) + (unzipped_size(staging / "lib") if provided else 0),
        "build_seconds": round(time.monotonic() - started, 1),
    }


def check_wheels(target: Path, platform: str, compiled: frozenset[str] = PLATFORM_WHEELS) -> dict[str, list[str]]:
    """Each distribution pip installed under ``target`` with its wheel's tags (``*.dist-info/WHEEL``), once checked:
    a distribution of ``compiled``, or one whose ``RECORD`` lists a shared library, must come from a wheel for one of
    ``platform``'s tags (``pip_platforms``), and no distribution may come from a wheel for another platform.
    Raises :class:`LayerBuildError` naming every distribution that does not (a placeholder such as
    ``pydantic_core-0.0.1-py3-none-any``, or a wheel of the wrong architecture)."""
    allowed = set(pip_platforms(platform))
    found: dict[str, list[str]] = {}
    problems = []
    for meta in sorted(target.glob("*.dist-info")):
        name, _, version = meta.name.removesuffix(".dist-info").partition("-")
        wheel, record = meta / "WHEEL", meta / "RECORD"
        tags = [line.split(":", 1)[1].strip() for line in _lines(wheel) if line.startswith("Tag:")]
        platforms = {tag.rsplit("-", 1)[-1] for tag in tags}
        binary = any(re.search(r"\.so(\.\d+)*$", line.split(",", 1)[0]) for line in _lines(record))
        label = f"{name} {version} ({', '.join(tags) or 'no WHEEL tags'})"
        if (_canonical(name) in compiled or binary) and not platforms & allowed:
            problems.append(f"{label} has extension modules but is not a {platform} wheel: a placeholder or a pure fallback")
        elif platforms - {"any"} and not platforms & allowed:  # one matching tag is enough (wrapt: manylinux1 and 2_28)
            problems.append(f"{label} is a wheel for another platform than {platform}")
        found[_canonical(name)] = tags
    if problems:
        raise LayerBuildError("; ".join(problems))
    return found


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def _provide_libraries(staging: Path, target: Path, wanted: dict[str, str]) -> dict[str, str]:
    """Copy each library of ``wanted`` (soname -> glob under python/) into the layer's lib/; returns soname -> source."""
    provided = {}
    for soname, pattern in wanted.items():
        found = sorted(target.glob(pattern))
        if not found:
            raise LayerBuildError(f"layer at {target}: nothing matches {pattern} to provide {soname} (PROVIDE_LIBRARIES)")
        (staging / "lib").mkdir(exist_ok=True)
        shutil.copyfile(found[0], staging / "lib" / soname)
        provided[soname] = found[0].relative_to(target).as_posix()
    return provided


def _remove_distributions(target: Path, names: frozenset[str]) -> list[str]:
    """Delete the distributions the runtime provides (pulled in as dependencies, e.g. botocore by aws-xray-sdk)."""
    removed = []
    for meta in target.glob("*.dist-info"):
        dist = _canonical(meta.name.split("-")[0])
        if dist not in names:
            continue
        record = meta / "RECORD"
        tops: set[str] = set()
        for line in record.read_text(encoding="utf-8").splitlines() if record.is_file() else []:
            relative = line.split(",")[0]
            if relative and not relative.startswith(".."):
                tops.add(relative.split("/")[0])
        for top in tops | {meta.name}:
            path = target / top
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        removed.append(dist)
    return removed


def _strip(target: Path) -> None:
    """What no layer needs: caches, test suites, console scripts, type stubs, pip's bookkeeping, empty folders."""
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts whose shebang names this machine's Python
    for dirpath, dirs, files in os.walk(target, topdown=True):
        for directory in [d for d in dirs if d in STRIP_DIRS]:
            shutil.rmtree(os.path.join(dirpath, directory))
            dirs.remove(directory)
        in_dist_info = dirpath.endswith(".dist-info")
        for file in files:
            if file.endswith(STRIP_SUFFIXES) or (in_dist_info and file in STRIP_DIST_INFO):
                os.unlink(os.path.join(dirpath, file))
    for dirpath, _dirs, _files in sorted(os.walk(target), reverse=True):  # deepest first: wrapt-stubs/ held only .pyi
        if dirpath != str(target) and not os.listdir(dirpath):
            os.rmdir(dirpath)


def _prune(target: Path, rules: dict[str, str]) -> dict[str, int]:
    """Remove what ``rules`` name; returns the bytes each rule freed (0 when a newer release no longer has it).

    A shared library that a remaining binary still names is kept (reported as -1): removing it would break the import.
    """
    freed: dict[str, int] = {}
    for pattern in rules:
        freed[pattern] = 0
        for path in sorted(target.glob(pattern)):
            if path.is_dir():
                freed[pattern] += unzipped_size(path)
                shutil.rmtree(path)
            elif path.name.startswith("lib") and ".so" in path.name and _referenced(target, path):
                freed[pattern] = -1
            else:
                freed[pattern] += path.stat().st_size
                path.unlink()
    return freed


def _referenced(target: Path, library: Path) -> bool:
    """Whether another binary needs ``library``: it would name it (``libfoo.so.N``) in its dynamic string table."""
    soname = library.name.split(".so")[0].encode() + b".so"
    return any(other != library and other.is_file() and soname in other.read_bytes() for other in target.rglob("*.so*"))


def strip_symbols(target: Path) -> dict[str, int]:
    """``strip --strip-unneeded`` each shared library under ``target`` (:func:`layers.elf.strip_symbols`)."""
    try:
        return elf.strip_symbols(target)
    except elf.StripError as exc:
        raise LayerBuildError(f"layer at {target}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a Lambda layer from a pyproject dependency group (cached).")
    parser.add_argument("name", help="the dependency group: inference or training; or training-lightgbm, training-xgboost (EXTENDS)")
    parser.add_argument("--platform", default=PLATFORM)
    parser.add_argument("--python-version", default=PYTHON_VERSION)
    parser.add_argument("--bytecode", choices=BYTECODE_MODES, help="how modules ship; default: the layer's own (BYTECODE)")
    parser.add_argument("--json", action="store_true", help="print the layer's manifest as JSON")
    args = parser.parse_args(argv)
    try:
        path = build_layer(args.name, platform=args.platform, python_version=args.python_version, bytecode=args.bytecode)
    except LayerBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    manifest = json.loads((path / "layer.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps({"path": str(path), **manifest}, indent=2))
    else:
        budget = SIZE_BUDGET.get(base_layer(args.name))
        of_budget = f" of its {budget / 1e6:.1f} MB budget" if budget else ""
        print(f"{path}  {manifest['unzipped_bytes'] / 1e6:.1f} MB unzipped{of_budget}, {len(manifest['installed'])} distributions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
