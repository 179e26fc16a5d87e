"""``make check-latest``: what the newest releases pyproject allows would do, without taking them.
``make check-lowest`` (``--lowest``): the same for the lowest ones, each requirement at pyproject's floor (uv's
``lowest-direct``), so that every floor is one the layers build on and the suite passes on.

1. resolves every lock anew into a scratch folder (``layers/lock.py --out``): the newest releases in pyproject's ranges;
2. builds both layers from those locks (a scratch layer cache) beside the ones the committed locks give;
3. installs the newest development lock into a throwaway venv and runs the whole test suite there, pointed at the
   newest locks (``MLOPS_LOCKS``) and the scratch layers (``MLOPS_LAYER_CACHE``);
4. prints a table: each package whose newest release differs, locked → newest; each layer's size, before → after,
   against its budget; the tests passed and failed.

It never changes ``locks/``: taking the newer releases is ``make lock UPGRADE=1`` and a commit, on purpose. CI does not run it
(it needs the registry's newest state, which changes by the day); run it on a schedule or before ``make lock``.
Exit status 0 when the newest releases pass the tests and fit the layers' budgets, else 1.

    python layers/check_latest.py            # everything (about 10 minutes here)
    python layers/check_latest.py --no-tests # locks and layers only
    python layers/check_latest.py --keep     # keep the scratch folder (its path is printed)
    python layers/check_latest.py --lowest   # the floors instead of the newest releases
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from layers import lockfile
from layers.build import build_layer
from layers.lock import install
from layers.lockfile import LOCKS, ROOT
from layers.rules import SIZE_BUDGET

LAYERS = ("inference", "training")
COMPARED = ("dev", *(f"layer-{name}" for name in LAYERS))  # what the project and its functions install
_SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def run(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=timeout, cwd=ROOT)


def newer_releases(newest: Path) -> list[tuple[str, str, str, list[str]]]:
    """(package, locked, newest, the locks it is in) for each package whose newest pin differs from the committed one."""
    found: dict[str, tuple[str, str, list[str]]] = {}
    for group in COMPARED:
        locked, latest = lockfile.pins(LOCKS / f"{group}.txt"), lockfile.pins(newest / f"{group}.txt")
        for package in sorted(set(locked) | set(latest)):
            before, after = locked.get(package, "—"), latest.get(package, "—")
            if before != after:
                found.setdefault(package, (before, after, []))[2].append(group)
    return [(package, before, after, groups) for package, (before, after, groups) in sorted(found.items())]


def layer_size(name: str, env: dict[str, str]) -> tuple[int | None, str]:
    """The layer's unzipped bytes built from the locks ``env`` points at; None and why when it does not build."""
    result = run([sys.executable, str(ROOT / "layers" / "build.py"), name, "--json"], env=env)
    if result.returncode != 0:
        return None, " ".join(result.stderr.split())[-300:]
    return int(json.loads(result.stdout)["unzipped_bytes"]), ""


def run_tests(scratch: Path, env: dict[str, str]) -> tuple[dict[str, int], list[str], float]:
    """The suite in a throwaway venv of the newest development lock: counts by outcome, failed test ids, seconds."""
    venv = scratch / "venv"
    started = time.monotonic()
    try:
        python = install(venv, scratch / "locks" / "dev.txt", editable=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"error: the throwaway venv could not be installed: {' '.join(str(exc.stderr).split())[-500:]}") from exc
    test_env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    result = run([str(python), "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"], env=test_env, timeout=3600)
    (scratch / "pytest.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    lines = result.stdout.strip().splitlines()
    summary = _SUMMARY.findall(lines[-1] if lines else "")
    counts = {"error" if outcome.startswith("error") else outcome: int(n) for n, outcome in summary}
    failed = [line.split()[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return counts, failed, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the layers and run the tests on the newest releases pyproject allows.")
    parser.add_argument("--no-tests", action="store_true", help="resolve and build only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (locks, layers, venv, pytest.log)")
    parser.add_argument("--lowest", action="store_true", help="the lowest releases pyproject's floors allow, not the newest")
    args = parser.parse_args(argv)
    newest = "lowest" if args.lowest else "newest"
    scratch = Path(tempfile.mkdtemp(prefix=f"check-{'lowest' if args.lowest else 'latest'}-"))
    env = {**os.environ, "MLOPS_LOCKS": str(scratch / "locks"), "MLOPS_LAYER_CACHE": str(scratch / "layers")}
    try:
        print(f"resolving the {newest} releases pyproject allows into {scratch / 'locks'} …", flush=True)
        direction = ["--lowest"] if args.lowest else []
        result = run([sys.executable, str(ROOT / "layers" / "lock.py"), "--out", str(scratch / "locks"), *direction])
        if result.returncode != 0:
            print(result.stderr.strip(), file=sys.stderr)
            return 1
        newer = newer_releases(scratch / "locks")
        print("building both layers from them …", flush=True)
        sizes = {name: (build_layer(name), layer_size(name, env)) for name in LAYERS}
        counts: dict[str, int] = {}
        failed: list[str] = []
        seconds = 0.0
        if not args.no_tests:
            print(f"running the tests in a throwaway venv of the {newest} development lock …", flush=True)
            counts, failed, seconds = run_tests(scratch, env)

        print(f"\n| package | locked → {newest} | in |\n| --- | --- | --- |")
        for package, before, after, groups in newer:
            print(f"| {package} | {before} → {after} | {', '.join(groups)} |")
        if not newer:
            print(f"| (none) | every package is locked at the {newest} release pyproject allows | |")
        print(f"\n| layer | locked | {newest} | budget |\n| --- | --- | --- | --- |")
        over = False
        for name, (folder, (after, why)) in sizes.items():
            before = json.loads((folder / "layer.json").read_text(encoding="utf-8"))["unzipped_bytes"]
            budget = SIZE_BUDGET[name]
            verdict = f"does not build: {why}" if after is None else f"{after / 1e6:.1f} MB"
            if after is not None and after > budget:
                verdict += " (over budget)"
            over = over or after is None or after > budget
            print(f"| {name} | {before / 1e6:.1f} MB | {verdict} | {budget / 1e6:.1f} MB |")
        if not args.no_tests:
            summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "no summary line (see pytest.log)"
            print(f"\ntests on the {newest} releases: {summary} in {seconds:.0f} s (venv install included)")
            for test in failed:
                print(f"  failed: {test}")
        print("\nlocks/ is unchanged; `make lock UPGRADE=1` takes the newest releases, on purpose; raise a floor that fails.")
        tests_ok = args.no_tests or (counts.get("passed", 0) > 0 and not counts.get("failed") and not counts.get("error"))
        return 0 if tests_ok and not over else 1
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
