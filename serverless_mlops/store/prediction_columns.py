"""Captured predictions without their features: the compact object the quality check reads instead of the capture.

The quality check needs of a captured row its time, model version, prediction id, prediction and served
probabilities, never its features; yet a full capture row carries them (five features are more than half of a row's
bytes, twenty are four fifths). So each capture flush (:mod:`serverless_mlops.serving.capture_writer`) also writes,
right after the capture object, one *predictions object* holding only those fields, column by column, under a sibling
key of the same name::

    capture/{model}/{yyyy}/{mm}/{dd}/{hh}/{yyyymmddThhmmss}-{id}.jsonl.gz
    predictions/{model}/{yyyy}/{mm}/{dd}/{hh}/{yyyymmddThhmmss}-{id}.json.gz

It is one gzip JSON object, a request's fields once per request and a row's once per row::

    {"format": "predictions/1", "model": "churn",
     "ts": ["2026-12-07T10:15:00.123Z", ...],   # per request: its capture time (every row of a request shares it)
     "version": [3, ...],                        # per request: the version that served it
     "rows": [100, ...],                         # per request: how many rows it had
     "width": [2, ...],                          # per request: probabilities per row (0: none, e.g. a regressor)
     "id": ["req-1-0", ...],                     # per row: the prediction id
     "prediction": [1, ...],                     # per row
     "probabilities": [0.25, 0.75, ...]}         # the rows' probabilities, flat, row after row (class order)

Plain JSON rather than a binary columnar format: the inference function ships no Arrow or Parquet library, and
msgspec (already its JSON encoder) decodes a column of a thousand numbers into one list in one call; a million
predictions decode in a fifth of the time their capture rows take, from a third of the bytes.

The capture object stays the source of truth: a predictions object is written with its capture object (at once, by
the same flush), a reader uses it only beside a capture object of the same name, and falls back to the capture rows when
there is none (objects written before this format, or a predictions write that failed), when it does not read, or
when it lacks what the reader needs (probabilities to be recomputed from the features). Nothing here imports msgspec,
numpy or boto3, so the inference path stays light.
"""

from __future__ import annotations

from serverless_mlops.store.capture_format import CAPTURE_PREFIX, SUFFIX

PREDICTIONS_PREFIX = "predictions"
PREDICTIONS_SUFFIX = ".json.gz"
FORMAT = "predictions/1"
COLUMNS = ("ts", "version", "rows", "width", "id", "prediction", "probabilities")


def predictions_key(capture_key: str) -> str:
    """The predictions object written beside the capture object ``capture_key``."""
    head, _, rest = capture_key.partition("/")
    if head != CAPTURE_PREFIX or not rest.endswith(SUFFIX):
        raise ValueError(f"not a capture key: {capture_key!r} (expected {CAPTURE_PREFIX}/...{SUFFIX})")
    return f"{PREDICTIONS_PREFIX}/{rest.removesuffix(SUFFIX)}{PREDICTIONS_SUFFIX}"


def predictions_prefix(capture_prefix: str) -> str:
    """The predictions prefix of a capture prefix (``capture/{model}/...`` → ``predictions/{model}/...``)."""
    head, _, rest = capture_prefix.partition("/")
    if head != CAPTURE_PREFIX:
        raise ValueError(f"not a capture prefix: {capture_prefix!r}")
    return f"{PREDICTIONS_PREFIX}/{rest}"
