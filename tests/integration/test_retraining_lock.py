"""The per-model retraining lock: take, held → RetrainingInProgress naming the holder, expired → taken over,
released only by its owner."""

from __future__ import annotations

import pytest

from serverless_mlops.retraining import lock
from serverless_mlops.retraining.contract import ALREADY_RUNNING_ERROR
from serverless_mlops.retraining.lock import RetrainingInProgress, acquire, current, release
from serverless_mlops.store.lifecycle import Backends

A = "arn:aws:states:us-east-1:123456789012:execution:retraining:wine-manual-20260101T000000"
B = "arn:aws:states:us-east-1:123456789012:execution:retraining:wine-drift-20260101T0100"


def test_the_exception_class_name_is_the_error_the_state_machine_catches() -> None:
    assert RetrainingInProgress.__name__ == ALREADY_RUNNING_ERROR


def test_take_then_held_by_another_names_the_holder_and_its_expiry(backends: Backends) -> None:
    taken = acquire(backends.workflow, "wine", A, ttl_seconds=600, now=1_000_000.0)
    assert (taken.owner, taken.expires_at) == (A, 1_000_600.0)
    with pytest.raises(
        RetrainingInProgress, match=rf"model 'wine' is already being retrained by execution {A} \(its lock expires at 1970-01-12T13:56:40"
    ):
        acquire(backends.workflow, "wine", B, ttl_seconds=600, now=1_000_100.0)
    held = current(backends.workflow, "wine")
    assert held is not None
    assert held.owner == A


def test_the_owner_may_take_it_again_on_retry(backends: Backends) -> None:
    acquire(backends.workflow, "wine", A, ttl_seconds=600, now=1_000_000.0)
    again = acquire(backends.workflow, "wine", A, ttl_seconds=600, now=1_000_010.0)
    assert again.expires_at == 1_000_610.0


def test_an_expired_lock_is_taken_over(backends: Backends) -> None:
    acquire(backends.workflow, "wine", A, ttl_seconds=600, now=1_000_000.0)
    taken = acquire(backends.workflow, "wine", B, ttl_seconds=600, now=1_000_601.0)
    assert taken.owner == B
    held = current(backends.workflow, "wine")
    assert held is not None
    assert held.owner == B


def test_locks_are_per_model(backends: Backends) -> None:
    acquire(backends.workflow, "wine", A, ttl_seconds=600)
    assert acquire(backends.workflow, "diabetes", B, ttl_seconds=600).owner == B


def test_release_only_by_the_owner(backends: Backends) -> None:
    acquire(backends.workflow, "wine", A, ttl_seconds=600)
    assert not release(backends.workflow, "wine", B)
    assert current(backends.workflow, "wine") is not None
    assert release(backends.workflow, "wine", A)
    assert current(backends.workflow, "wine") is None
    assert not release(backends.workflow, "wine", A)  # nothing to release
    assert acquire(backends.workflow, "wine", B, ttl_seconds=600).owner == B


def test_a_lock_released_between_refusal_and_read_is_taken(backends: Backends, monkeypatch: pytest.MonkeyPatch) -> None:
    acquire(backends.workflow, "wine", A, ttl_seconds=600)
    real_current = lock.current
    calls = []

    def released_meanwhile(registry: object, model: str) -> None:
        calls.append(model)
        release(backends.workflow, "wine", A)
        monkeypatch.setattr(lock, "current", real_current)

    monkeypatch.setattr(lock, "current", released_meanwhile)
    assert acquire(backends.workflow, "wine", B, ttl_seconds=600).owner == B
    assert calls == ["wine"]
