"""The shapes the quality join decodes with msgspec: a captured row as the join needs it (:class:`LeanRow`: the
features skipped, not kept; :class:`CapturedRow`: with them raw, to re-score), and a predictions object
(:class:`PredictionColumns`, :mod:`serverless_mlops.store.prediction_columns`), with their decoders."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["COLUMNS", "FEATURES", "LEAN_ROWS", "ROWS", "CapturedRow", "LeanRow", "PredictionColumns"]


class LeanRow(msgspec.Struct, kw_only=True, gc=False):
    """What the join needs of a captured row when it will not re-score it: the features are skipped, not kept."""

    ts: str
    version: int
    prediction: Any
    id: str | None = None
    probabilities: list[float] | None = None


class CapturedRow(LeanRow, kw_only=True, gc=False):
    features: msgspec.Raw = msgspec.Raw()  # empty: the row has no features


class PredictionColumns(msgspec.Struct, kw_only=True, gc=False):
    """A predictions object (:mod:`serverless_mlops.store.prediction_columns`): per request, then per row."""

    format: str
    ts: list[str]
    version: list[int]
    rows: list[int]
    width: list[int]
    id: list[str | None]
    prediction: list[Any]
    probabilities: list[float]


ROWS = msgspec.json.Decoder(list[CapturedRow])
COLUMNS = msgspec.json.Decoder(PredictionColumns)
LEAN_ROWS = msgspec.json.Decoder(list[LeanRow])
FEATURES = msgspec.json.Decoder(list[dict[str, Any]])
