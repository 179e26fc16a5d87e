"""benchmarks/_ratio.py: a ratio is printed as it is (the benchmarks once printed "1.0× faster" for 0.97×)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("_ratio", Path(__file__).resolve().parents[2] / "benchmarks" / "_ratio.py")
assert _SPEC is not None
assert _SPEC.loader is not None
_module = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_module)
ratio = _module.ratio


@pytest.mark.parametrize(
    ("ours", "theirs", "text"),
    [
        (1.0, 0.97, "0.97× (slower)"),
        (1.0, 1.03, "1.03× faster"),
        (1.0, 1.999, "2.00× faster"),
        (1.0, 12.43, "12.4× faster"),
        (1.0, 0.2, "0.20× (slower)"),
        (1.0, 1.004, "1.00× (no difference)"),
        (1.0, 0.996, "1.00× (no difference)"),
        (0.0, 1.0, "n/a (a measurement is zero)"),
    ],
)
def test_ratio_is_printed_as_it_is(ours: float, theirs: float, text: str) -> None:
    assert ratio(ours, theirs) == text


def test_ratio_words_follow_the_measurement() -> None:
    assert ratio(100.0, 250.0, "less", "more") == "2.5× less"
    assert ratio(100.0, 90.0, "less", "more") == "0.90× (more)"
