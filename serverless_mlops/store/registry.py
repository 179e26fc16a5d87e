"""What the model registry holds and what it does: versions, aliases and lineage (pydantic items), their layout in
the registry's DynamoDB table, and the :class:`Registry` Protocol every caller types against. The operations on the
table are :class:`serverless_mlops.store.dynamodb_registry.DynamoDBRegistry`; nothing else reads or writes the table.

Items (partition key ``pk``, sort key ``sk``):

| pk               | sk                 | what                                                        |
| ---------------- | ------------------ | ----------------------------------------------------------- |
| ``MODELS``       | ``MODEL#{name}``   | one per model, so models can be listed with a paged Query   |
| ``MODEL#{name}`` | ``V#{0000000007}`` | version 7: status, run id, and its document (JSON)          |
| ``MODEL#{name}`` | ``RUN#{run_id}``   | which version a training run became (idempotent register)   |
| ``MODEL#{name}`` | ``ALIAS#{alias}``  | the alias's version, revision, history, canary and shadow   |

An alias may carry a **canary** (another version served to ``weight`` percent of requests, owned by one release, named
by its ``release_id``) and a **shadow** (another version that scores a ``sample`` of the served requests in the
background, never answering). Both move with the alias's revision (optimistic concurrency) and are kept in its history.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from serverless_mlops.errors import RegistryError
from serverless_mlops.model.signature import Signature
from serverless_mlops.store.artifacts import ArtifactRef

PARTITION_KEY = "pk"
SORT_KEY = "sk"
PRODUCTION = "production"
STAGING = "staging"

Status = Literal["registered", "rejected", "archived"]
AliasAction = Literal["set", "promote", "rollback", "canary", "canary-clear", "shadow", "shadow-clear"]
MOVES: frozenset[str] = frozenset({"set", "promote", "rollback"})  # the actions that change the alias's version
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
    search: dict[str, Any] | None = None  # a hyperparameter search's chosen params and cv scores (model/search.py)
    # retraining started by a quality breach: the newest labelled rows Evaluate also scored on (uri, sha256, rows, window,
    # candidate and champion metric values, verdict); see serverless_mlops/quality/recent_rows.py
    recent_rows: dict[str, Any] | None = None


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


class Canary(BaseModel):
    """A version served to ``weight`` percent (0..100) of an alias's requests, by the release ``release_id``."""

    model_config = ConfigDict(frozen=True)

    version: int
    weight: float = Field(ge=0, le=100)
    release_id: str = Field(min_length=1)


class Shadow(BaseModel):
    """A version that scores a ``sample`` (0 < sample <= 1) of an alias's requests in the background, never answering;
    ``release_id`` names the release whose shadow phase set it (only that release may change or clear it)."""

    model_config = ConfigDict(frozen=True)

    version: int
    sample: float = Field(gt=0, le=1)
    release_id: str | None = None


class AliasChange(BaseModel):
    """One entry of an alias's history. For ``set``/``promote``/``rollback`` the alias moved ``from_version`` →
    ``to_version``; for ``canary``/``shadow`` (and their ``-clear``) ``from_version`` is the version the alias served
    and ``to_version`` the canary's or shadow's version, with ``weight``/``release_id`` (canary) or ``sample`` (shadow)."""

    model_config = ConfigDict(frozen=True)

    revision: int
    from_version: int | None
    to_version: int
    action: AliasAction
    at: str
    by: str
    reason: str = ""
    weight: float | None = None
    release_id: str | None = None
    sample: float | None = None


class Alias(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    name: str
    version: int
    revision: int
    updated_at: str
    updated_by: str
    history: list[AliasChange] = Field(default_factory=list)
    canary: Canary | None = None
    shadow: Shadow | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_token: str | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def encode_token(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def decode_token(token: str | None, partition: str, sort_prefix: str) -> dict[str, Any] | None:
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


def model_pk(model: str) -> str:
    return f"MODEL#{model}"


def model_key(model: str, sort_key: str) -> dict[str, Any]:
    """The table key of one of ``model``'s items (``sort_key``: ``V#…``, ``RUN#…`` or ``ALIAS#…``)."""
    return {PARTITION_KEY: {"S": model_pk(model)}, SORT_KEY: {"S": sort_key}}


def version_sk(version: int) -> str:
    return f"V#{version:010d}"


def models_key(model: str) -> dict[str, Any]:
    """The key of ``model``'s entry in the list of models."""
    return {PARTITION_KEY: {"S": "MODELS"}, SORT_KEY: {"S": model_pk(model)}}


def alias_key(model: str, alias: str) -> dict[str, Any]:
    return model_key(model, f"ALIAS#{alias}")


def version_item(entry: ModelVersion) -> dict[str, Any]:
    """A version as its table item (the document as JSON, with status and run id beside it)."""
    return {
        PARTITION_KEY: {"S": model_pk(entry.model)},
        SORT_KEY: {"S": version_sk(entry.version)},
        "version": {"N": str(entry.version)},
        "status": {"S": entry.status},
        "run_id": {"S": entry.lineage.run_id},
        "doc": {"S": entry.model_dump_json()},
    }


def version_from_item(item: dict[str, Any]) -> ModelVersion:
    document = json.loads(item["doc"]["S"])
    document["status"] = item["status"]["S"]
    return ModelVersion.model_validate(document)


def alias_from_item(model: str, item: dict[str, Any]) -> Alias:
    return Alias(
        model=model,
        name=item[SORT_KEY]["S"].removeprefix("ALIAS#"),
        version=int(item["version"]["N"]),
        revision=int(item["revision"]["N"]),
        updated_at=item["updated_at"]["S"],
        updated_by=item["updated_by"]["S"],
        history=[AliasChange.model_validate_json(entry["S"]) for entry in item.get("history", {}).get("L", [])],
        canary=Canary.model_validate_json(item["canary"]["S"]) if "canary" in item else None,
        shadow=Shadow.model_validate_json(item["shadow"]["S"]) if "shadow" in item else None,
    )


class Registry(Protocol):
    """The model registry's operations. Errors: NotFoundError (no such model, version or alias), ConflictError (an
    alias moved since ``expected_revision`` was read; a run being registered by another caller), ReleaseInProgressError
    (a ConflictError: another release holds the alias's canary), RegistryError (refused: invalid alias name, aliasing
    a version that is not registered, archiving an aliased one, a bad weight or sample, a bad token)."""

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
        """A new version numbered 1..N with no gap; registering the same ``lineage.run_id`` again returns it."""

    def describe(self, model: str, version: int) -> ModelVersion: ...
    def model_exists(self, model: str) -> bool: ...
    def list_models(self, *, page_size: int = 50, next_token: str | None = None) -> Page[str]: ...
    def list_versions(
        self, model: str, *, page_size: int = 50, next_token: str | None = None, newest_first: bool = False
    ) -> Page[ModelVersion]: ...
    def set_status(self, model: str, version: int, status: Status) -> ModelVersion: ...
    def archive(self, model: str, version: int) -> ModelVersion: ...
    def get_alias(self, model: str, alias: str) -> Alias: ...
    def aliases(self, model: str) -> list[Alias]: ...
    def resolve(self, model: str, alias: str = PRODUCTION) -> ModelVersion:
        """The version ``alias`` points at."""

    def aliases_of(self, models: list[str], names: tuple[str, ...] = (PRODUCTION, STAGING)) -> dict[tuple[str, str], Alias]:
        """Several models' aliases at once, by (model, alias name); absent ones are left out."""

    def describe_many(self, versions: list[tuple[str, int]]) -> dict[tuple[str, int], ModelVersion]:
        """Several versions at once, by (model, version); absent ones are left out."""

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
        release_id: str | None = None,
    ) -> Alias:
        """Point ``alias`` at ``version`` if the alias is still at ``expected_revision`` (0: must not exist yet; None:
        whatever was just read). While the alias has a canary, only its release (``release_id``) may move it, and only
        to the canary's version: that write also clears the canary."""

    def promote(
        self,
        model: str,
        version: int,
        *,
        alias: str = PRODUCTION,
        expected_revision: int | None = None,
        by: str,
        reason: str = "",
        release_id: str | None = None,
    ) -> Alias: ...
    def rollback(self, model: str, *, alias: str = PRODUCTION, expected_revision: int | None = None, by: str, reason: str = "") -> Alias:
        """Point ``alias`` back at the version it served before the current one (repeatable: 3 → 2 → 1)."""

    def set_canary(
        self,
        model: str,
        version: int,
        weight: float,
        *,
        release_id: str,
        alias: str = PRODUCTION,
        expected_revision: int | None = None,
        by: str,
        reason: str = "",
    ) -> Alias:
        """Serve ``version`` to ``weight`` percent (0..100) of ``alias``'s requests for the release ``release_id`` (the
        alias must exist; the same release may change the weight; another release's canary is a
        ReleaseInProgressError)."""

    def clear_canary(
        self, model: str, *, release_id: str, alias: str = PRODUCTION, expected_revision: int | None = None, by: str, reason: str = ""
    ) -> Alias:
        """Remove ``release_id``'s canary in one conditional write (the rollback; the alias's version is untouched).
        No canary: the alias as it is."""

    def set_shadow(
        self,
        model: str,
        version: int,
        sample: float,
        *,
        alias: str = PRODUCTION,
        expected_revision: int | None = None,
        by: str,
        reason: str = "",
        release_id: str | None = None,
    ) -> Alias:
        """Let ``version`` score a ``sample`` (0 < sample <= 1) of ``alias``'s requests in the background (for the
        release ``release_id``'s shadow phase, or by hand; a release's shadow is a ReleaseInProgressError for anyone
        else)."""

    def clear_shadow(
        self,
        model: str,
        *,
        alias: str = PRODUCTION,
        expected_revision: int | None = None,
        by: str,
        reason: str = "",
        release_id: str | None = None,
    ) -> Alias:
        """Remove the shadow (no shadow: the alias as it is; a release's shadow only for that ``release_id``)."""
