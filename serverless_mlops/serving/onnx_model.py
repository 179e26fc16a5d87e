"""The inference core: validate inputs against a model's signature and run its ONNX graph.

Used by the inference Lambda and by ``mlops predict``. It imports onnxruntime, numpy and pydantic only: no
scikit-learn, scipy, pickle or joblib, and the only model format it loads is ONNX.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.signature import FeatureSignature, Signature

if TYPE_CHECKING:
    from serverless_mlops.store.lifecycle import Backends
    from serverless_mlops.store.registry import ModelVersion

MAX_DETAILS = 50
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER_TYPES = frozenset({int, float})
BOUND_MAX_ROWS = 8  # requests up to this many rows run on inputs bound once (_BoundRun); larger ones through session.run
NUMERIC_TENSORS = frozenset({"tensor(float)", "tensor(double)", "tensor(int64)", "tensor(int32)"})  # outputs a binding may hold


@dataclass(frozen=True)
class Prediction:
    predictions: list[Any]
    probabilities: list[list[float]] | None


class Feeds:
    """One request's validated ONNX inputs: by input name (what ``session.run`` takes) and, for a model whose features
    are all numeric, also as the features x rows float32 ``matrix`` whose rows those inputs are (what a bound run copies
    in one go, :class:`_BoundRun`). The named arrays are made on first use: a bound run never needs them."""

    __slots__ = ("_named", "_names", "matrix")

    def __init__(self, named: dict[str, np.ndarray] | None = None, *, matrix: np.ndarray | None = None, names: Sequence[str] = ()) -> None:
        self._named = named
        self._names = names
        self.matrix = matrix

    @property
    def named(self) -> dict[str, np.ndarray]:
        if self._named is None:
            assert self.matrix is not None
            matrix = self.matrix
            self._named = {name: matrix[row].reshape(-1, 1) for row, name in enumerate(self._names)}
        return self._named


class _BoundRun:
    """A session's inputs bound once (onnxruntime's IOBinding) to the rows of one features x ``rows`` float32 buffer:
    a run copies the request's matrix into the buffer and runs, where ``session.run`` would wrap and check each of the
    model's inputs again on every call (one per feature: 30 for breast-cancer, about 20 us of a 28 us run of one row).
    One request at a time (:meth:`run` returns None while another thread holds it; that caller uses ``session.run``)."""

    def __init__(self, session: Any, inputs: Sequence[str], outputs: Sequence[str], rows: int) -> None:
        self._session = session
        self._buffer = np.empty((len(inputs), rows), dtype=np.float32)
        self._binding = session.io_binding()
        for row, name in enumerate(inputs):
            self._binding.bind_cpu_input(name, self._buffer[row].reshape(-1, 1))
        for name in outputs:
            self._binding.bind_output(name)
        self._lock = threading.Lock()

    def run(self, matrix: np.ndarray) -> list[np.ndarray] | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._buffer[...] = matrix
            self._session.run_with_iobinding(self._binding)
            outputs: list[np.ndarray] = self._binding.copy_outputs_to_cpu()  # copies: the next run reuses the binding
            return outputs
        finally:
            self._lock.release()


def _problem(feature: FeatureSignature, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``feature``, or None if it is. Never echoes the value itself."""
    if feature.kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {_type_name(value)}"
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            return "expected a finite number (NaN and infinity are refused)"
        if abs(as_float) > FLOAT32_MAX:
            return "outside the float32 range the model computes in"
        if feature.range is not None and not (feature.range[0] <= as_float <= feature.range[1]):
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


class InvalidOutputError(InvalidInputError):
    """The model's output for some rows is not a finite number: answered as the client's 422 (values far outside the
    training data are the usual cause), and counted as invalid outputs of the version (``rows``)."""

    def __init__(self, message: str, details: list[dict[str, Any]], *, rows: int) -> None:
        super().__init__(message, details)
        self.rows = rows


def _finite(output: np.ndarray) -> np.ndarray:
    """The model's output, unless some row's is NaN or infinite (valid float32 inputs far outside the training data
    can overflow a linear model): JSON has no such numbers, so those rows are refused, by number."""
    if np.isfinite(output).all():  # one check on the usual path, row by row only to name the rows that are not
        return output
    rows = output.reshape(len(output), -1)
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    problem = "the model's output for this row is not a finite number (values far outside the training data?)"
    details = [{"row": int(row), "field": None, "problem": problem} for row in bad[:MAX_DETAILS]]
    raise InvalidOutputError(f"{len(bad)} row(s) give a prediction that is not a finite number", details, rows=len(bad))


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
        self._names = [f.name for f in signature.features]
        self._category_sets = {f.name: frozenset(f.categories) for f in signature.features if f.categories is not None}
        self._numeric_at = [i for i, f in enumerate(self._features) if f.kind == "numeric"]
        self._categorical_at = [i for i, f in enumerate(self._features) if f.kind == "categorical"]
        ranges = [self._features[i].range or (-np.inf, np.inf) for i in self._numeric_at]
        self._ranged = any(self._features[i].range is not None for i in self._numeric_at)
        self._low = np.array([[low] for low, _ in ranges], dtype=np.float64)
        self._high = np.array([[high] for _, high in ranges], dtype=np.float64)
        # what validation and the ONNX inputs depend on: models with equal keys take each other's feeds (predict_feeds)
        self.inputs_key = json.dumps([f.model_dump(mode="json") for f in signature.features], sort_keys=True)
        outputs = [signature.label_output, signature.probabilities_output] if signature.is_classification else [signature.value_output]
        self._outputs = [o for o in outputs if o is not None]
        self._input_names = [f.input_name for f in self._features]
        # a model whose inputs are exactly its numeric features, one float32 column each, and whose outputs are numeric
        # tensors runs small requests on bound inputs (_BoundRun, one per row count up to BOUND_MAX_ROWS, made on first
        # use). String outputs (a classifier's labels when its classes are strings) stay on session.run: onnxruntime
        # 1.32 crashes the process copying a bound string output to numpy
        inputs = {i.name: i.type for i in self.session.get_inputs()}
        output_types = {o.name: o.type for o in self.session.get_outputs()}
        self._bindable = not self._categorical_at and len(inputs) == len(self._input_names)
        self._bindable = self._bindable and all(inputs.get(name) == "tensor(float)" for name in self._input_names)
        self._bindable = self._bindable and all(output_types.get(name) in NUMERIC_TENSORS for name in self._outputs)
        self._bound: dict[int, _BoundRun] = {}

    # -- validation -------------------------------------------------------------------------------------------
    # The fast path checks all numeric values at once (their types by set, finiteness, float32 range and the spec's
    # ranges with numpy on one features x rows matrix) and returns the arrays ONNX takes; only a request that fails
    # it walks row by row, to say which row and field are wrong.
    def _fast_feeds(self, columns: list[list[Any]]) -> Feeds | None:
        numeric = [columns[i] for i in self._numeric_at]
        matrix = self._numeric_matrix(numeric) if numeric else None
        if numeric and matrix is None:
            return None
        if not self._categorical_at:  # all numeric: the matrix; the named inputs are made only if session.run needs them
            return Feeds(matrix=matrix, names=self._input_names)
        feeds: dict[str, np.ndarray] = {}
        if matrix is not None:
            feeds.update({self._features[i].input_name: matrix[row].reshape(-1, 1) for row, i in enumerate(self._numeric_at)})
        for i in self._categorical_at:
            feature, column = self._features[i], columns[i]
            if set(map(type, column)) != {str}:
                return None
            allowed = self._category_sets.get(feature.name)
            if allowed is not None and not feature.allow_unknown and not allowed.issuperset(column):
                return None
            feeds[feature.input_name] = np.array(column, dtype=object).reshape(-1, 1)
        return Feeds(feeds)

    def _numeric_matrix(self, numeric: list[list[Any]]) -> np.ndarray | None:
        """The numeric features' values (one list per feature) as a features x rows float32 matrix, or None when one is
        not a number, not finite, outside float32's range or outside its feature's range."""
        kinds: set[type] = set()
        for column in numeric:
            kinds.update(map(type, column))
        if not kinds <= _NUMBER_TYPES:
            return None
        try:
            wide = np.array(numeric, dtype=np.float64)
        except OverflowError:
            return None
        return self._checked(wide)

    def _checked(self, wide: np.ndarray) -> np.ndarray | None:
        """The numeric features' features x rows float64 matrix as float32, or None when a value is not finite, outside
        float32's range or outside its feature's range."""
        if not np.isfinite(wide).all() or np.abs(wide).max() > FLOAT32_MAX:
            return None
        if self._ranged and ((wide < self._low).any() or (wide > self._high).any()):
            return None
        return wide.astype(np.float32)

    def _raise_for_records(self, records: Sequence[Any]) -> NoReturn:
        details: list[dict[str, Any]] = []
        for row, record in enumerate(records):
            if not isinstance(record, Mapping):
                details.append({"row": row, "field": None, "problem": f"expected an object of feature values, got {_type_name(record)}"})
                continue
            for feature in self._features:
                if feature.name not in record:
                    details.append({"row": row, "field": feature.name, "problem": "missing"})
                elif (problem := _problem(feature, record[feature.name])) is not None:
                    details.append({"row": row, "field": feature.name, "problem": problem})
            if len(details) >= MAX_DETAILS:
                break
        raise InvalidInputError(f"{len(details)} invalid value(s) in the request", details[:MAX_DETAILS])

    def _raise_for_rows(self, rows: Sequence[Any]) -> NoReturn:
        width = len(self._features)
        details: list[dict[str, Any]] = []
        for row, values in enumerate(rows):
            if not isinstance(values, list | tuple):
                details.append({"row": row, "field": None, "problem": f"expected an array of {width} values, got {_type_name(values)}"})
            elif len(values) != width:
                details.append({"row": row, "field": None, "problem": f"expected {width} values in signature order, got {len(values)}"})
            else:
                for value, feature in zip(values, self._features, strict=True):
                    if (problem := _problem(feature, value)) is not None:
                        details.append({"row": row, "field": feature.name, "problem": problem})
            if len(details) >= MAX_DETAILS:
                break
        raise InvalidInputError(f"{len(details)} invalid value(s) in the request", details[:MAX_DETAILS])

    # -- prediction -------------------------------------------------------------------------------------------
    def _outputs_for(self, feeds: Feeds) -> list[np.ndarray]:
        """The graph's outputs for ``feeds``: on bound inputs for a small all-numeric request, else by ``session.run``."""
        matrix = feeds.matrix
        if self._bindable and matrix is not None and (rows := matrix.shape[1]) <= BOUND_MAX_ROWS:
            bound = self._bound.get(rows)
            if bound is None:
                bound = self._bound.setdefault(rows, _BoundRun(self.session, self._input_names, self._outputs, rows))
            outputs = bound.run(matrix)
            if outputs is not None:
                return outputs
        result: list[np.ndarray] = self.session.run(self._outputs, feeds.named)
        return result

    def _arrays(self, feeds: Feeds) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels or values, probabilities or None) as arrays, rounded to 7 decimals; rows that are not finite refused."""
        outputs = self._outputs_for(feeds)
        if self.signature.is_classification:
            labels = outputs[0].ravel()
            if len(outputs) == 1:
                return labels, None
            return labels, _finite(outputs[1].astype(np.float64)).round(7)
        return _finite(outputs[0].astype(np.float64)).ravel().round(7), None

    def _run(self, feeds: Feeds) -> Prediction:
        first, probabilities = self._arrays(feeds)
        return Prediction(first.tolist(), None if probabilities is None else probabilities.tolist())

    def predict_matrix(self, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Batch scoring's fast path, for a model whose features are all numeric: predict from a features x rows
        float64 matrix in signature order, checked by the rules every request is (finite, float32's range, the spec's
        ranges); returns the output arrays (labels or values, probabilities). Raises :class:`InvalidInputError`
        naming rows and fields, as :meth:`predict_rows` does."""
        if self._categorical_at or wide.ndim != 2 or wide.shape[0] != len(self._features):
            raise ValueError(f"predict_matrix takes a {len(self._features)} x rows float64 matrix of numeric features")
        if wide.shape[1] == 0:
            raise InvalidInputError("no inputs to predict", [{"row": None, "field": "inputs", "problem": "empty"}])
        matrix = self._checked(wide)
        if matrix is None:
            self._raise_for_rows(wide.T.tolist())
        return self._arrays(Feeds(matrix=matrix, names=self._input_names))

    def predict_records(self, records: Sequence[Any]) -> Prediction:
        """Predict from objects keyed by feature name (extra keys are ignored)."""
        return self._run(self.feeds_for_records(records))

    def predict_columns(self, columns: Sequence[Sequence[Any]]) -> Prediction:
        """Predict from one sequence of values per feature, in signature order, all of one length (KServe V2 tensors)."""
        return self._run(self.feeds_for_columns(columns))

    def predict_rows(self, rows: Sequence[Any]) -> Prediction:
        """Predict from arrays of values in signature order."""
        return self._run(self.feeds_for_rows(rows))

    def predict_feeds(self, feeds: Feeds) -> Prediction:
        """Predict from validated inputs (:meth:`feeds_for`), of this model or of one with the same ``inputs_key`` (a
        shadow scoring the rows production just scored skips validating them again)."""
        return self._run(feeds)

    def feeds_for(self, kind: str, data: Sequence[Any]) -> Feeds:
        """The validated ONNX inputs for ``data`` given as ``records``, ``rows`` or ``columns``."""
        if kind == "records":
            return self.feeds_for_records(data)
        if kind == "columns":
            return self.feeds_for_columns(data)
        return self.feeds_for_rows(data)

    def feeds_for_records(self, records: Sequence[Any]) -> Feeds:
        """The ONNX inputs for objects keyed by feature name, validated (:class:`InvalidInputError` names row and field)."""
        if not records:
            raise InvalidInputError("no instances to predict", [{"row": None, "field": "instances", "problem": "empty"}])
        try:
            columns = [[record[name] for record in records] for name in self._names]
        except (KeyError, TypeError, IndexError):
            columns = None
        feeds = self._fast_feeds(columns) if columns is not None else None
        if feeds is None:
            self._raise_for_records(records)
        return feeds

    def feeds_for_columns(self, columns: Sequence[Sequence[Any]]) -> Feeds:
        """The ONNX inputs for one sequence of values per feature, validated."""
        width = len(self._features)
        if len(columns) != width:
            problem = f"expected {width} columns in signature order, got {len(columns)}"
            raise InvalidInputError(problem, [{"row": None, "field": None, "problem": problem}])
        lengths = {len(column) for column in columns}
        if len(lengths) != 1:
            problem = f"columns differ in length ({min(lengths)}..{max(lengths)} values); every feature needs one value per row"
            raise InvalidInputError(problem, [{"row": None, "field": None, "problem": problem}])
        if lengths == {0}:
            raise InvalidInputError("no inputs to predict", [{"row": None, "field": "inputs", "problem": "empty"}])
        feeds = self._fast_feeds([list(column) for column in columns])
        if feeds is None:
            self._raise_for_rows([list(row) for row in zip(*columns, strict=True)])
        return feeds

    def feeds_for_rows(self, rows: Sequence[Any]) -> Feeds:
        """The ONNX inputs for arrays of values in signature order, validated."""
        if not rows:
            raise InvalidInputError("no inputs to predict", [{"row": None, "field": "inputs", "problem": "empty"}])
        width = len(self._features)
        feeds = None
        if all(isinstance(row, list | tuple) and len(row) == width for row in rows):
            feeds = self._fast_feeds([list(column) for column in zip(*rows, strict=True)])
        if feeds is None:
            self._raise_for_rows(rows)
        return feeds


def load_model(backends: Backends, entry: ModelVersion, *, threads: int = 1) -> OnnxModel:
    """Fetch, verify (sha256) and open a registered version's ONNX graph."""
    onnx_bytes = backends.store.get(entry.artifact, model=entry.model, version=entry.version)
    return OnnxModel(entry.signature, onnx_bytes, threads=threads)
