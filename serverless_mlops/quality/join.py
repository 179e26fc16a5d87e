"""Ground truth joined to captured predictions, per model version, over one window.

A prediction belongs to the window when its capture time ``ts`` is in ``[start, end)``. A label (from
:mod:`serverless_mlops.quality.labels`, the last one of its id) joins the captured row with the same ``id`` when its
``event_time`` is at or after the prediction and at most ``label_delay`` after it; a label without ``event_time``
joins whenever its id matches. Otherwise it is counted, never an error:

- ``before_prediction``: its event time is earlier than the prediction (a label for something else, or a clock skew);
- ``late``: it came more than ``label_delay`` after the prediction;
- ``unmatched``: no captured row of the window has its id (an unknown id, or a prediction outside the window);
- ``duplicate_predictions``: captured rows sharing an id (a retried request with caller ids); the latest one is kept.

Rows are read a chunk of lines at a time (msgspec into typed structs; the features stay raw JSON unless the
probabilities must be recomputed), and only the labelled rows are kept whole: a million predictions cost their class
code and probabilities (a few floats each), not a million dicts. Classifier probabilities come from the captured row
(``probabilities``, the model's class order) when it has them, else from ``scorer`` (the version's ONNX model run
again on the captured features: the same graph, so the same numbers the endpoint returned).
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress
from typing import IO, Any, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from serverless_mlops.drift.capture_reader import FETCH_THREADS, SkippedSource, _blocks, _in_order, capture_keys
from serverless_mlops.errors import MlopsError
from serverless_mlops.quality.labels import Label
from serverless_mlops.store.capture_format import CaptureFormatError, parse_timestamp, timestamp

# version, the captured feature objects → the model's probabilities (rows x classes, the model's class order)
Scorer = Callable[[int, Sequence[Mapping[str, Any]]], NDArray[np.float64]]


class _Lean(msgspec.Struct, kw_only=True, gc=False):
    """What the join needs of a captured row when it will not re-score it: the features are skipped, not kept."""

    ts: str
    version: int
    prediction: Any
    id: str | None = None
    probabilities: list[float] | None = None


class _Row(_Lean, kw_only=True, gc=False):
    features: msgspec.Raw = msgspec.Raw()  # empty: the row has no features


_DECODER = msgspec.json.Decoder(list[_Row])
_LEAN_DECODER = msgspec.json.Decoder(list[_Lean])
_FEATURES = msgspec.json.Decoder(list[dict[str, Any]])


@dataclass
class Labelled:
    """The joined rows of one version (in no particular order; ``ids`` and ``times``, the prediction ids and capture
    times, let :mod:`serverless_mlops.quality.recent_rows` find the rows' features again)."""

    truth: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    probabilities: list[NDArray[np.float64]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)


@dataclass
class VersionRows:
    """One version's predictions in the window: their count, class codes and raw probabilities (classifiers, for
    CBPE), and the labelled ones."""

    version: int
    predictions: int = 0
    codes: list[NDArray[np.int64]] = field(default_factory=list)
    probabilities: list[NDArray[np.float64]] = field(default_factory=list)
    labelled: Labelled = field(default_factory=Labelled)

    def all_probabilities(self, classes: int) -> NDArray[np.float64]:
        return np.concatenate(self.probabilities) if self.probabilities else np.zeros((0, classes))

    def all_codes(self) -> NDArray[np.int64]:
        return np.concatenate(self.codes) if self.codes else np.zeros(0, dtype=np.int64)


@dataclass
class JoinCounts:
    labels: int = 0
    joined: int = 0
    before_prediction: int = 0
    late: int = 0
    unmatched: int = 0
    duplicate_predictions: int = 0
    predictions_without_id: int = 0


@dataclass
class Joined:
    versions: dict[int, VersionRows]
    counts: JoinCounts
    sources: list[str]
    skipped: list[SkippedSource]
    probabilities: str  # "captured", "recomputed", "mixed", or "none"


class _Match(NamedTuple):  # a tuple: a hundred thousand of them are made while reading
    ts: str
    version: int
    prediction: Any
    probabilities: NDArray[np.float64] | None


def _text(value: Any) -> str:
    """A served label as the classes are matched: its text (a float that is a whole number, as the integer)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


@dataclass
class _Staged:
    """What one capture object adds, merged only once all of it has been read."""

    versions: dict[int, VersionRows] = field(default_factory=dict)
    matches: dict[str, _Match] = field(default_factory=dict)
    duplicates: int = 0
    without_id: int = 0


class Joiner:
    """Feed captured rows (:meth:`add_stream` / :meth:`add_rows`); :meth:`result` joins the labels to them."""

    def __init__(
        self,
        labels: Mapping[str, Label],
        *,
        start: datetime,
        end: datetime,
        label_delay: timedelta,
        classes: Sequence[Any] | None,
        scorer: Scorer | None = None,
    ) -> None:
        self.labels = labels
        self.since, self.until = timestamp(start), timestamp(end)
        self.delay = label_delay
        self.classes = [str(c) for c in classes] if classes else None
        self._codes = {c: i for i, c in enumerate(self.classes or [])}
        self.scorer = scorer
        self.versions: dict[int, VersionRows] = {}
        self.matches: dict[str, _Match] = {}
        self.duplicates = 0
        self.without_id = 0
        self.sources: list[str] = []
        self.skipped: list[SkippedSource] = []
        self._captured = self._recomputed = 0

    # -- reading -----------------------------------------------------------------------------------------------------
    def add_stream(self, stream: IO[bytes], source: str) -> None:
        """One capture object, a block of lines at a time; nothing of it counts unless all of it reads (and scores):
        one that cannot is skipped as a whole and named in ``skipped``."""
        staged = _Staged()
        decoder = _LEAN_DECODER if self.scorer is None else _DECODER  # nothing to re-score: the features are skipped
        try:
            for block in _blocks(stream):
                try:
                    rows = decoder.decode(b"[" + block.rstrip().replace(b"\n", b",") + b"]")
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise CaptureFormatError(source, f"not capture rows ({exc})") from exc
                self._stage(rows, staged)
        except (OSError, EOFError, zlib.error, MlopsError) as exc:
            self.skipped.append(SkippedSource(source, str(exc)))
            return
        self._commit(staged)
        self.sources.append(source)

    def add_rows(self, rows: Sequence[Any]) -> None:
        """Decoded capture rows (:class:`_Row`, or dicts in the capture format), all or nothing."""
        typed = [r for r in rows if isinstance(r, _Row)]
        if len(typed) < len(rows):
            try:
                typed = _DECODER.decode(msgspec.json.encode(list(rows)))
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                raise CaptureFormatError("capture rows", str(exc)) from exc
        staged = _Staged()
        self._stage(typed, staged)
        self._commit(staged)

    def _stage(self, rows: Sequence[_Lean], staged: _Staged) -> None:
        if not rows:
            return
        since, until = self.since, self.until
        stamps = [r.ts for r in rows]
        if not (since <= min(stamps) and max(stamps) < until):  # a block inside the window: no row-by-row filter
            rows = [r for r in rows if since <= r.ts < until]
            if not rows:
                return
        versions = [r.version for r in rows]
        groups: dict[int, Sequence[_Lean]] = {}
        if min(versions) == max(versions):
            groups[versions[0]] = rows
        else:
            split: dict[int, list[_Lean]] = {}
            for row in rows:
                split.setdefault(row.version, []).append(row)
            groups.update(split)
        for version, group in groups.items():
            self._stage_version(version, group, self._probabilities(version, group), staged)

    def _probabilities(self, version: int, rows: Sequence[_Lean]) -> NDArray[np.float64] | None:
        if self.classes is None:
            return None
        width = len(self.classes)
        captured = [r.probabilities for r in rows]
        if captured.count(None) == 0:
            try:
                found = np.array(captured, dtype=np.float64)
            except ValueError:  # rows of different lengths
                found = np.zeros(0)
            if found.shape == (len(rows), width):
                self._captured += len(rows)
                return found
        if self.scorer is None:
            return None
        if not all(isinstance(r, _Row) and r.features for r in rows):
            raise MlopsError("a captured row holds no features to recompute its probabilities from")
        records = _FEATURES.decode(b"[" + b",".join(bytes(r.features) for r in rows if isinstance(r, _Row)) + b"]")
        self._recomputed += len(rows)
        return np.asarray(self.scorer(version, records), dtype=np.float64)

    def _stage_version(self, version: int, rows: Sequence[_Lean], probabilities: NDArray[np.float64] | None, staged: _Staged) -> None:
        target = staged.versions.get(version) or VersionRows(version)
        predictions = [r.prediction for r in rows]
        if self.classes is not None and probabilities is not None:
            codes = self._class_codes(predictions)
            unknown = codes < 0
            if unknown.any():  # a label outside the classes (should not happen): the most probable class
                codes[unknown] = probabilities[unknown].argmax(axis=1)
            target.codes.append(codes)
            target.probabilities.append(probabilities)
        target.predictions += len(rows)
        staged.versions[version] = target
        ids = [r.id for r in rows]
        staged.without_id += ids.count(None)
        matches = staged.matches  # staged.add inlined: run for each of the labelled rows
        for i in compress(range(len(ids)), map(self.labels.__contains__, ids)):  # label keys are text: None never matches
            row = rows[i]
            match = _Match(row.ts, version, row.prediction, None if probabilities is None else probabilities[i])
            key = str(row.id)
            earlier = matches.get(key)
            if earlier is not None:
                staged.duplicates += 1
                if earlier.ts > match.ts:
                    continue
            matches[key] = match

    def _class_codes(self, predictions: list[Any]) -> NDArray[np.int64]:
        """Each served label's index among the classes (-1: not one of them), computed once per distinct value."""
        try:
            values = np.asarray(predictions)
        except ValueError:  # values of different shapes (a nested value among labels)
            values = np.zeros((0, 0))
        if values.ndim == 1 and values.dtype.kind in "iubU":
            distinct, inverse = np.unique(values, return_inverse=True)
            table = np.array([self._codes.get(str(v.item()), -1) for v in distinct], dtype=np.int64)
            return table[inverse.reshape(-1)]
        return np.array([self._codes.get(_text(p), -1) for p in predictions], dtype=np.int64)

    def _commit(self, staged: _Staged) -> None:
        for version, rows in staged.versions.items():
            target = self.versions.setdefault(version, VersionRows(version))
            target.predictions += rows.predictions
            target.codes.extend(rows.codes)
            target.probabilities.extend(rows.probabilities)
        self.without_id += staged.without_id
        self.duplicates += staged.duplicates
        for prediction_id, match in staged.matches.items():
            earlier = self.matches.get(prediction_id)
            if earlier is not None:
                self.duplicates += 1
                if earlier.ts > match.ts:
                    continue
            self.matches[prediction_id] = match

    # -- joining -----------------------------------------------------------------------------------------------------
    def result(self) -> Joined:
        counts = JoinCounts(labels=len(self.labels), duplicate_predictions=self.duplicates, predictions_without_id=self.without_id)
        counts.unmatched = len(self.labels) - len(self.matches)
        for prediction_id, match in self.matches.items():
            label = self.labels[prediction_id]
            if label.event_time is not None:
                made = parse_timestamp(match.ts)
                if label.event_time < made:
                    counts.before_prediction += 1
                    continue
                if label.event_time > made + self.delay:
                    counts.late += 1
                    continue
            counts.joined += 1
            joined = self.versions[match.version].labelled
            joined.truth.append(label.label)
            joined.predicted.append(match.prediction)
            joined.ids.append(prediction_id)
            joined.times.append(match.ts)
            if match.probabilities is not None:
                joined.probabilities.append(match.probabilities)
        source = (
            "none"
            if not self._captured and not self._recomputed
            else "mixed"
            if self._captured and self._recomputed
            else "captured"
            if self._captured
            else "recomputed"
        )
        return Joined(self.versions, counts, self.sources, self.skipped, source)


def join_window(
    s3: Any,
    bucket: str,
    model: str,
    labels: Mapping[str, Label],
    *,
    start: datetime,
    end: datetime,
    label_delay: timedelta,
    classes: Sequence[Any] | None,
    scorer: Scorer | None = None,
) -> Joined:
    """Every captured prediction of ``model`` with ``start <= ts < end``, joined to ``labels``."""
    joiner = Joiner(labels, start=start, end=end, label_delay=label_delay, classes=classes, scorer=scorer)
    keys = capture_keys(s3, bucket, model, start, end)

    def fetch(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for key, data in zip(keys, _in_order(pool, fetch, keys), strict=True):
            joiner.add_stream(io.BytesIO(data), f"s3://{bucket}/{key}")
    return joiner.result()
