"""tests/unit/conftest.py's guards: a unit test that opens a connection or starts moto fails with a message that says
where it belongs."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable

import boto3
import pytest
from moto import mock_aws

from tests.helpers.purity import MotoBlocked, NetworkBlocked


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


def _as_context_manager() -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="never")


@mock_aws
def _as_decorator() -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="never")


def _started_by_hand() -> None:
    mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
    mock.start()
    mock.stop()


@pytest.mark.parametrize("use", [_as_context_manager, _as_decorator, _started_by_hand], ids=["with", "decorator", "start"])
def test_a_unit_test_cannot_start_moto(use: Callable[[], None]) -> None:
    with pytest.raises(MotoBlocked, match="tests/integration"):
        use()


def test_a_unit_test_cannot_use_the_moto_backed_fixtures(request: pytest.FixtureRequest) -> None:
    with pytest.raises(MotoBlocked, match="tests/integration"):
        request.getfixturevalue("backends")  # tests/conftest.py: the store and registry on moto
