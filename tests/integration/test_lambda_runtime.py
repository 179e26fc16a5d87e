"""The in-process Lambda runtime installed into moto's Lambda (it replaces ``LambdaFunction._invoke_lambda`` while
installed): calls recorded, faults injected, logs captured, and moto and the process's streams put back after."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_mlops.local.lambda_runtime import LocalInvoker, Throttled
from tests.helpers.local_handlers import forget_handler_package, moto_function, write_handler_package


@pytest.fixture
def handler_root(tmp_path: Path) -> Iterator[Path]:
    yield write_handler_package(tmp_path)
    forget_handler_package(tmp_path)


def test_run_records_calls_injects_faults_and_captures_logs_when_installed(handler_root: Path) -> None:
    with LocalInvoker(code_root=handler_root) as invoker:
        assert invoker.installed
        assert invoker.install() is invoker
        invoker.throttle("fn", times=1, match={"step": "train"})
        invoker.fail("fn", times=1, error=ValueError("bad data"), match={"step": "train"})
        invoker.fail("other", times=1)
        assert json.loads(invoker.run(moto_function(), '{"step": "prepare"}')[0])["cached_bucket"] == "b1"
        with pytest.raises(Throttled) as caught:
            invoker.run(moto_function(), {"step": "train"})
        assert getattr(caught.value, "code", None) == 429
        assert "TooManyRequestsException" in str(getattr(caught.value, "description", caught.value))
        body, errored, _ = invoker.run(moto_function(), b'{"step": "train"}')
        assert errored
        assert json.loads(body) == {"errorType": "ValueError", "errorMessage": "bad data"}
        body, errored, logs = invoker.run(moto_function(), "")
        assert not errored
        assert logs == "log line from fn\n"
        body, errored, _ = invoker.run(moto_function("other"), None)
        assert errored
        assert json.loads(body)["errorType"] == "RuntimeError"
    assert not invoker.installed
    invoker.uninstall()  # idempotent
    calls = invoker.calls_of("fn")
    assert [(c.event.get("step"), c.throttled, c.error_type) for c in calls] == [
        ("prepare", False, None),
        ("train", True, None),
        ("train", False, "ValueError"),
        (None, False, None),
    ]
    assert [c.function for c in invoker.calls] == ["fn", "fn", "fn", "fn", "other"]


def test_uninstall_puts_moto_and_the_streams_back() -> None:
    from moto.awslambda.models import LambdaFunction

    original, stdout = LambdaFunction._invoke_lambda, sys.stdout
    with LocalInvoker():
        assert LambdaFunction._invoke_lambda is not original
        assert sys.stdout is not stdout
        print("printed while installed, outside an invocation")  # reaches the real stream, not a buffer
    assert LambdaFunction._invoke_lambda is original
    assert sys.stdout is stdout


def test_invokers_stack_and_the_streams_follow_whatever_is_current() -> None:
    import io

    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction._invoke_lambda
    with LocalInvoker() as outer:
        routed = sys.stdout
        with LocalInvoker() as inner:
            assert sys.stdout is routed  # one routed stream, installed once
            assert inner.installed
            assert not outer.installed
        assert outer.installed
        elsewhere = io.StringIO()
        sys.stdout = elsewhere  # someone else swapped stdout meanwhile: writes outside an invocation go there
        try:
            routed.write("to the current stream")
            routed.flush()
            assert routed.closed is False  # any other attribute is the current stream's
        finally:
            sys.stdout = routed
        assert elsewhere.getvalue() == "to the current stream"
    assert LambdaFunction._invoke_lambda is original
