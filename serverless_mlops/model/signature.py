"""A packaged model's signature: what its ONNX graph takes and gives, and the rules its inputs must follow.

The ONNX graph has one named input per feature (``float32 [N, 1]`` for numeric, ``string [N, 1]`` for categorical
features): skl2onnx maps a ColumnTransformer's columns to inputs by name, which keeps the preprocessing inside the
graph. skl2onnx sanitizes names (``od280/od315`` becomes ``od280_od315``), so each feature records its
``input_name``. This module imports no scikit-learn: the inference path reads it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Task = Literal["binary_classification", "multiclass_classification", "regression"]


class FeatureSignature(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    input_name: str
    kind: Literal["numeric", "categorical"]
    range: tuple[float, float] | None = None
    categories: list[str] | None = None
    allow_unknown: bool = False


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    task: Task
    target: str
    features: list[FeatureSignature]
    label_output: str | None = None
    probabilities_output: str | None = None
    value_output: str | None = None
    classes: list[str] | list[int] | None = None

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]
