"""What a unit test may not do (open a network connection, start moto's mock of AWS), and the errors that say so."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest


class NetworkBlocked(RuntimeError):
    """A unit test tried to open a network connection."""


class MotoBlocked(RuntimeError):
    """A unit test tried to start moto's mock of AWS (in-process: it opens no socket, so the network guard misses it)."""


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the test ends, any socket connection raises :class:`NetworkBlocked`."""

    def refuse(_socket: socket.socket, address: Any, *_args: Any) -> NoReturn:
        raise NetworkBlocked(f"unit tests make no network connections (tried {address!r}); move this test to tests/integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *_a, **_k: refuse(None, address))  # type: ignore[arg-type]


def block_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the test ends, starting ``moto.mock_aws`` (as a context manager, a decorator or ``.start()``, in any of its
    modes) raises :class:`MotoBlocked`: a test that needs AWS, even moto's in-process AWS, is an integration test."""
    from moto.core.models import MockAWS, ProxyModeMockAWS, ServerModeMockAWS

    def refuse(_mock: MockAWS, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise MotoBlocked("unit tests do not start moto (mock_aws); move this test to tests/integration")

    for mock in (MockAWS, ServerModeMockAWS, ProxyModeMockAWS):
        monkeypatch.setattr(mock, "start", refuse)
