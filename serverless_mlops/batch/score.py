"""Score: one shard through the serving code, streamed block by block, into its output object and refused rows.

Each block of whole lines (a few MiB) is parsed into one column per feature and scored with
:meth:`OnnxModel.predict_columns` (CSV) or :meth:`OnnxModel.predict_records` (JSON Lines, parsed by the endpoint's
:func:`json_body`): the validation and the ONNX session the HTTP endpoint uses. A block that fails validation is walked
row by row with the same rules, and each bad row is written to the refused-rows file, naming the object, the row's
byte offset in it, the field and the problem, never the value; the other rows are scored. Output rows are the input
lines as they were, plus the prediction columns and ``model_version``.

A shard is done when its counts are written (``batch/jobs/{job}/done/NNNNN.json``, after the output): a re-run with the same
job id returns those counts and reads nothing else.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from serverless_mlops.batch.contract import PREDICTION_COLUMN, VERSION_COLUMN, Job, Shard, done_key, parse_s3_uri, refused_uri
from serverless_mlops.batch.objects import Objects, Upload
from serverless_mlops.batch.prepare import output_columns
from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.signature import FeatureSignature
from serverless_mlops.serving.onnx_model import OnnxModel, Prediction
from serverless_mlops.serving.onnx_model import _problem as value_problem
from serverless_mlops.serving.request_parsing import json_body

BLOCK_BYTES = 4 << 20
CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
_encode = msgspec.json.Encoder().encode
Outputs = tuple[np.ndarray, np.ndarray | None]  # (labels or values, probabilities)
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass
class ShardResult:
    index: int
    rows: int = 0
    scored: int = 0
    refused: int = 0
    skipped: bool = False
    output: str = ""

    def document(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rows": self.rows,
            "scored": self.scored,
            "refused": self.refused,
            "skipped": self.skipped,
            "output": self.output,
        }


@dataclass
class _Refusals:
    """A block's refused rows: row number in the block → [(field, problem)]."""

    problems: dict[int, list[tuple[str | None, str]]] = field(default_factory=dict)

    def add(self, row: int, field_name: str | None, problem: str) -> None:
        self.problems.setdefault(row, []).append((field_name, problem))


def _csv_value(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _arrays(prediction: Prediction) -> Outputs:
    probabilities = None if prediction.probabilities is None else np.asarray(prediction.probabilities, dtype=np.float64)
    return np.asarray(prediction.predictions), probabilities


def _parse_number(feature: FeatureSignature, text: str) -> tuple[Any, str | None]:
    if text == "":
        return None, "missing"
    if feature.kind == "categorical":
        return text, None
    try:
        return float(text), None
    except ValueError:
        return None, value_problem(feature, text)


class ShardScorer:
    """Scores the blocks of one shard with ``model`` (the job's pinned version)."""

    def __init__(self, model: OnnxModel, shard: Shard, version: int) -> None:
        self.model = model
        self.shard = shard
        self.features = model.signature.features
        self.version = version
        self.columns = output_columns(model.signature)
        self.with_probabilities = len(self.columns) > 2
        self.source = f"s3://{shard.bucket}/{shard.key}"
        self.header_pending = shard.format == "csv" and shard.start == 0
        if shard.format == "csv":
            assert shard.header is not None
            names = next(csv.reader([shard.header]))
            self.width = len(names)
            self.positions = [names.index(feature.name) for feature in self.features]
        self._records: dict[int, dict[str, Any]] = {}
        self.numeric_only = all(feature.kind == "numeric" for feature in self.features)

    def header(self) -> bytes:
        """What the output object starts with: the CSV header plus the added columns (nothing for JSON Lines)."""
        if self.shard.format != "csv":
            return b""
        assert self.shard.header is not None
        return (self.shard.header + "," + ",".join(_csv_value(c) for c in self.columns) + "\n").encode()

    # -- one block -------------------------------------------------------------------------------------------------
    def block(self, offset: int, data: bytes) -> tuple[bytes, list[bytes], int, int]:
        """(output bytes, refused-row lines, rows seen, rows refused) for a block of whole lines starting at byte ``offset``."""
        text = data.decode("utf-8", errors="surrogateescape")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if "\r" in text:
            lines = [line.removesuffix("\r") for line in lines]
        first = 0
        if self.header_pending:
            self.header_pending, first = False, 1
        indices = [i for i in range(first, len(lines)) if lines[i].strip()]
        rows_seen = len(indices)
        refusals = _Refusals()
        if _UNDECODABLE.search(text):  # bytes that are not UTF-8 (decoded as lone surrogates): those rows are refused
            undecodable = {i for i in indices if _UNDECODABLE.search(lines[i])}
            for i in sorted(undecodable):
                refusals.add(i, None, "not UTF-8 text")
            indices = [i for i in indices if i not in undecodable]
        if self.shard.format == "csv":
            scored, prediction = self._csv(lines, indices, refusals)
        else:
            scored, prediction = self._jsonl(lines, indices, refusals)
        out = self._output(lines, scored, prediction)
        refused = self._refused_lines(offset, data, refusals)
        return out, refused, rows_seen, len(refusals.problems)

    def _predict(
        self,
        rows: list[int],
        run: Callable[[list[int]], Outputs],
        check: Callable[[int], list[tuple[str | None, str]]],
        refusals: _Refusals,
    ) -> tuple[list[int], Outputs | None]:
        """Score ``rows``; when validation refuses the block, walk it row by row (``check``), refuse the bad rows and
        score the rest; rows whose prediction is not finite (the model's own refusal) are refused too."""
        walked = False
        while rows:
            try:
                return rows, run(rows)
            except InvalidInputError as exc:
                bad: dict[int, list[tuple[str | None, str]]] = {}
                if not walked:
                    walked = True
                    bad = {row: found for row in rows if (found := check(row))}
                if not bad:  # valid inputs, an output that is not finite: the details name the rows
                    bad = {rows[d["row"]]: [(d.get("field"), str(d["problem"]))] for d in exc.details if isinstance(d.get("row"), int)}
                if not bad:
                    raise
                for row, found in bad.items():
                    for name, problem in found:
                        refusals.add(row, name, problem)
                rows = [row for row in rows if row not in bad]
        return rows, None

    def _csv(self, lines: list[str], indices: list[int], refusals: _Refusals) -> tuple[list[int], Outputs | None]:
        if self.numeric_only and indices:
            matrix = self._numeric_block([lines[i] for i in indices])
            if matrix is not None:
                return self._predict_matrix(indices, matrix, refusals)
        return self._csv_rows(lines, indices, refusals)

    def _numeric_block(self, lines: list[str]) -> np.ndarray | None:
        """The feature columns of a block of unquoted CSV lines as a features x rows float64 matrix, parsed by numpy's
        C reader; None when any line is not that simple (a quote, a field count unlike the header's, a value that is
        not a number): such a block is parsed row by row, which names what is wrong."""
        commas = self.width - 1
        if any(line.count(",") != commas or '"' in line for line in lines):
            return None
        try:
            matrix = np.loadtxt(lines, delimiter=",", dtype=np.float64, usecols=self.positions, ndmin=2, comments=None, quotechar=None)
        except ValueError:
            return None
        return np.ascontiguousarray(matrix.T)

    def _predict_matrix(self, rows: list[int], matrix: np.ndarray, refusals: _Refusals) -> tuple[list[int], Outputs | None]:
        position_of = {row: position for position, row in enumerate(rows)}

        def run(subset: list[int]) -> Outputs:
            if len(subset) == len(rows):
                return self.model.predict_matrix(matrix)
            return self.model.predict_matrix(matrix[:, [position_of[row] for row in subset]])

        def check(row: int) -> list[tuple[str | None, str]]:
            values = matrix[:, position_of[row]].tolist()
            found = [(f.name, value_problem(f, value)) for f, value in zip(self.features, values, strict=True)]
            return [(name, problem) for name, problem in found if problem is not None]

        return self._predict(rows, run, check, refusals)

    def _csv_rows(self, lines: list[str], indices: list[int], refusals: _Refusals) -> tuple[list[int], Outputs | None]:
        parsed = csv.reader([lines[i] for i in indices])
        records = list(parsed)
        if len(records) != len(indices):  # a quoted field ran past its line: parse line by line
            records = [next(csv.reader([lines[i]]), []) for i in indices]
        rows: list[int] = []
        kept: list[list[str]] = []
        for i, record in zip(indices, records, strict=True):
            if len(record) != self.width:
                refusals.add(i, None, f"expected {self.width} fields as in the header, got {len(record)}")
            else:
                rows.append(i)
                kept.append(record)
        texts_by_feature = [[record[p] for record in kept] for p in self.positions]
        columns: list[list[Any]] = []
        bad_rows: set[int] = set()
        for feature, texts in zip(self.features, texts_by_feature, strict=True):
            column: list[Any]
            if feature.kind == "numeric" and "" not in texts:
                try:
                    column = list(map(float, texts))
                except ValueError:
                    column = []
            elif feature.kind == "categorical" and "" not in texts:
                column = texts
            else:
                column = []
            if not column and texts:
                column = []
                for position, text in enumerate(texts):
                    value, problem = _parse_number(feature, text)
                    column.append(value)
                    if problem is not None:
                        refusals.add(rows[position], feature.name, problem)
                        bad_rows.add(position)
            columns.append(column)
        if bad_rows:
            keep = [p for p in range(len(rows)) if p not in bad_rows]
            rows = [rows[p] for p in keep]
            columns = [[column[p] for p in keep] for column in columns]
        position_of = {row: position for position, row in enumerate(rows)}

        def run(subset: list[int]) -> Outputs:
            if len(subset) == len(rows):
                return _arrays(self.model.predict_columns(columns))
            picks = [position_of[row] for row in subset]
            return _arrays(self.model.predict_columns([[column[p] for p in picks] for column in columns]))

        def check(row: int) -> list[tuple[str | None, str]]:
            position = position_of[row]
            found = [(f.name, value_problem(f, column[position])) for f, column in zip(self.features, columns, strict=True)]
            return [(name, problem) for name, problem in found if problem is not None]

        return self._predict(rows, run, check, refusals)

    def _jsonl(self, lines: list[str], indices: list[int], refusals: _Refusals) -> tuple[list[int], Outputs | None]:
        rows: list[int] = []
        self._records = {}
        for i in indices:
            try:
                record = json_body(lines[i])
            except ValueError:
                refusals.add(i, None, "not valid JSON")
                continue
            if not isinstance(record, dict):
                refusals.add(i, None, "expected a JSON object of feature values")
                continue
            rows.append(i)
            self._records[i] = record

        def run(subset: list[int]) -> Outputs:
            return _arrays(self.model.predict_records([self._records[row] for row in subset]))

        def check(row: int) -> list[tuple[str | None, str]]:
            record = self._records[row]
            found: list[tuple[str | None, str]] = []
            for feature in self.features:
                if feature.name not in record:
                    found.append((feature.name, "missing"))
                elif (problem := value_problem(feature, record[feature.name])) is not None:
                    found.append((feature.name, problem))
            return found

        return self._predict(rows, run, check, refusals)

    # -- writing ---------------------------------------------------------------------------------------------------
    def _output(self, lines: list[str], rows: list[int], outputs: Outputs | None) -> bytes:
        if outputs is None or not rows:
            return b""
        labels, probabilities = outputs
        if not self.with_probabilities:
            probabilities = None
        if self.shard.format == "csv":
            version = str(self.version)
            columns = [labels.astype(str).tolist() if labels.dtype.kind in "iuf" else [_csv_value(v) for v in labels.tolist()]]
            if probabilities is not None:
                columns += [probabilities[:, k].astype(str).tolist() for k in range(probabilities.shape[1])]
            suffixes = map(",".join, zip(*columns, strict=True))
            text = "\n".join([f"{lines[row]},{suffix},{version}" for row, suffix in zip(rows, suffixes, strict=True)])
            return (text + "\n").encode("utf-8", errors="surrogateescape")
        classes = [str(c) for c in self.model.signature.classes or []]
        values = labels.tolist()
        chances = probabilities.tolist() if probabilities is not None else None
        out: list[bytes] = []
        for position, row in enumerate(rows):
            record = dict(self._records[row])
            record[PREDICTION_COLUMN] = values[position]
            if chances is not None:
                record["probabilities"] = dict(zip(classes, chances[position], strict=True))
            record[VERSION_COLUMN] = self.version
            out.append(_encode(record))
        return b"\n".join(out) + b"\n"

    def _refused_lines(self, offset: int, data: bytes, refusals: _Refusals) -> list[bytes]:
        if not refusals.problems:
            return []
        starts = [0]
        for line in data.split(b"\n")[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        return [
            json.dumps({"object": self.source, "offset": offset + starts[row], "field": name, "problem": problem}).encode() + b"\n"
            for row in sorted(refusals.problems)
            for name, problem in refusals.problems[row]
        ]


ModelLoader = Callable[[str, int], OnnxModel]


def score_shard(job: Job, shard: Shard, objects: Objects, load: ModelLoader, *, block_bytes: int = BLOCK_BYTES) -> ShardResult:
    """Score one shard (or return its recorded counts when a previous run finished it)."""
    done = objects.read_json(objects.bucket, done_key(job.job_id, shard.index))
    if done is not None:
        return ShardResult(**{**done, "skipped": True})
    scorer = ShardScorer(load(job.model, job.version), shard, job.version)
    result = ShardResult(index=shard.index, output=shard.output)
    out_bucket, out_key = parse_s3_uri(shard.output, "output")
    refused_bucket, refused_key = parse_s3_uri(refused_uri(job.request.output_prefix, shard.index), "output")
    output = Upload(objects, out_bucket, out_key, CONTENT_TYPES[shard.format])
    refused = Upload(objects, refused_bucket, refused_key, "application/x-ndjson")
    try:
        output.write(scorer.header())
        for offset, data in objects.blocks(shard, block_bytes):
            out, refused_lines, rows, refused_rows = scorer.block(offset, data)
            output.write(out)
            for line in refused_lines:
                refused.write(line)
            result.rows += rows
            result.refused += refused_rows
        result.scored = result.rows - result.refused
        output.close()
        if refused.written:
            refused.close()
    except BaseException:
        output.abort()
        refused.abort()
        raise
    document = result.document()
    objects.write_json(objects.bucket, done_key(job.job_id, shard.index), {k: v for k, v in document.items() if k != "skipped"})
    return result
