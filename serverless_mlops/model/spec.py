"""The model spec: a declarative YAML file under models/, validated by pydantic.

A spec says what to train (features, target, estimator), on what data, how to judge it (metric, promotion
threshold) and how to watch it in production (drift settings). ``load_spec`` turns every validation problem into
one :class:`SpecError` whose message names the file, the field and what was expected.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serverless_mlops.errors import SpecError
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.model.release_spec import ReleaseSpec
from serverless_mlops.model.schedule import ScheduleExpression

ModelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="lower-case letters, digits, '-'")]


class Task(StrEnum):
    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.REGRESSION


class FeatureKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class Metric(StrEnum):
    ACCURACY = "accuracy"
    F1 = "f1"
    ROC_AUC = "roc_auc"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"

    @property
    def higher_is_better(self) -> bool:
        return self not in (Metric.RMSE, Metric.MAE)

    @property
    def for_classification(self) -> bool:
        return self in (Metric.ACCURACY, Metric.F1, Metric.ROC_AUC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    type: FeatureKind = FeatureKind.NUMERIC
    range: tuple[float, float] | None = Field(default=None, description="allowed [min, max] at inference")
    categories: list[str] | None = Field(default=None, description="allowed categories; learnt from data if omitted")
    allow_unknown: bool = Field(default=False, description="accept categories unseen in training at inference")

    @model_validator(mode="after")
    def _kind_fields(self) -> Feature:
        if self.type is FeatureKind.NUMERIC:
            if self.categories is not None or self.allow_unknown:
                raise ValueError("'categories' and 'allow_unknown' apply only to categorical features")
            if self.range is not None:
                low, high = self.range
                if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                    raise ValueError(f"range must be two finite numbers [min, max] with min < max, got {list(self.range)}")
        else:
            if self.range is not None:
                raise ValueError("'range' applies only to numeric features")
            if self.categories is not None:
                if not self.categories:
                    raise ValueError("categories must not be empty")
                if len(set(self.categories)) != len(self.categories):
                    raise ValueError("categories must be unique")
        return self


class Estimator(_Strict):
    class_: Annotated[
        str,
        Field(
            alias="class",
            description="importable scikit-learn estimator (sklearn.linear_model.Ridge), or lightgbm.LGBMClassifier/LGBMRegressor, "
            "xgboost.XGBClassifier/XGBRegressor",
        ),
    ]
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("class_")
    @classmethod
    def _sklearn_path(cls, value: str) -> str:
        from serverless_mlops.model.families import LIGHTGBM, SKLEARN, XGBOOST, family_of

        family = family_of(value)
        if family is SKLEARN and re.fullmatch(r"sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+\.[A-Z][A-Za-z0-9_]*", value):
            return value
        if family in (LIGHTGBM, XGBOOST):
            return value
        if value.startswith(("lightgbm.", "xgboost.")):
            allowed = ", ".join(f"{f.module}.{c}" for f in (LIGHTGBM, XGBOOST) for c in sorted(f.classes or ()))
            raise ValueError(f"expected one of {allowed}, got {value!r}")
        raise ValueError(
            "expected a dotted path to a scikit-learn estimator class (sklearn.module.Class), "
            f"lightgbm.LGBMClassifier/LGBMRegressor or xgboost.XGBClassifier/XGBRegressor, got {value!r}"
        )
        return value

    @property
    def module(self) -> str:
        return self.class_.rsplit(".", 1)[0]

    @property
    def class_name(self) -> str:
        return self.class_.rsplit(".", 1)[1]


class DataSource(_Strict):
    uri: Annotated[str, Field(min_length=1, description="local path (relative to the spec file) or s3://bucket/key")]
    format: Literal["csv", "parquet"] | None = Field(default=None, description="inferred from the suffix if omitted")

    @property
    def resolved_format(self) -> Literal["csv", "parquet"]:
        if self.format is not None:
            return self.format
        suffix = self.uri.lower().rsplit("?", 1)[0]
        if suffix.endswith((".parquet", ".pq")):
            return "parquet"
        return "csv"


class Split(_Strict):
    test_size: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    seed: int = 42


class Evaluation(_Strict):
    metric: Metric
    min_improvement: Annotated[float, Field(ge=0.0, description="a candidate must beat the champion by this much")] = 0.0
    floor: float | None = Field(default=None, description="absolute bound the candidate must clear (min, or max for errors)")
    require_approval: bool = Field(default=False, description="promote to staging and wait for a person to approve")


class Range(_Strict):
    """Values drawn uniformly from [low, high] (integers when both bounds are integers), or log-uniformly."""

    low: float | int
    high: float | int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"a range needs two finite bounds with low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


class Search(_Strict):
    """A small hyperparameter search run inside Train (scikit-learn's RandomizedSearchCV, scored by the spec's metric)."""

    params: Annotated[
        dict[str, Annotated[list[Any], Field(min_length=1)] | Range],
        Field(min_length=1, description="estimator parameter -> a list of values or a {low, high, log} range"),
    ]
    n_iter: Annotated[int, Field(ge=1, le=200, description="candidates drawn")] = 10
    cv: Annotated[int, Field(ge=2, le=10, description="cross-validation folds on the training split")] = 3


class Correction(StrEnum):
    BONFERRONI = "bonferroni"
    BENJAMINI_HOCHBERG = "benjamini_hochberg"
    NONE = "none"


class Drift(_Strict):
    schedule: ScheduleExpression = Field(default="rate(1 day)", description="EventBridge schedule expression")
    window_hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24
    min_rows: Annotated[int, Field(ge=1)] = 100
    rule: Literal["significant_and_large", "evidently"] = Field(
        default="significant_and_large",
        description=(
            "significant_and_large: a feature drifts when its two-sample test rejects at p_value (corrected) and its effect"
            " size reaches distance_threshold; evidently: tests up to reference_size_cutoff reference rows, distances above"
        ),
    )
    reference_size_cutoff: Annotated[
        int, Field(ge=1, description="rule evidently: reference rows up to which statistical tests are used, distances above")
    ] = 1000
    p_value: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    distance_threshold: Annotated[
        float, Field(gt=0.0, description="the effect size that counts as large: Wasserstein distance / reference std, or Jensen-Shannon")
    ] = 0.1
    correction: Correction = Correction.BONFERRONI
    drift_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    retrain_on_drift: bool = False


class Retraining(_Strict):
    schedule: ScheduleExpression | None = Field(default=None, description="EventBridge schedule expression; none means on demand")
    promote_with: Literal["switch", "release"] = Field(
        default="switch",
        description="switch: Promote moves production at once; release: Promote starts the release workflow (docs/releasing.md)",
    )


class ModelSpec(_Strict):
    name: ModelName
    description: str = ""
    task: Task
    target: Annotated[str, Field(min_length=1)]
    features: Annotated[list[Feature], Field(min_length=1)]
    estimator: Estimator
    data: DataSource
    split: Split = Split()
    evaluation: Evaluation
    drift: Drift = Drift()
    quality: Quality = Quality()
    retraining: Retraining = Retraining()
    release: ReleaseSpec = ReleaseSpec()  # how a new version goes out and what rolls it back (model/release_spec.py)
    search: Search | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features: feature names must be unique; repeated: {', '.join(duplicates)}")
        if self.target in names:
            raise ValueError(f"target: {self.target!r} is also listed as a feature")
        if self.evaluation.metric.for_classification != self.task.is_classification:
            fitting = ", ".join(m.value for m in Metric if m.for_classification == self.task.is_classification)
            raise ValueError(
                f"evaluation.metric: {self.evaluation.metric.value!r} does not fit task {self.task.value!r}; expected one of {fitting}"
            )
        return self

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.type is FeatureKind.NUMERIC]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.type is FeatureKind.CATEGORICAL]


_FRIENDLY = {
    ("name", "string_pattern_mismatch"): "expected lower-case letters, digits and '-', starting with a letter, at most 63 characters",
}


def _where(loc: tuple[Any, ...], document: Any) -> str:
    """A field path a person can find in the file: features[1] (sex).range rather than features.1.range."""
    parts: list[str] = []
    node = document
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f" ({node['name']})"
            parts.append(label)
            continue
        parts.append(("." if parts else "") + str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)


def validation_problems(exc: ValidationError, document: Any, friendly: dict[tuple[str, str], str] | None = None) -> list[str]:
    """One "field: problem" per pydantic error, with the field as a person finds it in ``document`` (YAML/JSON)."""
    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        message = (friendly or {}).get((".".join(str(p) for p in err["loc"]), err["type"]), message)
        where = _where(tuple(err["loc"]), document)
        # checks that span fields name their field at the start of the message
        problems.append(f"{where}: {message}" if where else message)
    return problems


def _format_errors(source: str, exc: ValidationError, document: Any) -> str:
    problems = validation_problems(exc, document, _FRIENDLY)
    return f"{source}: invalid model spec: " + "; ".join(problems)


def parse_spec(document: Any, source: str = "<spec>", base_dir: Path | None = None) -> ModelSpec:
    """Validate an already-parsed spec document (a dict); ``source`` names it in errors."""
    if document is None:
        raise SpecError(f"{source}: the spec is empty; expected a model spec (a YAML mapping with name, task, features, …)")
    if not isinstance(document, dict):
        raise SpecError(f"{source}: invalid model spec: expected a mapping at the top level, got {type(document).__name__}")
    try:
        spec = ModelSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(_format_errors(source, exc, document)) from exc
    if base_dir is not None and "://" not in spec.data.uri and not Path(spec.data.uri).is_absolute():
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"uri": str((base_dir / spec.data.uri).resolve())})})
    return spec


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML spec file; a relative data path is resolved against the spec's folder."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: spec file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    return parse_spec(document, source=str(path), base_dir=path.parent)
