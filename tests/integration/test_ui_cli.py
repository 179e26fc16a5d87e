"""``mlops ui``: where it listens and what it says, the warning for another address, --open, a busy port, and the
server itself over a real socket (the pages are tests/integration/test_ui.py's)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
import webbrowser
from typing import Any

import pytest

from serverless_mlops.cli import main
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.ui import server as server_module
from serverless_mlops.ui.app import PAGE_POLICY, create_app
from serverless_mlops.ui.data import ConsoleData
from serverless_mlops.ui.server import ConsoleServer, bind, is_loopback


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """ConsoleServer.serve_forever records the server and returns at once (no request is served)."""
    started: list[Any] = []

    def record(self: ConsoleServer) -> None:
        started.append(self)
        self.sock.close()

    monkeypatch.setattr(server_module.ConsoleServer, "serve_forever", record)
    return started


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def test_it_binds_loopback_and_says_so(backends: Backends, served: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ui", "--port", "0")
    assert code == 0, err
    (server,) = served
    assert server.url.startswith("http://127.0.0.1:")
    assert f"console on {server.url} (loopback only: no one else can reach it; read-only); Ctrl-C stops" in out
    assert "warning" not in err


def test_json_gives_the_url_alone(backends: Backends, served: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--json", "ui", "--port", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == {"url": served[0].url, "loopback": True, "read_only": True}


def test_another_address_only_when_asked_with_a_warning(backends: Backends, served: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ui", "--port", "0", "--host", "0.0.0.0")
    assert code == 0, err
    assert "warning: --host 0.0.0.0: the console has no login" in err
    assert "on 0.0.0.0: reachable by others" in out
    code, out, err = run(capsys, "ui", "--port", "0", "--host", "127.0.0.2")
    assert code == 0, err
    assert "warning" not in err
    assert "loopback only" in out


def test_open_starts_a_browser_on_the_url(
    backends: Backends, served: list[Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = threading.Event()
    urls: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: (urls.append(url), opened.set()))
    code, _, err = run(capsys, "ui", "--port", "0", "--open", "--state-machine", "arn:aws:states:us-east-1:123456789012:stateMachine:x")
    assert code == 0, err
    assert opened.wait(5)
    assert urls == [served[0].url]


def test_a_busy_port_is_one_line_and_exit_1(backends: Backends, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "ui", "--port", str(port))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_the_server_answers_gets_and_refuses_the_rest_over_a_socket(backends: Backends) -> None:
    server = ConsoleServer(create_app(ConsoleData(backends)), bind("127.0.0.1", 0)).start()
    try:
        with urllib.request.urlopen(server.url + "/", timeout=5) as answer:
            assert answer.status == 200
            assert answer.headers["content-security-policy"] == PAGE_POLICY
            assert "No model is registered" in answer.read().decode()
        request = urllib.request.Request(server.url + "/", method="POST", data=b"x")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 405
    finally:
        server.stop()


def test_loopback_addresses() -> None:
    assert is_loopback("localhost")
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.4")
    assert not is_loopback("example.com")
