"""The retraining table: the workflow's coordination items (per-model locks, pending approvals with their task
tokens), kept out of the model registry.

Why a table of its own: a task token lets whoever holds it approve a candidate, and every function that serves or
checks a model reads the registry. IAM's item-level condition (``dynamodb:LeadingKeys``) restricts partition keys
only, and only on requests that name one (a Scan names none), so keeping tokens in the registry would need a
condition and a Scan-free action list on every reader. Here, who can read a token is exactly who is granted on this
table: the release function and the approver policy. Within it, the partition key says what an item is, so IAM can
tell them apart: the training function may write ``LOCK#…`` items only, an approver ``APPROVAL#…`` items only.

| pk                   | sk                 | what                                                              |
| -------------------- | ------------------ | ----------------------------------------------------------------- |
| ``LOCK#{model}``     | ``retraining``     | the model's retraining lock (:mod:`serverless_mlops.retraining.lock`) |
| ``APPROVAL#{model}`` | ``{0000000007}``   | the approval request of version 7 (:mod:`serverless_mlops.retraining.approvals`) |
"""

from __future__ import annotations

from typing import Any

from serverless_mlops.retraining.contract import APPROVAL_PREFIX, LOCK_PREFIX, LOCK_SORT_KEY
from serverless_mlops.store.registry import PARTITION_KEY, SORT_KEY


class RetrainingTable:
    """The retraining table (``dynamodb`` is a boto3 DynamoDB client)."""

    def __init__(self, table: str, dynamodb: Any) -> None:
        self.table = table
        self.db = dynamodb

    @staticmethod
    def lock_key(model: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": f"{LOCK_PREFIX}{model}"}, SORT_KEY: {"S": LOCK_SORT_KEY}}

    @staticmethod
    def approval_key(model: str, version: int) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": f"{APPROVAL_PREFIX}{model}"}, SORT_KEY: {"S": f"{version:010d}"}}
