"""The DynamoDB model registry on moto: versions, paging, aliases, promotion, rollback, archiving, lineage.

Registrations are built directly from the session's trained example models (no retraining): the artifacts are
uploaded once per test and each registration gets its own ``Lineage.run_id``.
"""

from __future__ import annotations

import base64
import json
import time as real_time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from serverless_mlops.errors import ConflictError, MlopsError, NotFoundError, RegistryError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.store import dynamodb_versions as registry_module
from serverless_mlops.store.artifacts import ArtifactRef
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
from serverless_mlops.store.lifecycle import Backends, lineage_of, register_run, resolve_version
from serverless_mlops.store.registry import PRODUCTION, STAGING, Alias, Lineage, ModelVersion, Status

MODEL = "breast-cancer"


class Registrar:
    """Registers versions of one trained model (artifacts uploaded once) under any model name, one run id each."""

    def __init__(self, backends: Backends, trained: TrainedModel) -> None:
        self.backends = backends
        self.trained = trained
        self._uploads: dict[str, tuple[ArtifactRef, ArtifactRef]] = {}

    def _artifacts(self, model: str) -> tuple[ArtifactRef, ArtifactRef]:
        if model not in self._uploads:
            store = self.backends.store
            self._uploads[model] = (
                store.put(model, self.trained.onnx_bytes, "model.onnx"),
                store.put(model, self.trained.profile_bytes, "profile.json.gz"),
            )
        return self._uploads[model]

    def lineage(self, run_id: str) -> Lineage:
        return lineage_of(self.trained.record, run_id=run_id, trigger="test")

    def register(
        self, run_id: str, *, model: str = MODEL, status: Status = "registered", registry: DynamoDBRegistry | None = None
    ) -> ModelVersion:
        record = self.trained.record
        artifact, profile = self._artifacts(model)
        return (registry or self.backends.registry).register(
            model,
            signature=record.signature.model_copy(update={"model": model}),
            artifact=artifact,
            profile=profile,
            metrics=record.metrics,
            parity=record.parity.model_dump(),
            lineage=self.lineage(run_id),
            created_by="test-suite",
            status=status,
            description=f"run {run_id}",
        )

    def versions(self, count: int, *, model: str = MODEL, prefix: str = "run") -> list[int]:
        return [self.register(f"{prefix}-{n}", model=model).version for n in range(count)]


@pytest.fixture
def registrar(backends: Backends, trained_models: dict[str, TrainedModel]) -> Registrar:
    return Registrar(backends, trained_models[MODEL])


@pytest.fixture
def registry(backends: Backends) -> DynamoDBRegistry:
    assert isinstance(backends.registry, DynamoDBRegistry)
    return backends.registry


def transitions(alias: Alias) -> list[tuple[int | None, int, str]]:
    return [(change.from_version, change.to_version, change.action) for change in alias.history]


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp {value!r} has no time zone"
    return parsed


def page_token(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


# -- versions -------------------------------------------------------------------------------------------------


def test_versions_are_numbered_one_to_n_and_keep_what_was_registered(
    registrar: Registrar, registry: DynamoDBRegistry, trained_models: dict[str, TrainedModel]
) -> None:
    before = datetime.now(UTC)
    made = [registrar.register(f"run-{n}") for n in range(3)]

    assert [v.version for v in made] == [1, 2, 3]
    record = trained_models[MODEL].record
    second = registry.describe(MODEL, 2)
    assert second == made[1]
    assert second.model == MODEL
    assert second.status == "registered"
    assert second.lineage.run_id == "run-1"
    assert second.lineage.data_sha256 == record.data_sha256
    assert second.signature == record.signature
    assert second.metrics == record.metrics
    assert second.parity == record.parity.model_dump()
    assert second.artifact.sha256 == made[0].artifact.sha256
    assert second.created_by == "test-suite"
    assert second.description == "run run-1"
    assert before <= parse_time(second.created_at) <= datetime.now(UTC)


def test_version_numbers_are_counted_per_model(registrar: Registrar) -> None:
    assert registrar.versions(2, model="model-a") == [1, 2]
    assert registrar.versions(1, model="model-b") == [1]
    assert registrar.versions(1, model="model-a", prefix="later") == [3]


def test_describe_an_unknown_model_says_it_is_not_registered(registry: DynamoDBRegistry) -> None:
    with pytest.raises(NotFoundError, match=r"model 'no-such-model' is not registered"):
        registry.describe("no-such-model", 1)


@pytest.mark.parametrize("version", [0, 4, 99])
def test_describe_an_unknown_version_names_the_model_and_the_version(
    registrar: Registrar, registry: DynamoDBRegistry, version: int
) -> None:
    registrar.versions(3)
    with pytest.raises(NotFoundError, match=rf"model '{MODEL}' has no version {version}\b"):
        registry.describe(MODEL, version)


def test_registering_the_same_run_twice_yields_one_version(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    first = registrar.register("run-a")
    again = registrar.register("run-a")
    other = registrar.register("run-b")

    assert again == first
    assert other.version == 2
    assert [v.lineage.run_id for v in registry.list_versions(MODEL).items] == ["run-a", "run-b"]


def test_the_same_run_id_in_another_model_is_another_registration(registrar: Registrar) -> None:
    assert registrar.register("shared-run", model="model-a").version == 1
    assert registrar.register("shared-run", model="model-b").version == 1
    assert registrar.register("shared-run", model="model-a").version == 1


def test_a_version_can_be_registered_as_rejected_and_is_then_never_aliased(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    rejected = registrar.register("weak-run", status="rejected")

    assert registry.describe(MODEL, rejected.version).status == "rejected"
    with pytest.raises(RegistryError, match="rejected"):
        registry.promote(MODEL, rejected.version, by="alice")
    with pytest.raises(NotFoundError):
        registry.get_alias(MODEL, PRODUCTION)


# -- paging ---------------------------------------------------------------------------------------------------


def collect_version_pages(registry: DynamoDBRegistry, model: str, page_size: int, *, newest_first: bool = False) -> list[list[int]]:
    pages: list[list[int]] = []
    token: str | None = None
    while True:
        page = registry.list_versions(model, page_size=page_size, next_token=token, newest_first=newest_first)
        pages.append([v.version for v in page.items])
        if (token := page.next_token) is None:
            return pages
        assert len(pages) <= 20, "paging does not terminate"


def collect_model_pages(registry: DynamoDBRegistry, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        page = registry.list_models(page_size=page_size, next_token=token)
        pages.append(page.items)
        if (token := page.next_token) is None:
            return pages
        assert len(pages) <= 20, "paging does not terminate"


def test_list_versions_pages_through_every_version_once(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(7)

    assert collect_version_pages(registry, MODEL, 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert collect_version_pages(registry, MODEL, 3, newest_first=True) == [[7, 6, 5], [4, 3, 2], [1]]
    assert collect_version_pages(registry, MODEL, 50) == [[1, 2, 3, 4, 5, 6, 7]]


def test_list_versions_does_not_mix_models_or_aliases_into_the_pages(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(4)
    registrar.versions(5, model="neighbour")
    registry.promote(MODEL, 2, by="alice")
    registry.set_alias(MODEL, STAGING, 4, by="alice")

    pages = collect_version_pages(registry, MODEL, 2)
    assert [n for page in pages for n in page] == [1, 2, 3, 4]
    assert all(v.model == MODEL for v in registry.list_versions(MODEL).items)


def test_list_models_pages_through_every_model_once(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    names = [f"model-{n}" for n in range(7)]
    for name in names:
        registrar.register("run-1", model=name)
    registrar.register("run-2", model="model-3")  # a second version does not list the model twice

    pages = collect_model_pages(registry, 3)

    assert [len(page) for page in pages] == [3, 3, 1]
    listed = [name for page in pages for name in page]
    assert sorted(listed) == names


def test_list_models_is_empty_before_anything_is_registered(registry: DynamoDBRegistry) -> None:
    page = registry.list_models()
    assert page.items == []
    assert page.next_token is None


def test_list_versions_of_an_unknown_model_is_not_found(registry: DynamoDBRegistry) -> None:
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):
        registry.list_versions("ghost")


@pytest.mark.parametrize(
    "token", ["%%% not base64 %%%", page_token(None), page_token([1, 2]), base64.urlsafe_b64encode(b"\xff\xfe").decode()]
)
def test_a_garbled_page_token_is_refused(registrar: Registrar, registry: DynamoDBRegistry, token: str) -> None:
    registrar.versions(2)
    with pytest.raises(RegistryError, match="invalid page token"):
        registry.list_versions(MODEL, next_token=token)
    with pytest.raises(RegistryError, match="invalid page token"):
        registry.list_models(next_token=token)


def test_a_tampered_page_token_is_refused_as_a_registry_error(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)
    with pytest.raises(RegistryError, match="invalid page token"):
        registry.list_versions(MODEL, next_token=page_token({"a": 1}))


# -- aliases --------------------------------------------------------------------------------------------------


def test_any_named_alias_points_at_a_version(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)
    registry.set_alias(MODEL, PRODUCTION, 1, by="alice")
    registry.set_alias(MODEL, STAGING, 2, by="bob")
    registry.set_alias(MODEL, "canary-eu_1", 3, by="carol", reason="try it on 5%")

    assert {a.name: a.version for a in registry.aliases(MODEL)} == {PRODUCTION: 1, STAGING: 2, "canary-eu_1": 3}
    assert registry.resolve(MODEL).version == 1
    assert registry.resolve(MODEL, STAGING).version == 2
    canary = registry.get_alias(MODEL, "canary-eu_1")
    assert (canary.model, canary.version, canary.revision, canary.updated_by) == (MODEL, 3, 1, "carol")
    assert canary.history[0].reason == "try it on 5%"


def test_a_model_without_aliases_lists_none(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    assert registry.aliases(MODEL) == []


def test_an_unknown_alias_is_not_found(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    with pytest.raises(NotFoundError, match=rf"model '{MODEL}' has no alias 'production'"):
        registry.get_alias(MODEL, PRODUCTION)
    with pytest.raises(NotFoundError, match="has no alias 'staging'"):
        registry.resolve(MODEL, STAGING)
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):
        registry.get_alias("ghost", PRODUCTION)


def test_an_alias_cannot_point_at_a_version_that_does_not_exist(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)
    with pytest.raises(NotFoundError, match="has no version 3"):
        registry.set_alias(MODEL, PRODUCTION, 3, by="alice")
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):
        registry.promote("ghost", 1, by="alice")
    assert registry.aliases(MODEL) == []


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "prod#1", "ünïcode-but-not-allowed?"])
def test_invalid_alias_names_are_refused(registrar: Registrar, registry: DynamoDBRegistry, name: str) -> None:
    registrar.versions(1)
    with pytest.raises(RegistryError, match="invalid alias name"):
        registry.set_alias(MODEL, name, 1, by="alice")
    assert registry.aliases(MODEL) == []


def test_expected_revision_guards_every_alias_move(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)

    created = registry.set_alias(MODEL, PRODUCTION, 1, expected_revision=0, by="alice")
    assert (created.version, created.revision) == (1, 1)

    with pytest.raises(ConflictError) as exists:
        registry.set_alias(MODEL, PRODUCTION, 2, expected_revision=0, by="bob")
    assert exists.value.current_revision == 1

    moved = registry.set_alias(MODEL, PRODUCTION, 2, expected_revision=1, by="alice")
    assert (moved.version, moved.revision) == (2, 2)

    with pytest.raises(ConflictError, match="revision 2, not 1") as stale:
        registry.set_alias(MODEL, PRODUCTION, 3, expected_revision=1, by="bob")
    assert stale.value.current_revision == 2

    with pytest.raises(ConflictError) as ahead:
        registry.set_alias(MODEL, PRODUCTION, 3, expected_revision=7, by="bob")
    assert ahead.value.current_revision == 2

    now = registry.get_alias(MODEL, PRODUCTION)
    assert (now.version, now.revision, now.updated_by) == (2, 2, "alice")
    assert transitions(now) == [(None, 1, "set"), (1, 2, "set")]


def test_a_stale_revision_conflicts_even_when_the_alias_already_serves_that_version(
    registrar: Registrar, registry: DynamoDBRegistry
) -> None:
    registrar.versions(2)
    registry.promote(MODEL, 1, by="alice")
    registry.promote(MODEL, 2, by="alice")

    with pytest.raises(ConflictError) as stale:
        registry.promote(MODEL, 2, expected_revision=1, by="bob")
    assert stale.value.current_revision == 2


def test_expecting_a_revision_of_an_alias_that_does_not_exist_conflicts_and_creates_nothing(
    registrar: Registrar, registry: DynamoDBRegistry
) -> None:
    registrar.versions(1)
    with pytest.raises(ConflictError) as missing:
        registry.set_alias(MODEL, STAGING, 1, expected_revision=3, by="alice")
    assert missing.value.current_revision == 0
    assert registry.aliases(MODEL) == []


def test_promote_moves_production_and_records_who_when_and_why(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)
    before = datetime.now(UTC)

    first = registry.promote(MODEL, 1, by="alice", reason="first release")
    second = registry.promote(MODEL, 2, expected_revision=first.revision, by="bob", reason="better recall")

    assert second.name == PRODUCTION
    assert (second.version, second.revision, second.updated_by) == (2, 2, "bob")
    assert registry.get_alias(MODEL, PRODUCTION) == second
    assert [(c.revision, c.from_version, c.to_version, c.action, c.by, c.reason) for c in second.history] == [
        (1, None, 1, "promote", "alice", "first release"),
        (2, 1, 2, "promote", "bob", "better recall"),
    ]
    stamps = [parse_time(c.at) for c in second.history]
    assert before <= stamps[0] <= stamps[1] <= datetime.now(UTC)
    assert parse_time(second.updated_at) == stamps[1]


def test_promoting_the_version_already_served_changes_nothing(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    first = registry.promote(MODEL, 1, by="alice")

    again = registry.promote(MODEL, 1, by="bob")

    assert again == first
    assert registry.get_alias(MODEL, PRODUCTION) == first


def test_promote_to_another_alias_leaves_production_alone(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)
    registry.promote(MODEL, 1, by="alice")
    registry.promote(MODEL, 2, alias=STAGING, by="alice")

    assert registry.resolve(MODEL).version == 1
    assert registry.resolve(MODEL, STAGING).version == 2


# -- rollback -------------------------------------------------------------------------------------------------


def test_rollback_walks_back_three_two_one_and_then_refuses(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)
    for version in (1, 2, 3):
        registry.promote(MODEL, version, by="alice")

    back_to_two = registry.rollback(MODEL, by="oncall", reason="errors up")
    assert (back_to_two.version, back_to_two.revision) == (2, 4)
    back_to_one = registry.rollback(MODEL, by="oncall", reason="still bad")
    assert (back_to_one.version, back_to_one.revision) == (1, 5)

    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback(MODEL, by="oncall")

    final = registry.get_alias(MODEL, PRODUCTION)
    assert (final.version, final.revision) == (1, 5)
    assert transitions(final) == [
        (None, 1, "promote"),
        (1, 2, "promote"),
        (2, 3, "promote"),
        (3, 2, "rollback"),
        (2, 1, "rollback"),
    ]
    assert [(c.by, c.reason) for c in final.history[3:]] == [("oncall", "errors up"), ("oncall", "still bad")]


def test_rollback_of_an_alias_that_only_ever_served_one_version_is_refused(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    registry.promote(MODEL, 1, by="alice")

    with pytest.raises(RegistryError, match=rf"alias 'production' of model '{MODEL}' has no earlier version"):
        registry.rollback(MODEL, by="oncall")
    assert registry.get_alias(MODEL, PRODUCTION).revision == 1


def test_rollback_of_a_missing_alias_is_not_found(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    with pytest.raises(NotFoundError):
        registry.rollback(MODEL, by="oncall")


def test_rollback_after_a_new_promotion_returns_to_the_version_served_before_it(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)
    registry.promote(MODEL, 1, by="alice")
    registry.promote(MODEL, 2, by="alice")
    assert registry.rollback(MODEL, by="oncall").version == 1
    registry.promote(MODEL, 3, by="alice")

    assert registry.rollback(MODEL, by="oncall").version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback(MODEL, by="oncall")


def test_rollback_after_returning_to_an_old_version_goes_back_to_the_one_it_replaced(
    registrar: Registrar, registry: DynamoDBRegistry
) -> None:
    registrar.versions(2)
    for version in (1, 2, 1):
        registry.promote(MODEL, version, by="alice")

    assert registry.rollback(MODEL, by="oncall").version == 2
    assert registry.rollback(MODEL, by="oncall").version == 1


def test_rollback_with_a_stale_revision_conflicts_and_moves_nothing(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)
    for version in (1, 2, 3):
        registry.promote(MODEL, version, by="alice")

    with pytest.raises(ConflictError) as stale:
        registry.rollback(MODEL, expected_revision=2, by="oncall")
    assert stale.value.current_revision == 3
    assert registry.get_alias(MODEL, PRODUCTION).version == 3


def test_rollback_of_staging_leaves_production_alone(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)
    registry.promote(MODEL, 1, by="alice")
    registry.promote(MODEL, 2, alias=STAGING, by="alice")
    registry.promote(MODEL, 3, alias=STAGING, by="alice")

    assert registry.rollback(MODEL, alias=STAGING, by="oncall").version == 2
    assert registry.get_alias(MODEL, PRODUCTION).revision == 1
    assert registry.resolve(MODEL).version == 1


def test_rollback_never_points_an_alias_at_an_archived_version(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(3)
    for version in (1, 2, 3):
        registry.promote(MODEL, version, by="alice")
    registry.archive(MODEL, 2)

    try:
        registry.rollback(MODEL, by="oncall")
    except MlopsError:
        assert registry.resolve(MODEL).version == 3, "a refused rollback leaves the alias where it was"
    assert registry.resolve(MODEL).status == "registered"


# -- status and archiving -------------------------------------------------------------------------------------


def test_archive_marks_a_version_archived_everywhere_it_is_read(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)

    archived = registry.archive(MODEL, 1)

    assert archived.status == "archived"
    assert registry.describe(MODEL, 1).status == "archived"
    assert [v.status for v in registry.list_versions(MODEL).items] == ["archived", "registered"]
    assert registry.describe(MODEL, 1).lineage.run_id == "run-0", "archiving keeps the version's document"


def test_an_aliased_version_cannot_be_archived_until_the_alias_moves(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)
    registry.promote(MODEL, 1, by="alice")
    registry.set_alias(MODEL, "canary", 1, by="alice")

    with pytest.raises(RegistryError, match=r"version 1 is aliased as .*(production.*canary|canary.*production)"):
        registry.archive(MODEL, 1)
    assert registry.describe(MODEL, 1).status == "registered"

    registry.promote(MODEL, 2, by="alice")
    registry.set_alias(MODEL, "canary", 2, by="alice")
    assert registry.archive(MODEL, 1).status == "archived"


def test_an_archived_version_cannot_be_aliased_until_it_is_registered_again(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(2)
    registry.archive(MODEL, 2)

    with pytest.raises(RegistryError, match="version 2 is archived"):
        registry.promote(MODEL, 2, by="alice")
    with pytest.raises(NotFoundError):
        registry.get_alias(MODEL, PRODUCTION)

    assert registry.set_status(MODEL, 2, "registered").status == "registered"
    assert registry.promote(MODEL, 2, by="alice").version == 2


def test_set_status_rejected_is_recorded(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    assert registry.set_status(MODEL, 1, "rejected").status == "rejected"
    assert registry.describe(MODEL, 1).status == "rejected"


def test_archiving_an_unknown_version_is_not_found(registrar: Registrar, registry: DynamoDBRegistry) -> None:
    registrar.versions(1)
    with pytest.raises(NotFoundError, match="has no version 5"):
        registry.archive(MODEL, 5)
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):
        registry.archive("ghost", 1)


# -- a registration that fails half-way ---------------------------------------------------------------------


class FailingWrites:
    """A DynamoDB client that fails the first write of an item whose sort key starts with ``prefix`` (a version ``V#``)."""

    def __init__(self, client: Any, *, operation: str, prefix: str) -> None:
        self._client = client
        self._operation = operation
        self._prefix = prefix
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        def write(**kwargs: Any) -> Any:
            item = kwargs.get("Item") or kwargs.get("Key") or {}
            if not self.failed and item.get("sk", {}).get("S", "").startswith(self._prefix):
                self.failed = True
                raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected failure"}}, name)
            return real(**kwargs)

        return write


class FakeClock:
    """Stands in for the registry module's ``time``: sleeping advances the clock instead of waiting."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._monotonic = 0.0

    def time(self) -> float:
        return real_time.time() + self.offset

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self._monotonic += seconds
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(registry_module, "time", fake)
    return fake


def failing_registry(backends: Backends, *, operation: str, prefix: str) -> DynamoDBRegistry:
    return DynamoDBRegistry(backends.registry.table, FailingWrites(backends.registry.db, operation=operation, prefix=prefix))


def test_retrying_a_registration_that_failed_before_its_version_was_written_succeeds(
    registrar: Registrar, backends: Backends, registry: DynamoDBRegistry, clock: FakeClock
) -> None:
    with pytest.raises(ClientError, match="injected failure"):
        registrar.register("flaky-run", registry=failing_registry(backends, operation="put_item", prefix="V#"))

    retried = registrar.register("flaky-run")

    assert retried.version == 1
    assert [v.lineage.run_id for v in registry.list_versions(MODEL).items] == ["flaky-run"]


def test_an_abandoned_registration_is_taken_over_after_the_claim_times_out(
    registrar: Registrar, backends: Backends, registry: DynamoDBRegistry, clock: FakeClock
) -> None:
    with pytest.raises(ClientError, match="injected failure"):
        registrar.register("crashed-run", registry=failing_registry(backends, operation="put_item", prefix="V#"))
    clock.offset += registry_module.RUN_CLAIM_TIMEOUT_S + 1

    retried = registrar.register("crashed-run")

    assert retried.version == 1
    assert registrar.register("crashed-run") == retried
    assert [v.lineage.run_id for v in registry.list_versions(MODEL).items] == ["crashed-run"]


def test_a_registration_that_crashed_after_writing_its_version_is_not_registered_twice(
    registrar: Registrar, backends: Backends, registry: DynamoDBRegistry, clock: FakeClock
) -> None:
    with pytest.raises(ClientError, match="injected failure"):
        registrar.register("half-done", registry=failing_registry(backends, operation="update_item", prefix="RUN#"))
    assert registry.describe(MODEL, 1).lineage.run_id == "half-done"
    clock.offset += registry_module.RUN_CLAIM_TIMEOUT_S + 1

    retried = registrar.register("half-done")

    assert retried.version == 1
    assert len(registry.list_versions(MODEL).items) == 1
    assert registrar.register("next-run").version == 2


# -- lifecycle: register_run and resolve_version --------------------------------------------------------------


def test_register_run_uploads_verifiable_artifacts_and_records_the_run(backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["wine"]

    entry = register_run(trained, backends, by="ci", trigger="drift", execution_arn="arn:aws:states:us-east-1:123456789012:execution:x:y")

    assert (entry.model, entry.version, entry.status, entry.created_by) == ("wine", 1, "registered", "ci")
    assert entry.lineage.run_id == trained.record.run_id
    assert (entry.lineage.trigger, entry.lineage.execution_arn) == ("drift", "arn:aws:states:us-east-1:123456789012:execution:x:y")
    assert entry.lineage.data_sha256 == trained.record.data_sha256
    assert entry.description == str(trained.record.spec.get("description", ""))
    assert backends.store.get(entry.artifact, model="wine", version=1) == trained.onnx_bytes
    assert backends.store.get(entry.profile, model="wine", version=1) == trained.profile_bytes
    assert backends.registry.describe("wine", 1) == entry


def test_register_run_twice_is_one_version(backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    first = register_run(trained_models["diabetes"], backends, by="ci")
    again = register_run(trained_models["diabetes"], backends, by="someone-else")

    assert again == first
    assert [v.version for v in backends.registry.list_versions("diabetes").items] == [1]


def test_register_run_for_each_example_lists_each_model(backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    for trained in trained_models.values():
        assert register_run(trained, backends, by="ci").version == 1
    assert sorted(backends.registry.list_models().items) == sorted(trained_models)


def test_resolve_version_by_number_by_default_alias_and_by_named_alias(registrar: Registrar, backends: Backends) -> None:
    registrar.versions(3)
    backends.registry.promote(MODEL, 2, by="alice")
    backends.registry.set_alias(MODEL, STAGING, 3, by="alice")

    assert resolve_version(backends, MODEL, version=1).version == 1
    assert resolve_version(backends, MODEL).version == 2
    assert resolve_version(backends, MODEL, alias=STAGING).version == 3
    assert resolve_version(backends, MODEL, version=1, alias=STAGING).version == 1, "an explicit version wins"
    with pytest.raises(NotFoundError, match="has no alias 'canary'"):
        resolve_version(backends, MODEL, alias="canary")
    with pytest.raises(NotFoundError, match="has no version 9"):
        resolve_version(backends, MODEL, version=9)
