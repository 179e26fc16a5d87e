"""The shadow phase's steps (serverless_mlops/release/shadow_phase.py) on moto, without the state machine: the reader's
shadow counts, an abort before the shadow is set, a shadow set by hand meanwhile, the document checks, and the
registry's ownership of a release's shadow."""

from __future__ import annotations

import time

import pytest

from serverless_mlops.aws import client
from serverless_mlops.errors import ReleaseInProgressError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.release import shadow_phase, steps
from serverless_mlops.release.lock import ReleaseLockTable
from serverless_mlops.release.metrics import GuardMetricsReader
from serverless_mlops.release.state import ReleaseState, ReleaseStateError
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import register
from tests.helpers.release import put_metrics, shadow_record

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


def begun(backends: Backends, locks: ReleaseLockTable, version: int, **start: object) -> ReleaseState:
    state = ReleaseState.model_validate({"model": MODEL, "version": version, "bake_seconds": 0} | start)
    return steps.begin(state, backends.registry, locks, execution_arn=ARN, execution_name="r1", limits=LIMITS)


def test_the_reader_sums_the_shadow_and_its_agreement(settings: Settings, reader: GuardMetricsReader) -> None:
    cloudwatch = client("cloudwatch", settings)
    put_metrics(cloudwatch, shadow_record(MODEL, 2, requests=40, agreed=30, errors=2))
    put_metrics(cloudwatch, shadow_record(MODEL, 2, requests=60, agreed=59))
    now = time.time()
    counts, agreement = reader.shadow_counts(MODEL, 2, start=now - 5, end=now)
    assert (counts.requests, counts.rows, counts.errors) == (100, 98, 2)
    assert (agreement.compared, agreement.agreed, agreement.probability_delta) == (98, 89, pytest.approx(4.5))
    assert reader.shadow_counts(MODEL, 3, start=now - 5, end=now)[1].rate is None


def test_begin_plans_the_shadow_phase_and_counts_it_against_the_machine(
    backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]
) -> None:
    _, candidate = two
    state = begun(backends, locks, candidate, shadow_first_seconds=60)
    assert state.phase == "shadow"
    assert state.plan is not None
    assert state.plan.shadow is not None
    assert (state.plan.shadow.bake_seconds, state.plan.shadow.sample, state.plan.shadow.min_agreement) == (60, 1.0, 0.9)
    assert begun(backends, locks, candidate).phase == "canary"  # the lock is ours (same execution): Begin again
    with pytest.raises(steps.ReleaseRefused, match="bakes up to 4800 s"):  # (1200 s shadow + 0 s step) x (1 + 3 extensions)
        begun(backends, locks, candidate, shadow_first_seconds=1200)


def test_an_abort_before_the_shadow_is_set_sets_nothing_and_rolls_back(
    backends: Backends, locks: ReleaseLockTable, reader: GuardMetricsReader, two: tuple[int, int]
) -> None:
    _, candidate = two
    state = begun(backends, locks, candidate, shadow_first_seconds=60)
    assert locks.mark_aborted(MODEL, "r1", by="ann", reason="not today")
    state = shadow_phase.set_shadow(state, backends.registry, locks, now=100.0)
    assert backends.registry.get_alias(MODEL, "production").shadow is None
    assert state.shadow_phase is not None
    assert (state.shadow_phase.bake_seconds, state.shadow_phase.started_at) == (0, 100.0)
    checked = shadow_phase.check_shadow(state, backends.registry, reader)
    assert (checked.decision, checked.decision_reason) == ("rollback", "shadow phase: aborted by ann: not today")
    rolled = steps.rollback(checked, backends.registry)
    assert (rolled.outcome, rolled.outcome_reason) == ("rolled_back", "shadow phase: aborted by ann: not today")


def test_a_shadow_set_by_hand_after_begin_fails_set_shadow(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    _, candidate = two
    state = begun(backends, locks, candidate, shadow_first_seconds=60)
    backends.registry.set_shadow(MODEL, candidate, 0.3, by="bob")
    with pytest.raises(steps.ReleaseRefused, match=r"production got a shadow \(v2\) after release r1 began"):
        shadow_phase.set_shadow(state, backends.registry, locks)
    assert backends.registry.get_alias(MODEL, "production").shadow.sample == 0.3  # type: ignore[union-attr]


def test_the_shadow_steps_need_their_part_of_the_document(
    backends: Backends, locks: ReleaseLockTable, reader: GuardMetricsReader, two: tuple[int, int]
) -> None:
    _, candidate = two
    without = begun(backends, locks, candidate)
    with pytest.raises(ReleaseStateError, match="has no shadow phase \\(started without --shadow-first\\)"):
        shadow_phase.set_shadow(without, backends.registry, locks)
    with pytest.raises(ReleaseStateError, match="SetShadow did not run"):
        shadow_phase.check_shadow(begun(backends, locks, candidate, shadow_first_seconds=0), backends.registry, reader)


def test_a_releases_shadow_is_that_releases_alone(backends: Backends, locks: ReleaseLockTable, two: tuple[int, int]) -> None:
    champion, candidate = two
    registry = backends.registry
    registry.set_shadow(MODEL, candidate, 1.0, by="release:r1", reason="shadow phase", release_id="r1")
    revision = registry.get_alias(MODEL, "production").revision
    assert registry.set_shadow(MODEL, candidate, 1.0, by="release:r1", release_id="r1").revision == revision  # the same: no write
    for attempt in (
        lambda: registry.set_shadow(MODEL, candidate, 0.5, by="bob"),
        lambda: registry.set_shadow(MODEL, candidate, 0.5, by="release:r2", release_id="r2"),
        lambda: registry.clear_shadow(MODEL, by="bob"),
        lambda: registry.promote(MODEL, candidate, by="bob"),
        lambda: registry.set_alias(MODEL, "production", champion, by="bob"),
    ):
        with pytest.raises(ReleaseInProgressError, match=r"in release r1 .*in the release's shadow phase"):
            attempt()
    # what the release's rollback clears is its own shadow, and the clear names the release in the history
    assert steps.clear_release_shadow(registry, MODEL, "r2", by="release:r2", reason="x") is None
    cleared = steps.clear_release_shadow(registry, MODEL, "r1", by="release:r1", reason="done")
    assert cleared is not None
    assert cleared.shadow is None
    assert (cleared.history[-1].action, cleared.history[-1].release_id, cleared.history[-1].reason) == ("shadow-clear", "r1", "done")


def test_a_retried_check_after_its_own_clear_decides_again(
    settings: Settings, backends: Backends, locks: ReleaseLockTable, reader: GuardMetricsReader, two: tuple[int, int]
) -> None:
    """Step Functions retries a task whose Lambda answered but whose answer was lost: CheckShadow has cleared the
    shadow by then, and must not take its own clear for an abort."""
    _, candidate = two
    state = shadow_phase.set_shadow(begun(backends, locks, candidate, shadow_first_seconds=0), backends.registry, locks)
    put_metrics(client("cloudwatch", settings), shadow_record(MODEL, candidate, requests=200, agreed=199))
    first = shadow_phase.check_shadow(state, backends.registry, reader)
    assert backends.registry.get_alias(MODEL, "production").shadow is None
    again = shadow_phase.check_shadow(state, backends.registry, reader)
    assert (first.decision, again.decision) == ("advance", "advance")
    assert again.decision_reason == first.decision_reason
    clears = [c for c in backends.registry.get_alias(MODEL, "production").history if c.action == "shadow-clear"]
    assert len(clears) == 1
