"""A local HTTP server in front of a Lambda handler: each request becomes an API Gateway HTTP API payload 2.0 event.

moto does not route API Gateway v2 requests, so ``mlops serve`` runs this server over the very ``lambda_handler``
that is deployed: a request is turned into the event HTTP API would send (``version`` 2.0, ``routeKey``
``$default``, ``rawPath``, ``rawQueryString``, lower-cased headers with repeated values joined by commas,
``cookies``, ``queryStringParameters``, ``requestContext.http``, ``body`` as text or base64), the handler is called
with a Lambda-like context, and its answer (``statusCode``, ``headers``, ``multiValueHeaders``, ``cookies``,
``body``, ``isBase64Encoded``) is written back.

It is built on uvicorn (httptools and uvloop when installed): an event loop serves any number of keep-alive
connections, and the handler is called on that loop one request at a time, as one Lambda execution environment
does: powertools' Logger and Metrics keep per-invocation state, so two calls at once in one process would mix their
correlation ids and metrics. A handler that blocks therefore delays the others, exactly as on Lambda with a
reserved concurrency of one; the request costs around the handler are tens of microseconds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from serverless_mlops.errors import MlopsError

Handler = Callable[[dict[str, Any], Any], Any]

log = logging.getLogger(__name__)

# Lambda refuses synchronous invocation payloads above 6 MB; HTTP API answers 413 before the function runs.
MAX_BODY_BYTES = 6 * 1024 * 1024
# HTTP API's integration timeout: what get_remaining_time_in_millis counts down from.
TIMEOUT_SECONDS = 30
ACCOUNT_ID = "000000000000"

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded", "application/graphql")
_DROPPED_RESPONSE_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_INTERNAL_ERROR = {"statusCode": 500, "headers": {"content-type": "application/json"}, "body": '{"message":"Internal Server Error"}'}


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and powertools read."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_seconds: float = TIMEOUT_SECONDS
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def is_text(content_type: str | None) -> bool:
    """Whether HTTP API would pass a body of this content type as text (otherwise it sends base64)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml"))


def _request_time(epoch: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))


def http_api_event(
    *,
    method: str,
    path: str,
    query_string: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    source_ip: str,
    http_version: str = "1.1",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload format 2.0) event for one request.

    ``path`` is the percent-decoded path (HTTP API decodes ``rawPath``); ``query_string`` stays encoded in
    ``rawQueryString`` and is decoded into ``queryStringParameters``, repeated names joined by commas, like headers.
    """
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif name in merged:
            merged[name] = f"{merged[name]},{value}"
        else:
            merged[name] = value
    epoch = time.time() if now is None else now
    host = merged.get("host", "127.0.0.1").split(":", 1)[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query_string.decode("latin-1"),
        "headers": merged,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": f"HTTP/{http_version}",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id or uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": _request_time(epoch),
            "timeEpoch": int(epoch * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query_string:
        parameters: dict[str, str] = {}
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
        event["queryStringParameters"] = parameters
    if body:
        if is_text(merged.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    return event


class MalformedResponseError(ValueError):
    """The handler's answer is not a valid HTTP API response (API Gateway would answer 500)."""


def http_response(result: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body bytes for a handler's answer, as HTTP API (payload 2.0) turns it into a response.

    An answer without ``statusCode`` is a JSON document HTTP API sends as a 200 ``application/json`` body.
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        try:
            text = result if isinstance(result, str) else json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError(f"the handler returned {type(result).__name__}, which is not JSON") from exc
        return 200, [(b"content-type", b"application/json")], text.encode("utf-8")
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[bytes, bytes]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        key = str(name).lower().encode("latin-1")
        headers = [(k, v) for k, v in headers if k != key]  # multiValueHeaders win over headers of the same name
        headers.extend((key, str(value).encode("latin-1")) for value in values)
    headers.extend((b"set-cookie", str(cookie).encode("latin-1")) for cookie in result.get("cookies") or [])
    headers = [(k, v) for k, v in headers if k not in _DROPPED_RESPONSE_HEADERS]
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise MalformedResponseError(f"body is {type(body).__name__}, not a string")
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise MalformedResponseError("isBase64Encoded is true but the body is not base64") from exc
    else:
        data = body.encode("utf-8")
    return status, headers, data


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message, "details": []}).encode()


class LambdaHttpApp:
    """An ASGI app that calls a Lambda handler with an HTTP API payload 2.0 event per request."""

    def __init__(
        self,
        handler: Handler,
        *,
        function_name: str = "inference",
        region: str = "us-east-1",
        memory_limit_in_mb: int = 1024,
        timeout_seconds: float = TIMEOUT_SECONDS,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.handler = handler
        self.function_name = function_name
        self.memory_limit_in_mb = memory_limit_in_mb
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.function_name,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_limit_in_mb,
            timeout_seconds=self.timeout_seconds,
        )

    def invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Call the handler; a crash or a malformed answer becomes HTTP API's 500, with the cause in the log."""
        try:
            result = self.handler(event, self.context())
        except Exception:
            log.exception("the handler raised; answering 500 as API Gateway does")
            return http_response(_INTERNAL_ERROR)
        try:
            return http_response(result)
        except MalformedResponseError as exc:
            log.error("the handler's response is malformed (%s); answering 500 as API Gateway does", exc)
            return http_response(_INTERNAL_ERROR)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not part of HTTP API
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                body = _error_body("payload_too_large", f"request body exceeds the {self.max_body_bytes:,}-byte Lambda payload limit")
                await self._send(send, 413, [(b"content-type", b"application/json"), (b"connection", b"close")], body)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        client = scope.get("client") or ("127.0.0.1", 0)
        event = http_api_event(
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"],
            headers=scope["headers"],
            body=b"".join(chunks),
            source_ip=client[0],
            http_version=scope.get("http_version", "1.1"),
        )
        status, headers, body = self.invoke(event)
        await self._send(send, status, headers, body)

    @staticmethod
    async def _send(send: Callable[[dict[str, Any]], Any], status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise MlopsError(f"cannot listen on {host}:{port}: {reason.lower()} (choose another port, or 0 for a free one)") from exc


def _uvicorn_server(app: LambdaHttpApp) -> Any:
    import uvicorn

    class Server(uvicorn.Server):  # type: ignore[misc]
        """uvicorn's server, minus re-raising the signal after a graceful stop: Ctrl-C ends ``mlops serve`` with 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        log_config=None,  # leave the process's logging alone (powertools configures its own)
        log_level=logging.WARNING,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    return Server(config)


class LocalServer:
    """``handler`` served over HTTP on ``host:port`` (0 picks a free port) until stopped.

    ``serve_forever()`` runs in the calling (main) thread and returns after Ctrl-C or SIGTERM; ``start()`` serves from
    a background thread until ``stop()`` (or the ``with`` block ends). Either way, once the server has closed every
    connection, ``on_shutdown`` runs (e.g. to flush buffered data capture).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        function_name: str = "inference",
        region: str = "us-east-1",
        on_shutdown: Callable[[], object] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = LambdaHttpApp(handler, function_name=function_name, region=region, max_body_bytes=max_body_bytes)
        self.on_shutdown = on_shutdown
        self._socket = _listen(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._server = _uvicorn_server(self.app)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until SIGINT/SIGTERM (or ``stop()`` from another thread), then shut down cleanly."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()
            self._shutdown_hook()

    def start(self, timeout: float = 10.0) -> LocalServer:
        """Serve from a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"mlops-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MlopsError(f"the local server on {self.url} did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish the requests in flight, close every connection, run ``on_shutdown``; idempotent."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()

    def _shutdown_hook(self) -> None:
        hook, self.on_shutdown = self.on_shutdown, None
        if hook is not None:
            try:
                hook()
            except Exception:
                log.exception("the shutdown hook failed")

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["MAX_BODY_BYTES", "LambdaContext", "LambdaHttpApp", "LocalServer", "http_api_event", "http_response", "is_text"]
