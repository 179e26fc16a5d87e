"""local_env on a running stack, for what the demo does not exercise: a failing function behind the HTTP API, an
empty inbox, templates it cannot run, and the announcement before a synthesis."""

from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from serverless_mlops.cli.models import tour_cli
from serverless_mlops.errors import MlopsError
from serverless_mlops.local import assembly as local_assembly
from serverless_mlops.local.demo import _Tour
from serverless_mlops.local.environment import LocalEnvironment, local_environment, local_template, receive_alerts
from serverless_mlops.local.tour import TourError

STACK_TEMPLATE = "serverless-mlops-dev.template.json"


@pytest.fixture(scope="module")
def running(dev_synth: Path) -> Iterator[LocalEnvironment]:
    document, assembly, stack_name = local_template(dev_synth / STACK_TEMPLATE)
    with local_environment(document, assembly, stack_name=stack_name) as env:
        yield env


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_stack_is_described_for_clients(running: LocalEnvironment) -> None:
    info = running.info
    assert info.models == ["breast-cancer", "wine", "diabetes"]
    assert set(info.functions) == {"inference", "drift_check", "quality_check", "training", "release"}
    assert all(name.startswith("serverless-mlops-dev-") for name in info.functions.values())
    drift = [(s.model, s.expression) for s in info.schedules if s.function == info.functions["drift_check"]]
    assert drift == [("breast-cancer", "rate(1 day)"), ("diabetes", "rate(1 day)"), ("wine", "rate(6 hours)")]
    quality = [(s.model, s.expression) for s in info.schedules if s.function == info.functions["quality_check"]]
    assert quality == drift  # no spec sets quality.schedule: each model's quality check runs on its drift schedule
    assert {s.function for s in info.schedules} == {info.functions["drift_check"], info.functions["quality_check"]}
    assert get(f"{info.api_url}/v2/health/live") == (200, {"live": True})


def test_an_empty_inbox_returns_nothing_after_the_wait(running: LocalEnvironment) -> None:
    assert receive_alerts(running.info, wait_seconds=0) == []


def test_a_failing_function_is_the_http_apis_500(
    running: LocalEnvironment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(handler: str, environment: Any, event: Any, context: Any, **_: Any) -> tuple[Any, bool, str]:
        return {"errorType": "RuntimeError", "errorMessage": "boom"}, True, "Traceback: RuntimeError: boom\n"

    monkeypatch.setattr(running.deployment.invoker, "call", crash)
    assert get(f"{running.info.api_url}/v2/health/live") == (500, {"message": "Internal Server Error"})
    assert "RuntimeError: boom" in capsys.readouterr().out  # the function's log, as CloudWatch would keep it


def test_a_failing_capture_flush_shows_the_functions_log(
    running: LocalEnvironment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(handler: str, environment: Any, event: Any, context: Any, **_: Any) -> tuple[Any, bool, str]:
        return {"errorType": "ClientError", "errorMessage": "denied"}, True, f"{handler}: ClientError: denied\n"

    monkeypatch.setattr(running.deployment.invoker, "call", crash)
    assert running.api.on_shutdown is not None
    running.api.on_shutdown()
    assert "functions.inference.app.flush: ClientError: denied" in capsys.readouterr().out


def test_a_tour_step_that_does_not_see_what_it_should_stops_with_one_line(running: LocalEnvironment, tmp_path: Path) -> None:
    tour = _Tour(running, tour_cli(), Console(file=io.StringIO()), tmp_path)
    # nothing is in production on this stack: the drifted traffic's first request is answered 404, for real
    with pytest.raises(TourError) as raised:
        tour.drift()
    message = str(raised.value)
    assert re.fullmatch(r"POST /v1/models/breast-cancer/predict answered 404: \{.*breast-cancer.*\}", message)
    with pytest.raises(TourError, match=r"^the drift check started no retraining: \{\}$"):
        tour.retrain()


def test_a_template_without_the_stacks_outputs_or_functions_is_refused() -> None:
    with pytest.raises(MlopsError, match="output ArtifactBucketName has no local value"), local_environment({"Resources": {}}, None):
        pass
    outputs = {name: {"Value": "x-value"} for name in ("ArtifactBucketName", "RegistryTableName", "AlertTopicArn", "StateMachineArn")}
    with (
        pytest.raises(MlopsError, match=r"the template has no function with handler functions\.inference\.app\.lambda_handler"),
        local_environment({"Resources": {}, "Outputs": outputs}, None),
    ):
        pass


def test_a_synthesis_is_announced_before_it_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    heard: list[str] = []
    monkeypatch.setattr(local_assembly, "fresh_assembly", lambda *a, **k: None)
    monkeypatch.setattr(local_assembly, "synthesized", lambda *a, **k: ({"Resources": {}}, tmp_path))
    assert local_template(announce=heard.append) == ({"Resources": {}}, tmp_path, "serverless-mlops-dev")
    assert len(heard) == 1
    assert heard[0].startswith("synthesizing the CDK app into build/local.out")
