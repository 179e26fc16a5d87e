"""The model registry on DynamoDB: :class:`DynamoDBRegistry`, the one implementation of
:class:`serverless_mlops.store.registry.Registry`, and the only code that reads or writes the registry table (the
items and their layout are in :mod:`serverless_mlops.store.registry`), with the table's versions in its base class
(:mod:`serverless_mlops.store.dynamodb_versions`: numbers 1..N with no gap, one version per training run).

Aliases move with a conditional update on their revision (optimistic concurrency) and append to their history in
the same single-item write, so an alias and its history never disagree.

A canary and a shadow are attributes of the alias item, so setting, clearing or promoting one is that same single
conditional write: a promotion by the canary's release moves the version and removes the canary at once, and a rollback
removes the canary without touching the version. Each write is also conditioned on the canary the caller saw (absent,
or exactly that one), so a release's check of "who holds the canary" cannot be overtaken between its read and its write.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from serverless_mlops.errors import ConflictError, NotFoundError, RegistryError, ReleaseInProgressError
from serverless_mlops.store.dynamodb_versions import DynamoDBVersions
from serverless_mlops.store.registry import (
    MOVES,
    PARTITION_KEY,
    PRODUCTION,
    SORT_KEY,
    STAGING,
    Alias,
    AliasAction,
    AliasChange,
    Canary,
    ModelVersion,
    Shadow,
    Status,
    alias_from_item,
    alias_key,
    model_key,
    model_pk,
    now,
    version_from_item,
    version_item,
    version_sk,
)


class DynamoDBRegistry(DynamoDBVersions):
    """The registry on one DynamoDB table (``dynamodb`` is a boto3 DynamoDB client): its versions
    (:class:`~serverless_mlops.store.dynamodb_versions.DynamoDBVersions`) and their aliases."""

    def set_status(self, model: str, version: int, status: Status) -> ModelVersion:
        current = self.describe(model, version)
        if status == "archived":
            holders = [a.name for a in self.aliases(model) if a.version == version]
            if holders:
                raise RegistryError(
                    f"model {model!r} version {version} is aliased as {', '.join(holders)}; move the alias before archiving"
                )
        updated = current.model_copy(update={"status": status})
        self.db.put_item(TableName=self.table, Item=version_item(updated))
        return updated

    def archive(self, model: str, version: int) -> ModelVersion:
        return self.set_status(model, version, "archived")

    # -- aliases ----------------------------------------------------------------------------------------------
    def get_alias(self, model: str, alias: str) -> Alias:
        item = self.db.get_item(TableName=self.table, Key=alias_key(model, alias), ConsistentRead=True).get("Item")
        if item is None:
            if not self.model_exists(model):
                raise NotFoundError(f"model {model!r} is not registered")
            raise NotFoundError(f"model {model!r} has no alias {alias!r}")
        return alias_from_item(model, item)

    def aliases(self, model: str) -> list[Alias]:
        response = self.db.query(
            TableName=self.table,
            ConsistentRead=True,
            KeyConditionExpression=f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :a)",
            ExpressionAttributeValues={":pk": {"S": model_pk(model)}, ":a": {"S": "ALIAS#"}},
        )
        return [alias_from_item(model, item) for item in response.get("Items", [])]

    def resolve(self, model: str, alias: str = PRODUCTION) -> ModelVersion:
        return self.describe(model, self.get_alias(model, alias).version)

    def _current(self, model: str, alias: str) -> Alias | None:
        try:
            return self.get_alias(model, alias)
        except NotFoundError:
            return None

    def _servable(self, model: str, version: int, what: str) -> ModelVersion:
        target = self.describe(model, version)
        if target.status != "registered":
            raise RegistryError(f"model {model!r} version {version} is {target.status}; only registered versions can be {what}")
        return target

    @staticmethod
    def _release_conflict(model: str, alias: str, current: Alias, doing: str) -> ReleaseInProgressError:
        canary = current.canary
        assert canary is not None
        return ReleaseInProgressError(
            f"model {model!r} is in release {canary.release_id} (alias {alias!r}: version {canary.version} on "
            f"{canary.weight:g}% beside version {current.version}): {doing} is refused while it runs; let it finish or "
            f"stop it with `mlops release abort {model}`",
            release_id=canary.release_id,
            current_revision=current.revision,
        )

    def _write_alias(
        self,
        model: str,
        alias: str,
        seen: Alias | None,
        expected: int,
        change: AliasChange,
        *,
        sets: dict[str, dict[str, Any]],
        removes: tuple[str, ...] = (),
    ) -> Alias:
        """One conditional UpdateItem: the alias is still at revision ``expected`` (0: absent) with the canary ``seen``
        had; set ``sets`` (attribute → typed value), remove ``removes``, bump the revision, append ``change``."""
        values: dict[str, Any] = {
            ":rev": {"N": str(expected + 1)},
            ":at": {"S": change.at},
            ":by": {"S": change.by},
            ":entry": {"L": [{"S": change.model_dump_json()}]},
            ":empty": {"L": []},
        }
        assignments = [
            "revision = :rev",
            "updated_at = :at",
            "updated_by = :by",
            "history = list_append(if_not_exists(history, :empty), :entry)",
        ]
        for name, value in sets.items():
            assignments.append(f"{name} = :set_{name}")
            values[f":set_{name}"] = value
        update = "SET " + ", ".join(assignments) + (" REMOVE " + ", ".join(removes) if removes else "")
        if expected == 0:
            condition = f"attribute_not_exists({PARTITION_KEY})"
        else:
            condition = "revision = :expected"
            values[":expected"] = {"N": str(expected)}
            if seen is not None and seen.canary is not None:
                condition += " AND canary = :seen_canary"
                values[":seen_canary"] = {"S": seen.canary.model_dump_json()}
            else:
                condition += " AND attribute_not_exists(canary)"
        try:
            response = self.db.update_item(
                TableName=self.table,
                Key=alias_key(model, alias),
                ConditionExpression=condition,
                UpdateExpression=update,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._conditional as exc:
            now_alias = self._current(model, alias)
            moved_to = now_alias.revision if now_alias else 0
            raise ConflictError(
                f"alias {alias!r} of model {model!r} is at revision {moved_to}, not {expected}: it moved since it was read; "
                "read it again and retry",
                current_revision=moved_to,
            ) from exc
        return alias_from_item(model, response["Attributes"])

    def _change(
        self, current: Alias | None, expected: int, to_version: int, action: AliasAction, by: str, reason: str, **extra: Any
    ) -> AliasChange:
        return AliasChange(
            revision=expected + 1,
            from_version=current.version if current else None,
            to_version=to_version,
            action=action,
            at=now(),
            by=by,
            reason=reason,
            **extra,
        )

    # -- batch reads: a page of models' aliases and served versions in a request or two, not one per model -------
    def aliases_of(self, models: list[str], names: tuple[str, ...] = (PRODUCTION, STAGING)) -> dict[tuple[str, str], Alias]:
        keys = [alias_key(model, name) for model in models for name in names]
        return {(model, alias.name): alias for model, item in self._batch_get(keys) for alias in [alias_from_item(model, item)]}

    def describe_many(self, versions: list[tuple[str, int]]) -> dict[tuple[str, int], ModelVersion]:
        entries = (version_from_item(item) for _, item in self._batch_get([model_key(m, version_sk(v)) for m, v in versions]))
        return {(entry.model, entry.version): entry for entry in entries}

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """The items of ``keys`` that exist (BatchGetItem, 100 keys a request, unprocessed keys asked again), each with
        its model's name."""
        found: list[tuple[str, dict[str, Any]]] = []
        unique = list({(k[PARTITION_KEY]["S"], k[SORT_KEY]["S"]): k for k in keys}.values())
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {self.table: {"Keys": unique[start : start + 100], "ConsistentRead": True}}
            for attempt in range(8):
                response = self.db.batch_get_item(RequestItems=request)
                found += [(item[PARTITION_KEY]["S"].removeprefix("MODEL#"), item) for item in response["Responses"].get(self.table, [])]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RegistryError(f"BatchGetItem on {self.table} left keys unprocessed after 8 attempts (throttled)")
        return found

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
        """Point ``alias`` at ``version`` if the alias is still at ``expected_revision`` (0: must not exist yet).

        With ``expected_revision=None`` the current revision is read first: the write still fails, with a
        :class:`ConflictError`, if the alias moves between that read and this write. While the alias has a canary, only
        its release (``release_id``) may move it, to the canary's version, and that write removes the canary.
        """
        if not alias or len(alias) > 64 or not alias.replace("-", "").replace("_", "").isalnum():
            raise RegistryError(f"invalid alias name {alias!r}: use letters, digits, '-' and '_' (at most 64)")
        self._servable(model, version, "aliased")
        current = self._current(model, alias)
        expected = (current.revision if current else 0) if expected_revision is None else expected_revision
        removes: tuple[str, ...] = ()
        if current is not None and current.canary is not None:
            canary = current.canary
            if release_id != canary.release_id:
                raise self._release_conflict(model, alias, current, f"moving it to version {version}")
            if version != canary.version:
                raise RegistryError(
                    f"release {release_id} of model {model!r} rolls out version {canary.version}; it cannot move alias {alias!r} "
                    f"to version {version}"
                )
            removes = ("canary",)
        elif current is not None and current.shadow is not None and current.shadow.release_id is not None:
            self._check_shadow_owner(model, alias, current, None, f"moving it to version {version}")  # a release's shadow phase
        elif current is not None and expected == current.revision and current.version == version and action != "rollback":
            return current
        extra = {"release_id": release_id} if release_id else {}
        change = self._change(current, expected, version, action, by, reason, **extra)
        return self._write_alias(model, alias, current, expected, change, sets={"version": {"N": str(version)}}, removes=removes)

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
    ) -> Alias:
        return self.set_alias(
            model, alias, version, expected_revision=expected_revision, by=by, reason=reason, action="promote", release_id=release_id
        )

    def rollback(self, model: str, *, alias: str = PRODUCTION, expected_revision: int | None = None, by: str, reason: str = "") -> Alias:
        """Point ``alias`` back at the version it served before the current one (repeatable: 3 → 2 → 1)."""
        current = self.get_alias(model, alias)
        if current.canary is not None:
            raise self._release_conflict(model, alias, current, "a rollback by hand")
        stack: list[int] = []
        for change in current.history:
            if change.action == "rollback":
                if stack:
                    stack.pop()
            elif change.action in MOVES:
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

    # -- canary and shadow --------------------------------------------------------------------------------------
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
        """Serve ``version`` to ``weight`` percent of ``alias``'s requests for the release ``release_id``."""
        if not 0 <= weight <= 100:  # also refuses NaN
            raise RegistryError(f"canary weight must be a percentage from 0 to 100; got {weight!r}")
        if not release_id:
            raise RegistryError("a canary needs the release_id of the release that owns it")
        self._servable(model, version, "served as a canary")
        current = self.get_alias(model, alias)
        if current.canary is not None and current.canary.release_id != release_id:
            raise self._release_conflict(model, alias, current, f"a canary of version {version}")
        if current.canary is not None and current.canary.version != version:
            raise RegistryError(
                f"release {release_id} of model {model!r} rolls out version {current.canary.version}, not version {version}"
            )
        if version == current.version:
            raise RegistryError(f"alias {alias!r} of model {model!r} already serves version {version}: there is nothing to roll out")
        canary = Canary(version=version, weight=weight, release_id=release_id)
        expected = current.revision if expected_revision is None else expected_revision
        if current.canary == canary and expected == current.revision:
            return current
        change = self._change(current, expected, version, "canary", by, reason, weight=weight, release_id=release_id)
        return self._write_alias(model, alias, current, expected, change, sets={"canary": {"S": canary.model_dump_json()}})

    def clear_canary(
        self, model: str, *, release_id: str, alias: str = PRODUCTION, expected_revision: int | None = None, by: str, reason: str = ""
    ) -> Alias:
        """Remove ``release_id``'s canary in one conditional write; the alias's version is untouched."""
        current = self.get_alias(model, alias)
        canary = current.canary
        if canary is None:
            return current
        if canary.release_id != release_id:
            raise self._release_conflict(model, alias, current, f"clearing the canary for release {release_id}")
        expected = current.revision if expected_revision is None else expected_revision
        change = self._change(current, expected, canary.version, "canary-clear", by, reason, weight=canary.weight, release_id=release_id)
        return self._write_alias(model, alias, current, expected, change, sets={}, removes=("canary",))

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
        """Let ``version`` score a ``sample`` of ``alias``'s requests in the background (``release_id``: for that
        release's shadow phase; a release's shadow may be changed by that release only)."""
        if not 0 < sample <= 1:  # also refuses NaN
            raise RegistryError(f"shadow sample must be a fraction above 0 and at most 1; got {sample!r}")
        self._servable(model, version, "shadowed")
        current = self.get_alias(model, alias)
        if version == current.version:
            raise RegistryError(f"alias {alias!r} of model {model!r} serves version {version}: a shadow must be another version")
        self._check_shadow_owner(model, alias, current, release_id, f"a shadow of version {version}")
        shadow = Shadow(version=version, sample=sample, release_id=release_id)
        expected = current.revision if expected_revision is None else expected_revision
        if current.shadow == shadow and expected == current.revision:
            return current
        extra = {"release_id": release_id} if release_id else {}
        change = self._change(current, expected, version, "shadow", by, reason, sample=sample, **extra)
        return self._write_alias(model, alias, current, expected, change, sets={"shadow": {"S": shadow.model_dump_json()}})

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
        current = self.get_alias(model, alias)
        shadow = current.shadow
        if shadow is None:
            return current
        self._check_shadow_owner(model, alias, current, release_id, "stopping its shadow")
        expected = current.revision if expected_revision is None else expected_revision
        extra = {"release_id": shadow.release_id} if shadow.release_id else {}
        change = self._change(current, expected, shadow.version, "shadow-clear", by, reason, sample=shadow.sample, **extra)
        return self._write_alias(model, alias, current, expected, change, sets={}, removes=("shadow",))

    @staticmethod
    def _check_shadow_owner(model: str, alias: str, current: Alias, release_id: str | None, doing: str) -> None:
        """A release's shadow (its shadow phase) may be changed by that release only."""
        shadow = current.shadow
        owner = shadow.release_id if shadow is not None else None
        if shadow is not None and owner is not None and owner != release_id:
            raise ReleaseInProgressError(
                f"model {model!r} is in release {owner} (alias {alias!r}: version {shadow.version} shadows version "
                f"{current.version} in the release's shadow phase): {doing} is refused while it runs; let it finish or stop "
                f"it with `mlops release abort {model}`",
                release_id=owner,
                current_revision=current.revision,
            )
