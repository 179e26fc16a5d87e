"""Reading one window of a model's captured predictions from S3 for the quality check: :func:`join_window` joins
every prediction with ``start <= ts < end`` to the labels, reading each capture object's predictions object where it
has one (:mod:`serverless_mlops.store.prediction_columns`: the same rows without their features, a third of the
bytes and a fifth of the decoding) and the capture object itself when there is none (objects written before it),
when it does not read, or when its probabilities must be recomputed from the features. :func:`capture_rows` reads the
full captured rows (features included) of given prediction ids, for what needs the labelled rows' features."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, cast

from serverless_mlops.drift.capture_reader import FETCH_THREADS, _in_order, capture_keys
from serverless_mlops.quality.join import Joiner, Scorer
from serverless_mlops.quality.joined import Joined
from serverless_mlops.quality.labels import Label
from serverless_mlops.store.capture_format import CaptureFormatError, decode_records, timestamp, window_prefixes
from serverless_mlops.store.prediction_columns import predictions_key, predictions_prefix


def predictions_keys(s3: Any, bucket: str, model: str, start: datetime, end: datetime) -> set[str]:
    """The keys of the predictions objects of ``model`` in the hours that cover [start, end): one listing from the
    first hour's prefix on (keys sort by hour), not one per hour."""
    hours = window_prefixes(model, start, end)
    first, last = predictions_prefix(hours[0]), predictions_prefix(hours[-1])
    root = f"{first.split('/', 1)[0]}/{model}/"
    keys: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=root, StartAfter=first):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key[: len(last)] > last:
                return keys
            keys.add(key)
    return keys


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
    """Every captured prediction of ``model`` with ``start <= ts < end``, joined to ``labels``: from each capture
    object's predictions object where it has one, else from the capture object."""
    joiner = Joiner(labels, start=start, end=end, label_delay=label_delay, classes=classes, scorer=scorer)
    keys = capture_keys(s3, bucket, model, start, end)
    compact = predictions_keys(s3, bucket, model, start, end) if keys else set()

    def get(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def fetch(key: str) -> tuple[str, bytes]:
        beside = predictions_key(key)
        return (beside, get(beside)) if beside in compact else (key, get(key))

    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for key, fetched in zip(keys, _in_order(pool, fetch, keys), strict=True):
            read, data = cast(tuple[str, bytes], fetched)
            source = f"s3://{bucket}/{key}"
            if read == key:
                joiner.add_stream(io.BytesIO(data), source)
            elif not joiner.add_predictions(data, f"s3://{bucket}/{read}", capture=source):
                joiner.add_stream(io.BytesIO(get(key)), source)  # the capture object holds what its predictions object lacks
    return joiner.result()


def capture_rows(
    s3: Any, bucket: str, model: str, ids: Collection[str], *, start: datetime, end: datetime, sources: Sequence[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The full captured rows (features included, as the capture format holds them) of ``model`` with
    ``start <= ts < end`` whose id is among ``ids``, in key and line order (an id captured twice comes twice: the
    later one is the one the join kept). ``sources``: only these capture objects (``s3://bucket/key``, as
    :attr:`Joined.labelled_sources` names them), else every one of the window. An object that does not read is
    skipped, as the join skips it."""
    since, until = timestamp(start), timestamp(end)
    if sources is None:
        keys = capture_keys(s3, bucket, model, start, end)
    else:
        prefix = f"s3://{bucket}/"
        keys = [source.removeprefix(prefix) for source in sources if source.startswith(prefix)]
    wanted = ids if isinstance(ids, set | frozenset | dict) else set(ids)
    for key in keys:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            rows = list(decode_records(data, f"s3://{bucket}/{key}"))
        except CaptureFormatError:
            continue
        for row in rows:
            pid = row.get("id")
            if isinstance(pid, str) and pid in wanted and since <= str(row["ts"]) < until:
                yield row
