"""What both sides of benchmarks/drift.py do around their measured work (_drift_ours.py, _drift_evidently.py): read
the arguments, pin the process to one CPU, clock the phases and report them the same way.

``python benchmarks/_drift_SIDE.py DATA_FOLDER [--one-cpu]``; each side marks the end of its imports, of reading
the data and of the check, then prints one JSON line of its own figures plus :meth:`Phases.figures`.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def data_folder(script: str) -> Path | None:
    """The DATA_FOLDER argument, with this process pinned to one CPU under ``--one-cpu``; None (after a usage line) without one."""
    name = Path(script).name
    if len(sys.argv) < 2:  # run by hand: it only measures what benchmarks/drift.py prepared
        print(f"{name}: a helper of benchmarks/drift.py (usage: {name} DATA_FOLDER [--one-cpu])")
        return None
    if "--one-cpu" in sys.argv:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    return Path(sys.argv[1])


class Phases:
    """Wall and CPU clocks at the start and at the end of each phase: imports, read, check."""

    def __init__(self) -> None:
        self._marks = [(time.perf_counter(), time.process_time())]

    def mark(self) -> None:
        """The current phase ends now."""
        self._marks.append((time.perf_counter(), time.process_time()))

    def figures(self) -> dict[str, float]:
        """Seconds per phase (wall; CPU for read and check), the whole run's and the peak RSS, as drift.py reads them."""
        (started, cpu_started), (imported, imported_cpu), (read, read_cpu), (done, done_cpu) = self._marks
        return {
            "import_s": imported - started,
            "read_s": read - imported,
            "check_s": done - read,
            "total_s": done - started,
            "cpu_s": done_cpu - cpu_started,
            "read_cpu_s": read_cpu - imported_cpu,
            "check_cpu_s": done_cpu - read_cpu,
            "peak_rss_mb": peak_rss_mb(),
        }


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec: VmHWM. getrusage's ru_maxrss is not that on Linux: a child
    keeps its parent's peak across fork and exec, so a measured process started by a benchmark that had just written
    its data (or trained a model and run moto) reported the parent's memory. ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
