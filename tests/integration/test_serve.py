"""The local HTTP server (``serverless_mlops.server``) and ``mlops serve``, over real sockets on 127.0.0.1.

The server is exercised first with small handlers of the tests' own (what the event looks like, how answers map
back, failures, limits, concurrency, shutdown), then with the inference Lambda's own handler and a model registered
on a moto server, through ``mlops serve`` itself. Request counts and timeouts are bounded.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from serverless_mlops.errors import MlopsError
from serverless_mlops.server import LambdaContext, LocalServer, http_api_event, http_response, is_text

TIMEOUT = 10


def request(
    server: LocalServer | int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    port = server if isinstance(server, int) else server.port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        items = headers.items() if isinstance(headers, dict) else headers or []
        for name, value in items:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with the event and the context it was called with."""
    seen = {
        "function_name": context.function_name,
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"event": event, "context": seen})}


@pytest.fixture
def echo_server() -> Iterator[LocalServer]:
    with LocalServer(echo) as server:
        yield server


# -- the event ----------------------------------------------------------------------------------------------------


def test_request_becomes_an_http_api_v2_event(echo_server: LocalServer) -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("X-Trace", "a"),
        ("x-trace", "b"),
        ("Cookie", "session=1; theme=dark"),
        ("User-Agent", "pytest-client"),
    ]
    status, _, body = request(
        echo_server, "POST", "/v1/models/wine/predict?version=2&tag=a&tag=b%20c&empty=", b'{"instances": []}', headers
    )
    assert status == 200
    answer = json.loads(body)
    event = answer["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/v1/models/wine/predict"
    assert event["rawQueryString"] == "version=2&tag=a&tag=b%20c&empty="
    assert event["queryStringParameters"] == {"version": "2", "tag": "a,b c", "empty": ""}
    assert event["headers"]["x-trace"] == "a,b"
    assert event["headers"]["content-type"] == "application/json"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["session=1", "theme=dark"]
    assert event["body"] == '{"instances": []}'
    assert event["isBase64Encoded"] is False
    http_context = event["requestContext"]["http"]
    assert http_context == {
        "method": "POST",
        "path": "/v1/models/wine/predict",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest-client",
    }
    assert event["requestContext"]["requestId"]
    assert abs(event["requestContext"]["timeEpoch"] / 1000 - time.time()) < 60
    context = answer["context"]
    assert context["function_name"] == "inference"
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:inference"
    assert context["memory_limit_in_mb"] == 1024
    assert 0 < context["remaining"] <= 30_000
    assert context["aws_request_id"]


def test_get_without_body_or_query_has_neither(echo_server: LocalServer) -> None:
    status, _, body = request(echo_server, "GET", "/v2/health/live")
    event = json.loads(body)["event"]
    assert status == 200
    assert "body" not in event
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    assert event["requestContext"]["http"]["method"] == "GET"


def test_each_request_gets_its_own_ids(echo_server: LocalServer) -> None:
    answers = [json.loads(request(echo_server, "GET", "/")[2]) for _ in range(3)]
    assert len({a["event"]["requestContext"]["requestId"] for a in answers}) == 3
    assert len({a["context"]["aws_request_id"] for a in answers}) == 3


def test_binary_body_arrives_base64_encoded(echo_server: LocalServer) -> None:
    payload = bytes(range(256))
    _, _, body = request(echo_server, "POST", "/upload", payload, {"Content-Type": "application/octet-stream"})
    event = json.loads(body)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_text_type_with_invalid_utf8_is_sent_as_base64(echo_server: LocalServer) -> None:
    _, _, body = request(echo_server, "POST", "/x", b"\xff\xfe", {"Content-Type": "text/plain"})
    event = json.loads(body)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Text/CSV", True),
        ("application/vnd.api+json", True),
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", False),
        ("image/png", False),
        (None, False),
    ],
)
def test_text_content_types(content_type: str | None, text: bool) -> None:
    assert is_text(content_type) is text


def test_event_builder_is_deterministic_given_id_and_time() -> None:
    event = http_api_event(
        method="POST",
        path="/p",
        query_string=b"",
        headers=[(b"Host", b"example.test:8080")],
        body=b"{}",
        source_ip="10.0.0.1",
        request_id="rid",
        now=1_583_348_638.39,
    )
    context = event["requestContext"]
    assert context["requestId"] == "rid"
    assert context["timeEpoch"] == 1_583_348_638_390
    assert context["time"] == "04/Mar/2020:19:03:58 +0000"
    assert context["domainName"] == "example.test"
    assert context["domainPrefix"] == "example"
    assert event["isBase64Encoded"] is True  # no content type: HTTP API cannot know it is text


# -- the response -------------------------------------------------------------------------------------------------


def answering(result: Any) -> LocalServer:
    return LocalServer(lambda event, context: result)


def test_client_error_passes_through_with_headers_and_cookies() -> None:
    result = {
        "statusCode": 422,
        "headers": {"Content-Type": "application/json", "X-Request": "r1", "Content-Length": "999"},
        "multiValueHeaders": {"X-Multi": ["1", "2"]},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": json.dumps(
            {"error": "invalid_input", "message": "1 invalid value", "details": [{"row": 0, "field": "x", "problem": "missing"}]}
        ),
    }
    with answering(result) as server:
        status, headers, body = request(server, "POST", "/v1/models/m/predict", b"{}", {"Content-Type": "application/json"})
    assert status == 422
    assert json.loads(body)["details"] == [{"row": 0, "field": "x", "problem": "missing"}]
    assert headers["x-request"] == "r1"
    assert headers.get_all("x-multi") == ["1", "2"]
    assert headers.get_all("set-cookie") == ["a=1; Path=/", "b=2"]
    assert headers["content-length"] == str(len(body))  # the server's own length, never the handler's


def test_base64_response_body_is_decoded() -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    result = {
        "statusCode": 200,
        "headers": {"content-type": "image/png"},
        "body": base64.b64encode(image).decode(),
        "isBase64Encoded": True,
    }
    with answering(result) as server:
        status, headers, body = request(server, "GET", "/image")
    assert (status, headers["content-type"], body) == (200, "image/png", image)


def test_answer_without_status_code_is_a_json_200() -> None:
    with answering({"hello": "world"}) as server:
        status, headers, body = request(server, "GET", "/")
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {"hello": "world"})


def test_empty_body_and_no_headers() -> None:
    with answering({"statusCode": 204}) as server:
        status, _, body = request(server, "DELETE", "/thing")
    assert (status, body) == (204, b"")


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200", "body": "x"},
        {"statusCode": 99, "body": "x"},
        {"statusCode": True, "body": "x"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "***", "isBase64Encoded": True},
        {1, 2},
    ],
    ids=["string-status", "status-out-of-range", "boolean-status", "dict-body", "bad-base64", "not-json"],
)
def test_malformed_answers_become_500_as_on_api_gateway(result: Any, caplog: pytest.LogCaptureFixture) -> None:
    with answering(result) as server:
        status, _, body = request(server, "GET", "/")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert "malformed" in caplog.text


def test_handler_crash_is_a_500_without_traceback_to_the_client(caplog: pytest.LogCaptureFixture) -> None:
    def crash(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("secret internals")

    with LocalServer(crash) as server:
        status, _, body = request(server, "GET", "/")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert b"secret" not in body
    assert "secret internals" in caplog.text  # the operator sees the cause in the server's log


def test_response_helper_maps_multivalue_headers_over_single_ones() -> None:
    status, headers, body = http_response(
        {"statusCode": 201, "headers": {"x-a": "1"}, "multiValueHeaders": {"X-A": ["2", "3"]}, "body": "ok"}
    )
    assert (status, body) == (201, b"ok")
    assert headers == [(b"x-a", b"2"), (b"x-a", b"3")]


# -- limits -------------------------------------------------------------------------------------------------------


def test_body_over_the_lambda_payload_limit_is_refused_with_413() -> None:
    calls: list[int] = []

    def count(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(1)
        return {"statusCode": 200, "body": "ok"}

    with LocalServer(count, max_body_bytes=1000) as server:
        status, _, body = request(server, "POST", "/big", b"x" * 5000, {"Content-Type": "text/plain"})
        small = request(server, "POST", "/small", b"x" * 1000, {"Content-Type": "text/plain"})
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"
    assert small[0] == 200
    assert calls == [1]  # the handler never saw the oversized request


def test_busy_port_is_one_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(MlopsError, match=rf"cannot listen on 127\.0\.0\.1:{port}: address already in use"):
            LocalServer(echo, port=port)


def test_context_counts_down() -> None:
    context = LambdaContext(function_name="f", aws_request_id="r", invoked_function_arn="arn", timeout_seconds=0.05)
    assert context.get_remaining_time_in_millis() <= 50
    time.sleep(0.06)
    assert context.get_remaining_time_in_millis() == 0


# -- concurrency and shutdown -------------------------------------------------------------------------------------


def test_concurrent_keep_alive_clients_are_all_answered_one_handler_call_at_a_time() -> None:
    in_flight = [0]
    overlaps = [0]
    lock = threading.Lock()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            in_flight[0] += 1
            overlaps[0] += in_flight[0] > 1
        time.sleep(0.001)
        with lock:
            in_flight[0] -= 1
        return {"statusCode": 200, "body": event["body"]}

    clients, each = 8, 25
    answers: list[tuple[int, str, int]] = []
    errors: list[BaseException] = []
    with LocalServer(slow) as server:

        def client(number: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            try:
                for i in range(each):
                    connection.request("POST", "/echo", body=f"{number}-{i}", headers={"Content-Type": "text/plain"})
                    response = connection.getresponse()
                    answers.append((response.status, response.read().decode(), id(connection.sock)))
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        pool = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(TIMEOUT)
    assert not errors
    assert sorted(body for _, body, _ in answers) == sorted(f"{n}-{i}" for n in range(clients) for i in range(each))
    assert {status for status, _, _ in answers} == {200}
    assert len({sock for _, _, sock in answers}) == clients  # each client kept one connection alive throughout
    assert overlaps == [0]


def test_stop_closes_the_port_ends_the_thread_and_runs_the_shutdown_hook() -> None:
    flushed: list[str] = []
    before = {t.ident for t in threading.enumerate()}
    server = LocalServer(echo, on_shutdown=lambda: flushed.append("flushed")).start()
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)  # an idle keep-alive connection
    idle.request("GET", "/")
    idle.getresponse().read()
    server.stop()
    server.stop()  # idempotent
    assert flushed == ["flushed"]
    assert {t.ident for t in threading.enumerate()} <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    idle.close()
    LocalServer(echo, port=server.port).stop()  # the port is free again


def test_failing_shutdown_hook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise OSError("bucket gone")

    LocalServer(echo, on_shutdown=broken).start().stop()
    assert "shutdown hook failed" in caplog.text


def test_serve_forever_stops_on_sigterm_and_restores_signal_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    flushed: list[bool] = []
    server = LocalServer(echo, on_shutdown=lambda: flushed.append(True))

    def client_then_sigterm() -> None:
        request(server, "GET", "/")
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=client_then_sigterm)
    sender.start()
    server.serve_forever()  # returns (instead of dying) once SIGTERM arrives
    sender.join(TIMEOUT)
    assert flushed == [True]
    assert signal.getsignal(signal.SIGTERM) == before
