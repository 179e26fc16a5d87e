"""A toy training data set (spec, CSV rows, Parquet frame) and the DataError a bad one raises, for the data tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serverless_mlops.errors import DataError
from serverless_mlops.model.data import load_dataset
from serverless_mlops.model.spec import ModelSpec, parse_spec
from serverless_mlops.settings import Settings

HEADER = "age,sex,bmi,y\n"
GOOD_ROWS = "30,a,22.5,151\n45,b,31.0,75\n60,a,,141\n"


def make_spec(uri: str, *, task: str = "regression", metric: str = "rmse", fmt: str | None = None) -> ModelSpec:
    """age numeric in [0, 120], sex categorical {a, b}, bmi numeric (unbounded); target y."""
    data: dict[str, Any] = {"uri": uri} | ({"format": fmt} if fmt else {})
    return parse_spec(
        {
            "name": "toy",
            "task": task,
            "target": "y",
            "features": [
                {"name": "age", "range": [0, 120]},
                {"name": "sex", "type": "categorical", "categories": ["a", "b"]},
                {"name": "bmi"},
            ],
            "estimator": {"class": "sklearn.linear_model.Ridge" if task == "regression" else "sklearn.linear_model.LogisticRegression"},
            "data": data,
            "evaluation": {"metric": metric},
        }
    )


def write(tmp_path: Path, content: str | bytes, name: str = "train.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def data_error(spec: ModelSpec, settings: Settings | None = None) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec, settings)
    message = str(info.value)
    assert "\n" not in message
    return message


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({"age": [30, 45, 60], "sex": ["a", "b", "a"], "bmi": [22.5, 31.0, np.nan], "y": [151.0, 75.0, 141.0]})


def write_parquet(tmp_path: Path, frame: pd.DataFrame, name: str = "train.parquet") -> Path:
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return path
