"""One retraining per model at a time: the lock, taken by PrepareData, released by Notify, and the
:class:`LockStore` Protocol its storage implements (:class:`serverless_mlops.retraining.table.RetrainingTable`).

The lock is one item in the retraining table: ``owner`` (the execution ARN) and ``expires_at`` (epoch seconds).
Taking it is one conditional write: absent, expired, or already ours (a retried PrepareData). Held by another live
execution → :class:`RetrainingInProgress`, whose class name is the Lambda ``errorType`` the state machine catches into
AlreadyRunning. The TTL bounds how long a crashed execution can block the next one. The training function may write
these items only (IAM ``dynamodb:LeadingKeys`` ``LOCK#*``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import MlopsError

DEFAULT_LOCK_TTL_SECONDS = 8 * 24 * 3600  # above the longest default execution (7-day approval + training + 1 h)


class RetrainingInProgress(MlopsError):  # the errorType the state machine catches
    """Another live execution holds this model's retraining lock."""


class Lock(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    owner: str
    expires_at: float


class LockStore(Protocol):
    """Where locks are kept: each call is one atomic single-item operation."""

    def put_lock(self, lock: Lock, *, now: float) -> bool:
        """Write ``lock`` if the model has none, its lock expired before ``now``, or ``lock.owner`` holds it; False if
        another owner holds a live one."""

    def get_lock(self, model: str) -> Lock | None:
        """The lock as stored (it may be expired), or None."""

    def delete_lock(self, model: str, owner: str) -> bool:
        """Delete the lock if ``owner`` holds it; False if it was someone else's or absent."""


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def acquire(table: LockStore, model: str, owner: str, *, ttl_seconds: float, now: float | None = None) -> Lock:
    """Take ``model``'s lock for ``owner`` (absent, expired or already ``owner``'s); raise RetrainingInProgress if held."""
    now = time.time() if now is None else now
    lock = Lock(model=model, owner=owner, expires_at=now + ttl_seconds)
    if table.put_lock(lock, now=now):
        return lock
    holder = current(table, model)
    if holder is None:  # released between our write and our read: try once more
        return acquire(table, model, owner, ttl_seconds=ttl_seconds, now=now)
    raise RetrainingInProgress(
        f"model {model!r} is already being retrained by execution {holder.owner} (its lock expires at {_when(holder.expires_at)})"
    )


def current(table: LockStore, model: str) -> Lock | None:
    """The lock item as stored (it may be expired), or None."""
    return table.get_lock(model)


def release(table: LockStore, model: str, owner: str) -> bool:
    """Delete the lock if ``owner`` holds it; True if it was released, False if it was someone else's or absent."""
    return table.delete_lock(model, owner)
