"""Versions in the registry table: registering one exactly once per training run, and reading them back. The base of
:class:`serverless_mlops.store.dynamodb_registry.DynamoDBRegistry`, which adds the aliases.

Uniqueness of version numbers rests on single-item conditional writes only (``attribute_not_exists``): a
registrant reads the highest version with a strongly consistent Query and claims the next number; if someone else
claimed it first the write fails and it tries again. Every claimed number is a complete version item, so numbers
run 1..N with no gap. A registration first claims its run (``RUN#{run_id}``), so a retried Register step yields the
version the first attempt made; a claim whose owner vanished is taken over after :data:`RUN_CLAIM_TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from serverless_mlops.errors import ConflictError, NotFoundError
from serverless_mlops.model.signature import Signature
from serverless_mlops.store.artifacts import ArtifactRef
from serverless_mlops.store.registry import (
    PARTITION_KEY,
    SORT_KEY,
    Lineage,
    ModelVersion,
    Page,
    Status,
    decode_token,
    encode_token,
    model_key,
    model_pk,
    models_key,
    now,
    version_from_item,
    version_item,
    version_sk,
)

RUN_CLAIM_TIMEOUT_S = 300.0


class DynamoDBVersions:
    """The versions of the registry on one DynamoDB table (``dynamodb`` is a boto3 DynamoDB client)."""

    def __init__(self, table: str, dynamodb: Any) -> None:
        self.table = table
        self.db = dynamodb
        self._conditional = dynamodb.exceptions.ConditionalCheckFailedException

    # -- versions ---------------------------------------------------------------------------------------------
    def register(
        self,
        model: str,
        *,
        signature: Signature,
        artifact: ArtifactRef,
        profile: ArtifactRef,
        metrics: dict[str, float],
        parity: dict[str, Any],
        lineage: Lineage,
        created_by: str,
        status: Status = "registered",
        description: str = "",
        spec: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a new version (1..N, no gap, no duplicate); the same ``lineage.run_id`` yields one version."""
        run_key = model_key(model, f"RUN#{lineage.run_id}")
        claim_id = uuid.uuid4().hex
        if not self._claim_run(run_key, claim_id):
            existing = self._wait_for_run(model, run_key, lineage.run_id, claim_id)
            if existing is not None:
                return existing
        try:
            item = self._allocate(
                ModelVersion(
                    model=model,
                    version=self._latest_version_number(model) + 1,
                    status=status,
                    signature=signature,
                    artifact=artifact,
                    profile=profile,
                    metrics=metrics,
                    parity=parity,
                    lineage=lineage,
                    created_at=now(),
                    created_by=created_by,
                    description=description,
                    spec=spec or {},
                )
            )
        except BaseException:
            self._release_run(run_key, claim_id)
            raise
        self._finish_run(run_key, item.version)
        return item

    def _allocate(self, item: ModelVersion) -> ModelVersion:
        """Write ``item`` under the first free version number from its own; each claimed number is a whole item."""
        if item.version == 1:  # first version: make the model listable (a concurrent first registrant may beat us to it)
            self._put_if_absent(models_key(item.model) | {"model": {"S": item.model}, "created_at": {"S": item.created_at}})
        while not self._put_if_absent(version_item(item)):
            # Someone claimed this number, so it exists: the next one is still at most latest + 1 (no gap).
            item = item.model_copy(update={"version": item.version + 1})
        return item

    def _put_if_absent(self, item: dict[str, Any]) -> bool:
        try:
            self.db.put_item(TableName=self.table, Item=item, ConditionExpression=f"attribute_not_exists({PARTITION_KEY})")
        except self._conditional:
            return False
        return True

    def _claim_run(self, run_key: dict[str, Any], claim_id: str) -> bool:
        return self._put_if_absent(
            run_key | {"state": {"S": "pending"}, "claimed_at": {"N": f"{time.time():.3f}"}, "claim_id": {"S": claim_id}}
        )

    def _release_run(self, run_key: dict[str, Any], claim_id: str) -> None:
        """Give up our claim on a run whose registration failed, so a retry need not wait for it to go stale."""
        with contextlib.suppress(self._conditional):
            self.db.delete_item(
                TableName=self.table,
                Key=run_key,
                ConditionExpression="claim_id = :mine AND attribute_not_exists(version)",
                ExpressionAttributeValues={":mine": {"S": claim_id}},
            )

    def _wait_for_run(self, model: str, run_key: dict[str, Any], run_id: str, claim_id: str) -> ModelVersion | None:
        """The version another registration of this run made; None if its claim went stale and we took it over."""
        deadline = time.monotonic() + 30.0
        while True:
            item = self.db.get_item(TableName=self.table, Key=run_key, ConsistentRead=True).get("Item")
            if item and "version" in item:
                return self.describe(model, int(item["version"]["N"]))
            claimed_at = float(item["claimed_at"]["N"]) if item else 0.0
            if (item is None or time.time() - claimed_at > RUN_CLAIM_TIMEOUT_S) and self._take_over_run(run_key, item, claim_id):
                for version in self._versions_with_run(model, run_id):
                    self._finish_run(run_key, version.version)
                    return version
                return None
            if time.monotonic() > deadline:
                raise ConflictError(f"training run {run_id} of model {model!r} is being registered by another caller; retry shortly")
            time.sleep(0.05)

    def _take_over_run(self, run_key: dict[str, Any], item: dict[str, Any] | None, claim_id: str) -> bool:
        if item is None:
            return self._claim_run(run_key, claim_id)
        try:
            self.db.update_item(
                TableName=self.table,
                Key=run_key,
                UpdateExpression="SET claimed_at = :now, claim_id = :mine",
                ConditionExpression="claimed_at = :seen AND attribute_not_exists(version)",
                ExpressionAttributeValues={":now": {"N": f"{time.time():.3f}"}, ":seen": item["claimed_at"], ":mine": {"S": claim_id}},
            )
        except self._conditional:
            return False
        return True

    def _finish_run(self, run_key: dict[str, Any], version: int) -> None:
        self.db.update_item(
            TableName=self.table,
            Key=run_key,
            UpdateExpression="SET version = :v, #state = :done",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":v": {"N": str(version)}, ":done": {"S": "done"}},
        )

    def _versions_with_run(self, model: str, run_id: str) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        token: str | None = None
        while True:
            page = self.list_versions(model, page_size=100, next_token=token)
            found.extend(v for v in page.items if v.lineage.run_id == run_id)
            if not (token := page.next_token):
                return found

    def _latest_version_number(self, model: str) -> int:
        response = self.db.query(
            TableName=self.table,
            ConsistentRead=True,
            Limit=1,
            ScanIndexForward=False,
            KeyConditionExpression=f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :v)",
            ExpressionAttributeValues={":pk": {"S": model_pk(model)}, ":v": {"S": "V#"}},
            ProjectionExpression="version",
        )
        items = response.get("Items", [])
        return int(items[0]["version"]["N"]) if items else 0

    def describe(self, model: str, version: int) -> ModelVersion:
        item = self.db.get_item(TableName=self.table, Key=model_key(model, version_sk(version)), ConsistentRead=True).get("Item")
        if item is None:
            if not self.model_exists(model):
                raise NotFoundError(f"model {model!r} is not registered")
            raise NotFoundError(f"model {model!r} has no version {version}")
        return version_from_item(item)

    def model_exists(self, model: str) -> bool:
        return "Item" in self.db.get_item(TableName=self.table, Key=models_key(model), ConsistentRead=True)

    def list_models(self, *, page_size: int = 50, next_token: str | None = None) -> Page[str]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Limit": page_size,
            "KeyConditionExpression": f"{PARTITION_KEY} = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "MODELS"}},
        }
        if start := decode_token(next_token, "MODELS", "MODEL#"):
            kwargs["ExclusiveStartKey"] = start
        response = self.db.query(**kwargs)
        return Page(items=[i["model"]["S"] for i in response.get("Items", [])], next_token=encode_token(response.get("LastEvaluatedKey")))

    def list_versions(
        self, model: str, *, page_size: int = 50, next_token: str | None = None, newest_first: bool = False
    ) -> Page[ModelVersion]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Limit": page_size,
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
            "KeyConditionExpression": f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :v)",
            "ExpressionAttributeValues": {":pk": {"S": model_pk(model)}, ":v": {"S": "V#"}},
        }
        if start := decode_token(next_token, model_pk(model), "V#"):
            kwargs["ExclusiveStartKey"] = start
        response = self.db.query(**kwargs)
        items = [version_from_item(i) for i in response.get("Items", [])]
        if not items and next_token is None and not self.model_exists(model):
            raise NotFoundError(f"model {model!r} is not registered")
        return Page(items=items, next_token=encode_token(response.get("LastEvaluatedKey")))
