"""Lock files: what an environment installs, pinned to exact versions with their hashes (``locks/*.txt``).

A lock is a pip requirements file written by ``make lock`` (``layers/lock.py``, through uv) with a header that says
what it was resolved from: the Python version, the platform and a digest of the input requirements (pyproject's
ranges). Everything here is pure reading and comparing, so ``layers/build.py`` and the tests can check a lock without
uv or a network: a lock whose inputs differ from pyproject's today is stale, and the message says which lock, which
group and what to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# MLOPS_LOCKS points the layer build (and so a test run) at other locks: ``make check-latest`` uses it for the newest
LOCKS = Path(os.environ.get("MLOPS_LOCKS", ROOT / "locks"))
UNIVERSAL = "universal"  # a lock for every platform (markers decide), as the development venv's is

_HEADER = re.compile(r"^# (?P<key>[a-z0-9-]+): (?P<value>.*)$")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)(?:\s*;\s*(?P<marker>[^\\]+))?")


class LockError(RuntimeError):
    """A lock is missing, unreadable or stale; the message names the file and what to run."""


@dataclass(frozen=True)
class LockInputs:
    """What a lock is resolved from: requirements (with ranges), the Python version and the platform."""

    group: str
    requirements: tuple[str, ...]
    python: str
    platform: str = UNIVERSAL
    only_binary: bool = False
    description: str = ""
    folder: Path | None = field(default=None, compare=False)  # where the lock is: LOCKS unless ``make lock --out`` says

    @property
    def path(self) -> Path:
        return (self.folder or LOCKS) / f"{self.group}.txt"

    def digest(self) -> str:
        """sha256 of the inputs, sorted: the same ranges in another order are the same lock."""
        document = {
            "requirements": sorted({" ".join(r.split()) for r in self.requirements}),
            "python": self.python,
            "platform": self.platform,
            "only_binary": self.only_binary,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def header(self, tool: str) -> str:
        return (
            f"# {self.path.name}: {self.description} Written by `make lock` ({tool}); do not edit by hand.\n"
            f"# group: {self.group}\n"
            f"# python: {self.python}\n"
            f"# platform: {self.platform}\n"
            f"# inputs-sha256: {self.digest()}\n"
        )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_header(path: Path) -> dict[str, str]:
    """The ``# key: value`` lines a lock starts with."""
    header: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if match := _HEADER.match(line):
            header[match.group("key")] = match.group("value").strip()
    return header


def pins(path: Path) -> dict[str, str]:
    """Every package the lock pins, by canonical name: ``{"scikit-learn": "1.9.1", ...}``. Where a universal lock
    pins a package twice under markers (numpy for Python 3.11 and for 3.12+), the one for this interpreter."""
    from packaging.markers import Marker

    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match and (match.group("marker") is None or Marker(match.group("marker").strip()).evaluate()):
            found[canonical(match.group("name"))] = match.group("version")
    return found


def stale(inputs: LockInputs) -> list[str]:
    """Why the lock of ``inputs`` was not resolved from them (missing, another Python or platform, other ranges).

    Reads only the header, with no third-party import: the layer build runs it where ``packaging`` may be shadowed
    (``python infra/app.py`` puts ``infra/``, with its ``packaging.py``, first on ``sys.path``)."""
    path = inputs.path
    if not path.is_file():
        return [f"{path}: no lock for group {inputs.group!r}; run `make lock`"]
    header = read_header(path)
    found: list[str] = []
    for key, wanted in (("group", inputs.group), ("python", inputs.python), ("platform", inputs.platform)):
        if header.get(key) != wanted:
            found.append(f"{path}: locked for {key} {header.get(key)!r}, group {inputs.group!r} needs {wanted!r}; run `make lock`")
    if header.get("inputs-sha256") != inputs.digest():
        found.append(
            f"{path}: group {inputs.group!r} was locked from other requirements than pyproject.toml (or its inputs) name now;"
            " run `make lock`"
        )
    return found


def problems(inputs: LockInputs) -> list[str]:
    """Why the lock of ``inputs`` cannot be installed as pyproject asks today (:func:`stale`, and each range its
    pins do not meet, by name); empty when it can."""
    found = stale(inputs)
    if inputs.path.is_file():
        pinned = pins(inputs.path)
        found += [f"{inputs.path}: group {inputs.group!r}: {problem}" for problem in unsatisfied(inputs.requirements, pinned)]
    return found


def unsatisfied(requirements: Iterable[str], pinned: dict[str, str]) -> list[str]:
    """Requirements the pins do not meet (a missing package, a version outside the range); markers are not evaluated."""
    from packaging.requirements import Requirement

    found = []
    for text in requirements:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        if name not in pinned:
            if requirement.marker is None:
                found.append(f"{requirement.name} is required ({text}) but not pinned")
        elif not requirement.specifier.contains(pinned[name], prereleases=True):
            found.append(f"{requirement.name}=={pinned[name]} is outside {text!r}")
    return found


def verified(inputs: LockInputs) -> Path:
    """The lock's path once it was resolved from ``inputs`` (:func:`stale`); else :class:`LockError` with every problem.
    The digest covers the ranges exactly, so a lock that passes was resolved to meet them."""
    found = stale(inputs)
    if found:
        raise LockError("; ".join(found))
    return inputs.path
