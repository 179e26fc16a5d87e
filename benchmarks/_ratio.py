"""How the benchmarks print a ratio between two measurements: as it is, never rounded into a claim.

``ratio(ours, theirs)`` divides their cost by ours (time, memory): above 1 we are better. Below 2 it keeps two
decimals, so 1.03 is not printed as "1.0× faster"; below 1 it says so ("0.97× (slower)") instead of rounding up to 1.
"""

from __future__ import annotations


def ratio(ours: float, theirs: float, better: str = "faster", worse: str = "slower") -> str:
    """``theirs / ours`` as text: "1.03× faster", "12.4× faster", "0.97× (slower)", "1.00× (no difference)"."""
    if ours <= 0 or theirs <= 0:
        return "n/a (a measurement is zero)"
    value = theirs / ours
    shown = f"{value:.2f}" if value < 2 else f"{value:.1f}"
    if shown == "1.00":
        return "1.00× (no difference)"
    return f"{shown}× {better}" if value > 1 else f"{shown}× ({worse})"
