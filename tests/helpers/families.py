"""A synthetic tabular data set for the estimator-family tests: numeric features with missing values, a categorical
feature with many categories (one declared but never seen, unknown ones allowed) and a small one, for each task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serverless_mlops.model.spec import ModelSpec, parse_spec

COLOURS = [f"c{i:02d}" for i in range(12)]  # c11 is declared in the spec but never occurs in the data
SIZES = ["s", "m", "l"]
TASKS = ("binary_classification", "multiclass_classification", "regression")
METRIC = {"binary_classification": "roc_auc", "multiclass_classification": "f1", "regression": "rmse"}


def family_frame(task: str, rows: int = 600, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(4)})
    frame.loc[rng.random(rows) < 0.05, "x3"] = np.nan
    frame["colour"] = rng.choice(COLOURS[:-1], size=rows)
    frame["size"] = rng.choice(SIZES, size=rows)
    # a non-monotonic effect of the category code: only a categorical split captures it in one step
    effect = np.array([1.5, -1.0, 0.3, 2.0, -2.0, 0.0, 1.0, -0.5, 2.5, -1.5, 0.7, 0.0])
    score = (
        frame["x0"] * 1.2
        - frame["x1"] ** 2
        + np.nan_to_num(frame["x3"].to_numpy())
        + effect[frame["colour"].str[1:].astype(int)]
        + frame["size"].map({"s": -0.5, "m": 0.0, "l": 0.5})
        + rng.normal(scale=0.3, size=rows)
    )
    if task == "binary_classification":
        frame["y"] = (score > score.median()).astype(int)
    elif task == "multiclass_classification":
        frame["y"] = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(int)
        frame["y"] = frame["y"].map({0: "low", 1: "mid", 2: "high"})
    else:
        frame["y"] = 100.0 + 10.0 * score
    return frame


def family_spec(tmp_path: Path, task: str, estimator: str, params: dict[str, Any] | None = None, **extra: Any) -> ModelSpec:
    """A spec over ``family_frame(task)``, written to ``tmp_path`` as CSV."""
    path = tmp_path / f"{task}.csv"
    if not path.exists():
        family_frame(task).to_csv(path, index=False, float_format="%.10g")
    document: dict[str, Any] = {
        "name": "family",
        "task": task,
        "target": "y",
        "features": [
            *({"name": f"x{i}"} for i in range(4)),
            {"name": "colour", "type": "categorical", "categories": COLOURS, "allow_unknown": True},
            {"name": "size", "type": "categorical"},
        ],
        "estimator": {"class": estimator, "params": params or {}},
        "data": {"uri": str(path)},
        "split": {"test_size": 0.25, "seed": 3},
        "evaluation": {"metric": METRIC[task]},
        **extra,
    }
    return parse_spec(document)


def edge_rows() -> pd.DataFrame:
    """Rows the holdout may lack: a missing numeric value, a declared category never seen in training, an unknown one."""
    return pd.DataFrame(
        {
            "x0": [0.1, -0.4, 1.3, 0.0],
            "x1": [0.2, 1.1, -0.7, 0.0],
            "x2": [0.0, 0.5, -0.5, 0.0],
            "x3": [np.nan, 0.3, np.nan, 1.0],
            "colour": ["c03", "c11", "mauve", "c04"],
            "size": ["m", "l", "s", "xl"],
        }
    )
