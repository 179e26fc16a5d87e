"""Build a Lambda layer without docker: ``pip install --platform … --only-binary=:all: --target …``.

A layer is named after a dependency group (an extra) of ``pyproject.toml``: it installs the core dependencies plus
that group, minus what the Lambda runtime already has (boto3, botocore, s3transfer). The result is stripped of
``__pycache__``, test suites, console scripts and stale ``RECORD`` files, precompiled when this interpreter is the
runtime's Python version, and cached under ``layers/build/`` by a hash of everything that decides its content
(requirements, platform, Python version, this file's build format). Concurrent builders (pytest-xdist workers, two
``cdk synth`` runs) share the cache safely: one builds under a lock, into a temporary folder renamed into place.

    python layers/build.py inference          # build (or reuse) and print the folder and its size
    python layers/build.py inference --json   # the same as JSON (what SERVE's size benchmark reads)
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import fcntl
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CACHE = Path(os.environ.get("MLOPS_LAYER_CACHE", ROOT / "layers" / "build"))

# The Lambda runtime the layers are built for. python3.12 runs on Amazon Linux 2023 (glibc 2.34); python3.11 runs on
# Amazon Linux 2 (glibc 2.26), where onnxruntime >= 1.17 (wheels tagged manylinux_2_27/2_28) cannot load.
PYTHON_VERSION = "3.12"
PLATFORM = "manylinux_2_34_x86_64"
RUNTIME_PROVIDES = frozenset({"boto3", "botocore", "s3transfer"})
STRIP_DIRS = frozenset({"__pycache__", "tests"})
# bump when the build steps change what a layer contains, so cached layers are rebuilt
BUILD_FORMAT = 1


class LayerBuildError(RuntimeError):
    """A layer cannot be built; the message names the layer and what failed."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise LayerBuildError(f"{PYPROJECT}: cannot read a package name from requirement {requirement!r}")
    return _canonical(match.group(1))


def requirements(name: str, pyproject: Path = PYPROJECT) -> list[str]:
    """The core dependencies plus the extra ``name`` from pyproject.toml, without what the Lambda runtime provides."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    if name not in extras:
        raise LayerBuildError(f"{pyproject}: no dependency group [{name}] for layer {name!r}; groups: {', '.join(sorted(extras))}")
    wanted = [*project.get("dependencies", []), *extras[name]]
    return sorted({req.strip() for req in wanted if _requirement_name(req) not in RUNTIME_PROVIDES})


def pip_platforms(platform: str) -> list[str]:
    """Every platform tag a machine of ``platform`` runs: manylinux_2_34_x86_64 also runs manylinux_2_17 … 2_33 and manylinux2014."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(x86_64|aarch64)", platform)
    if not match:
        return [platform]
    glibc, arch = int(match.group(1)), match.group(2)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def cache_key(reqs: list[str], platform: str, python_version: str) -> str:
    document = json.dumps({"requirements": reqs, "platform": platform, "python": python_version, "format": BUILD_FORMAT}, sort_keys=True)
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


def build_layer(name: str, *, platform: str = PLATFORM, python_version: str = PYTHON_VERSION) -> Path:
    """Build (or reuse from the cache) the layer ``name``; returns the folder whose ``python/`` is the layer content."""
    reqs = requirements(name)
    final = CACHE / f"{name}-py{python_version.replace('.', '')}-{platform}-{cache_key(reqs, platform, python_version)}"
    if (final / "layer.json").is_file():
        return final
    with _locked(final.with_name(final.name + ".lock")):
        if (final / "layer.json").is_file():  # another builder finished while we waited
            return final
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
        try:
            manifest = _build_into(staging, name, reqs, platform, python_version)
            (staging / "layer.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if final.exists():  # a half-built folder from a killed build of an older format: replace it
                shutil.rmtree(final)
            os.rename(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return final


def _build_into(staging: Path, name: str, reqs: list[str], platform: str, python_version: str) -> dict[str, object]:
    target = staging / "python"
    started = time.monotonic()
    platform_args = [arg for tag in pip_platforms(platform) for arg in ("--platform", tag)]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), *platform_args, "--only-binary=:all:",
        "--python-version", python_version, "--implementation", "cp", *reqs,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problem = next((line for line in result.stderr.splitlines() if line.startswith("ERROR")), result.stderr.strip()[-500:])
        raise LayerBuildError(f"layer {name!r} ({platform}, Python {python_version}): pip install failed: {problem}")
    removed = _remove_distributions(target, RUNTIME_PROVIDES)
    _strip(target)
    precompiled = _precompile(target, python_version)
    installed = sorted("==".join(meta.name.removesuffix(".dist-info").split("-", 1)) for meta in target.glob("*.dist-info"))
    return {
        "layer": name,
        "requirements": reqs,
        "platform": platform,
        "python_version": python_version,
        "installed": installed,
        "left_to_runtime": sorted(removed),
        "precompiled": precompiled,
        "unzipped_bytes": unzipped_size(target),
        "build_seconds": round(time.monotonic() - started, 1),
    }


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
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts whose shebang names this machine's Python
    for dirpath, dirs, files in os.walk(target, topdown=True):
        for directory in [d for d in dirs if d in STRIP_DIRS]:
            shutil.rmtree(os.path.join(dirpath, directory))
            dirs.remove(directory)
        if dirpath.endswith(".dist-info") and "RECORD" in files:
            os.unlink(os.path.join(dirpath, "RECORD"))  # lists the files just stripped; nothing uninstalls from a layer


def _precompile(target: Path, python_version: str) -> bool:
    """Write .pyc files when this interpreter is the runtime's version (bytecode is version-specific); else leave them out.

    Unchecked hash-based .pyc: a layer is read-only and its files' mtimes do not survive zipping, so the runtime
    must use the bytecode without comparing timestamps.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python_version:
        return False
    ok = compileall.compile_dir(
        target, quiet=2, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, ddir="/opt/python"
    )
    return bool(ok)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a Lambda layer from a pyproject dependency group (cached).")
    parser.add_argument("name", help="the dependency group: inference or training")
    parser.add_argument("--platform", default=PLATFORM)
    parser.add_argument("--python-version", default=PYTHON_VERSION)
    parser.add_argument("--json", action="store_true", help="print the layer's manifest as JSON")
    args = parser.parse_args(argv)
    try:
        path = build_layer(args.name, platform=args.platform, python_version=args.python_version)
    except LayerBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    manifest = json.loads((path / "layer.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps({"path": str(path), **manifest}, indent=2))
    else:
        print(f"{path}  {manifest['unzipped_bytes'] / 1e6:.1f} MB unzipped, {len(manifest['installed'])} distributions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
