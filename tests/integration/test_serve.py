"""The local HTTP server (``serverless_mlops.local.http_api``) and ``mlops serve``, over real sockets on 127.0.0.1.

The server is exercised first with small handlers of the tests' own (what the event looks like, how answers map
back, failures, limits, concurrency, shutdown), then with the inference Lambda's own handler and a model registered
on a moto server, through ``mlops serve`` itself. Request counts and timeouts are bounded.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serverless_mlops.cli import main
from serverless_mlops.cli.serve import curl_example, example_value, load_handler, serve_environment, typical_row
from serverless_mlops.errors import MlopsError
from serverless_mlops.local.http_api import LambdaContext, LambdaHttpApp, LocalServer, http_api_event, http_response, is_text
from serverless_mlops.local.moto import LocalAws, ensure_resources, free_port
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.signature import FeatureSignature
from serverless_mlops.serving.onnx_model import OnnxModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.capture_format import decode_records
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.inference import records

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


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_server_that_cannot_start_says_so() -> None:
    server = LocalServer(echo)
    server._socket.close()  # the listening socket is gone before the server thread can use it
    with pytest.raises(MlopsError, match="did not start"):
        server.start()
    server.stop()


def test_app_ignores_non_http_scopes_and_clients_that_hang_up() -> None:
    calls: list[object] = []
    sent: list[dict[str, Any]] = []
    app = LambdaHttpApp(lambda event, context: calls.append(event))

    async def disconnect() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": []}
    asyncio.run(app({"type": "websocket"}, disconnect, send))
    asyncio.run(app(scope, disconnect, send))
    assert (calls, sent) == ([], [])


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
        try:
            request(server, "GET", "/")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=client_then_sigterm)
    sender.start()
    server.serve_forever()  # returns (instead of dying) once SIGTERM arrives
    sender.join()  # the signal it sends must never reach a later test
    assert flushed == [True]
    assert signal.getsignal(signal.SIGTERM) == before


# -- mlops serve: the inference Lambda's handler, a model registered on a moto server -------------------------------


@dataclass(frozen=True)
class World:
    endpoint_url: str
    backends: Backends
    wine: TrainedModel


@pytest.fixture(scope="module")
def world(trained_models: dict[str, TrainedModel]) -> Iterator[World]:
    with LocalAws() as aws:
        settings = Settings(endpoint_url=aws.endpoint_url)
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        entry = register_run(trained_models["wine"], backends, by="serve-tests")
        backends.registry.promote("wine", entry.version, by="serve-tests")
        yield World(aws.endpoint_url, backends, trained_models["wine"])


@pytest.fixture
def handler_state() -> Iterator[None]:
    """`mlops serve` sets the handler's environment and the handler module caches its endpoint: undo both."""
    saved = dict(os.environ)
    app = importlib.import_module("functions.inference.app")
    app.default_endpoint.cache_clear()
    yield
    app.default_endpoint.cache_clear()
    os.environ.clear()
    os.environ.update(saved)


def captured_rows(backends: Backends, model: str) -> list[dict[str, Any]]:
    s3, bucket = backends.store.s3, backends.store.bucket
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"capture/{model}/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return [record for key in keys for record in decode_records(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key)]


def test_mlops_serve_predicts_like_the_registered_model_then_stops_cleanly_on_ctrl_c(
    world: World, handler_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    rows = records("wine", 8)
    expected = OnnxModel(world.wine.record.signature, world.wine.onnx_bytes).predict_records(rows)
    seen: dict[str, Any] = {"answers": [], "errors": []}

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            for i in range(5):
                row = rows[(number + i) % len(rows)]
                connection.request(
                    "POST", "/v1/models/wine/predict", body=json.dumps({"instances": [row]}), headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                seen["answers"].append(((number + i) % len(rows), response.status, json.loads(response.read())))
        except BaseException as exc:  # reported below
            seen["errors"].append(exc)
        finally:
            connection.close()

    def drive() -> None:
        deadline = time.monotonic() + 60
        while True:  # until the server listens (imports take a second or two)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    seen["errors"].append(TimeoutError("mlops serve did not listen"))
                    return
                time.sleep(0.05)
        try:
            seen["batch"] = request(
                port, "POST", "/v1/models/wine/predict", json.dumps({"instances": rows}).encode(), {"Content-Type": "application/json"}
            )
            seen["invalid"] = request(
                port, "POST", "/v1/models/wine/predict", b'{"instances": [{"alcohol": 1.0}]}', {"Content-Type": "application/json"}
            )
            binary = json.dumps({"instances": rows[:1]}).encode()
            seen["binary"] = request(port, "POST", "/v1/models/wine/predict", binary, {"Content-Type": "application/octet-stream"})
            seen["not_utf8"] = request(
                port, "POST", "/v1/models/wine/predict", b'{"instances": "\xff"}', {"Content-Type": "application/json"}
            )
            seen["missing"] = request(port, "POST", "/v1/models/nope/predict", b'{"instances": [{}]}', {"Content-Type": "application/json"})
            pool = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join(TIMEOUT)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C

    threads_before = {t.ident for t in threading.enumerate()}
    driver = threading.Thread(target=drive)
    driver.start()
    code = main(["--endpoint-url", world.endpoint_url, "serve", "--port", str(port), "--model", "wine"])
    driver.join()  # the signal it sends must never reach a later test
    out = capsys.readouterr().out
    assert code == 0
    assert not seen["errors"]
    assert f"http://127.0.0.1:{port}" in out
    assert f"curl -s http://127.0.0.1:{port}/v1/models/wine/predict" in out
    status, _, body = seen["batch"]
    answer = json.loads(body)
    assert (status, answer["model"], answer["version"]) == (200, "wine", 1)
    assert answer["predictions"] == expected.predictions
    assert expected.probabilities is not None
    for served, local in zip(answer["probabilities"], expected.probabilities, strict=True):
        assert served == pytest.approx(local, abs=1e-6)
    assert len(seen["answers"]) == 20
    for index, status, answer in seen["answers"]:
        assert status == 200
        assert answer["predictions"] == [expected.predictions[index]]
    status, _, body = seen["invalid"]
    assert status == 422
    assert {"row": 0, "field": "malic_acid", "problem": "missing"} in json.loads(body)["details"]
    # bodies the server had to base64-encode reach the handler, which decodes them and refuses what is not JSON
    assert (seen["binary"][0], json.loads(seen["binary"][2])["error"]) == (415, "unsupported_media_type")
    assert (seen["not_utf8"][0], json.loads(seen["not_utf8"][2])["error"]) == (400, "malformed_body")
    assert seen["missing"][0] == 404
    # no thread of the server's is left; the moto server may still hold a connection thread for the handler's clients
    left = [t.name for t in threading.enumerate() if t.ident not in threads_before and t is not driver]
    assert all("process_request_thread" in name for name in left), left
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    # stopping flushed the data capture the handler buffered: every predicted row is in S3
    assert len(captured_rows(world.backends, "wine")) == len(rows) + 20


def test_mlops_serve_on_a_busy_port_is_one_line_and_exit_1(world: World, handler_state: None, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = main(["--endpoint-url", world.endpoint_url, "serve", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: address already in use" in err


def test_mlops_serve_refuses_an_unregistered_model(world: World, handler_state: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--endpoint-url", world.endpoint_url, "serve", "--port", "0", "--model", "nope"])
    err = capsys.readouterr().err
    assert code == 1
    assert "model 'nope' is not registered" in err


def test_curl_example_falls_back_to_a_placeholder_without_production_models(world: World) -> None:
    assert "/v1/models/wine/predict" in curl_example("http://h:1", world.backends, [])
    assert "/v1/models/MODEL/predict" in curl_example("http://h:1", world.backends, ["absent"])


def test_curl_example_sends_typical_values_from_the_training_profile_not_a_training_row(world: World) -> None:
    import shlex

    import pandas as pd

    from serverless_mlops.model.profile import load_profile

    command = curl_example("http://h:1", world.backends, ["wine"])
    row = json.loads(shlex.split(command)[-1])["instances"][0]
    means = {name: summary["mean"] for name, summary in load_profile(world.wine.profile_bytes)["features"].items()}
    assert row.keys() == means.keys()
    assert all(row[name] == pytest.approx(means[name], rel=1e-3) for name in row)
    frame = pd.read_csv(Path(__file__).resolve().parents[2] / "models" / "data" / "wine.csv")
    assert not (frame[list(row)] == pd.Series(row)).all(axis=1).any()  # no real row is printed
    # a profile that cannot be read falls back to values that fit the signature
    entry = world.backends.registry.resolve("wine")
    broken = entry.model_copy(
        update={"profile": entry.profile.model_copy(update={"uri": entry.profile.uri + ".missing", "version_id": None})}
    )
    assert typical_row(world.backends, broken) == {f.name: example_value(f) for f in entry.signature.features}


def test_mlops_serve_json_prints_the_url_and_example_as_a_document(
    world: World, handler_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    answers: list[int] = []

    def drive() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answers.append(request(port, "GET", "/v2/health/live")[0])
                break
            except OSError:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    driver = threading.Thread(target=drive)
    driver.start()
    code = main(["--json", "serve", "--endpoint-url", world.endpoint_url, "--port", str(port)])
    driver.join()  # the signal it sends must never reach a later test
    document, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert (code, answers) == (0, [200])
    assert document["url"] == f"http://127.0.0.1:{port}"
    assert document["models"] is None
    assert f"{document['url']}/v1/models/wine/predict" in document["example"]


def test_serve_environment_is_what_the_function_configuration_would_set() -> None:
    env = serve_environment(Settings(bucket="b-1", table="t-1", kms_key_id="key"), [])
    assert env["MLOPS_BUCKET"] == "b-1"
    assert env["MLOPS_TABLE"] == "t-1"
    assert env["MLOPS_KMS_KEY_ID"] == "key"
    assert "MLOPS_ENDPOINT_URL" not in env
    assert "MLOPS_MODELS" not in env
    env = serve_environment(Settings(endpoint_url="http://127.0.0.1:1"), ["a", "b"])
    assert env["MLOPS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["MLOPS_MODELS"] == "a,b"


def test_curl_example_values_fit_each_feature() -> None:
    categorical = FeatureSignature(name="c", input_name="c", kind="categorical", categories=["x", "y"])
    ranged = FeatureSignature(name="r", input_name="r", kind="numeric", range=(10.0, 20.0))
    open_ended = FeatureSignature(name="n", input_name="n", kind="categorical")
    assert [example_value(f) for f in (categorical, ranged, open_ended)] == ["x", 15.0, "value"]


def test_handler_is_found_from_any_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """functions/ is installed with the distribution: no path edits, from whatever folder mlops serve runs in."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != root])
    for name in [m for m in sys.modules if m == "functions" or m.startswith("functions.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MlopsError, match=r"functions\.observability has no lambda_handler"):  # found, imported, checked
        load_handler("functions.observability")
    assert str(root) not in sys.path


def test_handler_module_errors_are_one_clear_line() -> None:
    with pytest.raises(MlopsError, match=r"cannot import the inference handler functions\.nope"):
        load_handler("functions.nope")
    with pytest.raises(MlopsError, match=r"functions\.observability has no lambda_handler"):
        load_handler("functions.observability")
    handler, flush = load_handler()
    assert callable(handler)
    assert flush is not None
