"""Models loaded once per execution environment, with aliases re-checked at most every ``refresh_seconds``.

A request names a model and either a version (immutable: loaded once, kept while it is among the most recently
used) or an alias (default ``production``). An alias is resolved in the registry at most every ``refresh_seconds``
(one GetItem), so a promotion or rollback takes effect within that interval without a redeploy. Loading fetches the
ONNX artifact, verifies its sha256 against the registry and opens an onnxruntime session
(:func:`serverless_mlops.store.lifecycle.load_model`).

Three sets of backends, because waiting is right in one place and wrong in the others:

- ``backends``: loading with nothing to fall back on (a cold start, a version asked for the first time). Waiting
  (the generous client's retries) beats a 503.
- ``checks``: the alias re-check, made on a request's path while a good model is in hand. The endpoint gives a
  budgeted client (``MLOPS_ALIAS_CHECK_BUDGET_MS``, 200 ms: one attempt, short timeouts), so a registry that refuses,
  or accepts and never answers, costs that request at most the budget.
- ``reloads``: fetching the version a check found the alias moved to. The artifact download is a real cost (as on a
  cold start), so it has its own bigger budget (``MLOPS_MODEL_RELOAD_BUDGET_MS``, 2 s); the request that finds the
  promotion pays it once per execution environment, and the model it loads serves that very request.

Failures: a refresh that fails for any reason (registry unreachable or timing out, artifact missing or tampered with,
a graph onnxruntime refuses) keeps serving the last good model and reports the failure to the ``on_failure``
callback (the handler turns each into a ``ModelLoadFailures`` count). The next check backs off: it comes
``max(refresh_seconds, 1 s)`` after the first failure, twice that after the second, and so on up to
``backoff_max_seconds``; a successful check returns to ``refresh_seconds``. So an outage costs at most one
budget-bounded request per back-off interval per alias. With nothing loaded yet, an unknown model, version or alias
raises :class:`NotFoundError` and any other failure raises :class:`ModelUnavailableError` carrying a retry delay;
further requests within that delay fail fast instead of downloading the artifact again.

Canary and shadow: the alias's item also names the versions beside it (a release's canary, a shadow). Each check
reads them with the alias and loads a new one with the reload backends, so the champion is never unloaded for them;
:meth:`ModelCache.serve` returns the champion with both (:class:`Served`). A canary or shadow that fails to load is
reported like any refresh failure and left out (``loaded`` None) until the next check tries again; the champion,
already loaded, goes on serving.

Thread-safe: reads take no lock; loading and refreshing take one, and a request that finds a refresh already in
progress serves the current model instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from serverless_mlops.aws import backoff
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.store.registry import PRODUCTION

if TYPE_CHECKING:
    from serverless_mlops.serving.onnx_model import OnnxModel
    from serverless_mlops.store.lifecycle import Backends
    from serverless_mlops.store.registry import Alias, Canary, ModelVersion, Shadow

Loader = Callable[["Backends", "ModelVersion"], "OnnxModel"]
T = TypeVar("T")
SpecT = TypeVar("SpecT", "Canary", "Shadow")
FailureCallback = Callable[[str, str], None]


class UnavailableError(MlopsError):
    """What an answer needs (the registry, the artifact store) cannot be reached right now: the handler answers 503
    with ``Retry-After`` and ``code`` as the error code."""

    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailableError(UnavailableError):
    """A model exists but cannot be loaded right now."""

    code = "model_unavailable"


class ArtifactUnavailableError(MlopsError):
    """A registered version's artifact cannot be fetched (as opposed to an unknown model, version or alias)."""


@dataclass(frozen=True)
class LoadedModel:
    entry: ModelVersion
    model: OnnxModel


@dataclass(frozen=True)
class Beside(Generic[SpecT]):
    """A version served beside an alias's own (``spec``: the registry's canary or shadow), and its model if loaded."""

    spec: SpecT
    loaded: LoadedModel | None


@dataclass(frozen=True)
class Served:
    """What an alias serves: its version (``champion``), and the canary and shadow beside it, if any."""

    champion: LoadedModel
    canary: Beside[Canary] | None = None
    shadow: Beside[Shadow] | None = None


@dataclass
class _AliasState:
    loaded: LoadedModel
    checked_at: float
    wait: float  # seconds from checked_at to the next check: refresh_seconds, or the back-off after failures
    failures: int = 0  # consecutive failed checks
    canary: Beside[Canary] | None = None
    shadow: Beside[Shadow] | None = None

    def served(self) -> Served:
        if self.canary is None and self.shadow is None:
            return Served(self.loaded)
        return Served(self.loaded, self.canary, self.shadow)


def _default_loader(backends: Backends, entry: ModelVersion) -> OnnxModel:
    from serverless_mlops.serving.onnx_model import load_model

    return load_model(backends, entry)


def _describe_failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ModelCache:
    """Registered models by version and alias; see the module docstring for refresh and failure rules."""

    def __init__(
        self,
        backends: Callable[[], Backends],
        *,
        checks: Callable[[], Backends] | None = None,
        reloads: Callable[[], Backends] | None = None,
        refresh_seconds: float = 30.0,
        backoff_max_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        loader: Loader = _default_loader,
        on_failure: FailureCallback | None = None,
        capacity: int = 8,
    ) -> None:
        self._backends = backends
        self._checks = checks or backends
        self._reloads = reloads or backends
        self.refresh_seconds = refresh_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.failed_checks = 0  # alias checks that failed (a request whose check failed leaves a due capture flush to the next)
        self._clock = clock
        self._loader = loader
        self._on_failure = on_failure
        self._capacity = capacity
        self._versions: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._aliases: dict[tuple[str, str], _AliasState] = {}
        self._failed_until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # -- the request path ----------------------------------------------------------------------------------------
    def get(self, name: str, *, version: int | None = None, alias: str | None = None) -> LoadedModel:
        """The model to serve for ``name`` at ``version``, or at ``alias`` (default production)."""
        if version is not None:
            loaded = self._versions.get((name, version))
            if loaded is not None:
                return loaded
            with self._lock:
                return self._cold(name, f"version {version}", lambda: self._version(name, version))
        return self.serve(name, alias).champion

    def serve(self, name: str, alias: str | None = None) -> Served:
        """What ``name``'s ``alias`` (default production) serves: its version, with its canary and shadow."""
        key = (name, alias or PRODUCTION)
        state = self._aliases.get(key)
        if state is not None:
            now = self._clock()
            if now - state.checked_at < state.wait:
                return state.served()
            if not self._lock.acquire(blocking=False):  # someone is refreshing: serve what we have meanwhile
                return state.served()
            try:
                return self._refresh(key, state, now).served()
            finally:
                self._lock.release()
        with self._lock:
            state = self._aliases.get(key)
            if state is None:  # not loaded by another thread while we waited
                state = self._cold(name, f"alias {key[1]}", lambda: self._load_alias(key))
            return state.served()

    def loaded(self) -> list[LoadedModel]:
        """What is in memory now (for readiness reports)."""
        return list(self._versions.values())

    # -- loading -------------------------------------------------------------------------------------------------
    def _cold(self, name: str, which: str, load: Callable[[], T]) -> T:
        """Load with nothing to fall back on: NotFoundError passes through, any other failure becomes
        ModelUnavailableError, and repeats within ``refresh_seconds`` fail fast without downloading again."""
        now = self._clock()
        until = self._failed_until.get((name, which))
        if until is not None and now < until:
            raise ModelUnavailableError(
                f"model {name!r} ({which}) failed to load moments ago; the next attempt is after the back-off", retry_after=until - now
            )
        try:
            loaded = load()
        except NotFoundError:
            raise
        except Exception as exc:
            self._failed_until[(name, which)] = now + self.refresh_seconds
            self._report(name, exc)
            raise ModelUnavailableError(
                f"model {name!r} ({which}) cannot be loaded right now ({type(exc).__name__}) and nothing loaded earlier can stand in",
                retry_after=self.refresh_seconds,
            ) from exc
        self._failed_until.pop((name, which), None)
        return loaded

    def _load_alias(self, key: tuple[str, str]) -> _AliasState:
        name, alias = key
        found = self._backends().registry.get_alias(name, alias)
        state = _AliasState(self._version(name, found.version), self._clock(), self.refresh_seconds)
        self._aliases[key] = state
        self._beside(name, state, found)
        return state

    def _refresh(self, key: tuple[str, str], state: _AliasState, now: float) -> _AliasState:
        """Re-check an alias with the budgeted backends; on any failure keep the last good model and back off."""
        state.checked_at = now
        try:
            found = self._checks().registry.get_alias(*key)
            if found.version != state.loaded.entry.version:
                state.loaded = self._version(key[0], found.version, self._reloads)
        except Exception as exc:
            self.failed_checks += 1
            state.failures += 1
            state.wait = backoff(max(self.refresh_seconds, 1.0), state.failures, max(self.backoff_max_seconds, self.refresh_seconds))
            self._report(key[0], exc)
        else:
            state.failures, state.wait = 0, self.refresh_seconds
            self._beside(key[0], state, found)
        return state

    def _beside(self, name: str, state: _AliasState, found: Alias) -> None:
        """Take the alias's canary and shadow as ``found`` names them, loading a version not yet in hand with the
        reload backends; one that fails to load is reported and left unloaded until the next check."""
        state.canary = self._one_beside(name, state.canary, found.canary)
        state.shadow = self._one_beside(name, state.shadow, found.shadow)

    def _one_beside(self, name: str, had: Beside[SpecT] | None, spec: SpecT | None) -> Beside[SpecT] | None:
        if spec is None:
            return None
        if had is not None and had.loaded is not None and had.loaded.entry.version == spec.version:
            return had if had.spec == spec else Beside(spec, had.loaded)
        try:
            return Beside(spec, self._version(name, spec.version, self._reloads))
        except Exception as exc:
            self._report(name, exc)
            return Beside(spec, None)

    def _version(self, name: str, version: int, backends_for: Callable[[], Backends] | None = None) -> LoadedModel:
        """A version from memory, or fetched, verified and opened with ``backends_for`` (default: the cold-load
        backends); the caller holds the lock."""
        loaded = self._versions.get((name, version))
        if loaded is not None:
            self._versions.move_to_end((name, version))
            return loaded
        backends = (backends_for or self._backends)()
        entry = backends.registry.describe(name, version)
        if entry.status != "registered":
            raise NotFoundError(f"model {name!r} version {version} is {entry.status}; only registered versions are served")
        try:
            model = self._loader(backends, entry)
        except NotFoundError as exc:  # the registry knows the version but its artifact is gone: not the caller's mistake
            raise ArtifactUnavailableError(f"model {name!r} version {version}: {exc}") from exc
        loaded = LoadedModel(entry, model)
        self._versions[(name, version)] = loaded
        pinned = {id(loaded)}
        for state in self._aliases.values():
            pinned.update(id(m) for m in (state.loaded, state.canary and state.canary.loaded, state.shadow and state.shadow.loaded) if m)
        for cached_key, cached in list(self._versions.items()):
            if len(self._versions) <= self._capacity:
                break
            if id(cached) not in pinned:
                del self._versions[cached_key]
        return loaded

    def _report(self, name: str, exc: BaseException) -> None:
        if self._on_failure is not None:
            self._on_failure(name, _describe_failure(exc))
