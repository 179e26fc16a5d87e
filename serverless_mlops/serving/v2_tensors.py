"""Open Inference Protocol (KServe V2) tensors ↔ the rows and columns the ONNX model takes.

A V2 request carries either one tensor per feature (``[N]`` or ``[N, 1]``, named after the feature: columns) or a
single ``[N, F]`` tensor with each row's values in signature order (rows); values come flat or nested, row-major.
:func:`tensors_to_rows` checks shapes, datatypes and names against the model's signature and raises
:class:`~serverless_mlops.errors.InvalidInputError` naming each tensor at fault; :func:`output_tensors` and
:func:`metadata_tensors` describe predictions and the model's inputs and outputs as tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.serving.api_models import InferInputTensor, InferOutputTensor, InferRequestedOutput, MetadataTensor

if TYPE_CHECKING:
    from serverless_mlops.model.signature import Signature
    from serverless_mlops.serving.capture_writer import RowsKind
    from serverless_mlops.serving.onnx_model import Prediction

NUMERIC_DATATYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"})


def metadata_tensors(signature: Signature) -> tuple[list[MetadataTensor], list[MetadataTensor]]:
    """The model's inputs (one tensor per feature) and outputs, as ``GET /v2/models/{name}`` describes them."""
    inputs = [MetadataTensor(name=f.name, datatype="BYTES" if f.kind == "categorical" else "FP32", shape=[-1]) for f in signature.features]
    outputs = [MetadataTensor(name="predictions", datatype=_label_datatype(signature), shape=[-1])]
    if signature.is_classification and signature.probabilities_output:
        outputs.append(MetadataTensor(name="probabilities", datatype="FP64", shape=[-1, len(signature.classes or [])]))
    return inputs, outputs


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


def tensors_to_rows(signature: Signature, inputs: Sequence[InferInputTensor]) -> tuple[RowsKind, list[Any], int]:
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


def requested_outputs(signature: Signature, outputs: Sequence[InferRequestedOutput] | None) -> set[str]:
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


def output_tensors(signature: Signature, result: Prediction) -> list[InferOutputTensor]:
    rows = len(result.predictions)
    tensors = [
        InferOutputTensor.model_construct(name="predictions", shape=[rows], datatype=_label_datatype(signature), data=result.predictions)
    ]
    if result.probabilities is not None:
        classes = len(result.probabilities[0]) if result.probabilities else 0
        flat = [p for row in result.probabilities for p in row]
        tensors.append(InferOutputTensor.model_construct(name="probabilities", shape=[rows, classes], datatype="FP64", data=flat))
    return tensors
