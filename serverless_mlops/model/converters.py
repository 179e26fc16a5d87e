"""ONNX converters that training registers into skl2onnx before it converts a pipeline.

scikit-learn's ``HistGradientBoosting{Classifier,Regressor}``: skl2onnx 1.20's own converter writes each leaf's
``nodes_missing_value_tracks_true`` as a Python ``bool`` (``missing = False``), which onnx 1.23's protobuf refuses
(``Expected an int, got a boolean``), and it drops categorical splits (it reads only ``num_threshold``). The converter
here writes the fitted trees as one ``TreeEnsembleRegressor`` node (ai.onnx.ml 3, which skl2onnx 1.20 assembles and
onnxruntime runs) that sums every tree's raw score:

- numeric splits are ``BRANCH_LEQ`` on the threshold rounded *down* to float32, so that for every float32 input
  ``x <= t32`` exactly when scikit-learn's ``x <= t64`` (the served model receives float32);
- categorical splits (native categorical support) are chains of ``BRANCH_EQ`` tests sharing one target node, one
  test per category code, translated through the estimator's own ordinal encoding; categories unseen in training
  and missing values follow the node's missing-value direction, as in scikit-learn's predictor;
- missing values follow ``missing_go_to_left`` (``nodes_missing_value_tracks_true`` as an int);
- the baseline score is the ensemble's ``base_values``; then the loss's inverse link: logistic (binary), softmax
  (multiclass), identity or exp (regression with a log link: poisson, gamma).

LightGBM and XGBoost (optional groups ``lightgbm``, ``xgboost``): onnxmltools' converters, registered under the names
skl2onnx looks up, so the estimator converts inside the same Pipeline as the preprocessing.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

_NEVER = -1.0  # a category code no input takes: the ordinal encoding feeds codes >= 0 or NaN


def float32_floor(value: float) -> np.float32:
    """The largest float32 not above ``value``: for a float32 ``x``, ``x <= result`` exactly when ``x <= value``."""
    with np.errstate(over="ignore"):  # beyond float32's range: inf, stepped down to the largest finite float32 below
        rounded = np.float32(value)
    if np.isfinite(value) and float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return rounded


def _bits(bitset: np.ndarray) -> set[int]:
    """The members of one of scikit-learn's category bitsets (8 uint32 words: bit c % 32 of word c // 32)."""
    return {word * 32 + bit for word, value in enumerate(bitset) for bit in range(32) if (int(value) >> bit) & 1}


class _Trees:
    """The attributes of one TreeEnsembleRegressor node (ai.onnx.ml 3) that sums every tree's raw score."""

    def __init__(self) -> None:
        self.attrs: dict[str, list[Any]] = {
            key: []
            for key in (
                "nodes_treeids",
                "nodes_nodeids",
                "nodes_featureids",
                "nodes_modes",
                "nodes_values",
                "nodes_truenodeids",
                "nodes_falsenodeids",
                "nodes_missing_value_tracks_true",
                "target_treeids",
                "target_nodeids",
                "target_ids",
                "target_weights",
            )
        }
        self.trees = 0

    def _node(self, tree: int, node: int, feature: int, mode: str, value: float, true: int, false: int, missing_true: int) -> None:
        for key, item in (
            ("nodes_treeids", tree),
            ("nodes_nodeids", node),
            ("nodes_featureids", feature),
            ("nodes_modes", mode),
            ("nodes_values", value),
            ("nodes_truenodeids", true),
            ("nodes_falsenodeids", false),
            ("nodes_missing_value_tracks_true", missing_true),  # an int: protobuf refuses a bool here
        ):
            self.attrs[key].append(item)

    def add_tree(self, predictor: Any, target: int, column: np.ndarray, known: dict[int, set[int]], codes: dict[int, np.ndarray]) -> None:
        nodes = predictor.nodes
        tree, self.trees = self.trees, self.trees + 1
        extra = len(nodes)  # ids for the equality tests that spell out a categorical split
        for n, node in enumerate(nodes):
            if node["is_leaf"]:
                self._node(tree, n, 0, "LEAF", 0.0, 0, 0, 0)
                for key, item in (("target_treeids", tree), ("target_nodeids", n), ("target_ids", target)):
                    self.attrs[key].append(item)
                self.attrs["target_weights"].append(float(node["value"]))
                continue
            feature, left, right = int(node["feature_idx"]), int(node["left"]), int(node["right"])
            missing_left = bool(node["missing_go_to_left"])
            if not node["is_categorical"]:
                self._node(
                    tree, n, int(column[feature]), "BRANCH_LEQ", float(float32_floor(node["num_threshold"])), left, right, int(missing_left)
                )
                continue
            # the estimator's category code i is the input value codes[feature][i] (its own ordinal encoding); missing
            # values and categories unseen in training take the missing-value direction, so the equality tests name
            # the known categories of the other side: a value that matches none of them goes the missing way
            goes_left = _bits(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
            tested = known[feature] - goes_left if missing_left else known[feature] & goes_left
            match, otherwise = (right, left) if missing_left else (left, right)
            values = sorted(float(codes[feature][i]) for i in tested) or [_NEVER]
            ids = [n, *range(extra, extra + len(values) - 1)]
            extra += len(values) - 1
            for k, value in enumerate(values):
                following = ids[k + 1] if k + 1 < len(values) else otherwise
                self._node(tree, ids[k], int(column[feature]), "BRANCH_EQ", value, match, following, 0)

    def attributes(self, n_targets: int, base_values: list[float]) -> dict[str, Any]:
        return {**self.attrs, "n_targets": n_targets, "aggregate_function": "SUM", "post_transform": "NONE", "base_values": base_values}


def _input_layout(estimator: Any) -> tuple[np.ndarray, dict[int, set[int]], dict[int, np.ndarray]]:
    """How the estimator's internal features map to its input columns, and its categorical features' categories.

    With categorical features, HistGradientBoosting ordinal-encodes them itself and moves them first: its internal
    feature f is input column ``column[f]``; ``known[f]`` are the codes it saw in training, and its code i stands for
    the input value ``codes[f][i]``.
    """
    if estimator._preprocessor is None:
        return np.arange(estimator.n_features_in_), {}, {}
    mask = np.asarray(estimator.is_categorical_, dtype=bool)
    column = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    encoder = estimator._preprocessor.named_transformers_["encoder"]
    known_bitsets, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    known, codes = {}, {}
    for f, categories in enumerate(encoder.categories_):
        values = np.asarray(categories, dtype=np.float64)
        codes[f] = values[~np.isnan(values)]
        known[f] = _bits(known_bitsets[f_idx_map[f]])
    return column, known, codes


def _scores(scope: Any, operator: Any, container: Any, estimator: Any, n_targets: int) -> str:
    """Add the tree ensemble (baseline included); returns the raw-score variable's name."""
    column, known, codes = _input_layout(estimator)
    trees = _Trees()
    for iteration in estimator._predictors:
        for target, predictor in enumerate(iteration):
            trees.add_tree(predictor, target, column, known, codes)
    raw: str = scope.get_unique_variable_name("raw_scores")
    base_values = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel().tolist()
    container.add_node(
        "TreeEnsembleRegressor",
        operator.inputs[0].full_name,
        raw,
        op_domain="ai.onnx.ml",
        op_version=3,
        name=scope.get_unique_operator_name("TreeEnsembleRegressor"),
        **trees.attributes(n_targets, base_values),
    )
    return raw


def convert_hist_gradient_boosting_regressor(scope: Any, operator: Any, container: Any) -> None:
    estimator = operator.raw_operator
    raw = _scores(scope, operator, container, estimator, 1)
    # scikit-learn's regression losses have an identity link (squared_error, absolute_error, quantile) or a log link
    # (poisson, gamma); the parity check would catch another
    log_link = type(estimator._loss.link).__name__ == "LogLink"
    op = "Exp" if log_link else "Identity"
    container.add_node(op, raw, operator.outputs[0].full_name, name=scope.get_unique_operator_name(op))


def convert_hist_gradient_boosting_classifier(scope: Any, operator: Any, container: Any) -> None:
    estimator = operator.raw_operator
    classes = estimator.classes_
    n_targets = 1 if len(classes) == 2 else len(classes)
    raw = _scores(scope, operator, container, estimator, n_targets)
    probabilities = operator.outputs[1].full_name
    if n_targets == 1:
        # scikit-learn's expit(raw) for the positive class, 1 - that for the negative one
        positive = scope.get_unique_variable_name("positive")
        negative = scope.get_unique_variable_name("negative")
        one = scope.get_unique_variable_name("one")
        container.add_initializer(one, 1, [1], [1.0])  # float: the ensemble's output type
        container.add_node("Sigmoid", raw, positive, name=scope.get_unique_operator_name("Sigmoid"))
        container.add_node("Sub", [one, positive], negative, name=scope.get_unique_operator_name("Sub"))
        container.add_node("Concat", [negative, positive], probabilities, axis=1, name=scope.get_unique_operator_name("Concat"))
    else:
        container.add_node("Softmax", raw, probabilities, axis=1, name=scope.get_unique_operator_name("Softmax"))
    _labels(scope, operator, container, classes, probabilities)


def _labels(scope: Any, operator: Any, container: Any, classes: np.ndarray, probabilities: str) -> None:
    """label = classes[argmax(probabilities)], the first on ties (scikit-learn's argmax)."""
    from skl2onnx.proto import onnx_proto

    index = scope.get_unique_variable_name("label_index")
    container.add_node("ArgMax", probabilities, index, axis=1, keepdims=0, name=scope.get_unique_operator_name("ArgMax"))
    table = scope.get_unique_variable_name("classes")
    if np.issubdtype(classes.dtype, np.integer) or classes.dtype == np.bool_:
        container.add_initializer(table, onnx_proto.TensorProto.INT64, [len(classes)], classes.astype(np.int64).tolist())
    else:
        container.add_initializer(table, onnx_proto.TensorProto.STRING, [len(classes)], [str(c).encode() for c in classes])
    container.add_node("Gather", [table, index], operator.outputs[0].full_name, axis=0, name=scope.get_unique_operator_name("Gather"))


def _floor_lightgbm_thresholds(dump: dict[str, Any]) -> None:
    """Each numeric split (``x <= t``, t a float64) of a LightGBM dump to the float32 floor of its threshold.

    onnxmltools rounds thresholds to the *nearest* float32: a float32 input equal to a threshold rounded up went left in
    ONNX and right in LightGBM (measured: 0.019 apart on one breast-cancer holdout row). The floor decides every float32
    input as LightGBM's float64 threshold does."""
    stack = [tree["tree_structure"] for tree in dump.get("tree_info", [])]
    while stack:
        node = stack.pop()
        if "decision_type" not in node:
            continue  # a leaf
        if node["decision_type"] == "<=" and not isinstance(node["threshold"], str):
            node["threshold"] = float(float32_floor(node["threshold"]))
        stack += [node["left_child"], node["right_child"]]


def convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, on the booster's dump with float32-floored thresholds."""
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    dump = LightGbm.dump_booster_model

    def floored(*args: Any, **kwargs: Any) -> Any:
        text, info = dump(*args, **kwargs)
        _floor_lightgbm_thresholds(text)
        return text, info

    LightGbm.dump_booster_model = floored  # the converter reads the dump through its module's name
    try:
        LightGbm.convert_lightgbm(scope, operator, container)
    finally:
        LightGbm.dump_booster_model = dump


@functools.cache
def register_converters() -> None:
    """Register this module's converters into skl2onnx (once per process; later calls do nothing)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes, calculate_linear_regressor_output_shapes
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    update_registered_converter(
        HistGradientBoostingClassifier,
        "ServerlessMlopsHistGradientBoostingClassifier",
        calculate_linear_classifier_output_shapes,
        convert_hist_gradient_boosting_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},  # both read by skl2onnx's classifier parser
    )
    update_registered_converter(
        HistGradientBoostingRegressor,
        "ServerlessMlopsHistGradientBoostingRegressor",
        calculate_linear_regressor_output_shapes,
        convert_hist_gradient_boosting_regressor,
    )
    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    classifier_shapes, regressor_shapes = calculate_linear_classifier_output_shapes, calculate_linear_regressor_output_shapes
    if importlib.util.find_spec("lightgbm") is not None:  # the optional group [lightgbm]
        from lightgbm import LGBMClassifier, LGBMRegressor

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", regressor_shapes, convert_lightgbm, options={"split": None})
    if importlib.util.find_spec("xgboost") is not None:  # the optional group [xgboost]
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", classifier_shapes, convert_xgboost, options=classifier_options)
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor", regressor_shapes, convert_xgboost)


def target_opset(class_path: str) -> dict[str, int] | None:
    """The opsets to convert to: skl2onnx's defaults for scikit-learn estimators (None); for LightGBM and XGBoost the
    same, said explicitly (ai.onnx.ml 3), since onnxmltools' converters otherwise target onnx's newest ai.onnx.ml,
    which skl2onnx 1.20 cannot assemble."""
    from skl2onnx import get_latest_tested_opset_version

    if class_path.startswith("sklearn."):
        return None
    return {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}
