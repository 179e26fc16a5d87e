"""The model registry: versions, aliases and lineage in one DynamoDB table.

Items (partition key ``pk``, sort key ``sk``):

| pk               | sk                 | what                                                        |
| ---------------- | ------------------ | ----------------------------------------------------------- |
| ``MODELS``       | ``MODEL#{name}``   | one per model, so models can be listed with a paged Query   |
| ``MODEL#{name}`` | ``V#{0000000007}`` | version 7: status, run id, and its document (JSON)          |
| ``MODEL#{name}`` | ``RUN#{run_id}``   | which version a training run became (idempotent register)   |
| ``MODEL#{name}`` | ``ALIAS#{alias}``  | the alias's version, revision and history                   |

Other per-model items share the table through :func:`model_key` (retraining: ``APPROVAL#…``, ``LOCK#retraining``).

Uniqueness of version numbers rests on single-item conditional writes only (``attribute_not_exists``): a
registrant reads the highest version with a strongly consistent Query and claims the next number; if someone else
claimed it first the write fails and it tries again. Every claimed number is a complete version item, so numbers
run 1..N with no gap. Aliases move with a conditional update on their revision (optimistic concurrency) and append
to their history in the same single-item write, so an alias and its history never disagree.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from serverless_mlops.errors import ConflictError, NotFoundError, RegistryError
from serverless_mlops.model.signature import Signature
from serverless_mlops.store.artifacts import ArtifactRef

PARTITION_KEY = "pk"
SORT_KEY = "sk"
PRODUCTION = "production"
STAGING = "staging"
RUN_CLAIM_TIMEOUT_S = 300.0

Status = Literal["registered", "rejected", "archived"]
T = TypeVar("T")


class Lineage(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    data_uri: str
    data_sha256: str
    code_version: str
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    trigger: str = "manual"
    execution_arn: str | None = None
    trained_at: str | None = None
    trained_by: str | None = None


class ModelVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    status: Status = "registered"
    signature: Signature
    artifact: ArtifactRef
    profile: ArtifactRef
    metrics: dict[str, float]
    parity: dict[str, Any]
    lineage: Lineage
    created_at: str
    created_by: str
    description: str = ""
    spec: dict[str, Any] = Field(default_factory=dict)  # the model spec it was trained from (drift thresholds, gate)


class AliasChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    revision: int
    from_version: int | None
    to_version: int
    action: Literal["set", "promote", "rollback"]
    at: str
    by: str
    reason: str = ""


class Alias(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    name: str
    version: int
    revision: int
    updated_at: str
    updated_by: str
    history: list[AliasChange] = Field(default_factory=list)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_token: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _encode_token(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def _decode_token(token: str | None, partition: str, sort_prefix: str) -> dict[str, Any] | None:
    """A page token back into a start key, refused unless it is a key of the listing it continues."""
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError("invalid page token: pass the next_token of the listing you are continuing") from exc
    valid = (
        isinstance(key, dict)
        and set(key) == {PARTITION_KEY, SORT_KEY}
        and key[PARTITION_KEY] == {"S": partition}
        and isinstance(key[SORT_KEY], dict)
        and set(key[SORT_KEY]) == {"S"}
        and isinstance(key[SORT_KEY]["S"], str)
        and key[SORT_KEY]["S"].startswith(sort_prefix)
    )
    if not valid:
        raise RegistryError("invalid page token: pass the next_token of the listing you are continuing")
    return key  # type: ignore[no-any-return]


def _model_pk(model: str) -> str:
    return f"MODEL#{model}"


def model_key(model: str, sort_key: str) -> dict[str, Any]:
    """The table key of one of ``model``'s items (``sort_key``: ``V#…``, ``RUN#…``, ``ALIAS#…``, or another module's)."""
    return {PARTITION_KEY: {"S": _model_pk(model)}, SORT_KEY: {"S": sort_key}}


def _version_sk(version: int) -> str:
    return f"V#{version:010d}"


class DynamoDBRegistry:
    """The registry on one DynamoDB table (``dynamodb`` is a boto3 DynamoDB client)."""

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
                    created_at=_now(),
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
            self._put_if_absent(
                {
                    PARTITION_KEY: {"S": "MODELS"},
                    SORT_KEY: {"S": _model_pk(item.model)},
                    "model": {"S": item.model},
                    "created_at": {"S": item.created_at},
                }
            )
        while not self._put_if_absent(self._version_item(item)):
            # Someone claimed this number, so it exists: the next one is still at most latest + 1 (no gap).
            item = item.model_copy(update={"version": item.version + 1})
        return item

    def _version_item(self, item: ModelVersion) -> dict[str, Any]:
        return {
            PARTITION_KEY: {"S": _model_pk(item.model)},
            SORT_KEY: {"S": _version_sk(item.version)},
            "version": {"N": str(item.version)},
            "status": {"S": item.status},
            "run_id": {"S": item.lineage.run_id},
            "doc": {"S": item.model_dump_json()},
        }

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
            ExpressionAttributeValues={":pk": {"S": _model_pk(model)}, ":v": {"S": "V#"}},
            ProjectionExpression="version",
        )
        items = response.get("Items", [])
        return int(items[0]["version"]["N"]) if items else 0

    def describe(self, model: str, version: int) -> ModelVersion:
        item = self.db.get_item(TableName=self.table, Key=model_key(model, _version_sk(version)), ConsistentRead=True).get("Item")
        if item is None:
            if not self.model_exists(model):
                raise NotFoundError(f"model {model!r} is not registered")
            raise NotFoundError(f"model {model!r} has no version {version}")
        return self._from_item(item)

    @staticmethod
    def _from_item(item: dict[str, Any]) -> ModelVersion:
        document = json.loads(item["doc"]["S"])
        document["status"] = item["status"]["S"]
        return ModelVersion.model_validate(document)

    def model_exists(self, model: str) -> bool:
        key = {PARTITION_KEY: {"S": "MODELS"}, SORT_KEY: {"S": _model_pk(model)}}
        return "Item" in self.db.get_item(TableName=self.table, Key=key, ConsistentRead=True)

    def list_models(self, *, page_size: int = 50, next_token: str | None = None) -> Page[str]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Limit": page_size,
            "KeyConditionExpression": f"{PARTITION_KEY} = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "MODELS"}},
        }
        if start := _decode_token(next_token, "MODELS", "MODEL#"):
            kwargs["ExclusiveStartKey"] = start
        response = self.db.query(**kwargs)
        return Page(items=[i["model"]["S"] for i in response.get("Items", [])], next_token=_encode_token(response.get("LastEvaluatedKey")))

    def list_versions(
        self, model: str, *, page_size: int = 50, next_token: str | None = None, newest_first: bool = False
    ) -> Page[ModelVersion]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Limit": page_size,
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
            "KeyConditionExpression": f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :v)",
            "ExpressionAttributeValues": {":pk": {"S": _model_pk(model)}, ":v": {"S": "V#"}},
        }
        if start := _decode_token(next_token, _model_pk(model), "V#"):
            kwargs["ExclusiveStartKey"] = start
        response = self.db.query(**kwargs)
        items = [self._from_item(i) for i in response.get("Items", [])]
        if not items and next_token is None and not self.model_exists(model):
            raise NotFoundError(f"model {model!r} is not registered")
        return Page(items=items, next_token=_encode_token(response.get("LastEvaluatedKey")))

    def set_status(self, model: str, version: int, status: Status) -> ModelVersion:
        current = self.describe(model, version)
        if status == "archived":
            holders = [a.name for a in self.aliases(model) if a.version == version]
            if holders:
                raise RegistryError(
                    f"model {model!r} version {version} is aliased as {', '.join(holders)}; move the alias before archiving"
                )
        updated = current.model_copy(update={"status": status})
        self.db.put_item(TableName=self.table, Item=self._version_item(updated))
        return updated

    def archive(self, model: str, version: int) -> ModelVersion:
        return self.set_status(model, version, "archived")

    # -- aliases ----------------------------------------------------------------------------------------------
    def _alias_key(self, model: str, alias: str) -> dict[str, Any]:
        return model_key(model, f"ALIAS#{alias}")

    @staticmethod
    def _alias_from_item(model: str, item: dict[str, Any]) -> Alias:
        return Alias(
            model=model,
            name=item[SORT_KEY]["S"].removeprefix("ALIAS#"),
            version=int(item["version"]["N"]),
            revision=int(item["revision"]["N"]),
            updated_at=item["updated_at"]["S"],
            updated_by=item["updated_by"]["S"],
            history=[AliasChange.model_validate_json(entry["S"]) for entry in item.get("history", {}).get("L", [])],
        )

    def get_alias(self, model: str, alias: str) -> Alias:
        item = self.db.get_item(TableName=self.table, Key=self._alias_key(model, alias), ConsistentRead=True).get("Item")
        if item is None:
            if not self.model_exists(model):
                raise NotFoundError(f"model {model!r} is not registered")
            raise NotFoundError(f"model {model!r} has no alias {alias!r}")
        return self._alias_from_item(model, item)

    def aliases(self, model: str) -> list[Alias]:
        response = self.db.query(
            TableName=self.table,
            ConsistentRead=True,
            KeyConditionExpression=f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :a)",
            ExpressionAttributeValues={":pk": {"S": _model_pk(model)}, ":a": {"S": "ALIAS#"}},
        )
        return [self._alias_from_item(model, item) for item in response.get("Items", [])]

    def resolve(self, model: str, alias: str = PRODUCTION) -> ModelVersion:
        return self.describe(model, self.get_alias(model, alias).version)

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expected_revision: int | None = None,
        by: str,
        reason: str = "",
        action: Literal["set", "promote", "rollback"] = "set",
    ) -> Alias:
        """Point ``alias`` at ``version`` if the alias is still at ``expected_revision`` (0: must not exist yet).

        With ``expected_revision=None`` the current revision is read first: the write still fails, with a
        :class:`ConflictError`, if the alias moves between that read and this write.
        """
        if not alias or len(alias) > 64 or not alias.replace("-", "").replace("_", "").isalnum():
            raise RegistryError(f"invalid alias name {alias!r}: use letters, digits, '-' and '_' (at most 64)")
        target = self.describe(model, version)
        if target.status != "registered":
            raise RegistryError(f"model {model!r} version {version} is {target.status}; only registered versions can be aliased")
        current: Alias | None
        try:
            current = self.get_alias(model, alias)
        except NotFoundError:
            current = None
        expected = (current.revision if current else 0) if expected_revision is None else expected_revision
        if current is not None and expected == current.revision and current.version == version and action != "rollback":
            return current
        change = AliasChange(
            revision=expected + 1,
            from_version=current.version if current else None,
            to_version=version,
            action=action,
            at=_now(),
            by=by,
            reason=reason,
        )
        values: dict[str, Any] = {
            ":v": {"N": str(version)},
            ":rev": {"N": str(expected + 1)},
            ":at": {"S": change.at},
            ":by": {"S": by},
            ":entry": {"L": [{"S": change.model_dump_json()}]},
            ":empty": {"L": []},
        }
        if expected == 0:
            condition = f"attribute_not_exists({PARTITION_KEY})"
        else:
            condition = "revision = :expected"
            values[":expected"] = {"N": str(expected)}
        try:
            response = self.db.update_item(
                TableName=self.table,
                Key=self._alias_key(model, alias),
                ConditionExpression=condition,
                UpdateExpression="SET version = :v, revision = :rev, updated_at = :at, updated_by = :by, "
                "history = list_append(if_not_exists(history, :empty), :entry)",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._conditional as exc:
            try:
                now = self.get_alias(model, alias).revision
            except NotFoundError:
                now = 0
            raise ConflictError(
                f"alias {alias!r} of model {model!r} is at revision {now}, not {expected}: it moved since it was read; "
                "read it again and retry",
                current_revision=now,
            ) from exc
        return self._alias_from_item(model, response["Attributes"])

    def promote(
        self, model: str, version: int, *, alias: str = PRODUCTION, expected_revision: int | None = None, by: str, reason: str = ""
    ) -> Alias:
        return self.set_alias(model, alias, version, expected_revision=expected_revision, by=by, reason=reason, action="promote")

    def rollback(self, model: str, *, alias: str = PRODUCTION, expected_revision: int | None = None, by: str, reason: str = "") -> Alias:
        """Point ``alias`` back at the version it served before the current one (repeatable: 3 → 2 → 1)."""
        current = self.get_alias(model, alias)
        stack: list[int] = []
        for change in current.history:
            if change.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(change.to_version)
        if len(stack) < 2:
            raise RegistryError(f"alias {alias!r} of model {model!r} has no earlier version to roll back to")
        target = stack[-2]
        return self.set_alias(
            model,
            alias,
            target,
            expected_revision=current.revision if expected_revision is None else expected_revision,
            by=by,
            reason=reason or f"rollback from version {current.version}",
            action="rollback",
        )
