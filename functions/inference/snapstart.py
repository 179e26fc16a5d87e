"""Lambda SnapStart runtime hooks of the inference function (``inference.snap_start: true`` in the deployment config).

With SnapStart, Lambda initializes a published version once, snapshots the execution environment's memory and resumes
new environments from that snapshot. What the snapshot may hold, as chosen here (AWS's runtime-hook and uniqueness
guidance: no credentials, no open connections, no state that must differ between environments):

- before the snapshot (:func:`warm`): the served models (``MLOPS_MODELS``) loaded at their ``production`` alias (the
  ONNX bytes fetched, their sha256 verified, each ``InferenceSession`` built), then every AWS client dropped
  (``Endpoint.forget_clients``): their connection pools and the credentials they resolved stay out of the snapshot.
  A model that cannot load now (not registered yet, S3 or DynamoDB unreachable) is left to its first request, as
  without SnapStart; a warm-up never fails the publication.
- after each restore (:func:`restored`): the capture sampler's random generator is reseeded from the OS, because
  every environment restored from one snapshot would otherwise draw the same sequence; the clients are made anew on
  first use. The alias check needs nothing: it compares wall-clock times, and a snapshot restored later than
  ``MLOPS_REFRESH_SECONDS`` after it was taken re-reads the alias on its first request.

The hooks come from ``snapshot_restore_py``, which Lambda's Python runtimes include; elsewhere (locally, in tests)
:func:`register` finds no such module and registers nothing.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any, Protocol, cast

from functions.inference.telemetry import logger
from serverless_mlops.aws import SERVICE_ERRORS
from serverless_mlops.errors import MlopsError
from serverless_mlops.serving.endpoint import EndpointProvider

# what a warm-up may meet and leave to the model's first request: a model not registered or not promoted, S3 or
# DynamoDB refusing or unreachable
NOT_LOADED: tuple[type[Exception], ...] = (MlopsError, *SERVICE_ERRORS)


class Hooks(Protocol):
    """What ``snapshot_restore_py`` offers (Lambda's Python runtimes include it)."""

    def register_before_snapshot(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def register_after_restore(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


def warm(endpoint: EndpointProvider) -> list[str]:
    """Load each served model at its default alias, then drop every AWS client; returns the models loaded."""
    served = endpoint()
    loaded = []
    for name in sorted(served.settings.models):
        try:
            served.select(name)
        except NOT_LOADED as exc:
            logger.warning("model not loaded before the snapshot; its first request loads it", extra={"model": name, "reason": str(exc)})
        else:
            loaded.append(name)
    served.forget_clients()
    logger.info("warmed before the snapshot", extra={"models": loaded})
    return loaded


def restored(endpoint: EndpointProvider, *, seed: Callable[[], None] = random.seed) -> None:
    """After a restore: a fresh random state for capture sampling, and no client carried over."""
    seed()
    endpoint().forget_clients()


def register(endpoint: EndpointProvider, hooks: Hooks | None = None) -> bool:
    """Register :func:`warm` and :func:`restored` over ``endpoint`` (the handler's provider) with
    ``snapshot_restore_py`` (or ``hooks``, an object with the same two functions); False where the module does not
    exist (outside Lambda)."""
    if hooks is None:
        try:
            import snapshot_restore_py  # type: ignore[import-not-found]  # in Lambda's Python runtimes
        except ImportError:
            return False
        hooks = cast(Hooks, snapshot_restore_py)
    hooks.register_before_snapshot(functools.partial(warm, endpoint))
    hooks.register_after_restore(functools.partial(restored, endpoint))
    return True
