"""The model gate's decision (serverless_mlops.retraining.spec_change): which spec changes need a new model."""

from __future__ import annotations

from typing import Any

import pytest

from serverless_mlops.model.spec import ModelSpec
from serverless_mlops.retraining.spec_change import changed_fields, decide
from tests.helpers.specs import example_spec


def trained_from(spec: ModelSpec) -> dict[str, Any]:
    """What a version records (serverless_mlops.model.fit): the spec as trained, a local data path."""
    return spec.model_dump(mode="json", by_alias=True)


def changed(spec: ModelSpec, **update: Any) -> ModelSpec:
    return spec.model_copy(update={key: value(spec) for key, value in update.items()})


WINE = example_spec("wine")


@pytest.mark.parametrize(
    ("update", "fields"),
    [
        (
            {"estimator": lambda s: s.estimator.model_copy(update={"params": {**s.estimator.params, "n_estimators": 7}})},
            ["estimator.params"],
        ),
        ({"features": lambda s: s.features[:-1]}, ["features"]),
        ({"target": lambda s: "other"}, ["target"]),
        ({"split": lambda s: s.split.model_copy(update={"seed": 7})}, ["split.seed"]),
        ({"data": lambda s: s.data.model_copy(update={"uri": "data/wine.parquet"})}, ["data.format"]),
    ],
)
def test_a_change_to_what_the_model_is_trained_from_retrains(update: dict[str, Any], fields: list[str]) -> None:
    deployed = changed(WINE, **update)
    assert changed_fields(trained_from(WINE), deployed) == fields
    decision = decide("wine", deployed, trained_from(WINE))
    assert decision.retrain
    assert decision.reason == f"the spec changed what the model is trained from: {', '.join(fields)}"


@pytest.mark.parametrize(
    "update",
    [
        {"drift": lambda s: s.drift.model_copy(update={"p_value": 0.01, "window_hours": 48, "schedule": "rate(1 hour)"})},
        {"evaluation": lambda s: s.evaluation.model_copy(update={"min_improvement": 0.05, "require_approval": True})},
        {"description": lambda s: "reworded"},
        {"retraining": lambda s: s.retraining.model_copy(update={"schedule": "cron(0 3 ? * MON *)"})},
    ],
)
def test_drift_evaluation_or_description_changes_do_not_retrain(update: dict[str, Any]) -> None:
    deployed = changed(WINE, **update)
    assert deployed != WINE
    decision = decide("wine", deployed, trained_from(WINE))
    assert not decision.retrain, decision
    assert changed_fields(trained_from(WINE), deployed) == []


def test_where_the_data_lives_is_not_a_spec_change() -> None:
    # a version the workflow trained records its snapshot; the published spec reads the bucket's copy; a local
    # training records the local path: one model, three locations
    snapshot = changed(WINE, data=lambda s: s.data.model_copy(update={"uri": "s3://bucket/snapshots/wine/0a1b.csv"}))
    published = changed(WINE, data=lambda s: s.data.model_copy(update={"uri": "s3://bucket/specs/wine/wine.csv"}))
    assert not decide("wine", published, trained_from(snapshot)).retrain
    assert not decide("wine", published, trained_from(WINE)).retrain


def test_nothing_in_production_or_an_unknown_spec_retrains() -> None:
    assert decide("wine", WINE, None).reason == "nothing in production"
    assert decide("wine", WINE, {}).reason == "the production version records no spec to compare with"
    stale = {**trained_from(WINE), "task": "ranking"}
    decision = decide("wine", WINE, stale)
    assert decision.retrain
    assert decision.reason.startswith("the spec production was trained from is no longer valid (1 problem)")
