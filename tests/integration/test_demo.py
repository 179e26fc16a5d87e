"""`make demo` runs `mlops demo`: the tour must finish against its own moto server and leave nothing running."""

from __future__ import annotations

import threading

from rich.console import Console

from serverless_mlops.demo import run_demo


def test_demo_trains_registers_promotes_predicts_and_rolls_back() -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    console = Console(record=True, width=200)
    final = run_demo(console=console)
    output = console.export_text()
    assert final == {"breast-cancer": 1, "diabetes": 1, "wine": 1}  # breast-cancer: promoted to 2, rolled back to 1
    for step in ("1. local AWS", "2. train, register and promote", "3. the registry", "4. predict", "5. retrain, promote, roll back"):
        assert step in output
    assert "breast-cancer: rolled back, production → version 1 (revision 3)" in output
    assert "rev 3: rollback 2 → 1" in output
    assert "the moto server is stopped" in output
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive() and not t.daemon]
    assert leftover == []
