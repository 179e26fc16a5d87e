"""Pending approvals: the task token a waiting execution hands out, stored in the retraining table, which only the
release function and approvers may read (:mod:`serverless_mlops.retraining.table` says why).

Item: pk ``APPROVAL#{model}``, sk ``{version:010d}`` with ``token``, ``execution_arn``, ``requested_at`` and
``state`` (``pending`` → ``approved`` | ``rejected`` | ``expired``); a decision adds ``decided_by`` (a person's AWS
identity, the STS ARN; ``retraining:{execution}`` for an expiry), ``decided_at`` and ``reason``. A decision is a
conditional update from ``pending`` only, so a second decision (or a race between two people) is refused with a clear
error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import ConflictError, NotFoundError
from serverless_mlops.retraining.table import RetrainingTable
from serverless_mlops.store.registry import PARTITION_KEY

ApprovalState = Literal["pending", "approved", "rejected", "expired"]


class ApprovalRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    token: str
    execution_arn: str
    requested_at: str
    state: ApprovalState
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str = ""

    @property
    def approved(self) -> bool:
        return self.state == "approved"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def approval_key(model: str, version: int) -> dict[str, Any]:
    return RetrainingTable.approval_key(model, version)


def _from_item(model: str, version: int, item: dict[str, Any]) -> ApprovalRecord:
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


def put_pending(table: RetrainingTable, model: str, version: int, *, token: str, execution_arn: str) -> ApprovalRecord:
    """Record that ``execution_arn`` waits for a decision on ``version`` (a retried request replaces its token)."""
    record = ApprovalRecord(model=model, version=version, token=token, execution_arn=execution_arn, requested_at=_now(), state="pending")
    item = approval_key(model, version) | {
        "token": {"S": token},
        "execution_arn": {"S": execution_arn},
        "requested_at": {"S": record.requested_at},
        "state": {"S": "pending"},
    }
    try:
        table.db.put_item(
            TableName=table.table,
            Item=item,
            ConditionExpression=f"attribute_not_exists({PARTITION_KEY}) OR (#state = :pending AND execution_arn = :arn)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":pending": {"S": "pending"}, ":arn": {"S": execution_arn}},
        )
    except table.db.exceptions.ConditionalCheckFailedException as exc:
        current = get_approval(table, model, version)
        raise ConflictError(
            f"model {model!r} version {version} already has an approval request ({current.state}, execution {current.execution_arn})"
        ) from exc
    return record


def get_approval(table: RetrainingTable, model: str, version: int) -> ApprovalRecord:
    item = table.db.get_item(TableName=table.table, Key=approval_key(model, version), ConsistentRead=True).get("Item")
    if item is None:
        raise NotFoundError(f"model {model!r} version {version} has no approval request: nothing is waiting for a decision on it")
    return _from_item(model, version, item)


def describe_decision(record: ApprovalRecord) -> str:
    if record.state == "expired":
        return f"model {record.model!r} version {record.version}: the approval request expired (the workflow stopped waiting)"
    reason = f" ({record.reason})" if record.reason else ""
    return (
        f"model {record.model!r} version {record.version} was already {record.state} by {record.decided_by} at {record.decided_at}{reason}"
    )


def decide(
    table: RetrainingTable,
    model: str,
    version: int,
    state: ApprovalState,
    *,
    by: str,
    reason: str = "",
    expected: ApprovalState = "pending",
) -> ApprovalRecord:
    """Move the approval from ``expected`` (normally pending) to ``state``; refused with a clear error otherwise."""
    at = _now()
    try:
        response = table.db.update_item(
            TableName=table.table,
            Key=approval_key(model, version),
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
    except table.db.exceptions.ConditionalCheckFailedException as exc:
        current = get_approval(table, model, version)  # NotFoundError when there is none at all
        raise ConflictError(describe_decision(current)) from exc
    return _from_item(model, version, response["Attributes"])
