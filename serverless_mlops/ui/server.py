"""The console's HTTP server: uvicorn on a socket bound before it starts (so the URL, even for port 0, is known and
printed first), in the foreground (``mlops ui``) or in a thread (tests, screenshots)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn

from serverless_mlops.errors import MlopsError

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; an error naming the address when it is taken or not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MlopsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ConsoleServer:
    """uvicorn serving ``app`` on ``sock``: :meth:`serve_forever` (until Ctrl-C) or :meth:`start`/:meth:`stop`."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.sock = sock
        self.url = url_of(sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread: threading.Thread | None = None
        self._failure: OSError | None = None

    def serve_forever(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def _serve_in_thread(self) -> None:
        try:
            self.serve_forever()
        except OSError as exc:  # the socket cannot serve (closed, refused by the loop): start() reports it
            self._failure = exc

    def start(self, timeout: float = 10.0) -> ConsoleServer:
        self._thread = threading.Thread(target=self._serve_in_thread, name="mlops-ui", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise MlopsError(f"the console did not start on {self.url}: {self._failure or 'no answer in time'}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
