"""The registry's canary and shadow on moto: both live on the alias item and move with its revision and history; a
canary belongs to one release, which alone may promote (moving the version and clearing the canary in one write) or
clear it (the rollback: the version is untouched); a promotion by hand during a release is refused."""

from __future__ import annotations

import math

import pytest

from serverless_mlops.errors import ConflictError, NotFoundError, RegistryError, ReleaseInProgressError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import PRODUCTION, STAGING, Alias, Canary, Shadow
from tests.integration.test_registry import MODEL, Registrar
from tests.integration.test_registry_concurrency import run_together


def actions(alias: Alias) -> list[tuple[str, int | None, int, float | None, str | None]]:
    return [(c.action, c.from_version, c.to_version, c.weight, c.release_id) for c in alias.history]


@pytest.fixture
def registrar(backends: Backends, trained_models: dict[str, TrainedModel]) -> Registrar:
    return Registrar(backends, trained_models[MODEL])


@pytest.fixture
def registry(backends: Backends) -> DynamoDBRegistry:
    assert isinstance(backends.registry, DynamoDBRegistry)
    return backends.registry


@pytest.fixture
def live(registrar: Registrar, registry: DynamoDBRegistry) -> Alias:
    """Versions 1..4; production at 1."""
    registrar.versions(4)
    return registry.promote(MODEL, 1, by="alice")


def test_a_canary_is_kept_on_the_alias_with_its_history_and_leaves_the_version_alone(registry: DynamoDBRegistry, live: Alias) -> None:
    alias = registry.set_canary(MODEL, 2, 10, release_id="rel-a", by="release", reason="canary 10%")

    assert (alias.version, alias.revision) == (1, live.revision + 1)
    assert alias.canary == Canary(version=2, weight=10, release_id="rel-a")
    assert registry.get_alias(MODEL, PRODUCTION) == alias
    assert registry.resolve(MODEL).version == 1
    assert actions(alias)[-1] == ("canary", 1, 2, 10, "rel-a")
    assert alias.history[-1].reason == "canary 10%"

    raised = registry.set_canary(MODEL, 2, 30, release_id="rel-a", by="release")
    assert raised.canary == Canary(version=2, weight=30, release_id="rel-a")
    assert raised.revision == alias.revision + 1
    again = registry.set_canary(MODEL, 2, 30, release_id="rel-a", by="release")
    assert again == raised, "repeating the same step (a retried state) writes nothing"


@pytest.mark.parametrize("weight", [0.0, 100.0, 0.5])
def test_weights_from_0_to_100_are_accepted(registry: DynamoDBRegistry, live: Alias, weight: float) -> None:
    assert registry.set_canary(MODEL, 2, weight, release_id="r", by="t").canary == Canary(version=2, weight=weight, release_id="r")


@pytest.mark.parametrize("weight", [-0.1, 100.5, math.nan, math.inf])
def test_a_weight_outside_0_to_100_is_refused(registry: DynamoDBRegistry, live: Alias, weight: float) -> None:
    with pytest.raises(RegistryError, match="canary weight must be a percentage from 0 to 100"):
        registry.set_canary(MODEL, 2, weight, release_id="r", by="t")
    assert registry.get_alias(MODEL, PRODUCTION) == live


def test_a_canary_must_be_another_registered_version_of_an_existing_alias(
    registrar: Registrar, registry: DynamoDBRegistry, live: Alias
) -> None:
    rejected = registrar.register("weak", status="rejected").version
    with pytest.raises(RegistryError, match=f"version {rejected} is rejected"):
        registry.set_canary(MODEL, rejected, 10, release_id="r", by="t")
    with pytest.raises(NotFoundError, match="has no version 99"):
        registry.set_canary(MODEL, 99, 10, release_id="r", by="t")
    with pytest.raises(RegistryError, match="already serves version 1"):
        registry.set_canary(MODEL, 1, 10, release_id="r", by="t")
    with pytest.raises(NotFoundError, match="has no alias 'staging'"):
        registry.set_canary(MODEL, 2, 10, release_id="r", alias=STAGING, by="t")
    with pytest.raises(RegistryError, match="needs the release_id"):
        registry.set_canary(MODEL, 2, 10, release_id="", by="t")
    assert registry.get_alias(MODEL, PRODUCTION) == live


def test_another_release_is_refused_while_one_holds_the_canary(registry: DynamoDBRegistry, live: Alias) -> None:
    held = registry.set_canary(MODEL, 2, 10, release_id="rel-a", by="release")

    with pytest.raises(ReleaseInProgressError, match=r"release rel-a .*mlops release abort breast-cancer") as refused:
        registry.set_canary(MODEL, 3, 50, release_id="rel-b", by="release")
    assert refused.value.release_id == "rel-a"
    assert isinstance(refused.value, ConflictError)
    with pytest.raises(ReleaseInProgressError):
        registry.clear_canary(MODEL, release_id="rel-b", by="release")
    with pytest.raises(RegistryError, match="rolls out version 2, not version 3"):
        registry.set_canary(MODEL, 3, 50, release_id="rel-a", by="release")
    assert registry.get_alias(MODEL, PRODUCTION) == held


def test_a_promotion_by_hand_during_a_release_is_refused_and_names_the_release(registry: DynamoDBRegistry, live: Alias) -> None:
    held = registry.set_canary(MODEL, 2, 10, release_id="rel-a", by="release")

    for attempt in (
        lambda: registry.promote(MODEL, 2, by="bob"),
        lambda: registry.promote(MODEL, 3, by="bob"),
        lambda: registry.promote(MODEL, 2, by="bob", release_id="rel-other"),
        lambda: registry.set_alias(MODEL, PRODUCTION, 3, by="bob"),
        lambda: registry.rollback(MODEL, by="bob"),
    ):
        with pytest.raises(ReleaseInProgressError, match=r"in release rel-a \(alias 'production': version 2 on 10% beside version 1\)"):
            attempt()
    with pytest.raises(RegistryError, match="rolls out version 2; it cannot move alias 'production' to version 3"):
        registry.promote(MODEL, 3, by="release", release_id="rel-a")
    assert registry.get_alias(MODEL, PRODUCTION) == held
    registry.set_alias(MODEL, STAGING, 3, by="bob")  # other aliases are not held


def test_the_release_promotes_its_canary_and_clears_it_in_one_write(registry: DynamoDBRegistry, live: Alias) -> None:
    held = registry.set_canary(MODEL, 2, 10, release_id="rel-a", by="release")

    promoted = registry.promote(MODEL, 2, by="release", reason="guards passed", release_id="rel-a")

    assert (promoted.version, promoted.canary, promoted.revision) == (2, None, held.revision + 1)
    assert actions(promoted)[-1] == ("promote", 1, 2, None, "rel-a")
    assert registry.get_alias(MODEL, PRODUCTION) == promoted
    assert registry.promote(MODEL, 2, by="release", release_id="rel-a") == promoted, "a retried promotion is a no-op"
    assert registry.promote(MODEL, 3, by="bob").version == 3, "after the release, promotions by hand work again"
    assert registry.rollback(MODEL, by="bob").version == 2, "rollback ignores canary entries in the history"


def test_clearing_the_canary_is_the_rollback_and_leaves_the_version(registry: DynamoDBRegistry, live: Alias) -> None:
    held = registry.set_canary(MODEL, 2, 40, release_id="rel-a", by="release")

    cleared = registry.clear_canary(MODEL, release_id="rel-a", by="release", reason="error rate 2.1% > 1% over 412 requests")

    assert (cleared.version, cleared.canary, cleared.revision) == (1, None, held.revision + 1)
    assert actions(cleared)[-1] == ("canary-clear", 1, 2, 40, "rel-a")
    assert cleared.history[-1].reason.startswith("error rate")
    assert registry.clear_canary(MODEL, release_id="rel-a", by="release") == cleared, "clearing twice writes nothing"
    assert registry.clear_canary(MODEL, release_id="anyone", by="release") == cleared
    assert registry.set_canary(MODEL, 3, 5, release_id="rel-b", by="release").canary == Canary(version=3, weight=5, release_id="rel-b")


def test_canary_writes_honour_the_expected_revision(registry: DynamoDBRegistry, live: Alias) -> None:
    with pytest.raises(ConflictError, match=f"is at revision {live.revision}, not {live.revision - 1}") as stale:
        registry.set_canary(MODEL, 2, 10, release_id="r", expected_revision=live.revision - 1, by="t")
    assert stale.value.current_revision == live.revision
    held = registry.set_canary(MODEL, 2, 10, release_id="r", expected_revision=live.revision, by="t")
    with pytest.raises(ConflictError):
        registry.clear_canary(MODEL, release_id="r", expected_revision=live.revision, by="t")
    with pytest.raises(ConflictError):
        registry.promote(MODEL, 2, release_id="r", expected_revision=live.revision, by="t")
    assert registry.get_alias(MODEL, PRODUCTION) == held


def test_a_write_is_conditioned_on_the_canary_its_caller_saw(
    registry: DynamoDBRegistry, live: Alias, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promoter whose read missed a canary set since (and who names that newer revision) still cannot move the alias."""
    held = registry.set_canary(MODEL, 2, 10, release_id="rel-a", by="release")
    stale_view = held.model_copy(update={"canary": None})
    monkeypatch.setattr(registry, "_current", lambda _model, _alias: stale_view)

    with pytest.raises(ConflictError):
        registry.promote(MODEL, 3, expected_revision=held.revision, by="bob")
    monkeypatch.undo()
    assert registry.get_alias(MODEL, PRODUCTION) == held


def test_a_shadow_is_kept_on_the_alias_and_cleared(registrar: Registrar, registry: DynamoDBRegistry, live: Alias) -> None:
    shadowed = registry.set_shadow(MODEL, 3, 0.2, by="carol")

    assert (shadowed.version, shadowed.shadow, shadowed.revision) == (1, Shadow(version=3, sample=0.2), live.revision + 1)
    assert (shadowed.history[-1].action, shadowed.history[-1].to_version, shadowed.history[-1].sample) == ("shadow", 3, 0.2)
    assert registry.set_shadow(MODEL, 3, 0.2, by="carol") == shadowed
    both = registry.set_canary(MODEL, 2, 10, release_id="r", by="release")
    assert (both.canary is not None, both.shadow) == (True, Shadow(version=3, sample=0.2))

    cleared = registry.clear_shadow(MODEL, by="carol")
    assert (cleared.shadow, cleared.canary, cleared.version) == (None, both.canary, 1)
    assert cleared.history[-1].action == "shadow-clear"
    assert registry.clear_shadow(MODEL, by="carol") == cleared


@pytest.mark.parametrize("sample", [0.0, -0.5, 1.01, math.nan])
def test_a_sample_outside_0_to_1_is_refused(registry: DynamoDBRegistry, live: Alias, sample: float) -> None:
    with pytest.raises(RegistryError, match="shadow sample must be a fraction above 0 and at most 1"):
        registry.set_shadow(MODEL, 2, sample, by="t")


def test_a_shadow_must_be_another_registered_version(registrar: Registrar, registry: DynamoDBRegistry, live: Alias) -> None:
    with pytest.raises(RegistryError, match="a shadow must be another version"):
        registry.set_shadow(MODEL, 1, 0.5, by="t")
    rejected = registrar.register("weak", status="rejected").version
    with pytest.raises(RegistryError, match="rejected"):
        registry.set_shadow(MODEL, rejected, 0.5, by="t")
    with pytest.raises(ConflictError):
        registry.set_shadow(MODEL, 2, 0.5, expected_revision=live.revision + 3, by="t")


def test_concurrent_releases_racing_for_the_canary_have_one_winner(
    backends: Backends, settings: Settings, registry: DynamoDBRegistry, live: Alias
) -> None:
    contenders = [(2, "rel-a"), (3, "rel-b"), (4, "rel-c"), (2, "rel-d"), (3, "rel-e"), (4, "rel-f")]

    outcomes = run_together(
        len(contenders),
        settings,
        lambda index, b: b.registry.set_canary(MODEL, contenders[index][0], 10, release_id=contenders[index][1], by=f"thread-{index}"),
    )

    winners = [index for index, o in enumerate(outcomes) if o.error is None]
    assert len(winners) == 1
    assert all(isinstance(o.error, ConflictError) for o in outcomes if o.error is not None)
    now = registry.get_alias(MODEL, PRODUCTION)
    version, release = contenders[winners[0]]
    assert now.canary == Canary(version=version, weight=10, release_id=release)
    assert (now.version, now.revision) == (1, live.revision + 1)
    assert [c.action for c in now.history].count("canary") == 1


def test_a_hand_promotion_racing_a_canary_either_wins_before_it_or_is_refused(
    backends: Backends, settings: Settings, registry: DynamoDBRegistry, live: Alias
) -> None:
    def work(index: int, b: Backends) -> Alias:
        if index % 2 == 0:
            return b.registry.set_canary(MODEL, 2, 20, release_id=f"rel-{index}", by=f"release-{index}")
        return b.registry.promote(MODEL, 3, expected_revision=live.revision, by=f"hand-{index}")

    outcomes = run_together(6, settings, work)

    now = registry.get_alias(MODEL, PRODUCTION)
    assert now.revision == live.revision + len([o for o in outcomes if o.error is None])
    assert all(isinstance(o.error, ConflictError) for o in outcomes if o.error is not None)
    if now.version == 3:  # the promotion came first: a canary may have followed it, on top of version 3
        assert [c.action for c in now.history][live.revision] == "promote"
    else:  # the canary came first: no hand promotion got through
        assert now.canary is not None
        assert now.version == 1
        assert "promote" not in [c.action for c in now.history][live.revision :]
