"""Training: spec → scikit-learn Pipeline → holdout metrics → ONNX → parity check → baseline profile → package.

The package is a folder (a "run") holding ``model.onnx``, ``profile.json.gz`` and ``run.json`` (signature, metrics,
parity, lineage). ``mlops register`` uploads a run; registering the same run twice yields one version (its
``run_id``). Only this module and :mod:`serverless_mlops.model.data` import scikit-learn or pandas.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from serverless_mlops.errors import MlopsError, ParityError, SpecError
from serverless_mlops.model.data import Dataset, load_dataset
from serverless_mlops.model.search import SearchResult
from serverless_mlops.model.signature import FeatureSignature, Signature
from serverless_mlops.model.spec import FeatureKind, Metric, ModelSpec, Task

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from serverless_mlops.settings import Settings

PARITY_TOLERANCE = 1e-4
CODE_VERSION_ENV = "SERVERLESS_MLOPS_CODE_VERSION"  # set on the training Lambda at synth (it has no git)
MODEL_FILE = "model.onnx"
PROFILE_FILE = "profile.json.gz"
RUN_FILE = "run.json"

# Estimator families whose fitted model does not depend on feature scale: scaling them is useless, and for trees
# harmful to parity (scaled float32 values land on the other side of split thresholds).
_SCALE_FREE_PREFIXES = ("sklearn.ensemble.", "sklearn.tree.", "lightgbm.", "xgboost.")


class ParityReport(BaseModel):
    passed: bool
    rows: int
    labels_identical: bool | None = None
    max_abs_diff: float
    tolerance: float


class RunRecord(BaseModel):
    """Everything about a training run except the bytes: written as run.json, read back by ``register``."""

    run_id: str
    model: str
    task: str
    signature: Signature
    metrics: dict[str, float]
    parity: ParityReport
    estimator: str
    params: dict[str, Any]
    data_uri: str
    data_sha256: str
    train_rows: int
    holdout_rows: int
    code_version: str
    trained_at: str
    trained_by: str
    spec: dict[str, Any]
    search: SearchResult | None = None  # the spec's hyperparameter search: chosen params and every candidate's cv scores


@dataclass(frozen=True)
class TrainedModel:
    record: RunRecord
    onnx_bytes: bytes
    profile_bytes: bytes

    def write(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(self.onnx_bytes)
        (directory / PROFILE_FILE).write_bytes(self.profile_bytes)
        (directory / RUN_FILE).write_text(self.record.model_dump_json(indent=2), encoding="utf-8")
        return directory

    @classmethod
    def read(cls, directory: str | Path) -> TrainedModel:
        directory = Path(directory)
        try:
            record = RunRecord.model_validate_json((directory / RUN_FILE).read_text(encoding="utf-8"))
            return cls(record, (directory / MODEL_FILE).read_bytes(), (directory / PROFILE_FILE).read_bytes())
        except FileNotFoundError as exc:
            raise MlopsError(
                f"{directory}: not a training run folder (missing {Path(exc.filename).name}); run 'mlops train' first"
            ) from exc
        except ValueError as exc:
            raise MlopsError(f"{directory / RUN_FILE}: unreadable run record: {str(exc).splitlines()[0]}") from exc


def resolve_estimator(spec: ModelSpec, source: str = "spec") -> Any:
    """Instantiate the spec's estimator; errors name the field and what was expected."""
    from sklearn.base import is_classifier, is_regressor

    from serverless_mlops.model.families import SKLEARN, family_of

    family = family_of(spec.estimator.class_) or SKLEARN
    try:
        module = importlib.import_module(spec.estimator.module)
        cls = getattr(module, spec.estimator.class_name)
    except ImportError as exc:
        if family is not SKLEARN:
            raise SpecError(
                f"{source}: estimator.class: {spec.estimator.class_!r} needs the optional group [{family.group}], which is not "
                f"installed: pip install 'serverless-mlops[{family.group}]'"
            ) from exc
        raise SpecError(f"{source}: estimator.class: {spec.estimator.class_!r} is not an importable scikit-learn class") from exc
    except AttributeError as exc:
        raise SpecError(f"{source}: estimator.class: {spec.estimator.class_!r} is not an importable scikit-learn class") from exc
    try:
        estimator = cls()
    except TypeError as exc:
        raise SpecError(f"{source}: estimator.class: {spec.estimator.class_!r} cannot be built without arguments") from exc
    if spec.task.is_classification and not is_classifier(estimator):
        raise SpecError(f"{source}: estimator.class: {spec.estimator.class_!r} is not a classifier, but task is {spec.task.value}")
    if spec.task is Task.REGRESSION and not is_regressor(estimator):
        raise SpecError(f"{source}: estimator.class: {spec.estimator.class_!r} is not a regressor, but task is regression")
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(spec.estimator.params) - set(valid))
    if unknown and not family.open_params:
        raise SpecError(f"{source}: estimator.params: unknown parameter(s) {', '.join(unknown)} for {spec.estimator.class_name}")
    try:
        estimator.set_params(**spec.estimator.params)
        if hasattr(estimator, "_parameter_constraints"):
            estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{source}: estimator.params: {str(exc).splitlines()[0]}") from exc
    if "random_state" in valid and "random_state" not in spec.estimator.params:
        estimator.set_params(random_state=spec.split.seed)
    from serverless_mlops.model.search import check_params

    check_params(spec, estimator, source)
    return estimator


def build_pipeline(spec: ModelSpec, estimator: Any) -> Pipeline:
    """Numeric: median imputation (+ standard scaling unless the estimator is scale-free); categorical: one-hot."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from serverless_mlops.model.families import native_categorical

    transformers: list[tuple[str, Any, list[str]]] = []
    categories: list[list[str]] | str = "auto"
    declared = [spec.feature(name).categories for name in spec.categorical_features]
    if all(c is not None for c in declared):
        categories = [list(c) for c in declared if c is not None]
    if native_categorical(estimator):
        # gradient boosting with native categorical and missing-value support: numeric features as they are,
        # categorical ones as ordinal codes (unknown → NaN, which the trees treat as missing) that the estimator
        # splits on as categories (categorical_features: their positions, the spec's categorical features)
        from serverless_mlops.model.families import ordinal_pipeline

        return ordinal_pipeline(spec.numeric_features, spec.categorical_features, estimator, categories)
    if spec.numeric_features:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if not spec.estimator.class_.startswith(_SCALE_FREE_PREFIXES):
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), spec.numeric_features))
    if spec.categorical_features:
        transformers.append(
            ("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False), spec.categorical_features)
        )
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("estimator", estimator)])


def _to_onnx(spec: ModelSpec, pipeline: Pipeline) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (f.name, FloatTensorType([None, 1]) if f.type is FeatureKind.NUMERIC else StringTensorType([None, 1])) for f in spec.features
    ]
    from serverless_mlops.model.converters import register_converters, target_opset

    register_converters()
    options = {id(pipeline.steps[-1][1]): {"zipmap": False}} if spec.task.is_classification else None
    try:
        model = to_onnx(pipeline, initial_types=initial_types, options=options, target_opset=target_opset(spec.estimator.class_))
    except Exception as exc:  # skl2onnx raises many unrelated types for unsupported models
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        reason = reason if len(reason) <= 160 else reason[:160] + " …"
        raise MlopsError(
            f"{spec.name}: cannot convert {spec.estimator.class_name} to ONNX with skl2onnx ({reason}); "
            "nothing was packaged: choose an estimator skl2onnx supports (see docs/specs-and-training.md, 'Estimators')"
        ) from exc
    return model.SerializeToString()  # type: ignore[no-any-return]


def _feeds(signature: Signature, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    import numpy as np

    return {
        f.input_name: (
            frame[f.name].to_numpy(np.float32) if f.kind == "numeric" else frame[f.name].to_numpy(object).astype(str).astype(object)
        ).reshape(-1, 1)
        for f in signature.features
    }


def open_session(onnx_bytes: bytes) -> ort.InferenceSession:
    """One onnxruntime session per training run, shared by the signature, parity and profile steps."""
    import onnxruntime

    return onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


def _signature(spec: ModelSpec, pipeline: Pipeline, session: ort.InferenceSession) -> Signature:
    input_names = [i.name for i in session.get_inputs()]
    if len(input_names) != len(spec.features):
        raise MlopsError(f"{spec.name}: ONNX graph has {len(input_names)} inputs for {len(spec.features)} features")
    learnt: dict[str, list[str]] = {}
    if spec.categorical_features:
        encoder = pipeline.named_steps["preprocess"].named_transformers_["categorical"]
        learnt = {name: [str(c) for c in cats] for name, cats in zip(spec.categorical_features, encoder.categories_, strict=True)}
    features = [
        FeatureSignature(
            name=f.name,
            input_name=input_name,
            kind=f.type.value,
            range=f.range,
            categories=learnt.get(f.name) if f.type is FeatureKind.CATEGORICAL else None,
            allow_unknown=f.allow_unknown,
        )
        for f, input_name in zip(spec.features, input_names, strict=True)
    ]
    outputs = [o.name for o in session.get_outputs()]
    if spec.task.is_classification:
        classes = pipeline.classes_.tolist()
        return Signature(
            model=spec.name,
            task=spec.task.value,
            target=spec.target,
            features=features,
            label_output=outputs[0],
            probabilities_output=outputs[1],
            classes=[c if isinstance(c, int) else str(c) for c in classes],
        )
    return Signature(model=spec.name, task=spec.task.value, target=spec.target, features=features, value_output=outputs[0])


def check_parity(
    spec: ModelSpec, pipeline: Pipeline, signature: Signature, session: ort.InferenceSession, holdout: pd.DataFrame
) -> tuple[ParityReport, list[np.ndarray]]:
    """Compare ONNX with scikit-learn on the holdout (as float32, which is what the served model receives)."""
    import numpy as np

    outputs = session.run(None, _feeds(signature, holdout))
    as_served = holdout.copy()
    for name in spec.numeric_features:
        as_served[name] = as_served[name].astype(np.float32).astype(np.float64)
    bad_rows: np.ndarray
    if spec.task.is_classification:
        labels, probabilities = outputs[0].ravel(), outputs[1]
        expected_labels = pipeline.predict(as_served)
        expected_probabilities = pipeline.predict_proba(as_served)
        diff = np.abs(probabilities.astype(np.float64) - expected_probabilities).max(axis=1)
        label_mismatch = labels.astype(str) != expected_labels.astype(str)
        bad_rows = np.flatnonzero(label_mismatch | (diff > PARITY_TOLERANCE))
        report = ParityReport(
            passed=bad_rows.size == 0,
            rows=len(holdout),
            labels_identical=not label_mismatch.any(),
            max_abs_diff=float(diff.max()),
            tolerance=PARITY_TOLERANCE,
        )
    else:
        values = outputs[0].ravel().astype(np.float64)
        expected = pipeline.predict(as_served).astype(np.float64)
        diff = np.abs(values - expected)
        # float32 carries ~7 significant digits: tolerance is absolute below 1, relative above.
        bad_rows = np.flatnonzero(diff > PARITY_TOLERANCE * np.maximum(1.0, np.abs(expected)))
        report = ParityReport(passed=bad_rows.size == 0, rows=len(holdout), max_abs_diff=float(diff.max()), tolerance=PARITY_TOLERANCE)
    if not report.passed:
        # holdout keeps the data file's row order in its index: report 1-based data rows a user can look up
        shown = ", ".join(str(int(i) + 1) for i in holdout.index.to_numpy()[bad_rows[:10]])
        raise ParityError(
            f"{spec.name}: ONNX does not match scikit-learn on {bad_rows.size} of {len(holdout)} holdout rows "
            f"(data rows {shown}{' …' if bad_rows.size > 10 else ''}; max difference {report.max_abs_diff:.3g}, "
            f"tolerance {PARITY_TOLERANCE}); the model was not packaged"
        )
    return report, outputs


def compute_metrics(task: Task, y_true: np.ndarray, outputs: list[np.ndarray], classes: list[Any] | None) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    if task is Task.REGRESSION:
        predicted = outputs[0].ravel().astype(np.float64)
        return {
            Metric.RMSE.value: float(np.sqrt(m.mean_squared_error(y_true, predicted))),
            Metric.MAE.value: float(m.mean_absolute_error(y_true, predicted)),
            Metric.R2.value: float(m.r2_score(y_true, predicted)),
        }
    labels, probabilities = outputs[0].ravel(), outputs[1].astype(np.float64)
    y = np.asarray(y_true).astype(str)
    labels_str = labels.astype(str)
    result = {Metric.ACCURACY.value: float(m.accuracy_score(y, labels_str))}
    if task is Task.BINARY:
        positive = str((classes or [1])[-1])
        result[Metric.F1.value] = float(m.f1_score(y, labels_str, pos_label=positive))
        if len(np.unique(y)) > 1:
            result[Metric.ROC_AUC.value] = float(m.roc_auc_score(y == positive, probabilities[:, -1]))
    else:
        result[Metric.F1.value] = float(m.f1_score(y, labels_str, average="macro"))
        if len(np.unique(y)) == probabilities.shape[1]:
            sums = probabilities / probabilities.sum(axis=1, keepdims=True)
            result[Metric.ROC_AUC.value] = float(m.roc_auc_score(y, sums, multi_class="ovr", labels=[str(c) for c in classes or []]))
    return result


def code_version() -> str:
    """The git commit of the code that trained, when there is one (env SERVERLESS_MLOPS_CODE_VERSION wins)."""
    if value := os.environ.get(CODE_VERSION_ENV):
        return value
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def split_holdout(spec: ModelSpec, frame: pd.DataFrame, *, source: str = "data") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (train, holdout) split of ``frame`` by the spec's split settings: the one split training and the
    retraining workflow's evaluation both use (same rows, same order). Stratified for classification when every
    class has at least two rows."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    y = frame[spec.target].to_numpy()
    stratify = y if spec.task.is_classification and np.unique(y, return_counts=True)[1].min() >= 2 else None
    try:
        train_frame, holdout = train_test_split(frame, test_size=spec.split.test_size, random_state=spec.split.seed, stratify=stratify)
    except ValueError as exc:
        raise MlopsError(f"{source}: cannot split {len(frame)} rows into train and holdout: {exc}") from exc
    return train_frame, holdout


def _check_classes(spec: ModelSpec, dataset: Dataset) -> None:
    """XGBoost's classifiers need the target's classes as the integers 0..k-1; say so before fitting."""
    import numpy as np

    from serverless_mlops.model.families import family_of

    family = family_of(spec.estimator.class_)
    if not (spec.task.is_classification and family is not None and family.integer_classes):
        return
    classes = np.unique(dataset.frame[spec.target].astype(str))
    if sorted(classes.tolist()) != sorted(str(i) for i in range(len(classes))):
        shown = ", ".join(repr(c) for c in classes[:5]) + (" …" if len(classes) > 5 else "")
        raise MlopsError(
            f"{dataset.uri}: {spec.estimator.class_name} needs the classes of {spec.target!r} as 0..{len(classes) - 1}, found {shown}; "
            "encode the target column as integers or choose a LightGBM or scikit-learn classifier"
        )


def train(spec: ModelSpec, *, dataset: Dataset | None = None, settings: Settings | None = None, source: str = "spec") -> TrainedModel:
    """Fit, evaluate, convert, check parity and profile; raises before packaging anything that fails."""
    import numpy as np

    from serverless_mlops.model.calibration import fit_calibration
    from serverless_mlops.model.profile import build_profile, dump_profile

    estimator = resolve_estimator(spec, source)
    dataset = dataset or load_dataset(spec, settings)
    features = spec.numeric_features + spec.categorical_features
    _check_classes(spec, dataset)
    train_frame, holdout = split_holdout(spec, dataset.frame, source=dataset.uri)
    pipeline = build_pipeline(spec, estimator)
    searched: SearchResult | None = None
    if spec.search is not None:
        from serverless_mlops.model.search import search

        pipeline, searched = search(spec, pipeline, train_frame[features], train_frame[spec.target].to_numpy())
    else:
        try:
            pipeline.fit(train_frame[features], train_frame[spec.target].to_numpy())
        except ValueError as exc:
            raise MlopsError(f"{spec.name}: training failed: {str(exc).splitlines()[0]}") from exc
    onnx_bytes = _to_onnx(spec, pipeline)
    session = open_session(onnx_bytes)
    signature = _signature(spec, pipeline, session)
    parity, outputs = check_parity(spec, pipeline, signature, session, holdout)
    metrics = compute_metrics(spec.task, holdout[spec.target].to_numpy(), outputs, signature.classes)
    train_outputs = session.run(None, _feeds(signature, train_frame))
    predictions = train_outputs[0].ravel()
    profile = build_profile(
        {name: train_frame[name].to_numpy() for name in features},
        {f.name: f.type.value for f in spec.features},
        predictions.astype(str) if spec.task.is_classification else predictions.astype(np.float64),
        "categorical" if spec.task.is_classification else "numeric",
        seed=spec.split.seed,
    )
    if spec.task.is_classification and len(outputs) > 1:  # for CBPE (serverless_mlops.quality): calibrated on the holdout
        profile["calibration"] = fit_calibration(holdout[spec.target].to_numpy(), outputs[1], signature.classes or [])
    record = RunRecord(
        run_id=uuid.uuid4().hex,
        model=spec.name,
        task=spec.task.value,
        signature=signature,
        metrics=metrics,
        parity=parity,
        estimator=spec.estimator.class_,
        params=json.loads(json.dumps({**spec.estimator.params, **(searched.best_params if searched else {})}, default=str)),
        data_uri=dataset.uri,
        data_sha256=dataset.sha256,
        train_rows=len(train_frame),
        holdout_rows=len(holdout),
        code_version=code_version(),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        trained_by=os.environ.get("MLOPS_USER") or os.environ.get("USER") or "unknown",
        spec=spec.model_dump(mode="json", by_alias=True),
        search=searched,
    )
    return TrainedModel(record=record, onnx_bytes=onnx_bytes, profile_bytes=dump_profile(profile))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
