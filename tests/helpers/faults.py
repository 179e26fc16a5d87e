"""A TCP endpoint on 127.0.0.1 that fails on demand, for the handler's clients (the fault tests and benchmarks/faults.py).

It relays to an upstream (a moto server) until told otherwise (``delay(seconds)`` relays with each connection's first
answer held back that long: a slow but working service), then either black-holes (accepts connections and
never answers) or refuses (closes its listening socket: nothing listens on the port). Switching closes every open
connection, so a client's pooled keep-alive connection cannot carry on to moto. Threads only; ``close()`` (or the
context manager) stops them and closes every socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Literal

Mode = Literal["relay", "black-hole", "refuse"]


class FaultyEndpoint:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode: Mode = "relay"
        self.held = 0  # connections accepted and left unanswered (black hole)
        self.delay_seconds = 0.0  # relay: hold back each connection's first answer this long
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="faulty-endpoint", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switching ----------------------------------------------------------------------------------------------------
    def relay(self) -> None:
        self.delay_seconds = 0.0
        self._switch("relay")

    def delay(self, seconds: float) -> None:
        self.delay_seconds = seconds
        self._switch("relay")

    def black_hole(self) -> None:
        self._switch("black-hole")

    def refuse(self) -> None:
        self._switch("refuse")

    def _switch(self, mode: Mode) -> None:
        with self._lock:
            was, self.mode = self.mode, mode
            listener = self._listener
            if mode == "refuse":
                self._listener = None
            elif was == "refuse":
                self._listener = self._listen(self.port)
            self._close_all()
        if mode == "refuse" and listener is not None:
            listener.close()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.05)
        return listener

    def _close_all(self) -> None:
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()

    # -- serving ------------------------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            listener = self._listener
            if listener is None:
                self._closed.wait(0.05)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if self._closed.is_set() or self.mode == "refuse":
                    conn.close()
                    continue
                self._open.add(conn)
                if self.mode == "black-hole":
                    self.held += 1  # kept open and never read or answered until the next switch or close()
                    continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        except OSError:
            conn.close()
            return
        with self._lock:
            self._open.add(upstream)
        pump = threading.Thread(target=_pump, args=(upstream, conn, self.delay_seconds), daemon=True)
        pump.start()
        _pump(conn, upstream)
        pump.join()
        with self._lock:
            self._open.difference_update((conn, upstream))
        conn.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._close_all()
        self._acceptor.join(timeout=5)

    def __enter__(self) -> FaultyEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(source: socket.socket, sink: socket.socket, delay: float = 0.0) -> None:
    """Copy bytes until either side closes, then close both; the first bytes wait ``delay`` seconds."""
    try:
        while data := source.recv(65536):
            if delay:
                time.sleep(delay)
                delay = 0.0
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
