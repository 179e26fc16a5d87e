"""The inference core: validate inputs against a model's signature and run its ONNX graph.

Used by the inference Lambda and by ``mlops predict``. It imports onnxruntime, numpy and pydantic only: no
scikit-learn, scipy, pickle or joblib, and the only model format it loads is ONNX.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.signature import FeatureSignature, Signature

MAX_DETAILS = 50


@dataclass(frozen=True)
class Prediction:
    predictions: list[Any]
    probabilities: list[list[float]] | None


def _problem(feature: FeatureSignature, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``feature``, or None if it is. Never echoes the value itself."""
    if feature.kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {_type_name(value)}"
        if not math.isfinite(value):
            return "expected a finite number (NaN and infinity are refused)"
        if feature.range is not None and not (feature.range[0] <= value <= feature.range[1]):
            return f"outside the allowed range [{feature.range[0]}, {feature.range[1]}]"
        return None
    if not isinstance(value, str):
        return f"expected a string, got {_type_name(value)}"
    if feature.categories is not None and not feature.allow_unknown and value not in feature.categories:
        return f"unknown category; expected one of {len(feature.categories)} training categories"
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


class OnnxModel:
    """An ONNX graph with its signature; ``predict_*`` validate first and raise :class:`InvalidInputError`."""

    def __init__(self, signature: Signature, onnx_bytes: bytes, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.signature = signature
        self.session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        self._features = signature.features
        self._category_sets = {f.name: frozenset(f.categories) for f in signature.features if f.categories is not None}
        outputs = [signature.label_output, signature.probabilities_output] if signature.is_classification else [signature.value_output]
        self._outputs = [o for o in outputs if o is not None]

    # -- validation -------------------------------------------------------------------------------------------
    def _columns_from_records(self, records: Sequence[Any]) -> list[list[Any]]:
        details: list[dict[str, Any]] = []
        columns: list[list[Any]] = [[] for _ in self._features]
        for row, record in enumerate(records):
            if not isinstance(record, Mapping):
                details.append({"row": row, "field": None, "problem": f"expected an object of feature values, got {_type_name(record)}"})
                continue
            for column, feature in zip(columns, self._features, strict=True):
                if feature.name not in record:
                    details.append({"row": row, "field": feature.name, "problem": "missing"})
                    continue
                value = record[feature.name]
                problem = _problem(feature, value)
                if problem is not None:
                    details.append({"row": row, "field": feature.name, "problem": problem})
                column.append(value)
            if len(details) >= MAX_DETAILS:
                break
        if details:
            raise InvalidInputError(f"{len(details)} invalid value(s) in the request", details[:MAX_DETAILS])
        return columns

    def _columns_from_rows(self, rows: Sequence[Any]) -> list[list[Any]]:
        width = len(self._features)
        details: list[dict[str, Any]] = []
        for row, values in enumerate(rows):
            if not isinstance(values, list | tuple):
                details.append({"row": row, "field": None, "problem": f"expected an array of {width} values, got {_type_name(values)}"})
            elif len(values) != width:
                details.append({"row": row, "field": None, "problem": f"expected {width} values in signature order, got {len(values)}"})
            else:
                for value, feature in zip(values, self._features, strict=True):
                    problem = _problem(feature, value)
                    if problem is not None:
                        details.append({"row": row, "field": feature.name, "problem": problem})
            if len(details) >= MAX_DETAILS:
                break
        if details:
            raise InvalidInputError(f"{len(details)} invalid value(s) in the request", details[:MAX_DETAILS])
        return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in self._features]

    # -- prediction -------------------------------------------------------------------------------------------
    def _run(self, columns: list[list[Any]]) -> Prediction:
        feeds = {
            feature.input_name: (
                np.asarray(column, dtype=np.float32) if feature.kind == "numeric" else np.asarray(column, dtype=object)
            ).reshape(-1, 1)
            for feature, column in zip(self._features, columns, strict=True)
        }
        outputs = self.session.run(self._outputs, feeds)
        if self.signature.is_classification:
            labels = outputs[0].ravel().tolist()
            probabilities = outputs[1].astype(np.float64).round(7).tolist() if len(outputs) > 1 else None
            return Prediction(labels, probabilities)
        return Prediction(outputs[0].ravel().astype(np.float64).round(7).tolist(), None)

    def predict_records(self, records: Sequence[Any]) -> Prediction:
        if not records:
            raise InvalidInputError("no instances to predict", [{"row": None, "field": "instances", "problem": "empty"}])
        return self._run(self._columns_from_records(records))

    def predict_rows(self, rows: Sequence[Any]) -> Prediction:
        if not rows:
            raise InvalidInputError("no inputs to predict", [{"row": None, "field": "inputs", "problem": "empty"}])
        return self._run(self._columns_from_rows(rows))
