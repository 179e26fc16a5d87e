"""The release workflow's parts on moto, without the state machine: the guard metrics reader (GetMetricData sums,
mean latency, alarms), each step's refusals and idempotence, the lock, control (start, status, abort) and its
handlers' event parsing; and the local stack's EMF forwarding."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from functions.release_guards import app as guards_app
from functions.release_workflow import app as workflow_app
from serverless_mlops.aws import client
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.local.metrics import EmfForwarder, emf_records
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.release import lock, steps
from serverless_mlops.release.control import abort_release, release_id, release_status, start_release, wait_for_end
from serverless_mlops.release.lock import ReleaseInProgress, ReleaseLockTable
from serverless_mlops.release.metrics import GuardMetricsReader
from serverless_mlops.release.state import ReleaseState, ReleaseStateError, parse_release_event
from serverless_mlops.serving import guard_metrics as gm
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import register

MODEL = "breast-cancer"
LIMITS = steps.Limits(lock_ttl_seconds=3600, max_plan_seconds=3000)
ARN = "arn:aws:states:us-east-1:123456789012:execution:release:r1"


@pytest.fixture
def locks(backends: Backends, settings: Settings) -> ReleaseLockTable:
    return ReleaseLockTable(settings.retraining_table, client("dynamodb", settings))


@pytest.fixture
def reader(backends: Backends, settings: Settings) -> GuardMetricsReader:
    return GuardMetricsReader(client("cloudwatch", settings))


@pytest.fixture
def two(backends: Backends, trained_models: dict[str, TrainedModel]) -> tuple[int, int]:
    trained = trained_models[MODEL]
    return register(backends, trained, "champion", promote=True).version, register(backends, trained, "candidate").version


def emit(settings: Settings, version: int, role: gm.Role, **values: float) -> None:
    names = {"requests": gm.REQUESTS, "rows": gm.ROWS, "errors": gm.ERRORS, "invalid": gm.INVALID_OUTPUTS, "latency": gm.LATENCY}
    record = gm.emf_record(
        {names[k]: v for k, v in values.items()}, model=MODEL, version=version, role=role, timestamp_ms=int(time.time() * 1000)
    )
    namespace, data = gm.metric_data(record)
    client("cloudwatch", settings).put_metric_data(Namespace=namespace, MetricData=data)


def begun(backends: Backends, locks: ReleaseLockTable, version: int, **start: Any) -> ReleaseState:
    state = ReleaseState.model_validate({"model": MODEL, "version": version, "bake_seconds": 0} | start)
    return steps.begin(state, backends.registry, locks, execution_arn=ARN, execution_name="r1", limits=LIMITS)


# -- metrics ---------------------------------------------------------------------------------------------------------
def test_the_reader_sums_a_window_and_averages_latency(settings: Settings, reader: GuardMetricsReader) -> None:
    emit(settings, 2, gm.CANARY, requests=3, rows=30, errors=1, latency=4.0)
    emit(settings, 2, gm.CANARY, requests=5, rows=50, invalid=2, latency=6.0)
    emit(settings, 2, gm.PRODUCTION, requests=100)  # another role: another series
    now = time.time()
    counts = reader.counts(MODEL, 2, gm.CANARY, start=now - 5, end=now)
    assert (counts.requests, counts.rows, counts.errors, counts.invalid) == (8, 80, 1, 2)
    assert counts.latency_ms == pytest.approx(5.0)
    empty = reader.counts(MODEL, 9, gm.CANARY, start=now - 5, end=now)
    assert (empty.requests, empty.latency_ms) == (0, None)


def test_alarm_states_name_only_existing_alarms(settings: Settings, reader: GuardMetricsReader) -> None:
    cloudwatch = client("cloudwatch", settings)
    for name in ("p99-latency", "5xx"):
        cloudwatch.put_metric_alarm(
            AlarmName=name, MetricName="x", Namespace="y", Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName="5xx", StateValue="ALARM", StateReason="test")
    cloudwatch.set_alarm_state(AlarmName="p99-latency", StateValue="OK", StateReason="test")
    assert reader.alarm_states(["5xx", "p99-latency", "typo"]) == {"5xx": "ALARM", "p99-latency": "OK"}
    assert reader.alarm_findings(["typo", "p99-latency", "5xx"]) == (["5xx"], ["typo"])
    assert reader.alarm_findings([]) == ([], [])


# -- steps -----------------------------------------------------------------------------------------------------------
def test_begin_refuses_what_cannot_be_released(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    champion, candidate = two
    with pytest.raises(steps.ReleaseRefused, match="already production"):
        begun(backends, locks, champion)
    with pytest.raises(steps.ReleaseRefused, match="strategy: expected all-at-once"):
        begun(backends, locks, candidate, strategy="blue-green")
    with pytest.raises(steps.ReleaseRefused, match="more than the release machine's 3000 s"):
        begun(backends, locks, candidate, strategy="canary10-1h", bake_seconds=None)
    backends.registry.set_status(MODEL, candidate, "rejected")
    with pytest.raises(steps.ReleaseRefused, match="is rejected: only a registered version"):
        begun(backends, locks, candidate)
    assert locks.get(MODEL) is None


def test_begin_without_production_names_mlops_promote(
    backends: Backends, locks: ReleaseLockTable, trained_models: dict[str, TrainedModel]
) -> None:
    version = register(backends, trained_models[MODEL], "first").version
    with pytest.raises(steps.ReleaseRefused, match=f"mlops promote {MODEL} {version}"):
        begun(backends, locks, version)


def test_a_bad_release_section_in_the_versions_spec_is_named(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    with pytest.raises(steps.ReleaseRefused, match=r"release section is invalid: release\.guards\.alpha"):
        steps.resolve_plan({"release": {"guards": {"alpha": 2}}}, model=MODEL, version=2, strategy=None, bake_seconds=None)
    default = steps.resolve_plan({}, model=MODEL, version=2, strategy="linear25-1m", bake_seconds=None)
    assert [(s.weight, s.bake_seconds) for s in default.steps] == [(25, 60), (50, 60), (75, 60)]


def test_a_begun_release_holds_the_lock_and_a_retried_begin_keeps_it(
    backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]
) -> None:
    _, candidate = two
    state = begun(backends, locks, candidate)
    assert (state.release_id, state.champion) == ("r1", 1)
    assert begun(backends, locks, candidate).release_id == "r1"  # the same execution again: its own lock
    with pytest.raises(ReleaseInProgress, match="already being released: release r1 of v2"):
        lock.acquire(locks, MODEL, owner="other", release_id="r2", version=candidate, ttl_seconds=60)
    # an expired lock is anyone's
    taken = lock.acquire(locks, MODEL, owner="other", release_id="r2", version=candidate, ttl_seconds=60, now=time.time() + 7200)
    assert taken.release_id == "r2"


def test_set_weight_walks_the_plan_and_stops_after_the_last_step(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    _, candidate = two
    state = steps.set_weight(begun(backends, locks, candidate), backends.registry, locks, now=100.0)
    assert (state.position, state.current.weight if state.current else None, state.step_started_at) == (0, 10.0, 100.0)
    assert backends.registry.get_alias(MODEL, "production").canary is not None
    with pytest.raises(steps.ReleaseRefused, match="has no step 2"):
        steps.set_weight(state, backends.registry, locks)


def test_an_abort_before_the_canary_is_set_rolls_back_at_the_first_check(
    backends: Backends, locks: ReleaseLockTable, reader: GuardMetricsReader, two: tuple[int, int]
) -> None:
    _, candidate = two
    state = begun(backends, locks, candidate)
    assert locks.mark_aborted(MODEL, "r1", by="ann", reason="not today")
    state = steps.set_weight(state, backends.registry, locks)
    assert backends.registry.get_alias(MODEL, "production").canary is None
    assert state.current is not None
    assert state.current.bake_seconds == 0
    checked = steps.check_guards(state, backends.registry, reader)
    assert (checked.decision, checked.decision_reason) == ("rollback", "aborted by ann: not today")
    rolled = steps.rollback(checked, backends.registry)
    assert (rolled.outcome, rolled.outcome_reason) == ("rolled_back", "aborted by ann: not today")


def test_a_canary_moved_by_hand_rolls_back_naming_it(
    backends: Backends, locks: ReleaseLockTable, reader: GuardMetricsReader, two: tuple[int, int]
) -> None:
    _, candidate = two
    state = steps.set_weight(begun(backends, locks, candidate), backends.registry, locks)
    backends.registry.clear_canary(MODEL, release_id="r1", by="bob")  # no reason given
    checked = steps.check_guards(state, backends.registry, reader)
    assert checked.decision_reason == "aborted by bob"
    # another release's canary is not ours to clear: the rollback leaves it
    backends.registry.set_canary(MODEL, candidate, 5, release_id="r2", by="carol")
    rolled = steps.rollback(checked, backends.registry)
    assert rolled.outcome == "rolled_back"
    assert backends.registry.get_alias(MODEL, "production").canary is not None


def test_a_retried_promote_after_it_succeeded_is_its_own(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    _, candidate = two
    state = steps.set_weight(begun(backends, locks, candidate), backends.registry, locks)
    first = steps.promote(state, backends.registry)
    again = steps.promote(state, backends.registry)
    assert first.outcome == again.outcome == "promoted"
    assert backends.registry.get_alias(MODEL, "production").version == candidate
    # a promotion refused for another reason (another release holds the canary now) is not its own
    backends.registry.promote(MODEL, 1, by="dave")
    backends.registry.set_canary(MODEL, candidate, 5, release_id="r2", by="carol")
    with pytest.raises(MlopsError, match="r2"):
        steps.promote(state, backends.registry)


def test_notify_needs_a_topic(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    _, candidate = two
    state = begun(backends, locks, candidate)
    with pytest.raises(steps.ReleaseNotificationError, match="MLOPS_ALERT_TOPIC_ARN"):
        steps.notify(state, locks, None, None, execution_arn=ARN)
    assert locks.get(MODEL) is None  # the lock was released first


def test_a_rollback_before_begin_touches_nothing(backends: Backends) -> None:
    state = ReleaseState(model=MODEL, version=2, error={"Error": "States.Timeout", "Cause": "not json"})  # type: ignore[arg-type]
    rolled = steps.rollback(state, backends.registry)
    assert (rolled.outcome, rolled.outcome_reason) == ("failed", "not json")
    _, subject, body = steps.notification_message(rolled, execution_arn=ARN)
    assert subject == "Release breast-cancer v2: failed, canary cleared, not json"
    assert body["strategy"] is None


# -- control ---------------------------------------------------------------------------------------------------------
def test_control_refuses_bad_starts_and_reports_status(
    backends: Backends, locks: ReleaseLockTable, settings: Settings, two: tuple[int, int]
) -> None:
    sfn = client("stepfunctions", settings)
    with pytest.raises(MlopsError, match="invalid model name"):
        start_release(sfn, "arn", locks, "Bad Name", 1)
    with pytest.raises(MlopsError, match="invalid version 0"):
        start_release(sfn, "arn", locks, MODEL, 0)
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:none"
    with pytest.raises(MlopsError, match="does not exist: deploy the stack"):
        start_release(sfn, machine, locks, MODEL, 2)
    assert len(release_id("m" * 90, 12)) == 80
    status = release_status(backends.registry, locks, MODEL)
    assert (status.production, status.canary, status.release) == (1, None, None)
    with pytest.raises(NotFoundError, match="is not registered"):
        release_status(backends.registry, locks, "nope")
    with pytest.raises(NotFoundError, match="has no release running"):
        abort_release(backends.registry, locks, MODEL, by="ann")


def test_status_of_a_model_without_production(backends: Backends, locks: ReleaseLockTable, trained_models: dict[str, TrainedModel]) -> None:
    register(backends, trained_models[MODEL], "first")
    assert release_status(backends.registry, locks, MODEL).production is None


# -- handlers --------------------------------------------------------------------------------------------------------
def test_the_handlers_refuse_bad_events() -> None:
    with pytest.raises(ReleaseStateError, match="expected a task event object"):
        parse_release_event([], ("begin",))
    with pytest.raises(ValueError, match="unknown step 'train'"):
        parse_release_event({"step": "train"}, ("begin",))
    with pytest.raises(ReleaseStateError, match=r"invalid begin task event: state\.version"):
        parse_release_event({"step": "begin", "state": {"model": MODEL, "version": 0}, "execution": "a", "execution_name": "b"}, ("begin",))
    with pytest.raises(ValueError, match="this function runs check_guards"):
        guards_app.handle({"step": "begin"})
    with pytest.raises(ValueError, match="this function runs begin, set_weight"):
        workflow_app.handle({"step": "check_guards"})
    with pytest.raises(ReleaseStateError, match="no plan"):
        ReleaseState(model=MODEL, version=2).need_plan()
    with pytest.raises(ReleaseStateError, match="no current step"):
        ReleaseState(model=MODEL, version=2).need_current()


# -- the local stack's EMF forwarding ----------------------------------------------------------------------------------
def test_emf_records_become_metrics_and_other_lines_are_skipped(settings: Settings, backends: Backends) -> None:
    record = gm.emf_record({gm.REQUESTS: 2.0}, model=MODEL, version=3, role=gm.CANARY, timestamp_ms=int(time.time() * 1000))
    broken = {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["missing"]], "Metrics": [{"Name": "m"}]}]}}
    logs = "\n".join(["START", json.dumps(record), '{"_aws": not json', json.dumps(broken), '{"level": "INFO"}'])
    assert len(emf_records(logs)) == 2
    forwarder = EmfForwarder(client("cloudwatch", settings))
    assert forwarder.forward(logs) == 1
    assert forwarder.failures == 1
    now = time.time()
    assert GuardMetricsReader(client("cloudwatch", settings)).counts(MODEL, 3, gm.CANARY, start=now - 5, end=now).requests == 2
    refusing = EmfForwarder(client("cloudwatch", Settings(endpoint_url="http://127.0.0.1:9", region="us-east-1"), budget_ms=200))
    assert refusing.forward(json.dumps(record)) == 0
    assert refusing.failures == 1


def test_lock_writes_are_conditional_on_the_holder(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    _, candidate = two
    begun(backends, locks, candidate)
    assert not locks.mark_aborted(MODEL, "someone-else", by="ann", reason="")
    assert not locks.delete(MODEL, "arn:someone-else")
    assert locks.get(MODEL) is not None
    assert locks.delete(MODEL, ARN)


def test_waiting_for_a_release_gives_up_after_its_timeout(settings: Settings, backends: Backends) -> None:
    class Running:
        def describe_execution(self, executionArn: str) -> dict[str, str]:
            return {"status": "RUNNING"}

    with pytest.raises(MlopsError, match=r"release r1 still running after 0\.05 s"):
        wait_for_end(Running(), ARN, timeout=0.05, poll_seconds=0.01)
