"""The gradient-boosting examples through the retraining workflow's steps on moto, as its Lambdas run them: PrepareData
snapshots the published spec's data, Train fits (the affairs example's search included) and writes the run folder,
Evaluate scores the ONNX candidate on the holdout, Register records the lineage (the search's chosen params and cv
scores), Promote moves production."""

from __future__ import annotations

import pytest

from serverless_mlops.model.spec import ModelSpec, Search
from serverless_mlops.retraining import candidate_steps, release_steps
from serverless_mlops.retraining.specs import publish_specs
from serverless_mlops.retraining.state import WorkflowState
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import PRODUCTION
from tests.helpers.specs import example_spec


def _small_search(spec: ModelSpec) -> ModelSpec:
    return spec.model_copy(update={"search": Search.model_validate({"params": {"max_leaf_nodes": [7, 15]}, "n_iter": 2, "cv": 2})})


@pytest.mark.parametrize("name", ["affairs", "breast-cancer-lightgbm"])
def test_a_gradient_boosting_example_retrains_registers_and_is_promoted(backends: Backends, name: str) -> None:
    spec = example_spec(name)
    if name == "affairs":
        spec = _small_search(spec)
    else:
        pytest.importorskip("lightgbm")
    publish_specs([spec], backends.store.s3, backends.store.bucket)
    execution = f"{name}-manual-20260101T000000"
    arn = f"arn:aws:states:us-east-1:123456789012:execution:retraining:{execution}"
    state = WorkflowState(model=spec.name, trigger="manual", reason="test")
    state = candidate_steps.prepare(state, backends, execution_arn=arn, lock_ttl_seconds=3600.0)
    state = candidate_steps.train(state, backends, execution_name=execution)
    state = candidate_steps.evaluate(state, backends, execution_name=execution)
    assert state.evaluation is not None
    assert state.evaluation.passed, state.evaluation
    state = release_steps.register(state, backends, execution_arn=arn, execution_name=execution)
    state = release_steps.promote(state, backends, execution_name=execution)
    assert state.version is not None
    assert backends.registry.get_alias(spec.name, PRODUCTION).version == state.version.number
    entry = backends.registry.describe(spec.name, state.version.number)
    assert entry.lineage.estimator == spec.estimator.class_
    assert entry.parity["passed"] is True
    if name == "affairs":
        assert entry.lineage.search is not None
        assert entry.lineage.search["best_params"]["max_leaf_nodes"] in (7, 15)
        assert len(entry.lineage.search["candidates"]) == 2
        assert entry.lineage.params["max_leaf_nodes"] == entry.lineage.search["best_params"]["max_leaf_nodes"]
    else:
        assert entry.lineage.search is None
