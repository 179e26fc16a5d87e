"""Unit tests are pure: no I/O. Any socket connection fails the test that makes it, and so does starting moto's mock
of AWS (in-process, it opens no socket): tests that need either live in tests/integration. The guards are in
tests/helpers/purity.py."""

from __future__ import annotations

import pytest

from tests.helpers.purity import block_moto, block_network


@pytest.fixture(autouse=True)
def _pure(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)
    block_moto(monkeypatch)
