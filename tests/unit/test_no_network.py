"""tests/unit/conftest.py's guard: a unit test that opens a connection fails with a message that says where it belongs."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from tests.unit.conftest import NetworkBlocked


@pytest.mark.parametrize(
    "connect",
    [
        lambda: socket.create_connection(("127.0.0.1", 9)),
        lambda: socket.socket().connect(("127.0.0.1", 9)),
        lambda: urllib.request.urlopen("http://127.0.0.1:9/", timeout=1),
    ],
    ids=["create_connection", "socket.connect", "urllib"],
)
def test_a_unit_test_cannot_connect(connect) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((NetworkBlocked, urllib.error.URLError), match="tests/integration"):
        connect()
