"""Unit tests are pure: no network. Any socket connection fails the test that makes it (moto's in-process mock opens
none, so tests that use it are kept out of this folder by review: they live in tests/integration)."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest


class NetworkBlocked(RuntimeError):
    """A unit test tried to open a network connection."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_socket: socket.socket, address: Any, *_args: Any) -> NoReturn:
        raise NetworkBlocked(f"unit tests make no network connections (tried {address!r}); move this test to tests/integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *_a, **_k: refuse(None, address))  # type: ignore[arg-type]
