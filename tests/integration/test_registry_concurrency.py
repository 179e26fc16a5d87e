"""The registry under concurrent writers: version numbers 1..N with no gap or duplicate, one winner per alias move.

Every writer thread gets its own boto3 clients (``Backends.from_settings`` per thread) and all of them start
together at a :class:`threading.Barrier`, so the writes really overlap. Each scenario runs on moto's in-process
mock (process-global, so threads share it); the big registration race also runs against a ThreadedMotoServer on
127.0.0.1, where requests go over HTTP and are served by several server threads.

moto (5.2) is not thread-safe the way DynamoDB is: ``Table.put_item`` reads the current item, evaluates the
condition and then writes with no lock, and ``query`` iterates a dict other threads insert into. Under 16 threads
that lets two conditional puts of the same key both succeed (observed: two registrations both told "version 4",
399 items stored) or fails a query with ``RuntimeError: dictionary changed size during iteration``. Real DynamoDB
applies each single-item conditional write atomically, and the registry relies on exactly that, so
:func:`serverless_mlops.local.moto.serialize_moto_dynamodb` (applied for the whole session in conftest, and by local
mode) makes moto handle one DynamoDB request at a time; the threads still interleave
between requests, which is where the registry's races live.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import pytest

from serverless_mlops.errors import ConflictError
from serverless_mlops.local.moto import LocalAws, ensure_resources
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.artifacts import ArtifactRef
from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record
from serverless_mlops.store.registry import Alias, ModelVersion

MODEL = "breast-cancer"
THREADS = 16
REGISTRATIONS_PER_THREAD = 25

T = TypeVar("T")


@dataclass(frozen=True)
class Uploaded:
    """A trained model's artifacts, uploaded once and shared by every registration (the store is content-addressed)."""

    trained: TrainedModel
    artifact: ArtifactRef
    profile: ArtifactRef


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one thread's call did: its result, or the exception it raised."""

    value: T | None = None
    error: Exception | None = None


def upload(backends: Backends, trained: TrainedModel) -> Uploaded:
    model = trained.record.model
    return Uploaded(
        trained=trained,
        artifact=backends.store.put(model, trained.onnx_bytes, "model.onnx"),
        profile=backends.store.put(model, trained.profile_bytes, "profile.json.gz"),
    )


def register(backends: Backends, uploaded: Uploaded, run_id: str) -> ModelVersion:
    record = uploaded.trained.record
    lineage = lineage_of(record, run_id=run_id)
    return register_record(backends, record, uploaded.artifact, uploaded.profile, by="concurrency-test", lineage=lineage)


def run_together(threads: int, settings: Settings, work: Callable[[int, Backends], T]) -> list[Outcome[T]]:
    """Run ``work(index, backends)`` on ``threads`` threads, each with its own clients, all released at once."""
    barrier = threading.Barrier(threads)

    def one(index: int) -> Outcome[T]:
        backends = Backends.from_settings(settings)  # own boto3 session and clients per thread
        barrier.wait()
        try:
            return Outcome(value=work(index, backends))
        except Exception as exc:
            return Outcome(error=exc)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(threads)))


def all_versions(backends: Backends, model: str) -> list[ModelVersion]:
    found: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = backends.registry.list_versions(model, page_size=100, next_token=token)
        found.extend(page.items)
        if (token := page.next_token) is None:
            return found


def assert_registration_race(settings: Settings, uploaded: Uploaded) -> float:
    """16 threads x 25 distinct runs of one model: versions exactly 1..400, one per run. Returns the seconds it took."""

    def work(index: int, backends: Backends) -> list[tuple[str, int]]:
        made: list[tuple[str, int]] = []
        for n in range(REGISTRATIONS_PER_THREAD):
            run_id = f"run-{index:02d}-{n:02d}"
            made.append((run_id, register(backends, uploaded, run_id).version))
        return made

    started = time.perf_counter()
    outcomes = run_together(THREADS, settings, work)
    elapsed = time.perf_counter() - started

    errors = [o.error for o in outcomes if o.error is not None]
    assert errors == []
    per_thread = [o.value or [] for o in outcomes]
    for made in per_thread:
        versions = [version for _, version in made]
        assert versions == sorted(set(versions)), "one thread's registrations get ever higher numbers"
    returned = [pair for made in per_thread for pair in made]
    total = THREADS * REGISTRATIONS_PER_THREAD
    numbers = [version for _, version in returned]
    assert sorted(numbers) == list(range(1, total + 1)), "each registration got its own number, with no gap"

    stored = all_versions(Backends.from_settings(settings), uploaded.trained.record.model)
    assert [v.version for v in stored] == list(range(1, total + 1))
    assert {v.version: v.lineage.run_id for v in stored} == {version: run_id for run_id, version in returned}
    return elapsed


@pytest.mark.slow
def test_parallel_registrations_get_versions_one_to_n_in_process(
    backends: Backends, settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    uploaded = upload(backends, trained_models[MODEL])
    elapsed = assert_registration_race(settings, uploaded)
    print(f"in-process moto: {THREADS * REGISTRATIONS_PER_THREAD} concurrent registrations in {elapsed:.1f} s")


@pytest.fixture
def server_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A ThreadedMotoServer on 127.0.0.1 (free port) with its own bucket and table."""
    local = LocalAws()
    monkeypatch.setenv("MOTO_PORT", str(local.port))  # LocalAws sets it too; this makes the test undo it
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(bucket=f"concurrency-{suffix}", table=f"concurrency-{suffix}", endpoint_url=local.endpoint_url)
    with local:
        ensure_resources(settings)
        yield settings


@pytest.mark.slow
def test_parallel_registrations_get_versions_one_to_n_on_moto_server(
    server_settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    assert server_settings.endpoint_url is not None
    assert server_settings.endpoint_url.startswith("http://127.0.0.1:")
    uploaded = upload(Backends.from_settings(server_settings), trained_models[MODEL])
    elapsed = assert_registration_race(server_settings, uploaded)
    print(f"moto server: {THREADS * REGISTRATIONS_PER_THREAD} concurrent registrations in {elapsed:.1f} s")


def test_same_run_registered_from_many_threads_makes_one_version(
    backends: Backends, settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    uploaded = upload(backends, trained_models[MODEL])
    register(backends, uploaded, "earlier-run")

    outcomes = run_together(8, settings, lambda _index, b: register(b, uploaded, "the-same-run").version)

    assert [o.error for o in outcomes if o.error is not None] == []
    assert {o.value for o in outcomes} == {2}, "every caller is told the one version the run became"
    stored = all_versions(backends, MODEL)
    assert [(v.version, v.lineage.run_id) for v in stored] == [(1, "earlier-run"), (2, "the-same-run")]


def test_same_and_distinct_runs_interleaved_keep_numbers_dense(
    backends: Backends, settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    """Half the threads race on one run id while the others register their own runs: 1 + 4 versions, 1..5."""
    uploaded = upload(backends, trained_models[MODEL])

    def work(index: int, b: Backends) -> int:
        run_id = "shared-run" if index % 2 == 0 else f"own-run-{index}"
        return register(b, uploaded, run_id).version

    outcomes = run_together(8, settings, work)

    assert [o.error for o in outcomes if o.error is not None] == []
    shared = {o.value for index, o in enumerate(outcomes) if index % 2 == 0}
    assert len(shared) == 1
    stored = all_versions(backends, MODEL)
    assert [v.version for v in stored] == [1, 2, 3, 4, 5]
    assert Counter(v.lineage.run_id for v in stored)["shared-run"] == 1


def _versions_for_alias_race(backends: Backends, uploaded: Uploaded, count: int) -> list[int]:
    return [register(backends, uploaded, f"candidate-{n}").version for n in range(count)]


def test_concurrent_promotions_with_the_same_expected_revision_have_one_winner(
    backends: Backends, settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    uploaded = upload(backends, trained_models[MODEL])
    versions = _versions_for_alias_race(backends, uploaded, 9)
    start = backends.registry.promote(MODEL, versions[0], by="setup")
    contenders = versions[1:]

    outcomes = run_together(
        len(contenders),
        settings,
        lambda index, b: b.registry.promote(MODEL, contenders[index], expected_revision=start.revision, by=f"thread-{index}"),
    )

    winners = [(index, o.value) for index, o in enumerate(outcomes) if o.error is None]
    losers = [o.error for o in outcomes if o.error is not None]
    assert len(winners) == 1
    assert len(losers) == len(contenders) - 1
    assert all(isinstance(e, ConflictError) for e in losers), losers
    assert {e.current_revision for e in losers if isinstance(e, ConflictError)} == {start.revision + 1}

    index, alias = winners[0]
    assert isinstance(alias, Alias)
    now = backends.registry.get_alias(MODEL, "production")
    assert now.version == contenders[index]
    assert now.revision == start.revision + 1
    assert [(c.from_version, c.to_version, c.by) for c in now.history] == [
        (None, versions[0], "setup"),
        (versions[0], contenders[index], f"thread-{index}"),
    ]


def test_concurrent_creation_of_a_new_alias_has_one_winner(
    backends: Backends, settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    uploaded = upload(backends, trained_models[MODEL])
    versions = _versions_for_alias_race(backends, uploaded, 8)

    outcomes = run_together(
        len(versions),
        settings,
        lambda index, b: b.registry.set_alias(MODEL, "canary", versions[index], expected_revision=0, by=f"thread-{index}"),
    )

    winners = [index for index, o in enumerate(outcomes) if o.error is None]
    assert len(winners) == 1
    assert all(isinstance(o.error, ConflictError) and o.error.current_revision == 1 for o in outcomes if o.error is not None)
    alias = backends.registry.get_alias(MODEL, "canary")
    assert (alias.version, alias.revision, len(alias.history)) == (versions[winners[0]], 1, 1)
