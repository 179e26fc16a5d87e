"""Estimator families a spec may name: scikit-learn's, LightGBM's and XGBoost's scikit-learn-style estimators.

Each family says which optional dependency group installs it, whether it splits on categories natively (then the
pipeline feeds it ordinal codes instead of one-hot columns) and the parity tolerance its ONNX conversion is held to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class Family:
    name: str
    module: str  # the top-level package of its estimators
    group: str  # the optional dependency group (pyproject.toml) that installs it
    classes: frozenset[str] | None  # the estimator classes a spec may name; None: any the module exports
    # the estimators take any keyword (**kwargs, handed to the booster): params cannot be checked against get_params
    open_params: bool = False
    # classifiers that need the target's classes as 0..k-1 (XGBoost does not encode labels itself)
    integer_classes: bool = False


SKLEARN = Family("scikit-learn", "sklearn", "training", None)
LIGHTGBM = Family("LightGBM", "lightgbm", "lightgbm", frozenset({"LGBMClassifier", "LGBMRegressor"}), open_params=True)
XGBOOST = Family("XGBoost", "xgboost", "xgboost", frozenset({"XGBClassifier", "XGBRegressor"}), open_params=True, integer_classes=True)
FAMILIES = (SKLEARN, LIGHTGBM, XGBOOST)

_HIST_GRADIENT_BOOSTING = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def family_of(class_path: str) -> Family | None:
    """The family of a dotted estimator class path (sklearn.ensemble.RandomForestClassifier), None if none fits."""
    top, _, rest = class_path.partition(".")
    for family in FAMILIES:
        if top == family.module and (family.classes is None or rest in family.classes):
            return family
    return None


def native_categorical(estimator: Any) -> bool:
    """HistGradientBoosting splits on categories itself: it gets ordinal codes, not one-hot columns."""
    return type(estimator).__name__ in _HIST_GRADIENT_BOOSTING and type(estimator).__module__.startswith("sklearn.")


def ordinal_pipeline(numeric: list[str], categorical: list[str], estimator: Any, categories: list[list[str]] | str) -> Pipeline:
    """Numeric features unchanged (the trees route missing values), categorical ones as ordinal codes the estimator
    treats as categories: ``categorical_features`` are their positions, the spec's categorical features, which is what
    ``categorical_features="from_dtype"`` reads from a DataFrame's category dtype."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", "passthrough", numeric))
    if categorical:
        encoder = OrdinalEncoder(categories=categories, handle_unknown="use_encoded_value", unknown_value=np.nan, dtype=np.float64)
        transformers.append(("categorical", encoder, categorical))
        estimator.set_params(categorical_features=list(range(len(numeric), len(numeric) + len(categorical))))
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("estimator", estimator)])
