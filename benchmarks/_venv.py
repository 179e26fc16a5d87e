"""The benchmarks' optional venvs (``.venv-bench``, ``.venv-bench-evidently``), installed from their locks.

Each installs exactly what its lock pins (``locks/bench.txt``, ``locks/bench-evidently.txt``, written by ``make lock``
from ``benchmarks/requirements-*.txt``), with hashes, and is reinstalled when the lock changes (a stamp holds the
lock's sha256), so a benchmark measures the same mlflow or Evidently on any day.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from layers.lock import install

LOCKS = Path(__file__).resolve().parent.parent / "locks"


def locked_venv(folder: Path, lock: str, *, timeout: float = 1800) -> Path:
    """The python of the venv ``folder`` holding what ``locks/<lock>`` pins, created or updated when needed.

    Raises what ``subprocess.run`` raises (``CalledProcessError``, ``TimeoutExpired``, ``OSError``): callers leave the
    comparison out and say why."""
    path = LOCKS / lock
    python = folder / "bin" / "python"
    stamp = folder / ".lock-sha256"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if python.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest:
        return python
    install(folder, path, timeout=timeout)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return python
