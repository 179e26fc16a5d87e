"""The inference endpoint's domain: its settings, request and response models, and the predict service.

The HTTP handler (``functions/inference/app.py``) parses events and shapes answers; everything it answers comes
from :class:`Endpoint`, which picks the model (:mod:`serverless_mlops.serving.model_cache`), validates and predicts
(:mod:`serverless_mlops.serving.onnx_model`) and captures samples (:mod:`serverless_mlops.serving.capture_writer`). Two request shapes
are served: this project's own (``instances`` or ``inputs``) and the Open Inference Protocol (KServe V2) tensors.

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

Nothing here imports scikit-learn, scipy, pandas, pickle or joblib, and nothing reads the environment at import time.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from serverless_mlops.errors import InvalidInputError, MlopsError, NotFoundError
from serverless_mlops.serving.capture_writer import CaptureBuffer, CaptureSink, RowsKind, S3CaptureSink
from serverless_mlops.serving.model_cache import LoadedModel, ModelCache, ModelUnavailableError, UnavailableError
from serverless_mlops.settings import Settings

if TYPE_CHECKING:
    from serverless_mlops.model.signature import Signature
    from serverless_mlops.serving.onnx_model import Prediction
    from serverless_mlops.store.lifecycle import Backends

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
ALIAS_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
PLATFORM = "onnxruntime_onnx"
NUMERIC_DATATYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"})

__all__ = [
    "ConfigurationError",
    "Endpoint",
    "EndpointSettings",
    "ErrorResponse",
    "InferRequest",
    "InferResponse",
    "ModelMetadata",
    "ModelUnavailableError",
    "PayloadTooLargeError",
    "PredictQuery",
    "PredictRequest",
    "PredictResponse",
    "UnavailableError",
]


# -- errors ----------------------------------------------------------------------------------------------------------
class PayloadTooLargeError(InvalidInputError):
    """The request is bigger than this endpoint accepts (413): too many rows, or too many bytes."""


class ConfigurationError(MlopsError):
    """The function's environment is invalid; the message names each variable and what is wrong with it."""


# -- settings --------------------------------------------------------------------------------------------------------
class EndpointSettings(BaseModel):
    """The inference function's environment, validated once per cold start (see ``from_env``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    aws: Settings = Field(default_factory=Settings)
    max_rows: int = Field(default=1000, ge=1, alias="MLOPS_MAX_ROWS")
    max_body_bytes: int = Field(default=5_000_000, ge=1024, le=6 * 1024 * 1024, alias="MLOPS_MAX_BODY_BYTES")
    refresh_seconds: float = Field(default=30.0, ge=0, alias="MLOPS_REFRESH_SECONDS")
    capture_sample: float = Field(default=1.0, ge=0, le=1, alias="MLOPS_CAPTURE_SAMPLE")
    capture_max_rows: int = Field(default=1000, ge=1, alias="MLOPS_CAPTURE_MAX_ROWS")
    capture_max_seconds: float = Field(default=60.0, gt=0, alias="MLOPS_CAPTURE_MAX_SECONDS")
    models: frozenset[str] = Field(default=frozenset(), alias="MLOPS_MODELS")
    alias_check_budget_ms: int = Field(default=200, ge=10, le=5000, alias="MLOPS_ALIAS_CHECK_BUDGET_MS")
    capture_flush_budget_ms: int = Field(default=400, ge=10, le=5000, alias="MLOPS_CAPTURE_FLUSH_BUDGET_MS")
    model_reload_budget_ms: int = Field(default=2000, ge=100, le=30_000, alias="MLOPS_MODEL_RELOAD_BUDGET_MS")
    model_load_budget_ms: int = Field(default=4000, ge=100, le=30_000, alias="MLOPS_MODEL_LOAD_BUDGET_MS")
    backoff_max_seconds: float = Field(default=300.0, ge=1, le=3600, alias="MLOPS_BACKOFF_MAX_SECONDS")

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = {part.strip() for part in value.split(",") if part.strip()}
            bad = sorted(name for name in names if not MODEL_NAME.fullmatch(name))
            if bad:
                raise ValueError(f"not model names: {', '.join(bad)} (lower-case letters, digits and '-')")
            return frozenset(names)
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EndpointSettings:
        env = os.environ if environ is None else environ
        names = [field.alias for field in cls.model_fields.values() if field.alias]
        values: dict[str, Any] = {name: env[name] for name in names if env.get(name, "").strip()}
        try:
            return cls.model_validate({"aws": Settings.from_env(env), **values})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()
            )
            raise ConfigurationError(f"invalid inference settings: {problems}") from exc


# -- API models ------------------------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    row: int | None = Field(default=None, description="0-based row of the request, when the problem is in one row")
    field: str | None = Field(default=None, description="the feature or request field at fault")
    problem: str = Field(description="what is wrong (the value itself is never echoed)")


class ErrorResponse(BaseModel):
    error: str = Field(description="a stable code, e.g. invalid_input, too_many_rows, not_found, model_unavailable")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class PredictRequest(BaseModel):
    """Exactly one of ``instances`` (objects keyed by feature name) or ``inputs`` (arrays in signature order)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"instances": [{"age": 52.0, "sex": "a", "bmi": 27.1}]}, {"inputs": [[52.0, "a", 27.1]]}]},
    )

    # repr=False: powertools logs route arguments at DEBUG; payload values must never reach a log
    instances: list[dict[str, Any]] | None = Field(default=None, repr=False, description="rows as objects keyed by feature name")
    inputs: list[list[Any]] | None = Field(default=None, repr=False, description="rows as arrays of values in signature order")

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.instances is None) == (self.inputs is None):
            raise ValueError("give exactly one of 'instances' (objects keyed by feature name) or 'inputs' (arrays in signature order)")
        return self


# A version as a client writes it: ASCII digits, no sign, spaces, padding or fraction ("²".isdigit() and int("١") == 1
# in Python, and pydantic's lax int takes "+1", " 1" and "1.0": each once reached the model, or a 500)
VERSION_TEXT = re.compile(r"[1-9][0-9]{0,8}")
VERSION_PROBLEM = "a version is a whole number 1, 2, ... written in ASCII digits, with no sign, spaces, leading zeros or fraction"


def _version_text(value: Any) -> Any:
    if isinstance(value, str) and not VERSION_TEXT.fullmatch(value):
        raise ValueError(VERSION_PROBLEM)
    return value


class PredictQuery(BaseModel):
    """``POST /v1/models/{name}/predict``'s query parameters: the handler validates them with this model and the
    OpenAPI document declares them from its schema."""

    model_config = ConfigDict(frozen=True)

    version: Annotated[int, Field(ge=1), BeforeValidator(_version_text)] | None = Field(
        default=None, description="serve this version (default: the version the alias points at)"
    )
    alias: str | None = Field(default=None, max_length=64, description="serve the version this alias points at (default: production)")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Any] = Field(description="labels for classifiers, values for regressors")
    probabilities: list[list[float]] | None = Field(default=None, description="per-class probabilities (classifiers only)")


Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]


class InferInputTensor(BaseModel):
    name: str = Field(max_length=256)
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=2)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(repr=False, description="values in row-major order, flat or nested")


class InferRequestedOutput(BaseModel):
    name: str = Field(max_length=256)
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """Open Inference Protocol (KServe V2): one tensor per feature (``[N]`` or ``[N, 1]``, named after the feature),
    or a single ``[N, F]`` tensor with the values of each row in signature order."""

    id: str | None = Field(default=None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[InferInputTensor] = Field(min_length=1, repr=False)
    outputs: list[InferRequestedOutput] | None = None


class InferOutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutputTensor]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


# -- validation errors from the request parser -----------------------------------------------------------------------
def details_from_validation(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    """Pydantic-style errors (``loc``, ``type``, ``msg``) → (code, message, details), never echoing input values."""
    details: list[dict[str, Any]] = []
    code = "invalid_request"
    for err in errors[:50]:
        loc = list(err.get("loc", ()))
        kind = err.get("type", "")
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        source = loc[0] if loc else None
        path = loc[1:] if source in ("body", "query", "path", "header") else loc
        if kind == "json_invalid":
            code = "malformed_json"
            reason = (err.get("ctx") or {}).get("error", "not JSON")
            position = f" at character {path[0]}" if path and isinstance(path[0], int) else ""
            details.append({"row": None, "field": None, "problem": f"the body is not valid JSON{position}: {reason}"})
            continue
        row: int | None = None
        if len(path) >= 2 and path[0] in ("instances", "inputs") and isinstance(path[1], int):
            row = path[1]
            field: str | None = ".".join(str(p) for p in [path[0], *path[2:]])
        else:
            field = ".".join(str(p) for p in path) or (str(source) if source else None)
        if kind == "missing":
            message = "the request body is missing" if source == "body" and not path else "required field is missing"
        elif kind == "extra_forbidden":
            message = "unknown field"
        details.append({"row": row, "field": field, "problem": message})
    summary = "the request body is not valid JSON" if code == "malformed_json" else f"{len(details)} problem(s) in the request"
    return code, summary, details


# -- telemetry -------------------------------------------------------------------------------------------------------
class Telemetry(Protocol):
    """What the endpoint reports besides its answers (the handler turns these into logs and metrics)."""

    def model_load_failed(self, model: str, reason: str) -> None: ...

    def capture_failed(self, what: str, rows: int, reason: str) -> None: ...


class LogTelemetry:
    """The default: warnings through the standard logging module."""

    def model_load_failed(self, model: str, reason: str) -> None:
        log.warning("model %s failed to load (%s); serving the last good model if there is one", model, reason)

    def capture_failed(self, what: str, rows: int, reason: str) -> None:
        log.warning("data capture %s: %d row(s) (%s)", what, rows, reason)


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
            # the budgeted clients too, now, on the cold path: a client costs ~6 ms in a warm session (~120 ms in a
            # thread's first), which a warm request, the very thing the budgets protect, should never pay
            self.budgeted(self.settings.alias_check_budget_ms)
            self.budgeted(self.settings.model_reload_budget_ms)
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
                from serverless_mlops.store.lifecycle import Backends
                from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry

                aws = self.settings.aws
                backends = Backends(
                    store=ArtifactStore(aws.bucket, client("s3", aws, budget_ms=budget_ms), kms_key_id=aws.kms_key_id),
                    registry=DynamoDBRegistry(aws.table, client("dynamodb", aws, budget_ms=budget_ms)),
                )
            self._budgeted[budget_ms] = backends
        return backends

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
        self._check_name(name)
        if version is not None and alias is not None:
            problem = "give either ?version= or ?alias=, not both"
            raise InvalidInputError(problem, [{"row": None, "field": "alias", "problem": problem}], code="invalid_request")
        if alias is not None and not ALIAS_NAME.fullmatch(alias):
            problem = "aliases are 1-64 letters, digits, '-' or '_'"
            raise InvalidInputError(
                f"invalid alias: {problem}", [{"row": None, "field": "alias", "problem": problem}], code="invalid_request"
            )
        return self.models.get(name, version=version, alias=alias)

    def _check_rows(self, rows: int) -> None:
        if rows > self._max_rows:
            problem = f"{rows} rows; this endpoint takes at most {self._max_rows} per request (MLOPS_MAX_ROWS)"
            raise PayloadTooLargeError(
                f"too many rows: {problem}", [{"row": None, "field": None, "problem": problem}], code="too_many_rows"
            )

    # -- predictions -------------------------------------------------------------------------------------------------
    def predict(
        self, name: str, request: PredictRequest, *, version: int | None = None, alias: str | None = None, request_id: str | None = None
    ) -> PredictResponse:
        """``POST /v1/models/{name}/predict``."""
        kind: RowsKind
        data: list[Any]
        if request.instances is not None:
            kind, data = "records", request.instances
        else:
            kind, data = "rows", request.inputs or []
        self._check_rows(len(data))
        failed = self.models.failed_checks
        loaded = self.select(name, version=version, alias=alias)
        result = loaded.model.predict_records(data) if kind == "records" else loaded.model.predict_rows(data)
        self._captured(loaded, request_id, kind, data, result, flush=self.models.failed_checks == failed)
        return PredictResponse.model_construct(
            model=name, version=loaded.entry.version, predictions=result.predictions, probabilities=result.probabilities
        )

    def infer(self, name: str, request: InferRequest, *, version: str | None = None, request_id: str | None = None) -> InferResponse:
        """``POST /v2/models/{name}[/versions/{version}]/infer`` (Open Inference Protocol)."""
        failed = self.models.failed_checks
        loaded = self.select(name, version=self._path_version(name, version))
        signature = loaded.entry.signature
        kind, data, rows = _tensors_to_rows(signature, request.inputs)
        self._check_rows(rows)
        wanted = _requested_outputs(signature, request.outputs)
        result = loaded.model.predict_columns(data) if kind == "columns" else loaded.model.predict_rows(data)
        self._captured(loaded, request.id or request_id, kind, data, result, flush=self.models.failed_checks == failed)
        return InferResponse.model_construct(
            model_name=name,
            model_version=str(loaded.entry.version),
            id=request.id,
            outputs=[tensor for tensor in _output_tensors(signature, result) if tensor.name in wanted],
        )

    def _captured(
        self, loaded: LoadedModel, request_id: str | None, kind: RowsKind, data: Sequence[Any], result: Prediction, *, flush: bool
    ) -> None:
        """Buffer a sampled request; flush if due, unless ``flush`` is false (this request's alias check failed: it has
        spent its budget on a failing dependency, and the next request, which the check's back-off spares, flushes)."""
        rate = self._capture_rate
        if rate <= 0:
            return
        if rate >= 1 or self._sample() < rate:
            entry = loaded.entry
            self.capture.add(entry.model, entry.version, request_id, entry.signature.feature_names, kind, data, result.predictions)
        if flush:
            self.capture.maybe_flush()

    def flush(self) -> list[str]:
        """Write the capture buffer now (a local server calls this when it stops); the keys written. Not on a
        request's path, so with the patient client: a budget that a loaded machine's S3 (or moto) overruns would leave
        the rows unwritten with no later request to retry them, or written twice when the timed-out write landed."""
        if self._budgeted_factory is not None or self._sink_given:  # the caller chose what to talk to
            return self.capture.flush()
        from serverless_mlops.aws import client

        aws = self.settings.aws
        return self.capture.flush(S3CaptureSink(aws.bucket, client("s3", aws), kms_key_id=aws.kms_key_id))

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
        signature = loaded.entry.signature
        versions: list[str] = []
        token: str | None = None
        registry = self.budgeted(self.settings.alias_check_budget_ms).registry
        while True:
            page = registry.list_versions(name, page_size=100, next_token=token)
            versions.extend(str(v.version) for v in page.items if v.status == "registered")
            if not (token := page.next_token):
                break
        inputs = [
            MetadataTensor(name=f.name, datatype="BYTES" if f.kind == "categorical" else "FP32", shape=[-1]) for f in signature.features
        ]
        outputs = [MetadataTensor(name="predictions", datatype=_label_datatype(signature), shape=[-1])]
        if signature.is_classification and signature.probabilities_output:
            outputs.append(MetadataTensor(name="probabilities", datatype="FP64", shape=[-1, len(signature.classes or [])]))
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


# -- Open Inference Protocol tensors ---------------------------------------------------------------------------------
def _label_datatype(signature: Signature) -> str:
    if not signature.is_classification:
        return "FP64"
    classes = signature.classes or []
    return "INT64" if classes and all(isinstance(c, int) for c in classes) else "BYTES"


def _flat(data: list[Any]) -> list[Any]:
    """Row-major values of a tensor given flat or nested (both are allowed by the protocol)."""
    if not any(isinstance(value, list) for value in data):
        return data
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _product(shape: Sequence[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def _tensors_to_rows(signature: Signature, inputs: Sequence[InferInputTensor]) -> tuple[RowsKind, list[Any], int]:
    """(kind, data, rows): one tensor per feature → columns; a single [N, F] tensor → rows in signature order."""
    names = {f.name for f in signature.features}
    if len(inputs) == 1 and inputs[0].name not in names:
        return _single_tensor(signature, inputs[0])
    return _feature_tensors(signature, inputs, names)


def _single_tensor(signature: Signature, tensor: InferInputTensor) -> tuple[RowsKind, list[Any], int]:
    width = len(signature.features)
    values = _flat(tensor.data)
    problem: tuple[str, str] | None = None
    if len(tensor.shape) != 2 or tensor.shape[1] != width:
        problem = ("inputs[0].shape", f"a single input tensor must have shape [N, {width}]")
    elif _product(tensor.shape) != len(values):
        problem = ("inputs[0].data", f"shape holds {_product(tensor.shape)} values, data has {len(values)}")
    elif tensor.datatype != "BYTES" and any(f.kind == "categorical" for f in signature.features):
        problem = ("inputs[0].datatype", "this model has categorical features: send BYTES, or one tensor per feature")
    elif tensor.datatype == "BOOL":
        problem = ("inputs[0].datatype", "BOOL does not fit numeric features")
    if problem is not None:
        raise InvalidInputError("the input tensor does not fit this model", [{"row": None, "field": problem[0], "problem": problem[1]}])
    rows = tensor.shape[0]
    return "rows", [values[i * width : (i + 1) * width] for i in range(rows)], rows


def _feature_tensors(signature: Signature, inputs: Sequence[InferInputTensor], names: set[str]) -> tuple[RowsKind, list[Any], int]:
    features = signature.features
    details: list[dict[str, Any]] = []
    by_name: dict[str, InferInputTensor] = {}
    for index, given in enumerate(inputs):
        if given.name not in names:
            hint = f"not an input of this model: send one tensor per feature (GET /v2/models/{{name}}) or one [N, {len(features)}] tensor"
            details.append({"row": None, "field": f"inputs[{index}].name", "problem": hint})
        elif given.name in by_name:
            details.append({"row": None, "field": given.name, "problem": "given more than once"})
        else:
            by_name[given.name] = given
    columns: list[list[Any]] = []
    rows: int | None = None
    for feature in features:
        tensor = by_name.get(feature.name)
        if tensor is None:
            details.append({"row": None, "field": feature.name, "problem": "missing"})
            continue
        values = _flat(tensor.data)
        if (problem := _column_problem(feature.kind, tensor, len(values), rows)) is not None:
            details.append({"row": None, "field": feature.name, "problem": problem})
        rows = tensor.shape[0] if rows is None else rows
        columns.append(values)
    if details:
        raise InvalidInputError(f"{len(details)} problem(s) with the input tensors", details[:50])
    return "columns", columns, rows or 0


def _column_problem(kind: str, tensor: InferInputTensor, size: int, rows: int | None) -> str | None:
    if not (tensor.datatype == "BYTES" if kind == "categorical" else tensor.datatype in NUMERIC_DATATYPES):
        expected = "BYTES" if kind == "categorical" else "FP32, FP64 or an integer type"
        return f"datatype {tensor.datatype} does not fit a {kind} feature; use {expected}"
    if len(tensor.shape) == 2 and tensor.shape[1] != 1:
        return "shape must be [N] or [N, 1]"
    if _product(tensor.shape) != size:
        return f"shape holds {_product(tensor.shape)} values, data has {size}"
    if rows is not None and tensor.shape[0] != rows:
        return f"{tensor.shape[0]} rows, other inputs have {rows}"
    return None


def _requested_outputs(signature: Signature, outputs: Sequence[InferRequestedOutput] | None) -> set[str]:
    available = {"predictions", "probabilities"} if signature.is_classification and signature.probabilities_output else {"predictions"}
    if outputs is None:
        return available
    unknown = [index for index, output in enumerate(outputs) if output.name not in available]
    if unknown:
        details = [
            {"row": None, "field": f"outputs[{i}].name", "problem": f"not an output; expected one of {sorted(available)}"} for i in unknown
        ]
        raise InvalidInputError("unknown output requested", details)
    return {output.name for output in outputs}


def _output_tensors(signature: Signature, result: Prediction) -> list[InferOutputTensor]:
    rows = len(result.predictions)
    tensors = [
        InferOutputTensor.model_construct(name="predictions", shape=[rows], datatype=_label_datatype(signature), data=result.predictions)
    ]
    if result.probabilities is not None:
        classes = len(result.probabilities[0]) if result.probabilities else 0
        flat = [p for row in result.probabilities for p in row]
        tensors.append(InferOutputTensor.model_construct(name="probabilities", shape=[rows, classes], datatype="FP64", data=flat))
    return tensors
