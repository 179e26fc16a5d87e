"""The newest labelled rows of a quality window, handed to the retraining a breach starts as a second holdout.

When a breach starts retraining (``quality.retrain_on_quality``), the quality check writes the rows it joined: each
labelled prediction's captured features, in the model's feature order, with its label as the spec's target column. It
keeps the newest :data:`MAX_ROWS` by prediction time (all versions of the window; a label does not depend on the version
that served the prediction), oldest first, as ``holdout-recent/{model}/{window}/{sha256}.csv``. The retraining
execution's input names the file (``recent``: URI, sha256, rows), and Evaluate scores the candidate and the champion on
it besides the split holdout (:func:`serverless_mlops.retraining.candidate_steps.evaluate`).

Not under ``feedback/{model}/``: PrepareData adds everything there to the training data, and rows a candidate was
trained on cannot show how it does on the newest traffic. Content-addressed, so a retried check never changes a file
an execution already recorded.

The join keeps no features (a million predictions would cost a million dicts), so this module reads the window's
capture objects a second time and keeps the features of the selected rows only (matched by prediction id and capture
time, the row the join kept). It runs only when a breach starts retraining, once per window.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from serverless_mlops.drift.capture_reader import FETCH_THREADS, _blocks, _in_order, capture_keys
from serverless_mlops.errors import DataError
from serverless_mlops.quality.joined import Joined
from serverless_mlops.quality.recent_key import recent_key
from serverless_mlops.store.artifacts import encryption_args

MAX_ROWS = 10_000  # the newest labelled rows kept: enough to score a metric to ±0.01, small enough for one Lambda read


@dataclass(frozen=True)
class RecentRowsFile:
    """The file written: where, its sha256, the rows in it and how many labelled rows the window had in all."""

    uri: str
    sha256: str
    rows: int
    labelled: int
    window: str


@dataclass(frozen=True)
class LabelledRow:
    ts: str
    id: str
    label: Any


class _Captured(msgspec.Struct, gc=False):
    ts: str
    id: str | None = None
    features: msgspec.Raw = msgspec.Raw()


_ROWS = msgspec.json.Decoder(list[_Captured])
_FEATURES = msgspec.json.Decoder(dict[str, Any])


def newest_labelled(joined: Joined, cap: int = MAX_ROWS) -> list[LabelledRow]:
    """The newest ``cap`` joined rows of every version, by capture time (then id), oldest first."""
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    rows = [
        LabelledRow(ts, prediction_id, label)
        for version in joined.versions.values()
        for ts, prediction_id, label in zip(version.labelled.times, version.labelled.ids, version.labelled.truth, strict=True)
    ]
    rows.sort(key=lambda row: (row.ts, row.id))
    return rows[-cap:]


def read_features(
    s3: Any, bucket: str, model: str, wanted: Mapping[str, str], *, start: datetime, end: datetime
) -> dict[str, dict[str, Any]]:
    """The captured features of each wanted prediction id (``wanted``: id → the capture time the join kept)."""
    found: dict[str, dict[str, Any]] = {}
    keys = capture_keys(s3, bucket, model, start, end)

    def fetch(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for key, data in zip(keys, _in_order(pool, fetch, keys), strict=True):
            try:
                for block in _blocks(io.BytesIO(data)):
                    for row in _ROWS.decode(b"[" + block.rstrip().replace(b"\n", b",") + b"]"):
                        if row.id is not None and wanted.get(row.id) == row.ts:
                            found[row.id] = _FEATURES.decode(bytes(row.features))
            except (OSError, EOFError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                # the join read it a moment ago; a rows it kept cannot silently go missing from the holdout
                raise DataError(f"s3://{bucket}/{key}: cannot read the captured features of the labelled rows again: {exc}") from exc
    return found


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def to_csv(rows: Sequence[LabelledRow], features: Mapping[str, Mapping[str, Any]], feature_names: Sequence[str], target: str) -> bytes:
    """Header ``feature_names + [target]``, one line per row: its captured features and its label."""
    if target in feature_names:
        raise DataError(f"target column {target!r} is also a feature")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*feature_names, target])
    for row in rows:
        captured = features.get(row.id)
        if captured is None:
            raise DataError(f"prediction {row.id!r} (captured {row.ts}) joined a label but its captured row was not found again")
        writer.writerow([*(_cell(captured.get(name)) for name in feature_names), _cell(row.label)])
    return out.getvalue().encode()


def write_recent_rows(
    s3: Any,
    bucket: str,
    model: str,
    joined: Joined,
    *,
    window_label: str,
    start: datetime,
    end: datetime,
    feature_names: Sequence[str],
    target: str,
    kms_key_id: str | None = None,
    cap: int = MAX_ROWS,
) -> RecentRowsFile | None:
    """Write the newest labelled rows of the window (None when it has none); see the module docstring."""
    rows = newest_labelled(joined, cap)
    if not rows:
        return None
    features = read_features(s3, bucket, model, {row.id: row.ts for row in rows}, start=start, end=end)
    body = to_csv(rows, features, feature_names, target)
    digest = hashlib.sha256(body).hexdigest()
    key = recent_key(model, window_label, digest)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv", **encryption_args(kms_key_id))
    labelled = sum(len(v.labelled.ids) for v in joined.versions.values())
    return RecentRowsFile(uri=f"s3://{bucket}/{key}", sha256=digest, rows=len(rows), labelled=labelled, window=window_label)
