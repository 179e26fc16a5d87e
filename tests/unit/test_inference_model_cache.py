"""The model cache with a fake registry and loader: refresh interval, keep-last-good, cold failures, eviction."""

from __future__ import annotations

from typing import Any

import pytest

from serverless_mlops.errors import ArtifactIntegrityError, NotFoundError
from serverless_mlops.serving.model_cache import ModelCache, ModelUnavailableError
from serverless_mlops.store.registry import Canary, ModelVersion, Shadow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Alias:
    def __init__(self, version: int, canary: Canary | None = None, shadow: Shadow | None = None) -> None:
        self.version = version
        self.canary = canary
        self.shadow = shadow


class FakeRegistry:
    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], int] = {("m", "production"): 1}
        self.beside: dict[tuple[str, str], tuple[Canary | None, Shadow | None]] = {}
        self.statuses: dict[tuple[str, int], str] = {("m", v): "registered" for v in (1, 2, 3)}
        self.down = False
        self.calls = 0

    def get_alias(self, model: str, alias: str) -> Alias:
        self.calls += 1
        if self.down:
            raise ConnectionError("registry unreachable")
        if (model, alias) not in self.aliases:
            raise NotFoundError(f"model {model!r} has no alias {alias!r}")
        return Alias(self.aliases[(model, alias)], *self.beside.get((model, alias), (None, None)))

    def describe(self, model: str, version: int) -> ModelVersion:
        self.calls += 1
        if self.down:
            raise ConnectionError("registry unreachable")
        if (model, version) not in self.statuses:
            raise NotFoundError(f"model {model!r} has no version {version}")
        return ModelVersion.model_construct(model=model, version=version, status=self.statuses[(model, version)])


class FakeBackends:
    def __init__(self) -> None:
        self.registry = FakeRegistry()


class Loader:
    def __init__(self) -> None:
        self.loads: list[int] = []
        self.bad: set[int] = set()
        self.missing: set[int] = set()

    def __call__(self, backends: Any, entry: ModelVersion) -> Any:
        if entry.version in self.bad:
            raise ArtifactIntegrityError(f"version {entry.version} failed verification")
        if entry.version in self.missing:
            raise NotFoundError(f"artifact of version {entry.version} is missing")
        self.loads.append(entry.version)
        return f"session-{entry.version}"


@pytest.fixture
def parts() -> tuple[ModelCache, FakeBackends, Loader, Clock, list[tuple[str, str]]]:
    backends, loader, clock, failures = FakeBackends(), Loader(), Clock(), []
    cache = ModelCache(
        lambda: backends,  # type: ignore[arg-type,return-value]
        refresh_seconds=30,
        clock=clock,
        loader=loader,
        on_failure=lambda model, reason: failures.append((model, reason)),
        capacity=2,
    )
    return cache, backends, loader, clock, failures


def test_an_alias_is_rechecked_only_after_the_refresh_interval(parts: Any) -> None:
    cache, backends, loader, clock, failures = parts
    assert cache.get("m").entry.version == 1
    backends.registry.aliases[("m", "production")] = 2  # promotion
    calls = backends.registry.calls
    clock.now += 29.9
    assert cache.get("m").entry.version == 1
    assert backends.registry.calls == calls  # no registry call within the interval
    clock.now += 0.1
    assert cache.get("m").entry.version == 2
    backends.registry.aliases[("m", "production")] = 1  # rollback: version 1 is still in memory
    clock.now += 30
    assert cache.get("m").model == "session-1"
    assert loader.loads == [1, 2]
    assert failures == []


def test_a_failed_refresh_keeps_the_last_good_model_and_retries_after_a_back_off(parts: Any) -> None:
    cache, backends, loader, clock, failures = parts
    cache.get("m")
    backends.registry.aliases[("m", "production")] = 2
    loader.bad.add(2)
    clock.now += 30
    assert cache.get("m").entry.version == 1  # tampered version 2 never loads
    assert failures == [("m", "ArtifactIntegrityError: version 2 failed verification")]
    assert cache.get("m").entry.version == 1
    assert len(failures) == 1  # not retried on every request
    backends.registry.down = True
    clock.now += 30  # the first failure waits refresh_seconds
    assert cache.get("m").entry.version == 1
    assert failures[-1] == ("m", "ConnectionError: registry unreachable")
    backends.registry.down = False
    loader.bad.clear()
    clock.now += 59.9  # the second waits twice as long
    assert cache.get("m").entry.version == 1
    clock.now += 0.1
    assert cache.get("m").entry.version == 2


def test_an_outage_costs_one_check_per_doubling_interval_up_to_the_cap_and_success_resets_it(parts: Any) -> None:
    cache, backends, _loader, clock, failures = parts
    cache.backoff_max_seconds = 200
    cache.get("m")
    backends.registry.down = True
    start, checks_at = clock.now, []
    for _ in range(1000):  # 1,000 requests one second apart
        clock.now += 1
        before = backends.registry.calls
        assert cache.get("m").entry.version == 1
        if backends.registry.calls != before:
            checks_at.append(clock.now - start)
    # checks after 30 s, then waits of 30, 60, 120, 200 (the cap), 200, ...
    assert checks_at == [30, 60, 120, 240, 440, 640, 840]
    assert len(failures) == len(checks_at)  # each failure is counted
    assert cache.failed_checks == len(checks_at)
    backends.registry.down = False
    clock.now += 200
    assert cache.get("m").entry.version == 1
    calls = backends.registry.calls
    clock.now += 30  # a success: back to refresh_seconds
    cache.get("m")
    assert backends.registry.calls == calls + 1


def test_checks_and_reloads_use_their_own_backends(parts: Any) -> None:
    _cache, backends, loader, clock, failures = parts
    checks, reloads = FakeBackends(), FakeBackends()
    used: list[str] = []

    def loading(backends_given: Any, entry: ModelVersion) -> Any:
        used.append("reloads" if backends_given is reloads else "cold" if backends_given is backends else "checks")
        return loader(backends_given, entry)

    cache = ModelCache(
        lambda: backends,  # type: ignore[arg-type,return-value]
        checks=lambda: checks,  # type: ignore[arg-type,return-value]
        reloads=lambda: reloads,  # type: ignore[arg-type,return-value]
        clock=clock,
        loader=loading,
        on_failure=lambda model, reason: failures.append((model, reason)),
    )
    cache.get("m")  # cold: the generous backends
    checks.registry.aliases[("m", "production")] = 2
    clock.now += 30
    assert cache.get("m").entry.version == 2
    assert used == ["cold", "reloads"]
    assert checks.registry.calls == 1  # the check itself
    assert reloads.registry.calls == 1  # describe of version 2
    checks.registry.down = True
    clock.now += 30
    assert cache.get("m").entry.version == 2  # the check failed, the cold backends were never asked
    assert backends.registry.calls == 2  # get_alias and describe of the cold load only
    assert failures == [("m", "ConnectionError: registry unreachable")]


def test_a_removed_alias_keeps_serving_the_last_good_model(parts: Any) -> None:
    cache, backends, _loader, clock, failures = parts
    cache.get("m")
    del backends.registry.aliases[("m", "production")]
    clock.now += 30
    assert cache.get("m").entry.version == 1
    assert len(failures) == 1
    assert failures[0][1].startswith("NotFoundError")


def test_cold_failures_are_503_worthy_with_a_back_off_but_unknowns_are_404(parts: Any) -> None:
    cache, backends, _loader, clock, failures = parts
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        cache.get("m", alias="staging")
    with pytest.raises(NotFoundError, match="no version 9"):
        cache.get("m", version=9)
    backends.registry.down = True
    with pytest.raises(ModelUnavailableError) as first:
        cache.get("m")
    assert first.value.retry_after == 30
    backends.registry.down = False
    clock.now += 10
    with pytest.raises(ModelUnavailableError) as again:  # within the back-off: no new attempt
        cache.get("m")
    assert again.value.retry_after == pytest.approx(20)
    assert len(failures) == 1
    clock.now += 20
    assert cache.get("m").entry.version == 1


def test_a_missing_artifact_is_unavailable_not_unknown(parts: Any) -> None:
    cache, _backends, loader, _clock, failures = parts
    loader.missing.add(3)
    with pytest.raises(ModelUnavailableError, match="version 3"):
        cache.get("m", version=3)
    assert failures[0][1].startswith("ArtifactUnavailableError")


def test_only_registered_versions_are_served(parts: Any) -> None:
    cache, backends, _loader, _clock, _failures = parts
    backends.registry.statuses[("m", 3)] = "archived"
    with pytest.raises(NotFoundError, match="archived"):
        cache.get("m", version=3)


def test_versions_are_loaded_once_and_evicted_least_recently_used_except_aliased(parts: Any) -> None:
    cache, _backends, loader, _clock, _failures = parts
    cache.get("m")  # version 1, pinned by the production alias
    cache.get("m", version=2)
    cache.get("m", version=2)
    cache.get("m", version=3)  # capacity 2: evicts 2, never the aliased 1
    assert sorted(m.entry.version for m in cache.loaded()) == [1, 3]
    cache.get("m", version=2)
    assert loader.loads == [1, 2, 3, 2]


def test_a_refresh_in_progress_elsewhere_does_not_block_a_request(parts: Any) -> None:
    cache, backends, _loader, clock, _failures = parts
    cache.get("m")
    backends.registry.aliases[("m", "production")] = 2
    clock.now += 30
    with cache._lock:  # another thread is refreshing
        assert cache.get("m").entry.version == 1
    assert cache.get("m").entry.version == 2


def test_a_canary_and_a_shadow_load_beside_the_champion_and_stay_in_memory(parts: Any) -> None:
    cache, backends, loader, clock, _ = parts
    backends.registry.beside["m", "production"] = (Canary(version=2, weight=10, release_id="r"), Shadow(version=3, sample=0.5))
    served = cache.serve("m")
    assert served.champion.model == "session-1"
    assert served.canary is not None
    assert served.shadow is not None
    assert (served.canary.loaded.model, served.shadow.loaded.model) == ("session-2", "session-3")  # type: ignore[union-attr]
    assert sorted(loader.loads) == [1, 2, 3]

    backends.registry.beside["m", "production"] = (Canary(version=2, weight=50, release_id="r"), Shadow(version=3, sample=0.5))
    clock.now += 30
    again = cache.serve("m")
    assert again.canary is not None
    assert again.canary.spec.weight == 50
    assert again.shadow is served.shadow, "an unchanged shadow is kept as it was"
    assert sorted(loader.loads) == [1, 2, 3], "a weight change loads nothing"
    assert {m.entry.version for m in cache.loaded()} == {1, 2, 3}, "capacity 2, but nothing an alias serves is evicted"

    backends.registry.beside["m", "production"] = (None, None)
    clock.now += 30
    assert cache.serve("m") == type(served)(served.champion)


def test_a_canary_that_fails_to_load_is_reported_left_unloaded_and_retried_at_the_next_check(parts: Any) -> None:
    cache, backends, loader, clock, failures = parts
    cache.get("m")
    loader.bad.add(2)
    backends.registry.beside["m", "production"] = (Canary(version=2, weight=10, release_id="r"), None)
    clock.now += 30
    served = cache.serve("m")
    assert served.champion.model == "session-1"
    assert served.canary is not None
    assert served.canary.loaded is None
    assert failures == [("m", "ArtifactIntegrityError: version 2 failed verification")]

    loader.bad.clear()
    assert cache.serve("m").canary.loaded is None  # type: ignore[union-attr]  # within the interval: no retry
    clock.now += 30
    assert cache.serve("m").canary.loaded.model == "session-2"  # type: ignore[union-attr]
