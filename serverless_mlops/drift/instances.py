"""Rows of a local CSV or JSON file (as ``mlops predict`` reads them) → the drift check's columns, for ``--current``.

``mlops drift check MODEL --current rows.csv`` checks a file of instances against a version's baseline. The rows go
straight into a :class:`~serverless_mlops.drift.capture_reader.CurrentData`, column by column, never a dict per row:
a CSV file is read with the standard library's csv module, :data:`CHUNK_ROWS` rows at a time, and each of a block's
columns is parsed by numpy as a whole; a JSON document (a list of objects or ``{"instances": [...]}``) is walked a
block of records at a time.

Missing values are data, as in captured rows: an empty cell, the spellings training data reads as missing (``na``,
``nan``, ``null``, ``none``, any case; see :mod:`serverless_mlops.model.data`) and JSON ``null`` (or a key a record lacks)
count as missing values of their feature, or of the prediction. ``inf`` (or a number beyond the float range) is
kept, as the capture reader keeps it: the check counts it as out of range. Other text in a numeric column is refused
with its row and column: it is a wrong file far more often than a value.

Predictions: a file with a ``prediction`` column is checked as it is; a feature column absent from it is left to the
check, which reports it (insufficient data). Without one, the version's ONNX graph predicts the rows, a block at a
time; a row with a missing feature value cannot be predicted, so its prediction counts as missing and
:meth:`FileRows.note` says how many; a feature column absent from the file is refused, by name. So is a row the
model refuses for another reason (a value outside the spec's range, an unknown category): the error names it and
suggests a ``prediction`` column.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from serverless_mlops.drift.capture_reader import Column, CurrentData
from serverless_mlops.errors import DataError, InvalidInputError
from serverless_mlops.model.data import _MISSING as MISSING_TEXT

if TYPE_CHECKING:
    from serverless_mlops.model.signature import Signature
    from serverless_mlops.serving.onnx_model import Prediction

CHUNK_ROWS = 50_000  # rows parsed (and predicted) at a time: some 40 MB of text objects for a 20-column CSV
FAST_BYTES = 4 << 20  # from this size on, pandas reads a CSV file (~15x faster than the csv module; importing it costs ~0.5 s)
# every spelling of a missing value pandas should read as one (it compares exactly): "", na, NA, nA, nan, NaN, …
MORE = "\x00more"  # the column pandas puts a value beyond the header's columns in
MISSING_SPELLINGS = sorted({"".join(s) for word in MISSING_TEXT for s in itertools.product(*[(c.lower(), c.upper()) for c in word])})
PREDICTION = "prediction"
NONE = np.array(None, dtype=object)  # what a missing label is, to compare a column of labels with
HINT = "add a 'prediction' column to check the rows as they are"


class Predictor(Protocol):
    def predict_columns(self, columns: Sequence[Sequence[Any]]) -> Prediction: ...


@dataclass(frozen=True)
class FileRows:
    """A file's rows as the drift check's columns, with what became of their predictions."""

    path: Path
    current: CurrentData
    absent: list[str]  # feature columns the file does not have (only when it has a prediction column)
    predicted: int | None  # rows the model predicted; None when the file's own prediction column was used
    not_predicted: int  # rows with a missing feature value, which the model could not predict

    def note(self) -> str | None:
        """One line when some rows could not be predicted."""
        if not self.not_predicted:
            return None
        rows = self.current.rows
        some = f"all {rows:,} rows have" if self.not_predicted == rows else f"{self.not_predicted:,} of {rows:,} rows have"
        return f"{self.path}: {some} a missing feature value: not predicted, so their prediction counts as missing"

    def summary(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "rows": self.current.rows,
            "prediction": "model" if self.predicted is not None else "file",
            "predicted_rows": self.predicted,
            "not_predicted_rows": self.not_predicted,
            "absent_columns": self.absent,
        }


def read_rows(path: Path, signature: Signature, version: int, load_model: Callable[[], Predictor]) -> FileRows:
    """The rows of ``path`` (``.csv``, else JSON) for version ``version``'s features (its ``signature``); ``load_model``
    is called only when the file has no prediction column."""
    kinds: dict[str, str] = {f.name: f.kind for f in signature.features}
    wanted = kinds | {PREDICTION: "categorical" if signature.is_classification else "numeric"}
    if path.suffix.lower() != ".csv":
        records = _json_records(path)
        present = {name for name in wanted if any(name in record for record in records)} if records else set(wanted)
        builder = _Builder(path, signature, version, present, _model(path, kinds, present, load_model))
        for first in range(0, len(records), CHUNK_ROWS):
            block = records[first : first + CHUNK_ROWS]
            columns = {name: _json_column(block, name, kind, path, first) for name, kind in wanted.items() if name in present}
            builder.add(first, columns, {name: sum(1 for record in block if name not in record) for name in columns})
        return builder.result()
    header = _csv_header(path)
    present = {name for name in wanted if name in header}
    model = _model(path, kinds, present, load_model)
    if path.stat().st_size >= FAST_BYTES and (blocks := _fast_csv_blocks(path, header, {n: k for n, k in wanted.items() if n in present})):
        builder = _Builder(path, signature, version, present, model)
        try:
            for first, columns in blocks:
                builder.add(first, columns)
            return builder.result()
        except ValueError:  # a value pandas cannot parse, a row too long: the exact reader says which, and where
            pass
    builder = _Builder(path, signature, version, present, model)
    reader: Any = None
    with _read_errors(path, lambda: reader.line_num if reader is not None else 1), path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)  # utf-8-sig: spreadsheets start with a byte-order mark
        next(reader, None)
        for first, columns in _csv_blocks(reader, header, wanted, path):
            builder.add(first, columns)
    return builder.result()


@contextmanager
def _read_errors(path: Path, line: Callable[[], int]) -> Iterator[None]:
    """An unreadable CSV file as one line naming it and, for a malformed row, the line the reader was at."""
    try:
        yield
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file (line {line()}: {exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read input: {exc.strerror or exc}") from exc


def _model(path: Path, kinds: Mapping[str, str], present: set[str], load_model: Callable[[], Predictor]) -> Predictor | None:
    """The model that predicts the rows (None: the file has a prediction column); refused if it lacks a feature column."""
    if PREDICTION in present:
        return None
    absent = [name for name in kinds if name not in present]
    if absent:
        names = ", ".join(repr(name) for name in absent)
        raise DataError(
            f"{path}: no column{'s' if len(absent) > 1 else ''} {names} in the file, so the model cannot predict its rows; {HINT}"
        )
    return load_model()


class _Builder:
    """Columns filled block by block; predictions from the file or the model."""

    def __init__(self, path: Path, signature: Signature, version: int, present: set[str], model: Predictor | None) -> None:
        self.path = path
        self.version = version
        self.kinds = {f.name: f.kind for f in signature.features}
        self.classes = signature.classes if signature.is_classification else None
        self.absent = [name for name in self.kinds if name not in present]
        self.from_file = model is None
        self.model = model
        self.rows = 0
        self.predicted = 0
        self.columns = {name: Column(kind) for name, kind in self.kinds.items()}
        self.prediction = Column("categorical" if signature.is_classification else "numeric")

    def add(self, first: int, columns: dict[str, NDArray[Any]], absent: Mapping[str, int] | None = None) -> None:
        """One block of rows, the first being row ``first`` (from 0) of the file; ``columns`` holds the file's columns
        (missing values as NaN or None), ``absent`` how many of a column's missing values are keys a record lacks."""
        size = len(next(iter(columns.values()))) if columns else 0
        if not size:
            return
        self.rows += size
        for name, column in self.columns.items():
            if name in columns:
                column.add(columns[name])
                column.absent += (absent or {}).get(name, 0)
            else:  # a column the file does not have: every row lacks it, as a capture whose rows lack the key
                column.missing += size
                column.absent += size
        if self.from_file:
            values = columns[PREDICTION]
            self.prediction.add(values if self.prediction.kind == "numeric" else _labels(values, self.classes))
        else:
            self._predict(first, columns, size)

    def _predict(self, first: int, columns: dict[str, NDArray[Any]], size: int) -> None:
        missing = np.zeros(size, dtype=bool)
        for name, kind in self.kinds.items():
            missing |= np.isnan(columns[name]) if kind == "numeric" else np.equal(columns[name], NONE)
        keep = np.flatnonzero(~missing)
        predictions: list[Any] = []
        if keep.size:
            assert self.model is not None
            feeds = [columns[name][keep].tolist() for name in self.kinds]
            try:
                predictions = self.model.predict_columns(feeds).predictions
            except InvalidInputError as exc:
                detail = exc.details[0] if exc.details else {}
                row = detail.get("row")
                place = "" if row is None else _place(self.path, first + int(keep[row]))
                field = f", field {detail['field']!r}" if detail.get("field") else ""
                raise DataError(f"{self.path}: cannot predict {place}{field}: {detail.get('problem', exc)} ({HINT})") from exc
        self.predicted += int(keep.size)
        if self.prediction.kind == "numeric":
            values = np.full(size, np.nan)
            values[keep] = predictions
            self.prediction.add(values)
        else:
            labels = np.full(size, None, dtype=object)
            labels[keep] = [label if isinstance(label, str) else json.dumps(label) for label in predictions]
            self.prediction.add(labels)

    def result(self) -> FileRows:
        current = CurrentData(
            rows=self.rows,
            columns=self.columns,
            prediction=self.prediction,
            versions={self.version: self.rows} if self.rows else {},
            sources=[str(self.path)],
            skipped=[],
        )
        return FileRows(
            path=self.path,
            current=current,
            absent=self.absent,
            predicted=None if self.from_file else self.predicted,
            not_predicted=0 if self.from_file else self.rows - self.predicted,
        )


def _labels(values: NDArray[Any], classes: list[str] | list[int] | None) -> NDArray[Any]:
    """A file's predicted class labels as the model gives them: ``1.0`` (a float column's spelling) is label ``1``."""
    if not classes or not all(isinstance(c, int) for c in classes):
        return values
    spelled: dict[Any, Any] = {}
    for value in set(values.tolist()) - {None}:
        try:
            number = float(value)
        except ValueError:
            spelled[value] = value
            continue
        spelled[value] = str(int(number)) if number.is_integer() else value
    return np.array([None if value is None else spelled[value] for value in values.tolist()], dtype=object)


def _place(path: Path, row: int) -> str:
    """A row as the messages name it: a CSV's data rows from 1 (header excluded), a JSON document's instances from 0."""
    return f"row {row + 1}" if path.suffix.lower() == ".csv" else f"instance {row}"


# -- CSV ----------------------------------------------------------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    with _read_errors(path, lambda: 1), path.open(encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: a spreadsheet's byte-order mark
        header = next(csv.reader(handle), None)
    if not header:
        raise DataError(f"{path}: empty file; expected a CSV file with a header")
    return header


def _fast_csv_blocks(path: Path, header: list[str], wanted: Mapping[str, str]) -> Iterator[tuple[int, dict[str, NDArray[Any]]]] | None:
    """The blocks pandas' C parser reads (numbers parsed as it reads them), or None without pandas.

    Raises ValueError for what the exact reader refuses (a value that is not a number, a row with more values than
    the header has columns) and for what pandas reads otherwise (duplicate column names), so that reader reads the
    file; a row with fewer values has missing values in both."""
    try:
        import pandas as pd
    except ImportError:
        return None
    if any("\n" in name or "\r" in name for name in header):  # pandas skips the header as one line
        return None

    def blocks() -> Iterator[tuple[int, dict[str, NDArray[Any]]]]:
        names = [*header, MORE]  # one value more than the header fills MORE ('' if none, or empty); two more fail
        dtypes = dict.fromkeys(names, str) | {name: np.float64 for name, kind in wanted.items() if kind == "numeric"}
        options: dict[str, Any] = {"header": None, "skiprows": 1, "names": names, "index_col": False, "dtype": dtypes}
        options |= {"keep_default_na": False, "na_values": dict.fromkeys(wanted, MISSING_SPELLINGS), "encoding": "utf-8-sig"}
        first = 0
        with pd.read_csv(path, chunksize=CHUNK_ROWS, **options) as reader:
            for frame in reader:
                if (frame[MORE].fillna("") != "").any():
                    raise ValueError("a row has more values than the header has columns")
                columns = {
                    name: frame[name].to_numpy(np.float64)
                    if kind == "numeric"
                    else _label_cells(frame[name].to_numpy(dtype=object, na_value=None))
                    for name, kind in wanted.items()
                }
                yield first, columns
                first += len(frame)

    return blocks()


def _csv_blocks(
    reader: Iterator[list[str]], header: list[str], wanted: dict[str, str], path: Path
) -> Iterator[tuple[int, dict[str, NDArray[Any]]]]:
    """The exact reader: the standard library's csv module, a block of rows at a time; errors name the row."""
    width = len(header)
    at = {name: header.index(name) for name in wanted if name in header}
    first = 0
    while block := list(itertools.islice(reader, CHUNK_ROWS)):
        if any(len(row) != width for row in block):
            block = [row for row in block if row]  # blank lines are not rows
            for i, row in enumerate(block):
                if len(row) > width and any(row[width:]):
                    raise DataError(f"{path}: row {first + i + 1} has more values ({len(row)}) than the header has columns ({width})")
                if len(row) < width:  # the values it lacks are missing, as pandas (and csv.DictReader) read them
                    block[i] = row + [""] * (width - len(row))
                elif len(row) > width:  # empty cells past the header's columns (a spreadsheet's trailing commas)
                    block[i] = row[:width]
            if not block:
                continue
        cells = list(zip(*block, strict=True))
        yield first, {name: _text_column(cells[i], name, wanted[name], path, first) for name, i in at.items()}
        first += len(block)


def _label_cells(cells: Sequence[str | None] | NDArray[Any]) -> NDArray[Any]:
    """Category labels as training reads them (stripped), None for a missing value."""
    spelled = {cell: None if cell is None or cell.strip().lower() in MISSING_TEXT else cell.strip() for cell in set(cells)}
    return np.array([spelled[cell] for cell in cells], dtype=object)


def _text_column(cells: Sequence[str], name: str, kind: str, path: Path, first: int) -> NDArray[Any]:
    if kind != "numeric":
        return _label_cells(cells)
    text = np.array(cells, dtype=str)
    try:
        values = text.astype(np.float64)  # numpy parses the numbers; nan, NaN and NAN are NaN already
    except ValueError:
        missing = np.isin(np.char.lower(np.char.strip(text)), sorted(MISSING_TEXT))
        try:
            values = np.where(missing, "nan", text).astype(np.float64)
        except ValueError:  # some cell is not a number: find the first, in Python
            values = np.full(len(cells), np.nan)
            for i, cell in enumerate(cells):
                if missing[i]:
                    continue
                try:
                    values[i] = float(cell)
                except ValueError:
                    raise DataError(
                        f"{path}: {_place(path, first + i)}, column {name!r}: expected a number (an empty cell or nan is a missing value)"
                    ) from None
    return values


# -- JSON ---------------------------------------------------------------------------------------------------------


def _json_records(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot read input: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    if not isinstance(document, list) or not all(isinstance(record, dict) for record in document):
        raise DataError(f'{path}: expected records (a CSV with a header, a JSON list of objects or {{"instances": [...]}})')
    return document


def _json_column(records: list[dict[str, Any]], name: str, kind: str, path: Path, first: int) -> NDArray[Any]:
    """One key of a block of records: null, an absent key or a missing-value spelling is a missing value."""
    values = [record.get(name) for record in records]
    if kind != "numeric":
        return np.array([_json_label(value) for value in values], dtype=object)
    if set(map(type, values)) <= {int, float, type(None)}:
        try:
            numbers = np.array(values, dtype=np.float64)  # None is NaN
        except OverflowError:  # an integer beyond the float range
            numbers = None
    else:
        numbers = None
    if numbers is None:
        parsed: list[float] = []
        for i, value in enumerate(values):
            if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_TEXT):
                parsed.append(np.nan)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    parsed.append(float(value))
                except OverflowError:  # an integer of hundreds of digits: out of range, as the capture reader keeps it
                    parsed.append(np.inf if value > 0 else -np.inf)
            else:
                raise DataError(f"{path}: {_place(path, first + i)}, field {name!r}: expected a number or null")
        numbers = np.array(parsed, dtype=np.float64)
    return numbers


def _json_label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return None if value.strip().lower() in MISSING_TEXT else value.strip()
    return json.dumps(value)  # as the capture reader counts a non-string category
