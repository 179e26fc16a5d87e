"""The gradient-boosting families through ``make demo``'s path: a deployment config naming the affairs example
(HistGradientBoosting, native categoricals, a hyperparameter search) and the breast-cancer LightGBM variant is
synthesized (its training function gets the training-lightgbm layer), provisioned into moto; each model is trained and
promoted as ``mlops local up`` seeds it, answers a prediction through the synthesized inference function, and is
retrained by the template's state machine on moto's Step Functions, its candidate evaluated against that champion.

The XGBoost deployment's refusal at synth is tested in tests/infra/test_layer_families.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from serverless_mlops.aws import client
from serverless_mlops.local.assembly import synthesized
from serverless_mlops.local.environment import seed_models
from serverless_mlops.model.fit import train
from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.control import start_retraining
from serverless_mlops.retraining.specs import load_published_spec
from serverless_mlops.store.lifecycle import register_run
from serverless_mlops.store.registry import PRODUCTION
from tests.helpers.events import load_event
from tests.helpers.specs import ROOT
from tests.helpers.workflow import HAPPY_PATH, TRAINING_HANDLER, Workflow, WorkflowSynth, provisioned

pytest.importorskip("lightgbm")

AFFAIRS = "affairs"
LIGHTGBM = "breast-cancer-lightgbm"
INFERENCE_HANDLER = "functions.inference.app.lambda_handler"
DATA = {AFFAIRS: "affairs.csv", LIGHTGBM: "breast_cancer.csv"}  # the target is each file's last column
ESTIMATOR = {AFFAIRS: "sklearn.ensemble.HistGradientBoostingClassifier", LIGHTGBM: "lightgbm.LGBMClassifier"}

# the states a retraining passes whose candidate the gate rejects: registered as rejected, production unchanged
REJECTED_PATH = [
    c.STATE_PREPARE,
    c.STATE_TRAIN,
    c.STATE_EVALUATE,
    c.STATE_GATE,
    c.STATE_REGISTER_REJECTED,
    c.STATE_NOTIFY_REJECTED,
    c.STATE_NOT_PROMOTED,
]


def _small_search_copy(folder: Path) -> Path:
    """models/affairs.yaml with a two-candidate, two-fold search (the example's 4 × 3 fits cost a test too much),
    its data named by absolute path so the deployment publishes the same CSV."""
    document = yaml.safe_load((ROOT / "models" / f"{AFFAIRS}.yaml").read_text(encoding="utf-8"))
    document["search"] = {"params": {"max_leaf_nodes": [7, 15]}, "n_iter": 2, "cv": 2}
    document["data"]["uri"] = str(ROOT / "models" / document["data"]["uri"])
    path = folder / f"{AFFAIRS}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def families_synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowSynth]:
    folder = tmp_path_factory.mktemp("families-config")
    config = folder / "deployment.yaml"
    config.write_text(
        f"""
stage: dev
models: [{_small_search_copy(folder)}, {ROOT}/models/{LIGHTGBM}.yaml]
retraining:
  retry: {{interval_seconds: 1, backoff_rate: 1.0, max_attempts: 3}}
  approval_timeout_hours: 1
""",
        encoding="utf-8",
    )
    outdir = tmp_path_factory.mktemp("families-synth")
    template, assembly_dir = synthesized(config=config, outdir=outdir)
    yield WorkflowSynth(template=template, assembly_dir=assembly_dir, config=config)
    shutil.rmtree(outdir, ignore_errors=True)


@pytest.fixture
def families(families_synth: WorkflowSynth) -> Iterator[Workflow]:
    with provisioned(families_synth.template, families_synth.assembly_dir) as harness:
        yield harness


def _frame(model: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / "models" / "data" / DATA[model])


def _layer_names(template: dict[str, Any], handler: str) -> list[str]:
    resources = template["Resources"]
    (function,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == handler]
    return [resources[layer["Ref"]]["Properties"].get("Description", "") for layer in function["Properties"].get("Layers", [])]


def _predict(harness: Workflow, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """POST /v1/models/{model}/predict as the HTTP API delivers it to the synthesized inference function."""
    path = f"/v1/models/{model}/predict"
    response = client("lambda", harness.settings).invoke(
        FunctionName=harness.stack.function_name(INFERENCE_HANDLER),
        Payload=json.dumps(load_event(method="POST", path=path, body={"instances": rows})),
    )
    answer = json.loads(response["Payload"].read())
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def test_the_lightgbm_deployment_trains_in_the_lightgbm_training_layer(families_synth: WorkflowSynth) -> None:
    layers = _layer_names(families_synth.template, TRAINING_HANDLER)
    assert any("lightgbm" in description.lower() for description in layers), layers
    assert not any("lightgbm" in description.lower() for description in _layer_names(families_synth.template, INFERENCE_HANDLER))


@pytest.mark.parametrize("model", [AFFAIRS, LIGHTGBM])
def test_a_family_example_is_seeded_served_and_retrained_by_the_state_machine(families: Workflow, model: str) -> None:
    (seeded,) = seed_models(families.settings, [model], by="test")
    assert families.backends.registry.get_alias(model, PRODUCTION).version == seeded.version == 1
    champion = families.backends.registry.describe(model, 1)
    assert champion.lineage.estimator == ESTIMATOR[model]

    frame = _frame(model)
    sample = frame.sample(5, random_state=0)
    answer = _predict(families, model, sample.drop(columns=[frame.columns[-1]]).to_dict("records"))
    assert answer["version"] == 1
    assert len(answer["predictions"]) == 5
    assert set(answer["predictions"]) <= set(frame[frame.columns[-1]].unique().tolist())

    arn = start_retraining(families.sfn, families.arn, model, trigger="manual", reason="test", requested_by="test")
    outcome = families.wait(arn, timeout=150)

    # same data, same split, same seeds: the candidate equals the champion, and the gate wants an improvement
    assert (outcome.status, outcome.terminal) == ("SUCCEEDED", c.STATE_NOT_PROMOTED), outcome
    assert outcome.states == REJECTED_PATH
    evaluation = outcome.output["evaluation"]
    assert evaluation["champion"]["version"] == 1
    assert evaluation["improvement"] == pytest.approx(0.0, abs=1e-9)
    assert not evaluation["passed"]
    rejected = families.backends.registry.describe(model, outcome.output["version"]["number"])
    assert (rejected.version, rejected.status) == (2, "rejected")
    assert rejected.lineage.estimator == ESTIMATOR[model]
    assert rejected.lineage.execution_arn == arn
    assert families.backends.registry.get_alias(model, PRODUCTION).version == 1
    if model == AFFAIRS:
        assert rejected.lineage.search is not None
        assert rejected.lineage.search["best_params"] == champion.lineage.search["best_params"]


@pytest.mark.parametrize("model", [AFFAIRS, LIGHTGBM])
def test_a_family_candidate_that_beats_its_champion_is_promoted_by_the_state_machine(
    families: Workflow, model: str, tmp_path: Path
) -> None:
    """The champion is the published spec trained on 40 rows (20 of each class): the retrained candidate beats it."""
    spec = load_published_spec(model, families.s3, families.settings.bucket)
    frame = _frame(model)
    target = frame.columns[-1]
    subset = pd.concat([frame[frame[target] == label].head(20) for label in sorted(frame[target].unique())])
    subset.to_csv(tmp_path / "subset.csv", index=False)
    weak = train(spec.model_copy(update={"data": spec.data.model_copy(update={"uri": str(tmp_path / "subset.csv")})}))
    champion = register_run(weak, families.backends, by="test").version
    families.backends.registry.promote(model, champion, by="test", reason="a weak champion")

    arn = start_retraining(families.sfn, families.arn, model, trigger="manual", reason="test", requested_by="test")
    outcome = families.wait(arn, timeout=150)

    assert (outcome.status, outcome.terminal) == ("SUCCEEDED", c.STATE_PROMOTED), outcome
    assert outcome.states == HAPPY_PATH
    evaluation = outcome.output["evaluation"]
    assert evaluation["passed"]
    assert evaluation["champion"]["version"] == champion
    assert evaluation["candidate"] - evaluation["champion"]["value"] >= evaluation["min_improvement"]
    promoted = families.backends.registry.describe(model, outcome.output["version"]["number"])
    assert families.backends.registry.get_alias(model, PRODUCTION).version == promoted.version == champion + 1
    assert promoted.lineage.estimator == ESTIMATOR[model]
    assert promoted.parity["passed"] is True
