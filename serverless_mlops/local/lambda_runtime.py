"""The in-process Lambda runtime (:class:`LocalInvoker`): moto cannot run Lambda code without docker, so, installed (a
context manager), it replaces moto's ``LambdaFunction._invoke_lambda`` with one that imports the function's handler
and calls it with the function's environment, so Step Functions' ``lambda:invoke`` tasks, SNS subscriptions and
``lambda.invoke`` all run the project's code. It can throttle or fail the next calls of a function (fault injection
for tests) and records every invocation (:class:`Invocation`).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from serverless_mlops.local.assembly import ROOT
from serverless_mlops.local.template import LocalStackError

# what a handler module builds once per execution environment from os.environ (clients, the inference endpoint with
# its model cache and capture buffer): a new environment, or a new stack, must not reuse it
_ENVIRONMENT_CACHES = ("default_dependencies", "default_endpoint")
_INVOKE_LOCK = threading.RLock()  # os.environ is the process's: one invocation at a time
_capture = threading.local()


class _RoutedStream:
    """sys.stdout/sys.stderr while an invoker is installed: a thread inside an invocation writes to its log buffer,
    every other thread to the stream that was there before (or whatever is current once uninstalled)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fallback: TextIO | None = None

    def _target(self) -> TextIO:
        current: Any = getattr(sys, self.name)
        if current is not self:
            return current  # type: ignore[no-any-return]
        fallback: TextIO = self.fallback or getattr(sys, f"__{self.name}__")
        return fallback

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(_capture, "buffer", None)
        if buffer is not None:
            return buffer.write(text)
        return self._target().write(text)

    def flush(self) -> None:
        if getattr(_capture, "buffer", None) is None:
            self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


_STREAMS = {"stdout": _RoutedStream("stdout"), "stderr": _RoutedStream("stderr")}


class Throttled(Exception):
    """Lambda's 429: raised from moto's invoke, it reaches Step Functions as ``Lambda.TooManyRequestsException``."""


def _throttle_error(function: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    class TooManyRequestsException(JsonRESTError, Throttled):
        code = 429

        def __init__(self) -> None:
            super().__init__("TooManyRequestsException", f"Rate exceeded (local fault injection on {function})")

    return TooManyRequestsException()


@dataclass(frozen=True)
class Invocation:
    """One call of a function: its event and what it returned (or the error)."""

    function: str
    event: Any
    result: Any
    errored: bool
    throttled: bool

    @property
    def error_type(self) -> str | None:
        return str(self.result.get("errorType")) if self.errored and isinstance(self.result, dict) else None


@dataclass
class _Fault:
    function: str
    remaining: int
    kind: Literal["throttle", "fail"]
    match: Mapping[str, Any]
    error: BaseException | None = None

    def applies(self, function: str, event: Any) -> bool:
        if self.remaining <= 0 or function != self.function:
            return False
        return all(isinstance(event, dict) and event.get(k) == v for k, v in self.match.items())


@dataclass
class LocalContext:
    """The Lambda context object a handler receives (what powertools reads from it)."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


class LocalInvoker:
    """Runs moto's Lambda functions in this process; install it with ``with LocalInvoker(...):``.

    Each call imports the function's handler (``functions.training.app.lambda_handler``) and calls it with the
    function's environment in ``os.environ`` (restored afterwards; one call at a time) plus
    ``POWERTOOLS_TRACE_DISABLED=1`` and, against a moto server, ``MLOPS_ENDPOINT_URL``. A module's
    ``default_dependencies`` / ``default_endpoint`` cache is cleared when its environment differs from its previous
    call's. A raised
    exception becomes Lambda's ``{"errorType", "errorMessage"}`` error. ``throttle`` and ``fail`` inject faults.
    """

    def __init__(self, *, endpoint_url: str | None = None, code_root: Path | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.code_root = code_root or ROOT
        self._faults: list[_Fault] = []
        self._calls: list[Invocation] = []
        self._lock = threading.Lock()
        self._last_env: dict[str, tuple[tuple[str, str], ...]] = {}
        self._previous: Any = None
        self._saved_streams: dict[str, TextIO] = {}

    # -- installing --

    @property
    def installed(self) -> bool:
        from moto.awslambda.models import LambdaFunction

        return getattr(LambdaFunction._invoke_lambda, "_invoker", None) is self

    def install(self) -> LocalInvoker:
        from moto.awslambda.models import LambdaFunction

        if self.installed:
            return self
        invoker = self

        def _invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
            return invoker.run(function, event)

        _invoke_lambda._invoker = self  # type: ignore[attr-defined]
        self._previous = LambdaFunction._invoke_lambda
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign,assignment]
        self._last_env.clear()  # a cache built before this install may hold another backend's clients
        for name, stream in _STREAMS.items():
            current = getattr(sys, name)
            if current is not stream:
                self._saved_streams[name] = current
                stream.fallback = current
                setattr(sys, name, stream)
        return self

    def uninstall(self) -> None:
        from moto.awslambda.models import LambdaFunction

        if not self.installed:
            return
        LambdaFunction._invoke_lambda = self._previous  # type: ignore[method-assign]
        for name, saved in self._saved_streams.items():
            if getattr(sys, name) is _STREAMS[name]:
                setattr(sys, name, saved)
                _STREAMS[name].fallback = None
        self._saved_streams.clear()

    def __enter__(self) -> LocalInvoker:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- fault injection and the record --

    def throttle(self, function: str, times: int = 1, *, match: Mapping[str, Any] | None = None) -> None:
        """The next ``times`` calls of ``function`` (whose event has ``match``'s items) get Lambda's 429."""
        with self._lock:
            self._faults.append(_Fault(function, times, "throttle", dict(match or {})))

    def fail(self, function: str, times: int = 1, *, error: BaseException | None = None, match: Mapping[str, Any] | None = None) -> None:
        """The next ``times`` calls of ``function`` (whose event has ``match``'s items) raise ``error`` in the handler."""
        failure = error or RuntimeError(f"injected failure of {function}")
        with self._lock:
            self._faults.append(_Fault(function, times, "fail", dict(match or {}), failure))

    @property
    def calls(self) -> list[Invocation]:
        with self._lock:
            return list(self._calls)

    def calls_of(self, function: str) -> list[Invocation]:
        return [call for call in self.calls if call.function == function]

    def _take_fault(self, function: str, event: Any) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies(function, event):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, invocation: Invocation) -> None:
        with self._lock:
            self._calls.append(invocation)

    # -- running --

    def run(self, function: Any, event: Any) -> tuple[str, bool, str]:
        """moto's ``_invoke_lambda``: (JSON result, errored, logs) for one call of the moto ``LambdaFunction``."""
        payload = _parse_event(event)
        name = str(function.function_name)
        fault = self._take_fault(name, payload)
        if fault is not None and fault.kind == "throttle":
            self._record(Invocation(name, payload, None, errored=True, throttled=True))
            raise _throttle_error(name)
        context = LocalContext(
            function_name=name,
            invoked_function_arn=str(function.function_arn),
            memory_limit_in_mb=int(function.memory_size or 128),
            timeout_seconds=int(function.timeout or 3),
        )
        environment = {str(k): str(v) for k, v in (function.environment_vars or {}).items()}
        error = fault.error if fault is not None else None
        result, errored, logs = self.call(str(function.handler), environment, payload, context, error=error)
        self._record(Invocation(name, payload, result, errored=errored, throttled=False))
        return json.dumps(result, default=str), errored, logs

    def call(
        self,
        handler: str,
        environment: Mapping[str, str],
        event: Any,
        context: Any,
        *,
        error: BaseException | None = None,
        arguments: tuple[Any, ...] | None = None,
    ) -> tuple[Any, bool, str]:
        """Import ``handler`` and call it under ``environment``; (result, errored, logs). ``error`` is raised instead.
        ``arguments`` replaces ``(event, context)`` for a module's other functions (the inference capture's flush)."""
        module_name, _, attribute = handler.rpartition(".")
        variables = dict(environment)
        variables["POWERTOOLS_TRACE_DISABLED"] = "1"
        if self.endpoint_url:
            variables["MLOPS_ENDPOINT_URL"] = self.endpoint_url
        with _INVOKE_LOCK, _swapped_environment(variables), _captured_output() as buffer:
            try:
                if error is not None:
                    raise error
                function = self._load(module_name, attribute, variables)
                return function(*((event, context) if arguments is None else arguments)), False, buffer.getvalue()
            except Exception as exc:  # Lambda reports any exception as the invocation's error
                buffer.write(traceback.format_exc())
                return {"errorType": type(exc).__name__, "errorMessage": str(exc)}, True, buffer.getvalue()

    def _load(self, module_name: str, attribute: str, variables: Mapping[str, str]) -> Callable[[Any, Any], Any]:
        if not module_name:
            raise LocalStackError(f"handler {attribute!r}: expected module.function")
        if str(self.code_root) not in sys.path:
            sys.path.insert(0, str(self.code_root))
        module = importlib.import_module(module_name)
        snapshot = tuple(sorted(variables.items()))
        if self._last_env.get(module_name) != snapshot:
            for name in _ENVIRONMENT_CACHES:
                cache_clear = getattr(getattr(module, name, None), "cache_clear", None)
                if cache_clear is not None:
                    cache_clear()
            self._last_env[module_name] = snapshot
        function = getattr(module, attribute, None)
        if not callable(function):
            raise LocalStackError(f"handler {module_name}.{attribute}: {module_name} has no function {attribute!r}")
        return function  # type: ignore[no-any-return]


def _parse_event(event: Any) -> Any:
    if isinstance(event, bytes):
        event = event.decode()
    if isinstance(event, str):
        return json.loads(event) if event.strip() else {}
    return {} if event is None else event


_LAMBDA_SCOPED = ("MLOPS_", "POWERTOOLS_")


@contextmanager
def _swapped_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` as the function sees it: the process's, minus its MLOPS_/POWERTOOLS_ settings, plus the
    function's. Only the changed keys are touched, so other threads never see an empty environment."""
    changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_LAMBDA_SCOPED) and k not in variables}
    changes.update(variables)
    saved = {k: os.environ.get(k) for k in changes}
    _apply(changes)
    try:
        yield
    finally:
        _apply(saved)


def _apply(changes: Mapping[str, str | None]) -> None:
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    previous = getattr(_capture, "buffer", None)
    buffer = _capture.buffer = io.StringIO()
    try:
        yield buffer
    finally:
        _capture.buffer = previous
