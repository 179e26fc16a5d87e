"""``mlops shadow start|stop|report`` against moto: the shadow set and cleared on the alias (with the caller's AWS
identity), every mistake one error line, and the agreement table computed from rows the endpoint captured."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serverless_mlops.cli import main
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.api_models import PredictRequest
from serverless_mlops.serving.shadow_report import shadow_agreement
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import Clock, endpoint, records, register
from tests.integration.test_cli import CALLER, Result, assert_one_error_line
from tests.integration.test_inference_rollout import rewired

MODEL = "breast-cancer"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def versions(backends: Backends, trained_models: dict[str, TrainedModel]) -> dict[str, int]:
    trained = trained_models[MODEL]
    register(backends, trained, "v1", promote=True)
    return {"same": register(backends, trained, "v2").version, "flipped": register(backends, rewired(trained, "flipped"), "v3").version}


def test_start_and_stop_move_the_alias_shadow_and_record_who(cli: Any, backends: Backends, versions: dict[str, int]) -> None:
    started: Result = cli("--json", "shadow", "start", MODEL, "2", "--sample", "0.25")
    assert started.json()["shadow"] == {"version": 2, "sample": 0.25, "release_id": None}  # set by hand: no release owns it
    alias = backends.registry.get_alias(MODEL, "production")
    assert alias.shadow is not None
    assert (alias.history[-1].action, alias.history[-1].by) == ("shadow", CALLER)

    said: Result = cli("shadow", "start", MODEL, "3")
    assert said.code == 0
    assert "version 3 shadows production (version 1) on 20% of requests" in said.out

    assert_one_error_line(cli("shadow", "stop", MODEL, "2"), "the shadow of 'breast-cancer' production is version 3, not 2")
    stopped: Result = cli("shadow", "stop", MODEL, "3")
    assert "shadow version 3 stopped" in stopped.out
    cli("shadow", "start", MODEL, "2")
    assert cli("--json", "shadow", "stop", MODEL).json()["shadow"] is None
    assert backends.registry.get_alias(MODEL, "production").shadow is None
    assert_one_error_line(cli("shadow", "stop", MODEL), "has no shadow")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["shadow", "start", MODEL, "2", "--sample", "0"], "shadow sample must be a fraction above 0 and at most 1"),
        (["shadow", "start", MODEL, "2", "--sample", "1.5"], "shadow sample must be a fraction above 0 and at most 1"),
        (["shadow", "start", MODEL, "1"], "a shadow must be another version"),
        (["shadow", "start", MODEL, "9"], "has no version 9"),
        (["shadow", "start", "ghost", "1"], "'ghost' is not registered"),
        (["shadow", "report", MODEL, "--window", "yesterday"], "--window 'yesterday'"),
    ],
)
def test_mistakes_are_one_error_line(cli: Any, versions: dict[str, int], args: list[str], fragment: str) -> None:
    assert_one_error_line(cli(*args), fragment)


def _serve_with_shadow(backends: Backends, version: int, requests: int) -> None:
    backends.registry.set_shadow(MODEL, version, 1.0, by="t")
    ep = endpoint(backends, Clock(1_900_000_000.0 - 3600), MLOPS_CAPTURE_MAX_ROWS=10_000)  # an hour ago: inside the 24h window
    rows = records(MODEL, 4)
    for i in range(requests):
        ep.predict(MODEL, PredictRequest(instances=rows), routing_key=f"k{i}")
    ep.flush()
    backends.registry.clear_shadow(MODEL, by="t")


def test_report_gives_agreement_per_version_pair_from_the_captured_rows(
    cli: Any, backends: Backends, versions: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import serverless_mlops.cli.shadow as shadow_cli

    _serve_with_shadow(backends, versions["same"], 5)
    _serve_with_shadow(backends, versions["flipped"], 3)

    class Now:
        @staticmethod
        def now(tz: Any) -> Any:
            from datetime import datetime

            return datetime.fromtimestamp(1_900_000_000.0, tz)

    monkeypatch.setattr(shadow_cli, "datetime", Now)
    document = json.loads(cli("--json", "shadow", "report", MODEL).out)
    assert document["comparisons"] == [
        {"version": 1, "shadow_version": versions["same"], "rows": 20, "agreed": 20, "agreement": 1.0, "mean_abs_diff": None},
        {"version": 1, "shadow_version": versions["flipped"], "rows": 12, "agreed": 0, "agreement": 0.0, "mean_abs_diff": None},
    ]
    shown: Result = cli("shadow", "report", MODEL)
    assert "100.0%" in shown.out
    assert "0.0%" in shown.out
    nothing: Result = cli("shadow", "report", MODEL, "--window", "2020-01-01T00:00Z/2020-01-02T00:00Z")
    assert "no captured rows with a shadow's prediction" in nothing.out
    served_at = 1_900_000_000 - 3600  # the rows' hour, read whole, but only rows inside the window count
    just_after = json.loads(cli("--json", "shadow", "report", MODEL, "--window", f"{_iso(served_at + 1)}/{_iso(served_at + 2)}").out)
    assert just_after["comparisons"] == []


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat()


def test_regression_agreement_uses_the_tolerance_and_reports_the_mean_difference() -> None:
    rows = [
        {"version": 4, "prediction": 100.0, "shadow": {"version": 5, "prediction": 104.0}},
        {"version": 4, "prediction": 100.0, "shadow": {"version": 5, "prediction": 90.0}},
        {"version": 4, "prediction": 0.5},  # not shadowed
    ]
    (comparison,) = shadow_agreement(iter(rows), lambda _version: False)
    assert (comparison.rows, comparison.agreed, comparison.agreement, comparison.mean_abs_diff) == (2, 1, 0.5, 7.0)
