"""LightGBM and XGBoost estimators in a spec (optional groups [lightgbm], [xgboost]): converted by onnxmltools'
converters registered into skl2onnx, inside the same Pipeline, held to the same parity gate."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from serverless_mlops.errors import MlopsError, SpecError
from serverless_mlops.model.fit import build_pipeline, resolve_estimator, train
from tests.helpers.families import family_spec
from tests.helpers.specs import example_spec

pytest.importorskip("lightgbm")
pytest.importorskip("xgboost")

CASES = [
    ("lightgbm.LGBMClassifier", "binary_classification", {"verbose": -1}),
    ("lightgbm.LGBMClassifier", "multiclass_classification", {"verbose": -1}),
    ("lightgbm.LGBMRegressor", "regression", {"verbose": -1}),
    ("xgboost.XGBClassifier", "binary_classification", {}),
    ("xgboost.XGBRegressor", "regression", {}),
]


@pytest.mark.parametrize(("estimator", "task", "extra"), CASES, ids=[f"{e}-{t}" for e, t, _ in CASES])
def test_trains_converts_and_passes_parity(tmp_path: Path, estimator: str, task: str, extra: dict[str, Any]) -> None:
    spec = family_spec(tmp_path, task, estimator, {"n_estimators": 60, "max_depth": 6, **extra})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = train(spec).record
    assert record.parity.passed
    assert record.parity.tolerance == 1e-4
    assert record.estimator == estimator
    assert record.params["n_estimators"] == 60
    if task == "regression":
        assert record.metrics["r2"] > 0.8
    else:
        assert record.metrics["accuracy"] > 0.7


def test_xgboost_multiclass_on_integer_classes() -> None:
    spec = example_spec("wine")
    spec = spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"class_": "xgboost.XGBClassifier", "params": {}})})
    record = train(spec).record
    assert record.parity.passed
    assert record.signature.classes == [0, 1, 2]


def test_xgboost_refuses_named_classes_before_fitting(tmp_path: Path) -> None:
    spec = family_spec(tmp_path, "multiclass_classification", "xgboost.XGBClassifier")
    with pytest.raises(MlopsError, match=r"XGBClassifier needs the classes of 'y' as 0..2, found 'high', 'low', 'mid'; encode"):
        train(spec)


def test_tree_boosters_get_no_scaler() -> None:
    spec = example_spec("wine")
    for estimator in ("lightgbm.LGBMClassifier", "xgboost.XGBClassifier"):
        changed = spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"class_": estimator, "params": {}})})
        numeric = build_pipeline(changed, resolve_estimator(changed)).named_steps["preprocess"].transformers[0][1]
        assert [name for name, _ in numeric.steps] == ["impute"]


def test_booster_params_pass_through_to_the_booster() -> None:
    """LightGBM and XGBoost take any keyword (handed to the booster), so params are not checked against get_params."""
    spec = example_spec("wine")
    spec = spec.model_copy(
        update={"estimator": spec.estimator.model_copy(update={"class_": "lightgbm.LGBMClassifier", "params": {"min_data_in_bin": 5}})}
    )
    assert resolve_estimator(spec).get_params()["min_data_in_bin"] == 5


def test_a_family_whose_group_is_not_installed_names_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # what an environment without the group gives: ImportError
    spec = example_spec("wine")
    spec = spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"class_": "lightgbm.LGBMClassifier", "params": {}})})
    with pytest.raises(
        SpecError, match=r"needs the optional group \[lightgbm\], which is not installed: pip install 'serverless-mlops\[lightgbm\]'"
    ):
        resolve_estimator(spec, "models/wine.yaml")
