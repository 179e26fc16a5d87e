"""The inference endpoint: :class:`Endpoint`, the service the HTTP handler (``functions/inference/``) calls for every
answer, and :class:`Telemetry`, what it reports besides its answers.

:class:`Endpoint` picks the model (:mod:`serverless_mlops.serving.model_cache`), validates and predicts
(:mod:`serverless_mlops.serving.onnx_model`) and captures samples (:mod:`serverless_mlops.serving.capture_writer`). Two
request shapes are served: this project's own (``instances`` or ``inputs``) and the Open Inference Protocol (KServe V2)
tensors (:mod:`serverless_mlops.serving.v2_tensors`). Its settings are :mod:`serverless_mlops.serving.endpoint_settings`',
the request and response models :mod:`serverless_mlops.serving.api_models`', and turning an HTTP request into them
:mod:`serverless_mlops.serving.request_parsing`'.

Under faults: a warm endpoint never waits long on the registry or S3. The alias re-check and the capture flush run on
a request's path, so they use budgeted clients (one attempt, short timeouts: ``MLOPS_ALIAS_CHECK_BUDGET_MS``, default
200 ms, and ``MLOPS_CAPTURE_FLUSH_BUDGET_MS``, default 400 ms; a request whose alias check failed leaves a due flush
to the next request), loading the version an alias moved to has its own bigger budget
(``MLOPS_MODEL_RELOAD_BUDGET_MS``, default 2,000 ms), and after a failure each backs off, doubling up to
``MLOPS_BACKOFF_MAX_SECONDS`` (default 300 s), while the last good model serves. Metadata and readiness read the
registry with the alias-check budget. Loading with nothing to fall back on (cold) has the largest budget
(``MLOPS_MODEL_LOAD_BUDGET_MS``, default 4,000 ms per call), so a dead dependency is a 503 within the function's timeout.
Whatever cannot be answered because a dependency failed raises :class:`UnavailableError` or lets a botocore error
through (:data:`serverless_mlops.aws.SERVICE_ERRORS`); the handler answers both with 503 and ``Retry-After``.

During a release (:mod:`serverless_mlops.serving.rollout`): a request that names an alias (not a version) is routed
between the alias's version and its canary by a stable hash of its routing key (``x-routing-key``, else the request
id), may be scored again by the alias's shadow, and reports the guard metrics of each version that scored it
(:mod:`serverless_mlops.serving.guard_metrics`; only for the ``production`` alias, whose versions the release workflow
watches; the shadow's are summed and published every ``MLOPS_SHADOW_METRICS_SECONDS``,
:mod:`serverless_mlops.serving.guard_tally`). A request for a version by number is served by that version alone, with
no guard metrics.

Nothing here imports scikit-learn, scipy, pandas, pickle or joblib, and nothing reads the environment at import time.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from serverless_mlops.errors import InvalidInputError, NotFoundError
from serverless_mlops.serving.api_models import (
    VERSION_PROBLEM,
    VERSION_TEXT,
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReadiness,
    PredictRequest,
    PredictResponse,
    Readiness,
)
from serverless_mlops.serving.capture_writer import CaptureBuffer, CaptureSink, RowsKind, S3CaptureSink
from serverless_mlops.serving.endpoint_settings import MODEL_NAME, EndpointSettings
from serverless_mlops.serving.guard_tally import GuardTally
from serverless_mlops.serving.model_cache import LoadedModel, ModelCache
from serverless_mlops.serving.prediction_ids import prediction_ids
from serverless_mlops.serving.request_parsing import PayloadTooLargeError
from serverless_mlops.serving.rollout import Answer, Rows, answer
from serverless_mlops.serving.v2_tensors import metadata_tensors, output_tensors, requested_outputs, tensors_to_rows
from serverless_mlops.store.registry import PRODUCTION

if TYPE_CHECKING:
    from serverless_mlops.serving.guard_metrics import Role
    from serverless_mlops.serving.onnx_model import OnnxModel, Prediction
    from serverless_mlops.store.artifacts import ArtifactStore
    from serverless_mlops.store.lifecycle import Backends
    from serverless_mlops.store.registry import ModelVersion

log = logging.getLogger(__name__)

EndpointProvider = Callable[[], "Endpoint"]  # the handler's way to the endpoint, built on the first request
ALIAS_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
PLATFORM = "onnxruntime_onnx"


# -- telemetry -------------------------------------------------------------------------------------------------------
class Telemetry(Protocol):
    """What the endpoint reports besides its answers (the handler turns these into logs and metrics)."""

    def model_load_failed(self, model: str, reason: str) -> None: ...

    def capture_failed(self, what: str, rows: int, reason: str) -> None: ...

    def guard(self, model: str, version: int, role: Role, values: Mapping[str, float | list[float]], *, at: float | None = None) -> None:
        """One version's guard metrics for one request, or a shadow's summed over several (names:
        :mod:`serverless_mlops.serving.guard_metrics`; a list holds one value per request), at epoch ``at`` (default now)."""


class LogTelemetry:
    """The default: warnings through the standard logging module (guard metrics are for the function's EMF: none)."""

    def model_load_failed(self, model: str, reason: str) -> None:
        log.warning("model %s failed to load (%s); serving the last good model if there is one", model, reason)

    def capture_failed(self, what: str, rows: int, reason: str) -> None:
        log.warning("data capture %s: %d row(s) (%s)", what, rows, reason)

    def guard(self, model: str, version: int, role: Role, values: Mapping[str, float | list[float]], *, at: float | None = None) -> None:
        return None


def _unreported(model: str, version: int, role: Role, values: Mapping[str, float]) -> None:
    return None


# -- the service -----------------------------------------------------------------------------------------------------
class Endpoint:
    """Predictions for registered models, as the HTTP API serves them (one instance per execution environment).

    ``backends`` (the artifact store and registry, on the generous client) are created from the settings on first use
    unless given; ``budgeted(budget_ms)`` gives the backends for calls made on a request's path with a good answer in
    hand (default: built from the settings with :func:`serverless_mlops.aws.client`'s budget, or ``backends`` itself
    when those were given); ``clock`` (epoch seconds) drives the alias refresh and the capture buffer; ``sample`` draws
    in [0, 1) for capture sampling.
    """

    def __init__(
        self,
        settings: EndpointSettings,
        *,
        backends: Backends | None = None,
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
        sample: Callable[[], float] = random.random,
        capture_sink: CaptureSink | None = None,
        budgeted: Callable[[int], Backends] | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or LogTelemetry()
        self._backends = backends
        self._backends_given = backends is not None
        if budgeted is None and backends is not None:
            budgeted = lambda _budget_ms: backends  # noqa: E731 - the caller chose what to talk to
        self._budgeted_factory = budgeted
        self._budgeted: dict[int, Backends] = {}
        self._capture_sink = capture_sink
        self._sink_given = capture_sink is not None
        self._sample = sample
        self._capture_rate = settings.capture_sample
        self._allowed = settings.models
        self._max_rows = settings.max_rows
        self.models = ModelCache(
            self.backends,
            checks=lambda: self.budgeted(settings.alias_check_budget_ms),
            reloads=lambda: self.budgeted(settings.model_reload_budget_ms),
            refresh_seconds=settings.refresh_seconds,
            backoff_max_seconds=settings.backoff_max_seconds,
            clock=clock,
            on_failure=self.telemetry.model_load_failed,
        )
        # the shadow's guard metrics, summed and published every MLOPS_SHADOW_METRICS_SECONDS (issue 17)
        self.shadow_guards = GuardTally(self.telemetry.guard, seconds=settings.shadow_metrics_seconds, clock=clock)
        self.capture = CaptureBuffer(
            self._sink,
            max_rows=settings.capture_max_rows,
            max_seconds=settings.capture_max_seconds,
            clock=clock,
            on_failure=self.telemetry.capture_failed,
            backoff_max_seconds=settings.backoff_max_seconds,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Endpoint:
        return cls(EndpointSettings.from_env(environ), **kwargs)

    def backends(self) -> Backends:
        if self._backends is None:
            # a cold load is on a request's path too, with nothing to serve meanwhile: its own, larger budget
            # (MLOPS_MODEL_LOAD_BUDGET_MS) answers 503 while the function can still answer, where the patient client
            # (8 retries, 30 s reads) would hold the first request past the function's timeout
            self._backends = self.budgeted(self.settings.model_load_budget_ms)
            # the clients every warm request may need, now, on the cold path: a client pair costs ~9 ms in a warm
            # session (~100 ms in a thread's first), which a warm request, the very thing the budgets protect, should
            # not pay. The reload clients (MLOPS_MODEL_RELOAD_BUDGET_MS) are made when an alias first moves: that
            # request downloads a model anyway, and a cold start that never sees a promotion saves the ~9 ms
            self.budgeted(self.settings.alias_check_budget_ms)
            self._sink()
        return self._backends

    def budgeted(self, budget_ms: int) -> Backends:
        """The artifact store and registry on clients whose every call ends within about ``budget_ms`` (one set per
        budget, built with the cold-load backends)."""
        backends = self._budgeted.get(budget_ms)
        if backends is None:
            if self._budgeted_factory is not None:
                backends = self._budgeted_factory(budget_ms)
            else:
                from serverless_mlops.aws import client
                from serverless_mlops.store.artifacts import ArtifactStore
                from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
                from serverless_mlops.store.lifecycle import Backends

                aws = self.settings.aws
                backends = Backends(
                    store=ArtifactStore(aws.bucket, client("s3", aws, budget_ms=budget_ms), kms_key_id=aws.kms_key_id),
                    registry=DynamoDBRegistry(aws.table, client("dynamodb", aws, budget_ms=budget_ms)),
                )
            self._budgeted[budget_ms] = backends
        return backends

    def forget_clients(self) -> None:
        """Drop every AWS client this endpoint made (their connection pools and the credentials they resolved) and
        keep the models it loaded; the next call that needs a client makes a new one. Lambda SnapStart's
        before-snapshot hook (functions/inference/snapstart.py) calls this, so a snapshot holds no connection or
        credential. Clients a caller passed in (``backends``, ``capture_sink``) stay."""
        self._budgeted.clear()
        if not self._backends_given:
            self._backends = None
        if not self._sink_given:
            self._capture_sink = None

    def _sink(self) -> CaptureSink:
        if self._capture_sink is None:
            aws = self.settings.aws
            if self._budgeted_factory is not None:
                store = self.budgeted(self.settings.capture_flush_budget_ms).store
                self._capture_sink = S3CaptureSink(store.bucket, store.s3, kms_key_id=store.kms_key_id)
            else:
                from serverless_mlops.aws import client

                s3 = client("s3", aws, budget_ms=self.settings.capture_flush_budget_ms)
                self._capture_sink = S3CaptureSink(aws.bucket, s3, kms_key_id=aws.kms_key_id)
        return self._capture_sink

    # -- model selection ---------------------------------------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not MODEL_NAME.fullmatch(name):
            raise NotFoundError(f"model {name[:64]!r} is not registered (names are lower-case letters, digits and '-')")
        if self._allowed and name not in self._allowed:
            raise NotFoundError(f"model {name!r} is not served by this endpoint (see MLOPS_MODELS)")

    def select(self, name: str, *, version: int | None = None, alias: str | None = None) -> LoadedModel:
        """The loaded model for ``name`` at ``version`` or ``alias`` (default production)."""
        self._check_selection(name, version, alias)
        return self.models.get(name, version=version, alias=alias)

    def _check_selection(self, name: str, version: int | None, alias: str | None) -> None:
        self._check_name(name)
        if version is not None and alias is not None:
            problem = "give either ?version= or ?alias=, not both"
            raise InvalidInputError(problem, [{"row": None, "field": "alias", "problem": problem}], code="invalid_request")
        if alias is not None and not ALIAS_NAME.fullmatch(alias):
            problem = "aliases are 1-64 letters, digits, '-' or '_'"
            raise InvalidInputError(
                f"invalid alias: {problem}", [{"row": None, "field": "alias", "problem": problem}], code="invalid_request"
            )

    def _answer(
        self, name: str, run: Callable[[OnnxModel], Prediction], *, version: int | None, alias: str | None, key: str | None
    ) -> Answer:
        """Score a request: by ``version`` alone, or by what ``alias`` (default production) serves, routed by ``key``."""
        self._check_selection(name, version, alias)
        if version is not None:
            loaded = self.models.get(name, version=version)
            return Answer(loaded, run(loaded.model))
        served = self.models.serve(name, alias)
        if alias not in (None, PRODUCTION):
            return answer(served, run, key or uuid.uuid4().hex, _unreported)
        try:
            return answer(served, run, key or uuid.uuid4().hex, self.telemetry.guard, self.shadow_guards.add)
        finally:
            self.shadow_guards.maybe_flush()  # the shadow's sums, if the oldest is due

    def _check_rows(self, rows: int) -> None:
        if rows > self._max_rows:
            problem = f"{rows} rows; this endpoint takes at most {self._max_rows} per request (MLOPS_MAX_ROWS)"
            raise PayloadTooLargeError(
                f"too many rows: {problem}", [{"row": None, "field": None, "problem": problem}], code="too_many_rows"
            )

    # -- predictions -------------------------------------------------------------------------------------------------
    def predict(
        self,
        name: str,
        request: PredictRequest,
        *,
        version: int | None = None,
        alias: str | None = None,
        request_id: str | None = None,
        routing_key: str | None = None,
    ) -> PredictResponse:
        """``POST /v1/models/{name}/predict`` (``routing_key``: the caller's ``x-routing-key``, else ``request_id``)."""
        kind: RowsKind
        data: list[Any]
        if request.instances is not None:
            kind, data = "records", request.instances
        else:
            kind, data = "rows", request.inputs or []
        self._check_rows(len(data))
        ids = prediction_ids(request.ids, len(data), request_id)
        failed = self.models.failed_checks
        scored = self._answer(name, Rows(kind, data), version=version, alias=alias, key=routing_key or request_id)
        result = scored.result
        self._captured(scored, request_id, kind, data, ids, flush=self.models.failed_checks == failed)
        return PredictResponse.model_construct(
            model=name, version=scored.loaded.entry.version, predictions=result.predictions, probabilities=result.probabilities, ids=ids
        )

    def infer(
        self, name: str, request: InferRequest, *, version: str | None = None, request_id: str | None = None, routing_key: str | None = None
    ) -> InferResponse:
        """``POST /v2/models/{name}[/versions/{version}]/infer`` (Open Inference Protocol; without a version, routed
        like v1's alias requests by ``routing_key``, else the request's id)."""
        failed = self.models.failed_checks
        number = self._path_version(name, version)
        signature = self.select(name, version=number).entry.signature
        kind, data, rows = tensors_to_rows(signature, request.inputs)
        self._check_rows(rows)
        ids = prediction_ids(_given_ids(request.parameters), rows, request_id, field="parameters.ids")
        wanted = requested_outputs(signature, request.outputs)
        scored = self._answer(name, Rows(kind, data), version=number, alias=None, key=routing_key or request.id or request_id)
        self._captured(scored, request.id or request_id, kind, data, ids, flush=self.models.failed_checks == failed)
        return InferResponse.model_construct(
            model_name=name,
            model_version=str(scored.loaded.entry.version),
            id=request.id,
            parameters={"ids": ids},
            outputs=[tensor for tensor in output_tensors(scored.loaded.entry.signature, scored.result) if tensor.name in wanted],
        )

    def _captured(
        self, scored: Answer, request_id: str | None, kind: RowsKind, data: Sequence[Any], ids: Sequence[str], *, flush: bool
    ) -> None:
        """Buffer a sampled request; flush if due, unless ``flush`` is false (this request's alias check failed: it has
        spent its budget on a failing dependency, and the next request, which the check's back-off spares, flushes)."""
        rate = self._capture_rate
        if rate <= 0:
            return
        if rate >= 1 or self._sample() < rate:
            entry, shadow = scored.loaded.entry, scored.shadow
            self.capture.add(
                entry.model,
                entry.version,
                request_id,
                entry.signature.feature_names,
                kind,
                data,
                scored.result.predictions,
                ids=ids,
                shadow=(shadow.version, shadow.predictions) if shadow is not None else None,
                probabilities=scored.result.probabilities,
            )
        if flush:
            self.capture.maybe_flush()

    def flush(self) -> list[str]:
        """Write the capture buffer now (a local server calls this when it stops), and publish the shadow's pending
        guard metrics; the keys written. Not on a
        request's path, so with the patient client: a budget that a loaded machine's S3 (or moto) overruns would leave
        the rows unwritten with no later request to retry them, or written twice when the timed-out write landed."""
        self.shadow_guards.flush()
        if self._budgeted_factory is not None or self._sink_given:  # the caller chose what to talk to
            return self.capture.flush()
        from serverless_mlops.aws import client

        aws = self.settings.aws
        return self.capture.flush(S3CaptureSink(aws.bucket, client("s3", aws), kms_key_id=aws.kms_key_id))

    # -- ground truth ------------------------------------------------------------------------------------------------
    def ground_truth_target(self, name: str) -> tuple[ModelVersion, ArtifactStore]:
        """For ``POST /v1/models/{name}/labels``: the production version of a model this endpoint serves (its task and
        classes validate the labels; NotFoundError when there is none) and the artifact store to write them to, both on
        clients budgeted by ``MLOPS_LABELS_BUDGET_MS`` (default 1,000 ms a call). Loads no model."""
        self._check_name(name)
        backends = self.budgeted(self.settings.labels_budget_ms)
        return backends.registry.resolve(name, PRODUCTION), backends.store

    # -- metadata and health -----------------------------------------------------------------------------------------
    @staticmethod
    def _path_version(name: str, version: str | None) -> int | None:
        if version is None:
            return None
        if not VERSION_TEXT.fullmatch(version):
            problem = f"{VERSION_PROBLEM}; got {version[:20]!r}"
            raise InvalidInputError(f"path parameter version: {problem}", [{"row": None, "field": "version", "problem": problem}])
        return int(version)

    def metadata(self, name: str, *, version: str | None = None) -> ModelMetadata:
        """``GET /v2/models/{name}[/versions/{version}]``: inputs, outputs and the versions that can be requested."""
        loaded = self.select(name, version=self._path_version(name, version))
        versions: list[str] = []
        token: str | None = None
        registry = self.budgeted(self.settings.alias_check_budget_ms).registry
        while True:
            page = registry.list_versions(name, page_size=100, next_token=token)
            versions.extend(str(v.version) for v in page.items if v.status == "registered")
            if not (token := page.next_token):
                break
        inputs, outputs = metadata_tensors(loaded.entry.signature)
        return ModelMetadata(name=name, versions=versions, platform=PLATFORM, inputs=inputs, outputs=outputs)

    def model_ready(self, name: str, *, version: str | None = None) -> ModelReadiness:
        """Loads the model if need be: NotFoundError for an unknown one, ModelUnavailableError if it cannot load."""
        self.select(name, version=self._path_version(name, version))
        return ModelReadiness(name=name, ready=True)

    def ready(self) -> Readiness:
        """Ready when every allowed model (MLOPS_MODELS) loads, or, with no allow-list, when the registry answers."""
        try:
            if self._allowed:
                for name in sorted(self._allowed):
                    self.models.get(name)
            else:
                self.budgeted(self.settings.alias_check_budget_ms).registry.list_models(page_size=1)
        except Exception as exc:
            log.warning("not ready: %s: %s", type(exc).__name__, exc)
            return Readiness(ready=False)
        return Readiness(ready=True)


def _given_ids(parameters: Mapping[str, Any] | None) -> Sequence[Any] | None:
    """An Open Inference Protocol request's own prediction ids (``parameters.ids``), if it gives any."""
    if not parameters or parameters.get("ids") is None:
        return None
    ids = parameters["ids"]
    if not isinstance(ids, list):
        problem = "parameters.ids is a list of strings, one per row"
        raise InvalidInputError(f"invalid ids: {problem}", [{"row": None, "field": "parameters.ids", "problem": problem}])
    return ids
