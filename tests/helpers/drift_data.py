"""Drift test data: the example models' training data, fresh and shifted samples of it, and capture records as inference writes them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from serverless_mlops.drift.capture_reader import CaptureReader, CurrentData
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.profile import load_profile
from serverless_mlops.serving.onnx_model import OnnxModel
from serverless_mlops.store.capture_format import timestamp
from tests.helpers.specs import MODELS

WHEN = datetime(2026, 11, 25, 11, 30, tzinfo=UTC)
CSV = {"breast-cancer": "breast_cancer.csv", "wine": "wine.csv", "diabetes": "diabetes.csv"}


def training_frame(name: str) -> pd.DataFrame:
    return pd.read_csv(MODELS / "data" / CSV[name])


def fresh_sample(name: str, rows: int, seed: int) -> pd.DataFrame:
    """New draws from the training distribution: a bootstrap sample of the example data set."""
    return training_frame(name).sample(rows, replace=True, random_state=seed).reset_index(drop=True)


def records_for(trained: TrainedModel, frame: pd.DataFrame, *, when: datetime = WHEN, version: int = 1) -> list[dict[str, Any]]:
    """Capture records as inference writes them, with the model's own predictions."""
    signature = trained.record.signature
    features = [
        {f.name: (str(row[f.name]) if f.kind == "categorical" else float(row[f.name])) for f in signature.features}
        for row in frame.to_dict("records")
    ]
    predictions = OnnxModel(signature, trained.onnx_bytes).predict_records(features).predictions
    return [
        {
            "ts": timestamp(when + timedelta(milliseconds=i)),
            "request_id": f"r{i}",
            "model": signature.model,
            "version": version,
            "features": row,
            "prediction": prediction,
        }
        for i, (row, prediction) in enumerate(zip(features, predictions, strict=True))
    ]


def profile_of(trained: TrainedModel) -> dict[str, Any]:
    return load_profile(trained.profile_bytes)


def current_from(profile: dict[str, Any], *objects: tuple[str, bytes]) -> CurrentData:
    reader = CaptureReader({n: s["kind"] for n, s in profile["features"].items()}, profile["prediction"]["kind"])
    for source, data in objects:
        reader.add(io.BytesIO(data), source)
    return reader.result


def drifted_frame(rows: int, seed: int) -> pd.DataFrame:
    """A diabetes sample with every numeric feature shifted by half a standard deviation: dataset drift."""
    frame = fresh_sample("diabetes", rows, seed=seed)
    reference = training_frame("diabetes")
    for column in ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"):
        frame[column] += 0.5 * reference[column].std()
    return frame
