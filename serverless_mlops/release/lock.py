"""One release per model at a time: the release lock (the retraining lock's pattern,
serverless_mlops/retraining/lock.py), taken by Begin and released by Notify.

The lock is one item of the retraining table (the workflows' coordination table): pk ``RELEASE#{model}``, sk
``lock``, with the owner (the execution ARN), the release id (the execution name), the candidate version, when it
started, when it expires (epoch seconds) and, once someone asked, who aborted it and why. Taking it is one
conditional write: absent, expired, or already ours (a retried Begin). Held by another live release →
:class:`ReleaseInProgress`, the Lambda ``errorType`` the state machine catches into AlreadyRunning. The TTL (the
machine's timeout) bounds how long a crashed execution can block the next release.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import MlopsError
from serverless_mlops.release.contract import LOCK_PREFIX, LOCK_SORT_KEY
from serverless_mlops.store.registry import PARTITION_KEY, SORT_KEY


class ReleaseInProgress(MlopsError):  # the errorType the state machine catches
    """Another live release of this model holds its release lock."""


class ReleaseLock(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    owner: str  # execution ARN
    release_id: str  # execution name
    version: int
    started_at: float
    expires_at: float
    aborted_by: str | None = None
    abort_reason: str = ""

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="seconds")
        return f"release {self.release_id} of v{self.version} (started {started})"


def _s(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


class ReleaseLockTable:
    """The release locks of the retraining table (``dynamodb`` is a boto3 DynamoDB client); each call is one atomic
    single-item operation."""

    def __init__(self, table: str, dynamodb: Any) -> None:
        self.table = table
        self.db = dynamodb
        self._conditional = dynamodb.exceptions.ConditionalCheckFailedException

    @staticmethod
    def key(model: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": f"{LOCK_PREFIX}{model}"}, SORT_KEY: {"S": LOCK_SORT_KEY}}

    def put(self, lock: ReleaseLock, *, now: float) -> bool:
        item = self.key(lock.model) | {
            "owner": {"S": lock.owner},
            "release_id": {"S": lock.release_id},
            "version": {"N": str(lock.version)},
            "started_at": {"N": f"{lock.started_at:.3f}"},
            "expires_at": {"N": f"{lock.expires_at:.3f}"},
        }
        try:
            self.db.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY}) OR expires_at < :now OR #owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":me": {"S": lock.owner}},
            )
        except self._conditional:
            return False
        return True

    def get(self, model: str) -> ReleaseLock | None:
        item = self.db.get_item(TableName=self.table, Key=self.key(model), ConsistentRead=True).get("Item")
        if item is None:
            return None
        return ReleaseLock(
            model=model,
            owner=item["owner"]["S"],
            release_id=item["release_id"]["S"],
            version=int(item["version"]["N"]),
            started_at=float(item["started_at"]["N"]),
            expires_at=float(item["expires_at"]["N"]),
            aborted_by=_s(item, "aborted_by"),
            abort_reason=_s(item, "abort_reason") or "",
        )

    def mark_aborted(self, model: str, release_id: str, *, by: str, reason: str) -> bool:
        """Record that ``by`` asked to abort ``release_id`` (False: that release does not hold the lock)."""
        try:
            self.db.update_item(
                TableName=self.table,
                Key=self.key(model),
                UpdateExpression="SET aborted_by = :by, abort_reason = :reason",
                ConditionExpression="release_id = :id",
                ExpressionAttributeValues={":by": {"S": by}, ":reason": {"S": reason}, ":id": {"S": release_id}},
            )
        except self._conditional:
            return False
        return True

    def delete(self, model: str, owner: str) -> bool:
        try:
            self.db.delete_item(
                TableName=self.table,
                Key=self.key(model),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except self._conditional:
            return False
        return True


def acquire(
    table: ReleaseLockTable, model: str, *, owner: str, release_id: str, version: int, ttl_seconds: float, now: float | None = None
) -> ReleaseLock:
    """Take ``model``'s release lock for ``owner`` (absent, expired or already ``owner``'s); ReleaseInProgress if held."""
    now = time.time() if now is None else now
    lock = ReleaseLock(model=model, owner=owner, release_id=release_id, version=version, started_at=now, expires_at=now + ttl_seconds)
    if table.put(lock, now=now):
        return lock
    holder = table.get(model)
    if holder is None:  # released between our write and our read: try once more
        return acquire(table, model, owner=owner, release_id=release_id, version=version, ttl_seconds=ttl_seconds, now=now)
    raise ReleaseInProgress(
        f"model {model!r} is already being released: {holder.describe()}; wait for it to end or run `mlops release abort {model}`"
    )


def live(table: ReleaseLockTable, model: str, *, now: float | None = None) -> ReleaseLock | None:
    """The lock if a live release holds it (an expired one counts as none)."""
    lock = table.get(model)
    now = time.time() if now is None else now
    return lock if lock is not None and lock.expires_at >= now else None
