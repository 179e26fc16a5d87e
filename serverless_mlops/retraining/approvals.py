"""Pending approvals: the task token a waiting execution hands out, and the decision a person (or an expiry) makes on
it. Stored in the retraining table, which only the release function and approvers may read
(:mod:`serverless_mlops.retraining.table` says why), through the :class:`ApprovalStore` Protocol.

A record: ``token``, ``execution_arn``, ``requested_at`` and ``state`` (``pending`` → ``approved`` | ``rejected`` |
``expired``); a decision adds ``decided_by`` (a person's AWS identity, the STS ARN; ``retraining:{execution}`` for an
expiry), ``decided_at`` and ``reason``. A decision is a conditional update from ``pending`` only, so a second decision
(or a race between two people) is refused with a clear error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import ConflictError, NotFoundError

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


class ApprovalStore(Protocol):
    """Where approval requests are kept: each call is one atomic single-item operation."""

    def put_approval(self, record: ApprovalRecord) -> bool:
        """Write a pending ``record`` if its version has no request, or a pending one from the same execution (a
        retried request replaces its token); False otherwise."""

    def get_approval(self, model: str, version: int) -> ApprovalRecord | None: ...

    def update_approval(
        self, model: str, version: int, *, state: ApprovalState, by: str, at: str, reason: str, expected: ApprovalState
    ) -> ApprovalRecord | None:
        """Move an existing request from ``expected`` to ``state``; None if there is none or it is not at ``expected``."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def put_pending(table: ApprovalStore, model: str, version: int, *, token: str, execution_arn: str) -> ApprovalRecord:
    """Record that ``execution_arn`` waits for a decision on ``version`` (a retried request replaces its token)."""
    record = ApprovalRecord(model=model, version=version, token=token, execution_arn=execution_arn, requested_at=_now(), state="pending")
    if not table.put_approval(record):
        current = get_approval(table, model, version)
        raise ConflictError(
            f"model {model!r} version {version} already has an approval request ({current.state}, execution {current.execution_arn})"
        )
    return record


def get_approval(table: ApprovalStore, model: str, version: int) -> ApprovalRecord:
    record = table.get_approval(model, version)
    if record is None:
        raise NotFoundError(f"model {model!r} version {version} has no approval request: nothing is waiting for a decision on it")
    return record


def describe_decision(record: ApprovalRecord) -> str:
    if record.state == "expired":
        return f"model {record.model!r} version {record.version}: the approval request expired (the workflow stopped waiting)"
    reason = f" ({record.reason})" if record.reason else ""
    return (
        f"model {record.model!r} version {record.version} was already {record.state} by {record.decided_by} at {record.decided_at}{reason}"
    )


def decide(
    table: ApprovalStore,
    model: str,
    version: int,
    state: ApprovalState,
    *,
    by: str,
    reason: str = "",
    expected: ApprovalState = "pending",
) -> ApprovalRecord:
    """Move the approval from ``expected`` (normally pending) to ``state``; refused with a clear error otherwise."""
    decided = table.update_approval(model, version, state=state, by=by, at=_now(), reason=reason, expected=expected)
    if decided is None:
        current = get_approval(table, model, version)  # NotFoundError when there is none at all
        raise ConflictError(describe_decision(current))
    return decided
