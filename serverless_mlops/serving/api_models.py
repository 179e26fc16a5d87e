"""The HTTP API's request and response models: what ``POST /v1/models/{name}/predict`` and the Open Inference
Protocol (KServe V2) routes take and give, and the one error shape. The handler validates requests with them and
generates the OpenAPI document from them, so a field's description here is the document's.

Payload fields carry ``repr=False``: powertools logs route arguments at DEBUG, and payload values must never reach a
log. Turning these models into rows for the ONNX model is :mod:`serverless_mlops.serving.v2_tensors`' (V2) and
:class:`serverless_mlops.serving.endpoint.Endpoint`'s (v1); parsing the HTTP request into them is
:mod:`serverless_mlops.serving.request_parsing`'s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator


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
    ids: list[str] | None = Field(
        default=None,
        repr=False,
        description=(
            "optional prediction ids, one per row in the rows' order: non-empty, at most 128 printable characters, "
            "distinct within the request (default: '{request id}-{row index}'); report labels under them later"
        ),
    )

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
    ids: list[str] = Field(
        default_factory=list,
        description="each row's prediction id (the request's ids, or '{request id}-{row index}'): keep it to report the label",
    )


# One label row as the labels route documents it (the route validates rows itself, naming row and field, against the
# model's task and classes: serverless_mlops.quality.label_rows.parse_labels)
LABEL_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 128, "description": "the prediction id the predict answer returned"},
        "label": {
            "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "number"}],
            "description": 'the true class (one of the model\'s classes: 1 or "1" names class 1) or, for a regressor, the true value',
        },
        "event_time": {"type": "string", "description": "optional: when the labelled event happened, ISO 8601 (no offset: UTC)"},
    },
    "required": ["id", "label"],
    "additionalProperties": False,
}


class LabelsRequest(BaseModel):
    """Ground truth for earlier predictions, named by their ids."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"labels": [{"id": "order-1842", "label": 1, "event_time": "2026-12-07T10:15:00Z"}]}]},
    )

    labels: list[Annotated[dict[str, Any], WithJsonSchema(LABEL_ROW_SCHEMA)]] = Field(
        min_length=1, repr=False, description="1 to 1,000 labels; when an id is labelled again, the last label wins"
    )


class LabelsResponse(BaseModel):
    model: str
    version: int = Field(description="the production version whose task and classes validated the labels")
    received: int = Field(description="labels stored")
    distinct_ids: int = Field(description="distinct prediction ids among them")


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
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="``ids``: optional prediction ids, one per row (as v1's ``ids``); other parameters are ignored",
    )
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
    parameters: dict[str, Any] | None = Field(default=None, description="``ids``: each row's prediction id (see v1's ``ids``)")
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
