"""The drift rule's false alarms and power (`make bench`): windows of 50 to 1,000,000 rows, references of 100 to 100,000.

For each (reference rows, window rows): undrifted windows (every alarm is false) and windows with a quarter of the
features (5 of 20 numeric) shifted by half a standard deviation, through the same ``check_drift`` the Lambda runs
(``serverless_mlops.drift.simulation``, seeded). 20 features: 15 numeric N(0, 1), 5 categorical. The reference is
profiled as training profiles it (a seeded sample of at most 10,000 rows). Default spec settings (p 0.05 with
Bonferroni, effect 0.1, drift share 0.5) except ``min_rows`` = 50; both rules side by side. Fewer windows at the
largest sizes, where one window costs seconds. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from foundation import machine  # noqa: E402

from serverless_mlops.drift.simulation import simulate  # noqa: E402
from serverless_mlops.model.spec import Drift  # noqa: E402

REFERENCES = (100, 1_000, 10_000, 100_000)
WINDOWS = (50, 100, 1_000, 10_000, 100_000, 1_000_000)
FEATURES, SHIFTED = 20, 5


def repeats(rows: int) -> tuple[int, int]:
    """(undrifted windows, shifted windows) for a window size: fewer where one window costs seconds."""
    if rows <= 1_000:
        return 100, 20
    if rows <= 10_000:
        return 30, 10
    if rows <= 100_000:
        return 10, 5
    return 4, 2


def main() -> None:
    print(f"machine: {machine()}", flush=True)
    rules = {"significant_and_large": Drift(min_rows=50), "evidently": Drift(min_rows=50, rule="evidently")}
    began = time.perf_counter()
    print()
    print(
        "| reference rows | window rows | windows | dataset false alarms, new rule | feature false flags, new rule"
        " | detection of a 0.5 std shift, new rule | dataset false alarms, evidently | detection, evidently |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for reference in REFERENCES:
        for rows in WINDOWS:
            null, shifted = repeats(rows)
            cells = []
            for config in rules.values():
                quiet = simulate(reference_rows=reference, window_rows=rows, windows=null, config=config, features=FEATURES, seed=11)
                moved = simulate(
                    reference_rows=reference, window_rows=rows, windows=shifted, config=config, features=FEATURES, shifted=SHIFTED, seed=12
                )
                cells.append((quiet, moved))
            (new_quiet, new_moved), (old_quiet, old_moved) = cells
            print(
                f"| {reference:,} | {rows:,} | {null} + {shifted} | {new_quiet.dataset_alarms}/{null} | {new_quiet.false_flag_rate:.2%} |"
                f" {new_moved.detection_rate:.0%} | {old_quiet.dataset_alarms}/{null} | {old_moved.detection_rate:.0%} |",
                flush=True,
            )
    print(f"\n{time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
