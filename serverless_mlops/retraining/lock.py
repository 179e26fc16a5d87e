"""One retraining per model at a time: a lock item in the retraining table, taken by PrepareData, released by Notify.

Item (:mod:`serverless_mlops.retraining.table`): pk ``LOCK#{model}``, sk ``retraining`` with ``owner`` (the execution
ARN) and ``expires_at`` (epoch seconds). Taking it is one conditional put: absent, expired, or already ours (a retried
PrepareData). Held by another live execution → :class:`RetrainingInProgress`, whose class name is the Lambda
``errorType`` the state machine catches into AlreadyRunning. The TTL bounds how long a crashed execution can block the
next one. The training function may write these items only (IAM ``dynamodb:LeadingKeys`` ``LOCK#*``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import MlopsError
from serverless_mlops.retraining.table import RetrainingTable
from serverless_mlops.store.registry import PARTITION_KEY

DEFAULT_LOCK_TTL_SECONDS = 8 * 24 * 3600  # above the longest default execution (7-day approval + training + 1 h)


class RetrainingInProgress(MlopsError):  # the errorType the state machine catches
    """Another live execution holds this model's retraining lock."""


class Lock(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    owner: str
    expires_at: float


def lock_key(model: str) -> dict[str, Any]:
    return RetrainingTable.lock_key(model)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def acquire(table: RetrainingTable, model: str, owner: str, *, ttl_seconds: float, now: float | None = None) -> Lock:
    """Take ``model``'s lock for ``owner`` (absent, expired or already ``owner``'s); raise RetrainingInProgress if held."""
    now = time.time() if now is None else now
    lock = Lock(model=model, owner=owner, expires_at=now + ttl_seconds)
    try:
        table.db.put_item(
            TableName=table.table,
            Item=lock_key(model) | {"owner": {"S": owner}, "expires_at": {"N": f"{lock.expires_at:.3f}"}, "taken_at": {"N": f"{now:.3f}"}},
            ConditionExpression=f"attribute_not_exists({PARTITION_KEY}) OR expires_at < :now OR #owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":me": {"S": owner}},
        )
    except table.db.exceptions.ConditionalCheckFailedException as exc:
        holder = current(table, model)
        if holder is None:  # released between our write and our read: try once more
            return acquire(table, model, owner, ttl_seconds=ttl_seconds, now=now)
        raise RetrainingInProgress(
            f"model {model!r} is already being retrained by execution {holder.owner} (its lock expires at {_when(holder.expires_at)})"
        ) from exc
    return lock


def current(table: RetrainingTable, model: str) -> Lock | None:
    """The lock item as stored (it may be expired), or None."""
    item = table.db.get_item(TableName=table.table, Key=lock_key(model), ConsistentRead=True).get("Item")
    if item is None:
        return None
    return Lock(model=model, owner=item["owner"]["S"], expires_at=float(item["expires_at"]["N"]))


def release(table: RetrainingTable, model: str, owner: str) -> bool:
    """Delete the lock if ``owner`` holds it; True if it was released, False if it was someone else's or absent."""
    try:
        table.db.delete_item(
            TableName=table.table,
            Key=lock_key(model),
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": {"S": owner}},
        )
    except table.db.exceptions.ConditionalCheckFailedException:
        return False
    return True
