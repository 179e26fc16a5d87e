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

A predictions object (:mod:`serverless_mlops.store.prediction_columns`: a capture object's rows without their
features, column by column) is read by :meth:`Joiner.add_predictions`; which object of a window is read, and from
where, is :mod:`serverless_mlops.quality.window`'s. What a join yields is :mod:`serverless_mlops.quality.joined`'s.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress
from typing import IO, Any, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from serverless_mlops.drift.capture_reader import SkippedSource, _blocks
from serverless_mlops.errors import MlopsError
from serverless_mlops.quality.decoding import COLUMNS, FEATURES, LEAN_ROWS, ROWS, CapturedRow, LeanRow
from serverless_mlops.quality.joined import JoinCounts, Joined, VersionRows
from serverless_mlops.quality.labels import Label
from serverless_mlops.store.capture_format import CaptureFormatError, parse_timestamp, timestamp
from serverless_mlops.store.prediction_columns import FORMAT

# version, the captured feature objects → the model's probabilities (rows x classes, the model's class order)
Scorer = Callable[[int, Sequence[Mapping[str, Any]]], NDArray[np.float64]]


# A capture object is inflated from READ_BYTES compressed bytes at a time (about 1.2 MB once inflated; the drift
# check's 1 MB reads inflate to 5 MB, and such blocks, freed between arrays that live on, kept the heap 15 MB larger)
# and decoded PIECE_BYTES of lines at a time.
READ_BYTES = 1 << 18
PIECE_BYTES = 1 << 18


class _Matched(NamedTuple):
    """The labelled rows of one version in one block, column by column (a hundred thousand rows make a few lists)."""

    version: int
    labels: list[Label]  # each row's label (its id is the row's: the label's string, not a second copy of it)
    ts: list[str]
    predictions: list[Any]
    probabilities: NDArray[np.float64] | None


def _pick(values: list[str], rows: list[int]) -> list[str]:
    return [values[i] for i in rows]


def _owned(values: list[str], owner: NDArray[np.intp], rows: list[int]) -> list[str]:
    """The values of the requests that own ``rows`` (``owner``: each row's request)."""
    return [values[o] for o in owner[rows].tolist()]


def _text(value: Any) -> str:
    """A served label as the classes are matched: its text (a float that is a whole number, as the integer)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def _pieces(block: bytes, size: int) -> Iterator[bytes]:
    """A block of capture lines in pieces of about ``size`` bytes, each ending after a line feed (or at the block's end):
    a piece's copies and decoded rows are held at a time, not those of a block of some 8,000 rows."""
    start = 0
    while start < len(block):
        cut = block.find(b"\n", start + size)
        stop = len(block) if cut < 0 else cut + 1
        yield block[start:stop]
        start = stop


class _IdFilter:
    """Which of a block's ids may have a label: a bit per hash bucket of the labels' ids (2 MB, about 1 in 20 other
    ids pass for 100,000 labels), tested for a block's ids in numpy, so the labels' dict (megabytes, beyond the
    processor's caches) is asked only about those that pass. Python caches a string's hash, so the dict look-up of
    a candidate does not hash it again."""

    BITS = 1 << 21

    def __init__(self, ids: Iterable[Any]) -> None:
        self.bits = np.zeros(self.BITS, dtype=bool)
        self.bits[np.fromiter(map(hash, ids), dtype=np.int64) & (self.BITS - 1)] = True

    def candidates(self, ids: Sequence[Any]) -> list[int]:
        """The positions of ``ids`` that may be labelled (every labelled one, and a few others)."""
        hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
        return np.flatnonzero(self.bits[hashes & (self.BITS - 1)]).tolist()  # type: ignore[no-any-return]


@dataclass
class _Staged:
    """What one capture object adds, merged only once all of it has been read."""

    versions: dict[int, VersionRows] = field(default_factory=dict)
    matched: list[_Matched] = field(default_factory=list)
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
        self._code_type = np.min_scalar_type(-len(self._codes) or -1)  # a signed type that holds every class index
        self.scorer = scorer
        self._labelled = _IdFilter(labels)
        self.versions: dict[int, VersionRows] = {}
        self.matched: list[_Matched] = []
        self.without_id = 0
        self.sources: list[str] = []
        self.skipped: list[SkippedSource] = []
        self.labelled_sources: list[str] = []
        self._captured = self._recomputed = 0

    # -- reading -----------------------------------------------------------------------------------------------------
    def add_stream(self, stream: IO[bytes], source: str) -> None:
        """One capture object, a block of lines at a time; nothing of it counts unless all of it reads (and scores):
        one that cannot is skipped as a whole and named in ``skipped``."""
        staged = _Staged()
        decoder = LEAN_ROWS if self.scorer is None else ROWS  # nothing to re-score: the features are skipped
        try:
            for block in _blocks(stream, READ_BYTES):
                for piece in _pieces(block, PIECE_BYTES):
                    try:
                        rows = decoder.decode(b"[" + piece.rstrip().replace(b"\n", b",") + b"]")
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        raise CaptureFormatError(source, f"not capture rows ({exc})") from exc
                    self._stage(rows, staged)
        except (OSError, EOFError, zlib.error, MlopsError) as exc:
            self.skipped.append(SkippedSource(source, str(exc)))
            return
        self._commit(staged, source)
        self.sources.append(source)

    def add_predictions(self, data: bytes, source: str, *, capture: str | None = None) -> bool:
        """One predictions object (gzip JSON columns, or the JSON itself). False, with nothing of it counted, when
        the caller must read its capture object instead: it does not read or its columns do not agree, or it lacks
        the probabilities of a classifier that ``scorer`` would recompute from the features it does not hold.
        ``capture``: the capture object it stands for (named in ``labelled_sources``)."""
        try:
            columns = COLUMNS.decode(zlib.decompress(data, 31) if data[:2] == b"\x1f\x8b" else data)
        except (msgspec.DecodeError, msgspec.ValidationError, zlib.error):
            return False
        sizes, widths = columns.rows, columns.width
        rows = sum(sizes)
        if (
            columns.format != FORMAT
            or not len(columns.ts) == len(columns.version) == len(sizes) == len(widths)
            or min(sizes, default=0) < 0
            or not len(columns.id) == len(columns.prediction) == rows
            or len(columns.probabilities) != sum(map(int.__mul__, sizes, widths))
        ):
            return False
        probabilities: NDArray[np.float64] | None = None
        if self.classes is not None:
            width = len(self.classes)
            if rows and set(widths) == {width}:
                probabilities = np.array(columns.probabilities, dtype=np.float64).reshape(rows, width)
            elif rows and self.scorer is not None:
                return False
        staged = _Staged()
        self._stage_columns(columns.ts, columns.version, sizes, columns.id, columns.prediction, probabilities, staged)
        self._commit(staged, capture or source)
        self.sources.append(source)
        return True

    def add_rows(self, rows: Sequence[Any]) -> None:
        """Decoded capture rows (:class:`CapturedRow`, or dicts in the capture format), all or nothing."""
        typed = [r for r in rows if isinstance(r, CapturedRow)]
        if len(typed) < len(rows):
            try:
                typed = ROWS.decode(msgspec.json.encode(list(rows)))
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                raise CaptureFormatError("capture rows", str(exc)) from exc
        staged = _Staged()
        self._stage(typed, staged)
        self._commit(staged, "capture rows")

    def _stage(self, rows: Sequence[LeanRow], staged: _Staged) -> None:
        if not rows:
            return
        since, until = self.since, self.until
        stamps = [r.ts for r in rows]
        if not (since <= min(stamps) and max(stamps) < until):  # a block inside the window: no row-by-row filter
            rows = [r for r in rows if since <= r.ts < until]
            if not rows:
                return
        versions = [r.version for r in rows]
        groups: dict[int, Sequence[LeanRow]] = {}
        if min(versions) == max(versions):
            groups[versions[0]] = rows
        else:
            split: dict[int, list[LeanRow]] = {}
            for row in rows:
                split.setdefault(row.version, []).append(row)
            groups.update(sorted(split.items()))  # version order, as a predictions object's versions are read
        for version, group in groups.items():
            probabilities = self._probabilities(version, group)
            stamps = [r.ts for r in group]
            ids = [r.id for r in group]
            predictions = [r.prediction for r in group]
            self._stage_version(version, ids, predictions, functools.partial(_pick, stamps), probabilities, staged)

    def _stage_columns(
        self,
        ts: list[str],
        versions: list[int],
        sizes: list[int],
        ids: list[str | None],
        predictions: list[Any],
        probabilities: NDArray[np.float64] | None,
        staged: _Staged,
    ) -> None:
        """A predictions object's rows: ``ts``, ``versions`` and ``sizes`` per request, the rest per row."""
        if not ts:
            return
        if probabilities is not None:
            self._captured += len(ids)
        since, until = self.since, self.until
        if since <= min(ts) and max(ts) < until and min(versions) == max(versions):  # the usual object: one version, in the window
            owner = np.repeat(np.arange(len(ts)), sizes)
            self._stage_version(versions[0], ids, predictions, functools.partial(_owned, ts, owner), probabilities, staged)
            return
        inside = np.array([since <= t < until for t in ts], dtype=bool)
        served = np.asarray(versions)
        for version in sorted(set(versions)):
            chosen = inside & (served == version)
            if not chosen.any():
                continue
            rows = np.repeat(chosen, sizes)
            owner = np.repeat(np.arange(len(ts)), sizes)[rows]
            self._stage_version(
                version,
                list(compress(ids, rows)),
                list(compress(predictions, rows)),
                functools.partial(_owned, ts, owner),
                None if probabilities is None else probabilities[rows],
                staged,
            )

    def _probabilities(self, version: int, rows: Sequence[LeanRow]) -> NDArray[np.float64] | None:
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
        if not all(isinstance(r, CapturedRow) and r.features for r in rows):
            raise MlopsError("a captured row holds no features to recompute its probabilities from")
        records = FEATURES.decode(b"[" + b",".join(bytes(r.features) for r in rows if isinstance(r, CapturedRow)) + b"]")
        self._recomputed += len(rows)
        return np.asarray(self.scorer(version, records), dtype=np.float64)

    def _stage_version(
        self,
        version: int,
        ids: list[str | None],
        predictions: list[Any],
        stamps: Callable[[list[int]], list[str]],
        probabilities: NDArray[np.float64] | None,
        staged: _Staged,
    ) -> None:
        """One version's rows (``stamps(rows)``: the capture times of those rows, asked only of the labelled ones)."""
        target = staged.versions.get(version) or VersionRows(version)
        if self.classes is not None and probabilities is not None:
            codes = self._class_codes(predictions)
            unknown = codes < 0
            if unknown.any():  # a label outside the classes (should not happen): the most probable class
                codes[unknown] = probabilities[unknown].argmax(axis=1)
            target.codes.append(codes.astype(self._code_type))
            target.probabilities.append(probabilities.astype(np.float32))
        target.predictions += len(ids)
        staged.versions[version] = target
        staged.without_id += ids.count(None)
        find = self.labels.get
        found = [(i, label) for i in self._labelled.candidates(ids) if (label := find(ids[i])) is not None]  # type: ignore[arg-type]
        if found:
            hits = [i for i, _ in found]
            staged.matched.append(
                _Matched(
                    version,
                    [label for _, label in found],
                    stamps(hits),
                    [predictions[i] for i in hits],
                    None if probabilities is None else probabilities[hits],
                )
            )

    def _class_codes(self, predictions: list[Any]) -> NDArray[np.int64]:
        """Each served label's index among the classes (-1: not one of them), computed once per distinct value."""
        try:
            values = np.asarray(predictions)
        except ValueError:  # values of different shapes (a nested value among labels)
            values = np.zeros((0, 0))
        if values.ndim == 1 and values.dtype.kind in "iu" and values.size:  # integer labels: a table over their range
            low, high = int(values.min()), int(values.max())
            if high - low < 4096:
                table = np.array([self._codes.get(str(v), -1) for v in range(low, high + 1)], dtype=np.int64)
                return np.asarray(table[values - low], dtype=np.int64)
        if values.ndim == 1 and values.dtype.kind in "iubU":
            distinct, inverse = np.unique(values, return_inverse=True)
            table = np.array([self._codes.get(str(v.item()), -1) for v in distinct], dtype=np.int64)
            return table[inverse.reshape(-1)]
        return np.array([self._codes.get(_text(p), -1) for p in predictions], dtype=np.int64)

    def _commit(self, staged: _Staged, source: str) -> None:
        if staged.matched:
            self.labelled_sources.append(source)
        for version, rows in staged.versions.items():
            target = self.versions.setdefault(version, VersionRows(version))
            target.predictions += rows.predictions
            target.codes.extend(rows.codes)
            target.probabilities.extend(rows.probabilities)
        self.without_id += staged.without_id
        self.matched.extend(staged.matched)

    # -- joining -----------------------------------------------------------------------------------------------------
    def _latest(self, ids: list[str], stamps: list[str]) -> NDArray[np.intp] | None:
        """The positions of the rows kept, one per id (the latest captured; of equal times, the one read last), in the
        order their ids were first read; None when their hashes all differ, so every id is read once (the usual
        case: one sort of 8 bytes a row, where a set of a hundred thousand ids is 4 MB)."""
        hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
        hashes.sort()
        if not (hashes[1:] == hashes[:-1]).any():
            return None
        kept: dict[str, int] = {}
        for position, (prediction_id, ts) in enumerate(zip(ids, stamps, strict=True)):
            earlier = kept.get(prediction_id)
            if earlier is None or stamps[earlier] <= ts:
                kept[prediction_id] = position
        return np.fromiter(kept.values(), dtype=np.intp, count=len(kept))

    def result(self) -> Joined:
        """Join, keeping at its top only what the result holds and a few columns of the matched rows: the matched
        blocks are dropped once flattened, and rows are chosen by arrays rather than lists of positions. The versions'
        codes and probabilities stay the blocks they were read as (CBPE works a block at a time): concatenating them
        held both copies, and the blocks freed stayed in the heap."""
        parts, self.matched = self.matched, []
        read = sum(len(part.labels) for part in parts)
        probabilities, served = self._matched_probabilities(parts, read)
        labels = [label for part in parts for label in part.labels]
        stamps = [t for part in parts for t in part.ts]
        predictions = [p for part in parts for p in part.predictions]
        versions = np.repeat(np.array([part.version for part in parts], dtype=np.int64), [len(part.labels) for part in parts])
        del parts
        keep = self._latest([label.id for label in labels], stamps)
        if keep is not None:
            labels, stamps, predictions = [labels[k] for k in keep], [stamps[k] for k in keep], [predictions[k] for k in keep]
            versions = versions[keep]
            if probabilities is not None:
                probabilities, served = probabilities[keep], served[keep]
        counts = JoinCounts(labels=len(self.labels), predictions_without_id=self.without_id, duplicate_predictions=read - len(labels))
        counts.unmatched = len(self.labels) - len(labels)
        joins = np.ones(len(labels), dtype=bool)
        for j in [j for j, label in enumerate(labels) if label.event_time is not None]:  # untimed labels join whenever ids match
            made, event = parse_timestamp(stamps[j]), labels[j].event_time
            assert event is not None
            if event < made:
                counts.before_prediction += 1
                joins[j] = False
            elif event > made + self.delay:
                counts.late += 1
                joins[j] = False
        counts.joined = int(joins.sum())
        for version in np.unique(versions).tolist():
            positions = np.flatnonzero((versions == version) & joins)
            chosen = positions.tolist()
            labelled = self.versions[version].labelled
            labelled.truth.extend([labels[j].label for j in chosen])
            labelled.predicted.extend([predictions[j] for j in chosen])
            labelled.ids.extend([labels[j].id for j in chosen])
            labelled.times.extend([stamps[j] for j in chosen])
            if probabilities is not None:
                labelled.probabilities = probabilities[positions[served[positions]]]
        source = (
            "none"
            if not self._captured and not self._recomputed
            else "mixed"
            if self._captured and self._recomputed
            else "captured"
            if self._captured
            else "recomputed"
        )
        return Joined(self.versions, counts, self.sources, self.skipped, source, self.labelled_sources)

    def _matched_probabilities(self, parts: list[_Matched], rows: int) -> tuple[NDArray[np.float64] | None, NDArray[np.bool_]]:
        """The matched rows' probabilities (rows x classes) and which rows have them (None: no row has)."""
        served = np.zeros(rows, dtype=bool)
        if self.classes is None or all(part.probabilities is None for part in parts):
            return None, served
        width = len(self.classes)
        found = np.zeros((rows, width), dtype=np.float64)
        start = 0
        for part in parts:
            end = start + len(part.labels)
            if part.probabilities is not None and part.probabilities.shape == (end - start, width):
                found[start:end] = part.probabilities
                served[start:end] = True
            start = end
        return found, served
