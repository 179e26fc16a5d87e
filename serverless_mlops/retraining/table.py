"""The retraining table: the workflow's coordination items (per-model locks, pending approvals with their task
tokens), kept out of the model registry.

Why a table of its own: a task token lets whoever holds it approve a candidate, and every function that serves or
checks a model reads the registry. IAM's item-level condition (``dynamodb:LeadingKeys``) restricts partition keys
only, and only on requests that name one (a Scan names none), so keeping tokens in the registry would need a
condition and a Scan-free action list on every reader. Here, who can read a token is exactly who is granted on this
table: the release function and the approver policy. Within it, the partition key says what an item is, so IAM can
tell them apart: the training function may write ``LOCK#…`` items only, an approver ``APPROVAL#…`` items only.

:class:`RetrainingTable` is the one implementation of :class:`RetrainingStore` (the lock and approval operations,
:class:`~serverless_mlops.retraining.lock.LockStore` and :class:`~serverless_mlops.retraining.approvals.ApprovalStore`)
and the only code that reads or writes the table.

| pk                   | sk                 | what                                                              |
| -------------------- | ------------------ | ----------------------------------------------------------------- |
| ``LOCK#{model}``     | ``retraining``     | the model's retraining lock (:mod:`serverless_mlops.retraining.lock`) |
| ``APPROVAL#{model}`` | ``{0000000007}``   | the approval request of version 7 (:mod:`serverless_mlops.retraining.approvals`) |
"""

from __future__ import annotations

from typing import Any, Protocol

from serverless_mlops.retraining.approvals import ApprovalRecord, ApprovalState, ApprovalStore
from serverless_mlops.retraining.contract import APPROVAL_PREFIX, LOCK_PREFIX, LOCK_SORT_KEY
from serverless_mlops.retraining.lock import Lock, LockStore
from serverless_mlops.store.registry import PARTITION_KEY, SORT_KEY


class RetrainingStore(LockStore, ApprovalStore, Protocol):
    """The retraining workflow's coordination items: its locks and its approval requests."""


class RetrainingTable:
    """The retraining table (``dynamodb`` is a boto3 DynamoDB client)."""

    def __init__(self, table: str, dynamodb: Any) -> None:
        self.table = table
        self.db = dynamodb
        self._conditional = dynamodb.exceptions.ConditionalCheckFailedException

    @staticmethod
    def lock_key(model: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": f"{LOCK_PREFIX}{model}"}, SORT_KEY: {"S": LOCK_SORT_KEY}}

    @staticmethod
    def approval_key(model: str, version: int) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": f"{APPROVAL_PREFIX}{model}"}, SORT_KEY: {"S": f"{version:010d}"}}

    # -- locks ------------------------------------------------------------------------------------------------------
    def put_lock(self, lock: Lock, *, now: float) -> bool:
        try:
            self.db.put_item(
                TableName=self.table,
                Item=self.lock_key(lock.model)
                | {"owner": {"S": lock.owner}, "expires_at": {"N": f"{lock.expires_at:.3f}"}, "taken_at": {"N": f"{now:.3f}"}},
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY}) OR expires_at < :now OR #owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":me": {"S": lock.owner}},
            )
        except self._conditional:
            return False
        return True

    def get_lock(self, model: str) -> Lock | None:
        item = self.db.get_item(TableName=self.table, Key=self.lock_key(model), ConsistentRead=True).get("Item")
        if item is None:
            return None
        return Lock(model=model, owner=item["owner"]["S"], expires_at=float(item["expires_at"]["N"]))

    def delete_lock(self, model: str, owner: str) -> bool:
        try:
            self.db.delete_item(
                TableName=self.table,
                Key=self.lock_key(model),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except self._conditional:
            return False
        return True

    # -- approval requests ------------------------------------------------------------------------------------------
    def put_approval(self, record: ApprovalRecord) -> bool:
        item = self.approval_key(record.model, record.version) | {
            "token": {"S": record.token},
            "execution_arn": {"S": record.execution_arn},
            "requested_at": {"S": record.requested_at},
            "state": {"S": record.state},
        }
        try:
            self.db.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY}) OR (#state = :pending AND execution_arn = :arn)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":pending": {"S": "pending"}, ":arn": {"S": record.execution_arn}},
            )
        except self._conditional:
            return False
        return True

    def get_approval(self, model: str, version: int) -> ApprovalRecord | None:
        item = self.db.get_item(TableName=self.table, Key=self.approval_key(model, version), ConsistentRead=True).get("Item")
        return None if item is None else _approval_from_item(model, version, item)

    def update_approval(
        self, model: str, version: int, *, state: ApprovalState, by: str, at: str, reason: str, expected: ApprovalState
    ) -> ApprovalRecord | None:
        try:
            response = self.db.update_item(
                TableName=self.table,
                Key=self.approval_key(model, version),
                UpdateExpression="SET #state = :state, decided_by = :by, decided_at = :at, reason = :reason",
                ConditionExpression=f"attribute_exists({PARTITION_KEY}) AND #state = :expected",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":state": {"S": state},
                    ":by": {"S": by},
                    ":at": {"S": at},
                    ":reason": {"S": reason},
                    ":expected": {"S": expected},
                },
                ReturnValues="ALL_NEW",
            )
        except self._conditional:
            return None
        return _approval_from_item(model, version, response["Attributes"])


def _approval_from_item(model: str, version: int, item: dict[str, Any]) -> ApprovalRecord:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return ApprovalRecord(
        model=model,
        version=version,
        token=item["token"]["S"],
        execution_arn=item["execution_arn"]["S"],
        requested_at=item["requested_at"]["S"],
        state=item["state"]["S"],
        decided_by=text("decided_by"),
        decided_at=text("decided_at"),
        reason=text("reason") or "",
    )
