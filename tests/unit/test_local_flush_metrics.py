"""The local HTTP API's flush (``mlops serve`` stopping) forwards the EMF records the inference function prints while
flushing, as each request's are: the shadow's pending guard metrics (serving/guard_tally.py) reach moto's CloudWatch."""

from __future__ import annotations

import json
from typing import Any

from serverless_mlops.local.environment import INFERENCE_FLUSH, _Integration
from serverless_mlops.serving import guard_metrics as gm


class Invoker:
    def __init__(self, logs: str, errored: bool = False) -> None:
        self.logs = logs
        self.errored = errored
        self.called: list[str] = []

    def call(self, handler: str, environment: Any, event: Any, context: Any, *, arguments: Any = None) -> tuple[Any, bool, str]:
        self.called.append(handler)
        return None, self.errored, self.logs


class Forwarder:
    def __init__(self) -> None:
        self.logs: list[str] = []

    def forward(self, logs: str) -> int:
        self.logs.append(logs)
        return 1


def test_the_flush_forwards_what_the_function_printed() -> None:
    record = gm.emf_record({gm.REQUESTS: 7, gm.LATENCY: [0.1, 0.2]}, model="wine", version=3, role=gm.SHADOW, timestamp_ms=1)
    invoker, forwarder = Invoker(json.dumps(record)), Forwarder()
    _Integration(invoker, {}, forwarder).flush()  # type: ignore[arg-type]
    assert invoker.called == [INFERENCE_FLUSH]
    assert forwarder.logs == [json.dumps(record)]


def test_a_failed_flush_still_forwards_and_shows_the_log(capsys: Any) -> None:
    invoker, forwarder = Invoker("Traceback: S3 refused", errored=True), Forwarder()
    _Integration(invoker, {}, forwarder).flush()  # type: ignore[arg-type]
    assert forwarder.logs == ["Traceback: S3 refused"]
    assert "S3 refused" in capsys.readouterr().out
