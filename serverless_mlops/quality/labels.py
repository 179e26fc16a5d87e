"""Ground truth: labels that name predictions by id, arriving after the predictions (hours to weeks later).

Where they live: ``ground-truth/{model}/{yyyy}/{mm}/{dd}/{name}.csv`` or ``.jsonl`` in the artifact bucket (gzip
allowed, recognized by its bytes), the date being the UTC day the labels arrived. Each row names:

- ``id``: a prediction id, as the predict answer returned it (``ids``) and the captured row holds it (``id``), under
  the rule of :func:`serverless_mlops.store.capture_format.id_problem`;
- ``label``: the true class (one of the model's classes, written as the class is: ``1`` or ``"1"`` for class 1) or,
  for a regressor, the true value (a finite number);
- ``event_time`` (optional): when the labelled event happened, ISO 8601 (a time without an offset is UTC).

A CSV file has a header row naming these columns (any order; no other column); a JSON Lines file has one object per
line with these keys (no other key). Labels come in three ways: files a system drops under the prefix, ``mlops labels
put MODEL FILE`` (validates the whole file, then uploads it as it is), and ``POST /v1/models/{name}/labels`` (one JSON
Lines object per request, :func:`write_labels`). Both of the latter write under :func:`ground_truth_key`, whose name
starts with the UTC time of arrival to the microsecond, so key order is arrival order.

**Duplicates: the last label wins.** When several rows name one id, :func:`read_ground_truth` keeps the last one
read, reading objects in key order (day prefixes oldest first, then the keys of a day in lexicographic order, as S3
lists them) and each object's rows in line order. A label can thus be corrected by sending it again. A system that
drops files under the prefix itself should name them so that they sort in arrival order (e.g. starting with a UTC
timestamp ``20261207T101500``). Labels whose id matches no captured prediction are counted by the quality check,
never an error.

Validation (:func:`parse_labels`) names the row and field of every problem (up to 50): for a file, the 1-based line
(the CSV header is line 1); for the HTTP route, the 0-based index in ``labels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from serverless_mlops.model.signature import Task
from serverless_mlops.quality.label_rows import (
    COLUMNS,
    FORMATS,
    GROUND_TRUTH_PREFIX,
    MAX_LABELS_PER_REQUEST,
    Classes,
    Label,
    LabelsError,
    LabelsReceipt,
    LabelsTarget,
    LabelValue,
    TooManyLabelsError,
    day_prefix,
    day_prefixes,
    encode_labels,
    ground_truth_key,
    label_format,
    parse_event_time,
    parse_labels,
    put_ground_truth,
    receive_labels,
    write_labels,
)

__all__ = [
    "COLUMNS",
    "FORMATS",
    "GROUND_TRUTH_PREFIX",
    "MAX_LABELS_PER_REQUEST",
    "Classes",
    "GroundTruth",
    "Label",
    "LabelValue",
    "LabelsError",
    "LabelsReceipt",
    "LabelsTarget",
    "SkippedObject",
    "TooManyLabelsError",
    "day_prefix",
    "day_prefixes",
    "encode_labels",
    "ground_truth_key",
    "ground_truth_keys",
    "label_format",
    "merge_labels",
    "parse_event_time",
    "parse_labels",
    "put_ground_truth",
    "read_ground_truth",
    "receive_labels",
    "write_labels",
]

FETCH_THREADS = 8


# -- merging: the last label wins ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SkippedObject:
    """A ground-truth object the reader could not use, and why (the rest is still read)."""

    source: str
    reason: str


@dataclass
class GroundTruth:
    """The labels of a range of days: ``labels`` maps each id to its last label (``Label.order`` counts every row
    read, in key then line order), ``rows`` counts the rows read, ``replaced`` those an id's later label replaced."""

    labels: dict[str, Label] = field(default_factory=dict)
    rows: int = 0
    replaced: int = 0
    objects: list[str] = field(default_factory=list)
    skipped: list[SkippedObject] = field(default_factory=list)

    def add(self, labels: Iterable[Label], source: str) -> None:
        """Merge one object's labels (in line order) after every object added before: the last label of an id wins."""
        store = self.labels
        for label in labels:
            if label.id in store:
                self.replaced += 1
            # renumbered in the order read (the first object's labels, numbered from 0 as parsed, are kept as they are)
            store[label.id] = label if label.order == self.rows else Label(label.id, label.label, label.event_time, self.rows)
            self.rows += 1
        self.objects.append(source)


def merge_labels(batches: Iterable[Sequence[Label]]) -> GroundTruth:
    """Labels from several sources, in the order given, into one :class:`GroundTruth` (last wins)."""
    truth = GroundTruth()
    for number, batch in enumerate(batches):
        truth.add(batch, f"batch {number}")
    return truth


# -- reading a range of days ----------------------------------------------------------------------------------------
def ground_truth_keys(s3: Any, bucket: str, model: str, start: datetime, end: datetime) -> list[str]:
    """The keys of every ground-truth object of ``model`` that arrived on the days covering ``[start, end)``, in the
    order the last label wins by (day, then key)."""
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in day_prefixes(model, start, end):
        page_keys: list[str] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            page_keys.extend(item["Key"] for item in page.get("Contents", []))
        keys.extend(sorted(page_keys))
    return keys


def read_ground_truth(
    s3: Any, bucket: str, model: str, start: datetime, end: datetime, *, task: Task, classes: Classes = None
) -> GroundTruth:
    """The labels of ``model`` that arrived on the days covering ``[start, end)``: id → last label (see the module
    docstring). An object that is not ``.csv``/``.jsonl`` or does not validate is skipped as a whole and reported in
    ``skipped`` by name and reason; the rest is still read."""
    truth = GroundTruth()
    keys = ground_truth_keys(s3, bucket, model, start, end)

    def fetch(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    usable = [key for key in keys if label_format(key) is not None]
    for key in keys:
        if label_format(key) is None:
            truth.skipped.append(SkippedObject(f"s3://{bucket}/{key}", "not a .csv or .jsonl object (optionally .gz)"))
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for key, data in zip(usable, pool.map(fetch, usable), strict=True):
            source = f"s3://{bucket}/{key}"
            try:
                labels = parse_labels(data, source, task, classes)
            except LabelsError as exc:
                truth.skipped.append(SkippedObject(source, str(exc)))
                continue
            truth.add(labels, source)
    return truth
