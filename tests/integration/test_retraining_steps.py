"""The retraining steps against moto: prepare (lock + snapshot), train/collect (run folder), evaluate (same holdout,
gate), register (lineage), request_approval, promote (expected revision), reject, notify, and both handlers.

The diabetes model (rmse, lower is better, min_improvement 0.5, floor 70) is trained once per module on the
snapshot PrepareData makes; each test writes that run folder back (as a pluggable trainer would) instead of training.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from functions.release import app as release_app
from functions.training import app as training_app
from serverless_mlops.errors import ConflictError, DataError, MlopsError, NotFoundError
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.fit import TrainedModel, train
from serverless_mlops.model.signature import FeatureSignature
from serverless_mlops.model.spec import ModelSpec
from serverless_mlops.retraining import candidate_steps, lock, release_steps
from serverless_mlops.retraining.approvals import get_approval
from serverless_mlops.retraining.contract import (
    EVALUATE,
    NOTIFY,
    PREPARE,
    PROMOTE,
    REGISTER,
    REJECT,
    REQUEST_APPROVAL,
    STATE_PROMOTE,
    STATE_TRAIN,
    TRAIN,
)
from serverless_mlops.retraining.lock import RetrainingInProgress
from serverless_mlops.retraining.runs import read_object, write_run
from serverless_mlops.retraining.specs import publish_specs
from serverless_mlops.retraining.state import TaskError, WorkflowState, WorkflowStateError
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run
from serverless_mlops.store.registry import PRODUCTION, STAGING, version_item
from tests.helpers.specs import example_spec

MODEL = "diabetes"
NAME = "diabetes-manual-20260101T000000"
ARN = f"arn:aws:states:us-east-1:123456789012:execution:retraining:{NAME}"
OTHER_ARN = "arn:aws:states:us-east-1:123456789012:execution:retraining:diabetes-drift-20260101T0100"
TTL = 3600.0


@dataclass
class Env:
    backends: Backends
    sns: Any
    topic: str
    sqs: Any
    queue: str

    def messages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                found.append(
                    {
                        "subject": envelope.get("Subject"),
                        "body": json.loads(envelope["Message"]),
                        "attributes": {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()},
                    }
                )
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])


def _publish(backends: Backends, spec: ModelSpec) -> None:
    publish_specs([spec], backends.store.s3, backends.store.bucket)


def _start() -> WorkflowState:
    return WorkflowState(model=MODEL, trigger="manual", reason="test")


@pytest.fixture(scope="module")
def trained_run() -> TrainedModel:
    """The diabetes run trained on PrepareData's snapshot, once per module."""
    with mock_aws():
        settings = Settings()
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        _publish(backends, example_spec(MODEL))
        state = candidate_steps.prepare(_start(), backends, execution_arn=ARN, lock_ttl_seconds=TTL)
        candidate_steps.train(state, backends, execution_name=NAME)
        from serverless_mlops.retraining.runs import read_run

        return read_run(backends.store, MODEL, NAME)[1]


@pytest.fixture(scope="module")
def weak_champion() -> TrainedModel:
    """A diabetes model far worse than the candidate (heavy regularization), as a champion to beat."""
    spec = example_spec(MODEL)
    return train(spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"params": {"alpha": 1000.0}})}))


@pytest.fixture
def env(backends: Backends) -> Env:
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    _publish(backends, example_spec(MODEL))
    return Env(backends, sns, topic, sqs, queue)


def _prepared(env: Env, owner: str = ARN) -> WorkflowState:
    return candidate_steps.prepare(_start(), env.backends, execution_arn=owner, lock_ttl_seconds=TTL)


def _candidate(env: Env, run: TrainedModel) -> WorkflowState:
    state = _prepared(env)
    write_run(env.backends.store, MODEL, NAME, run)
    return candidate_steps.collect(state, env.backends, execution_name=NAME)


def _champion(env: Env, trained: TrainedModel) -> int:
    entry = register_run(trained, env.backends, by="test")
    env.backends.registry.promote(MODEL, entry.version, by="test")
    return entry.version


def _put_feedback(env: Env, key: str, frame: pd.DataFrame) -> None:
    env.backends.store.s3.put_object(Bucket=env.backends.store.bucket, Key=key, Body=frame.to_csv(index=False).encode())


def _base_frame() -> pd.DataFrame:
    return pd.read_csv(example_spec(MODEL).data.uri)


# -- prepare --------------------------------------------------------------------------------------------------------
def test_prepare_snapshots_base_data_content_addressed_and_takes_the_lock(env: Env) -> None:
    state = _prepared(env)
    data = state.data
    assert data is not None
    assert data.rows == data.base_rows == 442
    assert data.feedback_rows == 0
    assert data.feedback_files == []
    assert data.lock_owner == ARN
    assert data.spec_uri == f"s3://{env.backends.store.bucket}/specs/{MODEL}/spec.json"
    body = read_object(env.backends.store.s3, data.uri)
    assert hashlib.sha256(body).hexdigest() == data.sha256
    assert data.uri == f"s3://{env.backends.store.bucket}/snapshots/{MODEL}/{data.sha256}.csv"
    held = lock.current(env.backends.workflow, MODEL)
    assert held is not None
    assert held.owner == ARN


def test_prepare_is_deterministic_and_a_retry_by_the_same_execution_keeps_the_lock(env: Env) -> None:
    first = _prepared(env).data
    second = _prepared(env).data
    assert first is not None
    assert second is not None
    assert first.sha256 == second.sha256


def test_prepare_appends_feedback_files_in_key_order(env: Env) -> None:
    base = _base_frame()
    _put_feedback(env, f"feedback/{MODEL}/b.csv", base.iloc[:5])
    _put_feedback(env, f"feedback/{MODEL}/a.csv", base.iloc[10:30])
    data = _prepared(env).data
    assert data is not None
    assert data.base_rows == 442
    assert data.feedback_rows == 25
    assert data.rows == 467
    assert data.feedback_files == [f"feedback/{MODEL}/a.csv", f"feedback/{MODEL}/b.csv"]
    snapshot = pd.read_csv(io.BytesIO(read_object(env.backends.store.s3, data.uri)))
    assert len(snapshot) == 467
    assert snapshot["bmi"].iloc[442:462].tolist() == base["bmi"].iloc[10:30].tolist()  # a.csv first
    assert snapshot["bmi"].iloc[462:].tolist() == base["bmi"].iloc[:5].tolist()


def test_feedback_changes_the_snapshot_sha(env: Env) -> None:
    without = _prepared(env).data
    _put_feedback(env, f"feedback/{MODEL}/more.csv", _base_frame().iloc[:3])
    with_feedback = _prepared(env).data
    assert without is not None
    assert with_feedback is not None
    assert without.sha256 != with_feedback.sha256


def test_a_feedback_file_missing_a_column_is_a_data_error_naming_key_and_column(env: Env) -> None:
    _put_feedback(env, f"feedback/{MODEL}/bad.csv", _base_frame().drop(columns=["bmi"]).iloc[:3])
    with pytest.raises(DataError, match=r"feedback/diabetes/bad\.csv: missing column 'bmi'"):
        _prepared(env)


def test_a_feedback_file_with_a_bad_value_names_the_row(env: Env) -> None:
    frame = _base_frame().iloc[:3].astype(object)
    frame.loc[1, "bp"] = "high"
    _put_feedback(env, f"feedback/{MODEL}/typo.csv", frame)
    with pytest.raises(DataError, match=r"feedback/diabetes/typo\.csv: column 'bp' must be numeric; non-numeric value at row 2"):
        _prepared(env)


def test_a_feedback_file_of_another_format_is_refused_by_name(env: Env) -> None:
    env.backends.store.s3.put_object(Bucket=env.backends.store.bucket, Key=f"feedback/{MODEL}/notes.txt", Body=b"hello")
    with pytest.raises(DataError, match=r"feedback/diabetes/notes\.txt: feedback files must be \.csv with the spec's features"):
        _prepared(env)


@pytest.mark.parametrize("name", ["labelled.parquet", "labelled.PQ"])
def test_parquet_feedback_is_refused_in_one_line_naming_the_file(env: Env, name: str) -> None:
    # the training layer has no pyarrow (layers/README.md): refused by name even where pyarrow is installed, as here,
    # so local mode fails as the Lambda would; refused rather than skipped, as every unreadable feedback file is
    body = io.BytesIO()
    _base_frame().iloc[:3].to_parquet(body, index=False)
    key = f"feedback/{MODEL}/{name}"
    env.backends.store.s3.put_object(Bucket=env.backends.store.bucket, Key=key, Body=body.getvalue())
    with pytest.raises(DataError) as caught:
        _prepared(env)
    assert str(caught.value) == (
        f"s3://{env.backends.store.bucket}/{key}: Parquet feedback cannot be read (the training layer has no pyarrow"
        " (it would not fit Lambda's 250 MB)): convert it to .csv with the spec's features and target 'target'"
    )


def test_parquet_base_data_published_without_the_synth_check_is_refused_in_one_line(env: Env, tmp_path: Path) -> None:
    data = tmp_path / "diabetes.parquet"
    _base_frame().to_parquet(data, index=False)
    spec = example_spec(MODEL)
    _publish(env.backends, spec.model_copy(update={"data": spec.data.model_copy(update={"uri": str(data)})}))
    with pytest.raises(
        DataError, match=r"^s3://[^ ]+/specs/diabetes/diabetes\.parquet: Parquet base data cannot be read \(the training layer"
    ) as caught:
        _prepared(env)
    assert "\n" not in str(caught.value)


def test_prepare_without_a_published_spec_is_not_found(env: Env) -> None:
    state = WorkflowState(model="wine", trigger="manual")
    with pytest.raises(NotFoundError, match="model 'wine' has no published spec"):
        candidate_steps.prepare(state, env.backends, execution_arn=ARN, lock_ttl_seconds=TTL)


def test_prepare_while_another_execution_runs_raises_retraining_in_progress(env: Env) -> None:
    _prepared(env, owner=OTHER_ARN)
    with pytest.raises(RetrainingInProgress, match=f"model 'diabetes' is already being retrained by execution {OTHER_ARN}"):
        _prepared(env)


# -- train / collect ------------------------------------------------------------------------------------------------
def test_train_writes_the_run_folder_and_collects_verified_artifacts(env: Env, trained_run: TrainedModel) -> None:
    state = _candidate(env, trained_run)
    candidate, data = state.candidate, state.data
    assert candidate is not None
    assert data is not None
    bucket = env.backends.store.bucket
    assert candidate.record == f"s3://{bucket}/runs/{MODEL}/{NAME}/run.json"
    for name in ("model.onnx", "profile.json.gz", "run.json"):
        assert read_object(env.backends.store.s3, f"s3://{bucket}/runs/{MODEL}/{NAME}/{name}")
    onnx_bytes = env.backends.store.get(candidate.artifact, model=MODEL, version="candidate")
    assert onnx_bytes == trained_run.onnx_bytes
    assert env.backends.store.get(candidate.profile, model=MODEL, version="candidate") == trained_run.profile_bytes
    assert candidate.run_id == trained_run.record.run_id
    assert candidate.metrics == trained_run.record.metrics
    assert trained_run.record.data_uri == data.uri
    assert trained_run.record.data_sha256 == data.sha256
    assert trained_run.record.trained_by == f"retraining:{NAME}"


def test_collect_refuses_a_run_trained_on_other_data(env: Env, trained_run: TrainedModel) -> None:
    state = _prepared(env)
    other = TrainedModel(trained_run.record.model_copy(update={"data_sha256": "0" * 64}), trained_run.onnx_bytes, trained_run.profile_bytes)
    write_run(env.backends.store, MODEL, NAME, other)
    with pytest.raises(DataError, match="a trainer must train on the snapshot"):
        candidate_steps.collect(state, env.backends, execution_name=NAME)


def test_collect_without_a_run_folder_names_the_folder(env: Env) -> None:
    state = _prepared(env)
    with pytest.raises(NotFoundError, match=f"the trainer left no complete run folder at s3://.*/runs/{MODEL}/{NAME}/"):
        candidate_steps.collect(state, env.backends, execution_name=NAME)


# -- evaluate -------------------------------------------------------------------------------------------------------
def test_evaluate_without_champion_passes_on_the_floor(env: Env, trained_run: TrainedModel) -> None:
    evaluation = candidate_steps.evaluate(_candidate(env, trained_run), env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert evaluation.passed
    assert evaluation.champion is None
    assert evaluation.metric == "rmse"
    assert not evaluation.higher_is_better
    assert evaluation.candidate == pytest.approx(trained_run.record.metrics["rmse"], abs=1e-9)
    assert evaluation.parity["passed"]
    assert evaluation.holdout_rows == trained_run.record.holdout_rows
    assert "no champion in production" in evaluation.reason
    assert not evaluation.require_approval


def test_evaluate_collects_a_run_folder_a_pluggable_trainer_left(env: Env, trained_run: TrainedModel) -> None:
    state = _prepared(env)
    write_run(env.backends.store, MODEL, NAME, trained_run)
    evaluated = candidate_steps.evaluate(state, env.backends, execution_name=NAME)
    assert evaluated.candidate is not None
    assert evaluated.evaluation is not None
    assert evaluated.evaluation.passed


def test_evaluate_scores_champion_and_candidate_on_the_same_holdout(
    env: Env, trained_run: TrainedModel, trained_models: dict[str, Any]
) -> None:
    """The champion trained on the same rows with the same split scores exactly what the candidate scores: a tie."""
    version = _champion(env, trained_models[MODEL])
    evaluation = candidate_steps.evaluate(_candidate(env, trained_run), env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert evaluation.champion is not None
    assert evaluation.champion.version == version
    assert evaluation.champion.alias_revision == 1
    assert evaluation.champion.value == pytest.approx(trained_models[MODEL].record.metrics["rmse"], abs=1e-9)
    assert evaluation.champion.value == pytest.approx(evaluation.candidate, abs=1e-9)
    assert not evaluation.passed
    assert f"does not beat champion v{version}" in evaluation.reason


def test_evaluate_better_candidate_beats_a_weak_champion(env: Env, trained_run: TrainedModel, weak_champion: TrainedModel) -> None:
    _champion(env, weak_champion)
    evaluation = candidate_steps.evaluate(_candidate(env, trained_run), env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert evaluation.passed
    assert evaluation.champion is not None
    assert evaluation.champion.value is not None
    assert evaluation.champion.value > evaluation.candidate  # rmse: lower is better
    assert evaluation.improvement == pytest.approx(evaluation.champion.value - evaluation.candidate)
    assert "beats champion v1" in evaluation.reason
    assert "clears floor 70 (at most)" in evaluation.reason


def test_evaluate_worse_candidate_fails_against_a_strong_champion(
    env: Env, weak_champion: TrainedModel, trained_models: dict[str, Any]
) -> None:
    """The candidate trained with the weak spec's record loses to the good champion."""
    _champion(env, trained_models[MODEL])
    state = _prepared(env)
    data = state.data
    assert data is not None
    record = weak_champion.record.model_copy(update={"data_uri": data.uri, "data_sha256": data.sha256})
    write_run(env.backends.store, MODEL, NAME, TrainedModel(record, weak_champion.onnx_bytes, weak_champion.profile_bytes))
    evaluation = candidate_steps.evaluate(state, env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert not evaluation.passed
    assert evaluation.improvement is not None
    assert evaluation.improvement < 0


def test_evaluate_with_a_champion_that_cannot_score_compares_with_the_floor_only(
    env: Env, trained_run: TrainedModel, trained_models: dict[str, Any]
) -> None:
    good = trained_models[MODEL]
    features = [FeatureSignature(**{**f.model_dump(), "name": "gone"}) if f.name == "bmi" else f for f in good.record.signature.features]
    record = good.record.model_copy(update={"signature": good.record.signature.model_copy(update={"features": features})})
    version = _champion(env, TrainedModel(record, good.onnx_bytes, good.profile_bytes))
    evaluation = candidate_steps.evaluate(_candidate(env, trained_run), env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert evaluation.champion is not None
    assert evaluation.champion.value is None
    assert evaluation.champion.alias_revision == 1
    assert evaluation.passed
    assert (
        f"champion v{version} cannot score this data (columns missing from the data: gone), so only the floor counts" in evaluation.reason
    )


def test_evaluate_below_the_floor_fails(env: Env, trained_run: TrainedModel) -> None:
    spec = dict(trained_run.record.spec)
    spec["evaluation"] = {**spec["evaluation"], "floor": 10.0}
    strict = TrainedModel(trained_run.record.model_copy(update={"spec": spec}), trained_run.onnx_bytes, trained_run.profile_bytes)
    evaluation = candidate_steps.evaluate(_candidate(env, strict), env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert not evaluation.passed
    assert evaluation.floor == 10.0
    assert "is above floor 10 (at most)" in evaluation.reason


def test_evaluate_fails_the_gate_when_the_onnx_metric_is_not_the_training_runs(env: Env, trained_run: TrainedModel) -> None:
    metrics = {**trained_run.record.metrics, "rmse": trained_run.record.metrics["rmse"] - 5}
    lying = TrainedModel(trained_run.record.model_copy(update={"metrics": metrics}), trained_run.onnx_bytes, trained_run.profile_bytes)
    evaluation = candidate_steps.evaluate(_candidate(env, lying), env.backends, execution_name=NAME).evaluation
    assert evaluation is not None
    assert not evaluation.passed
    assert not evaluation.parity["passed"]
    assert evaluation.reason.startswith("parity: the candidate's ONNX rmse on the holdout is")


def test_evaluate_refuses_a_snapshot_that_changed(env: Env, trained_run: TrainedModel) -> None:
    state = _candidate(env, trained_run)
    assert state.data is not None
    key = state.data.uri.split("/", 3)[3]
    env.backends.store.s3.put_object(Bucket=env.backends.store.bucket, Key=key, Body=b"age\n1\n")
    with pytest.raises(DataError, match="the snapshot's sha256 is not the"):
        candidate_steps.evaluate(state, env.backends, execution_name=NAME)


# -- register / promote / reject ------------------------------------------------------------------------------------
def _evaluated(env: Env, run: TrainedModel) -> WorkflowState:
    return candidate_steps.evaluate(_candidate(env, run), env.backends, execution_name=NAME)


def test_register_records_lineage_with_execution_trigger_and_snapshot(env: Env, trained_run: TrainedModel) -> None:
    state = release_steps.register(_evaluated(env, trained_run), env.backends, execution_arn=ARN, execution_name=NAME)
    assert state.version is not None
    assert state.version.status == "registered"
    entry = env.backends.registry.describe(MODEL, state.version.number)
    assert state.data is not None
    assert entry.status == "registered"
    assert entry.lineage.execution_arn == ARN
    assert entry.lineage.trigger == "manual"
    assert entry.lineage.data_uri == state.data.uri
    assert entry.lineage.data_sha256 == state.data.sha256
    assert entry.lineage.run_id == trained_run.record.run_id
    assert entry.created_by == f"retraining:{NAME}"
    assert state.candidate is not None
    assert entry.artifact == state.candidate.artifact
    assert "no champion in production" in entry.description
    assert entry.description.startswith("retraining (manual: test): ")  # the starter's reason stays with the version


def test_register_is_idempotent_on_retry(env: Env, trained_run: TrainedModel) -> None:
    state = _evaluated(env, trained_run)
    first = release_steps.register(state, env.backends, execution_arn=ARN, execution_name=NAME).version
    second = release_steps.register(state, env.backends, execution_arn=ARN, execution_name=NAME).version
    assert first == second
    assert len(env.backends.registry.list_versions(MODEL).items) == 1


def test_register_keeps_a_rejected_candidate_with_status_rejected(
    env: Env, trained_run: TrainedModel, trained_models: dict[str, Any]
) -> None:
    _champion(env, trained_models[MODEL])
    state = release_steps.register(_evaluated(env, trained_run), env.backends, execution_arn=ARN, execution_name=NAME)
    assert state.version is not None
    assert state.version.status == "rejected"
    entry = env.backends.registry.describe(MODEL, state.version.number)
    assert entry.status == "rejected"
    assert "does not beat champion v1" in entry.description
    assert env.backends.registry.get_alias(MODEL, PRODUCTION).version == 1
    with pytest.raises(MlopsError, match="only registered versions can be aliased"):
        env.backends.registry.promote(MODEL, state.version.number, by="someone")


def _registered(env: Env, run: TrainedModel) -> WorkflowState:
    return release_steps.register(_evaluated(env, run), env.backends, execution_arn=ARN, execution_name=NAME)


def test_promote_moves_production_from_the_champion(env: Env, trained_run: TrainedModel, weak_champion: TrainedModel) -> None:
    _champion(env, weak_champion)
    state = release_steps.promote(_registered(env, trained_run), env.backends, execution_name=NAME)
    assert state.promotion is not None
    assert state.promotion.model_dump() == {"alias": "production", "from_version": 1, "to_version": 2, "revision": 2, "release": None}
    alias = env.backends.registry.get_alias(MODEL, PRODUCTION)
    assert alias.version == 2
    assert alias.history[-1].by == f"retraining:{NAME}"
    assert "rmse" in alias.history[-1].reason
    # a retry after success finds its own promotion
    again = release_steps.promote(state.model_copy(update={"promotion": None}), env.backends, execution_name=NAME)
    assert again.promotion == state.promotion


def test_promote_first_production_version(env: Env, trained_run: TrainedModel) -> None:
    state = release_steps.promote(_registered(env, trained_run), env.backends, execution_name=NAME)
    assert state.promotion is not None
    assert state.promotion.from_version is None
    assert state.promotion.revision == 1


def test_promote_refuses_when_production_moved_meanwhile(env: Env, trained_run: TrainedModel, weak_champion: TrainedModel) -> None:
    _champion(env, weak_champion)
    state = _registered(env, trained_run)
    another_run = TrainedModel(
        weak_champion.record.model_copy(update={"run_id": "another"}), weak_champion.onnx_bytes, weak_champion.profile_bytes
    )
    other = register_run(another_run, env.backends, by="someone").version
    env.backends.registry.promote(MODEL, other, by="someone")
    with pytest.raises(ConflictError, match=r"model 'diabetes': production moved to v3 \(revision 2\) while v2 was evaluated"):
        release_steps.promote(state, env.backends, execution_name=NAME)
    assert env.backends.registry.get_alias(MODEL, PRODUCTION).version == other


@pytest.mark.parametrize(("section", "shadow_seconds"), [({"shadow": {"first": "30m"}}, 1800), ({}, None)])
def test_promote_with_release_hands_over_the_candidates_shadow_phase(
    env: Env, trained_run: TrainedModel, weak_champion: TrainedModel, section: dict[str, Any], shadow_seconds: int | None
) -> None:
    """``retraining.promote_with: release``: the release starts with the shadow phase of the spec registered with the
    candidate (``release.shadow.first``), or none; production does not move."""
    _champion(env, weak_champion)
    spec = {
        **trained_run.record.spec,
        "retraining": {**trained_run.record.spec["retraining"], "promote_with": "release"},
        "release": section,
    }
    run = TrainedModel(trained_run.record.model_copy(update={"spec": spec}), trained_run.onnx_bytes, trained_run.profile_bytes)
    started: list[tuple[str, int, int | None]] = []

    def releaser(model: str, version: int, reason: str, shadow_first_seconds: int | None) -> str:
        started.append((model, version, shadow_first_seconds))
        return f"arn:aws:states:us-east-1:123456789012:execution:release:{model}-v{version}"

    state = release_steps.promote(_registered(env, run), env.backends, execution_name=NAME, releaser=releaser)
    assert started == [(MODEL, 2, shadow_seconds)]
    assert state.promotion is not None
    assert state.promotion.release == f"arn:aws:states:us-east-1:123456789012:execution:release:{MODEL}-v2"
    assert env.backends.registry.get_alias(MODEL, PRODUCTION).version == 1


def test_promote_with_release_names_a_bad_stored_shadow_phase(
    env: Env, settings: Settings, trained_run: TrainedModel, weak_champion: TrainedModel
) -> None:
    """A version whose stored spec no longer passes (Evaluate validated it; a registry item written otherwise may not)
    starts no release, and the step's error names the field."""
    _champion(env, weak_champion)
    spec = {**trained_run.record.spec, "retraining": {**trained_run.record.spec["retraining"], "promote_with": "release"}}
    run = TrainedModel(trained_run.record.model_copy(update={"spec": spec}), trained_run.onnx_bytes, trained_run.profile_bytes)
    state = _registered(env, run)
    entry = env.backends.registry.describe(MODEL, 2)
    stored = entry.model_copy(update={"spec": {**entry.spec, "release": {"shadow": {"first": "25h"}}}})
    boto3.client("dynamodb", region_name="us-east-1").put_item(TableName=settings.table, Item=version_item(stored))

    def releaser(model: str, version: int, reason: str, shadow_first_seconds: int | None) -> str:
        raise AssertionError("no release may start")

    with pytest.raises(MlopsError, match=r"^model 'diabetes' v2: its spec's release\.shadow\.first: at most 24h, got '25h'$"):
        release_steps.promote(state, env.backends, execution_name=NAME, releaser=releaser)
    assert env.backends.registry.get_alias(MODEL, PRODUCTION).version == 1


def test_reject_marks_the_version_rejected_and_leaves_staging(env: Env, trained_run: TrainedModel) -> None:
    state = _registered(env, trained_run)
    assert state.version is not None
    env.backends.registry.set_alias(MODEL, STAGING, state.version.number, by="test")
    rejected = release_steps.reject(
        state.model_copy(update={"approval": {"approved": False, "by": "ann", "reason": "no"}}), env.backends, execution_name=NAME
    )
    assert rejected.version is not None
    assert rejected.version.status == "rejected"
    assert env.backends.registry.describe(MODEL, state.version.number).status == "rejected"
    assert env.backends.registry.get_alias(MODEL, STAGING).version == state.version.number


def test_reject_after_approval_timeout_turns_the_error_into_a_rejection(env: Env, trained_run: TrainedModel) -> None:
    state = release_steps.request_approval(
        _registered(env, trained_run), env.backends, env.sns, env.topic, token="tok", execution_arn=ARN, execution_name=NAME
    )
    timed_out = state.model_copy(update={"error": TaskError(Error="States.Timeout", Cause="")})
    rejected = release_steps.reject(timed_out, env.backends, execution_name=NAME)
    assert rejected.error is None
    assert rejected.approval is not None
    assert not rejected.approval.approved
    assert rejected.approval.by == "timeout"
    assert state.version is not None
    assert get_approval(env.backends.workflow, MODEL, state.version.number).state == "expired"
    assert release_steps.outcome_of(rejected) == "rejected"


# -- request_approval / notify --------------------------------------------------------------------------------------
def test_request_approval_stages_the_version_stores_the_token_and_says_how_to_decide(env: Env, trained_run: TrainedModel) -> None:
    state = release_steps.request_approval(
        _registered(env, trained_run), env.backends, env.sns, env.topic, token="token-1", execution_arn=ARN, execution_name=NAME
    )
    assert state.version is not None
    number = state.version.number
    assert env.backends.registry.get_alias(MODEL, STAGING).version == number
    pending = get_approval(env.backends.workflow, MODEL, number)
    assert (pending.state, pending.token, pending.execution_arn) == ("pending", "token-1", ARN)
    [message] = env.messages()
    assert message["subject"].startswith(f"Approve {MODEL} v{number}? rmse")
    assert len(message["subject"]) <= 100
    assert message["body"]["approve"] == f"mlops approve {MODEL} {number}"
    assert message["body"]["reject"].startswith(f"mlops reject {MODEL} {number} --reason")
    assert message["attributes"] == {"model": MODEL, "outcome": "approval_requested"}
    # a retried request (same execution) replaces the token; another execution is refused
    release_steps.request_approval(state, env.backends, env.sns, env.topic, token="token-2", execution_arn=ARN, execution_name=NAME)
    assert get_approval(env.backends.workflow, MODEL, number).token == "token-2"
    with pytest.raises(ConflictError, match=f"model 'diabetes' version {number} already has an approval request"):
        release_steps.request_approval(state, env.backends, env.sns, env.topic, token="t", execution_arn=OTHER_ARN, execution_name="x")


def test_request_approval_without_a_topic_is_a_clear_error(env: Env, trained_run: TrainedModel) -> None:
    with pytest.raises(MlopsError, match="MLOPS_ALERT_TOPIC_ARN is not set"):
        release_steps.request_approval(
            _registered(env, trained_run), env.backends, env.sns, None, token="t", execution_arn=ARN, execution_name=NAME
        )


def test_notify_promoted_says_the_metric_change_and_releases_the_lock(
    env: Env, trained_run: TrainedModel, weak_champion: TrainedModel
) -> None:
    _champion(env, weak_champion)
    state = release_steps.promote(_registered(env, trained_run), env.backends, execution_name=NAME)
    done = release_steps.notify(state, env.backends, env.sns, env.topic, execution_arn=ARN)
    assert lock.current(env.backends.workflow, MODEL) is None
    [message] = env.messages()
    body = message["body"]
    assert done.notification is not None
    assert done.notification.outcome == "promoted"
    assert done.notification.subject == message["subject"]
    assert len(message["subject"]) <= 100
    assert message["subject"].startswith(f"Retraining {MODEL}: v2 promoted, rmse ")
    assert "(v1 -> v2)" in message["subject"]
    assert message["attributes"] == {"model": MODEL, "outcome": "promoted"}
    assert body["type"] == "retraining"
    assert body["outcome"] == "promoted"
    assert (body["model"], body["version"], body["metric"], body["trigger"], body["execution"]) == (MODEL, 2, "rmse", "manual", ARN)
    assert body["trigger_reason"] == "test"
    assert body["champion"]["version"] == 1
    assert body["improvement"] > 0
    assert "beats champion v1" in body["reason"]


def test_notify_rejected_says_the_reason(env: Env, trained_run: TrainedModel, trained_models: dict[str, Any]) -> None:
    _champion(env, trained_models[MODEL])
    state = _registered(env, trained_run)
    done = release_steps.notify(state, env.backends, env.sns, env.topic, execution_arn=ARN)
    [message] = env.messages()
    assert done.notification is not None
    assert done.notification.outcome == "rejected"
    assert message["body"]["outcome"] == "rejected"
    assert "does not beat champion v1" in message["body"]["reason"]
    assert message["subject"].startswith(f"Retraining {MODEL}: v2 not promoted, rmse")
    assert len(message["subject"]) <= 100
    assert lock.current(env.backends.workflow, MODEL) is None


def test_notify_failed_names_the_state_and_error_and_releases_the_lock(env: Env) -> None:
    state = _prepared(env)
    cause = json.dumps({"errorType": "MlopsError", "errorMessage": "diabetes: training failed: boom"})
    failed = state.model_copy(update={"error": TaskError(Error="MlopsError", Cause=cause)})
    done = release_steps.notify(failed, env.backends, env.sns, env.topic, execution_arn=ARN)
    [message] = env.messages()
    body = message["body"]
    assert done.notification is not None
    assert done.notification.outcome == "failed"
    assert body["failed_state"] == STATE_TRAIN
    assert body["error"] == {"type": "MlopsError", "message": "diabetes: training failed: boom"}
    assert body["reason"] == "Train failed: MlopsError: diabetes: training failed: boom"
    assert message["subject"] == f"Retraining {MODEL} failed at Train: MlopsError"
    assert lock.current(env.backends.workflow, MODEL) is None


def test_notify_does_not_release_a_lock_held_by_another_execution(env: Env) -> None:
    _prepared(env, owner=OTHER_ARN)
    failed = _start().model_copy(update={"error": TaskError(Error="States.TaskFailed", Cause="x")})
    release_steps.notify(failed, env.backends, env.sns, env.topic, execution_arn=ARN)
    held = lock.current(env.backends.workflow, MODEL)
    assert held is not None
    assert held.owner == OTHER_ARN


def test_notify_failed_at_promote_after_a_conflict(env: Env, trained_run: TrainedModel) -> None:
    state = _registered(env, trained_run)
    failed = state.model_copy(
        update={"error": TaskError(Error="ConflictError", Cause=json.dumps({"errorType": "ConflictError", "errorMessage": "moved"}))}
    )
    release_steps.notify(failed, env.backends, env.sns, env.topic, execution_arn=ARN)
    [message] = env.messages()
    assert message["body"]["failed_state"] == STATE_PROMOTE


# -- handlers -------------------------------------------------------------------------------------------------------
def _event(step: str, state: WorkflowState, **extra: Any) -> dict[str, Any]:
    return {"step": step, "state": state.document(), "execution": ARN, "execution_name": NAME, **extra}


def test_handlers_run_a_whole_promotion_through_their_documents(env: Env, trained_run: TrainedModel) -> None:
    training = training_app.Dependencies(backends=env.backends, lock_ttl_seconds=60)
    release = release_app.Dependencies(backends=env.backends, sns=env.sns, topic_arn=env.topic)
    document = training_app.handle(_event(PREPARE, _start()), training)
    assert document["data"]["lock_owner"] == ARN
    write_run(env.backends.store, MODEL, NAME, trained_run)  # stands in for TRAIN here; TRAIN itself is tested above
    document = training_app.handle({**_event(EVALUATE, _start()), "state": document}, training)
    assert document["evaluation"]["passed"] is True
    assert "champion" not in document["evaluation"]  # exclude_none
    for step in (REGISTER, PROMOTE, NOTIFY):
        document = release_app.handle({**_event(step, _start()), "state": document}, release)
    assert document["version"] == {"number": 1, "status": "registered"}
    assert document["promotion"]["to_version"] == 1
    assert document["notification"]["outcome"] == "promoted"
    assert document["reason"] == "test"
    assert len(json.dumps(document)) < 10_000


def test_release_handler_request_approval_and_reject(env: Env, trained_run: TrainedModel) -> None:
    release = release_app.Dependencies(backends=env.backends, sns=env.sns, topic_arn=env.topic)
    state = _registered(env, trained_run)
    document = release_app.handle(_event(REQUEST_APPROVAL, state, token="tok"), release)
    assert get_approval(env.backends.workflow, MODEL, 1).token == "tok"
    document = release_app.handle({**_event(REJECT, state), "state": {**document, "approval": {"approved": False, "by": "a"}}}, release)
    assert document["version"]["status"] == "rejected"


def test_unknown_step_is_a_value_error_naming_it(env: Env) -> None:
    with pytest.raises(ValueError, match="unknown step 'promote': this function runs prepare, train, evaluate"):
        training_app.handle(_event(PROMOTE, _start()), training_app.Dependencies(backends=env.backends, lock_ttl_seconds=1))
    with pytest.raises(ValueError, match="unknown step 'deploy'"):
        release_app.handle(_event("deploy", _start()), release_app.Dependencies(backends=env.backends, sns=env.sns, topic_arn=env.topic))


def test_a_bad_document_is_a_workflow_state_error_naming_the_field(env: Env) -> None:
    event = _event(TRAIN, _start())
    event["state"]["trigger"] = "cron"
    with pytest.raises(WorkflowStateError, match=r"invalid train task event: state\.trigger"):
        training_app.handle(event, training_app.Dependencies(backends=env.backends, lock_ttl_seconds=1))
    with pytest.raises(WorkflowStateError, match="has no 'data' \\(PrepareData has not run\\)"):
        training_app.handle(_event(TRAIN, _start()), training_app.Dependencies(backends=env.backends, lock_ttl_seconds=1))


def test_default_dependencies_read_the_environment_once(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_BUCKET", env.backends.store.bucket)
    monkeypatch.setenv("MLOPS_TABLE", env.backends.registry.table)
    monkeypatch.setenv("MLOPS_LOCK_TTL_SECONDS", "120")
    monkeypatch.setenv("MLOPS_ALERT_TOPIC_ARN", env.topic)
    training_app.default_dependencies.cache_clear()
    release_app.default_dependencies.cache_clear()
    try:
        assert training_app.default_dependencies().lock_ttl_seconds == 120
        assert training_app.default_dependencies() is training_app.default_dependencies()
        assert release_app.default_dependencies().topic_arn == env.topic
        document = training_app.handle(_event(PREPARE, _start()))
        assert document["data"]["rows"] == 442
        held = lock.current(env.backends.workflow, MODEL)
        assert held is not None
        assert release_app.handle({**_event(NOTIFY, _start()), "state": {**document, "error": {"Error": "X", "Cause": "y"}}})[
            "notification"
        ]
    finally:
        training_app.default_dependencies.cache_clear()
        release_app.default_dependencies.cache_clear()
    assert lock.current(env.backends.workflow, MODEL) is None
    assert training_app.TrainingSettings.from_env({}).lock_ttl_seconds == lock.DEFAULT_LOCK_TTL_SECONDS


# -- error paths ----------------------------------------------------------------------------------------------------
def _holdout(trained_run: TrainedModel, env: Env) -> tuple[pd.DataFrame, Any]:
    from serverless_mlops.model.fit import split_holdout

    spec = ModelSpec.model_validate(trained_run.record.spec)
    state = _prepared(env)
    return split_holdout(spec, candidate_steps.load_snapshot(state, env.backends, spec).frame)[1], spec


def _with_feature(signature: Any, feature: str, **changes: Any) -> Any:
    features = [f.model_copy(update=changes) if f.name == feature else f for f in signature.features]
    return signature.model_copy(update={"features": features})


def test_score_says_why_a_model_cannot_score(env: Env, trained_run: TrainedModel) -> None:
    from serverless_mlops.model.spec import Metric, Task

    holdout, _ = _holdout(trained_run, env)
    signature, onnx_bytes = trained_run.record.signature, trained_run.onnx_bytes
    assert candidate_steps.score(signature, onnx_bytes, holdout, Task.REGRESSION, Metric.RMSE) == pytest.approx(
        trained_run.record.metrics["rmse"]
    )
    with pytest.raises(candidate_steps.CannotScoreError, match=r"scoring failed: \S"):
        candidate_steps.score(_with_feature(signature, "bmi", input_name="nope"), onnx_bytes, holdout, Task.REGRESSION, Metric.RMSE)
    with pytest.raises(candidate_steps.CannotScoreError, match="scoring failed: could not convert string to float"):
        candidate_steps.score(_with_feature(signature, "sex", kind="numeric"), onnx_bytes, holdout, Task.REGRESSION, Metric.RMSE)
    with pytest.raises(candidate_steps.CannotScoreError, match="roc_auc is not defined on this holdout"):
        candidate_steps.score(signature, onnx_bytes, holdout, Task.REGRESSION, Metric.ROC_AUC)


def test_a_candidate_that_cannot_score_fails_evaluate_naming_the_model(env: Env, trained_run: TrainedModel) -> None:
    signature = _with_feature(trained_run.record.signature, "bmi", name="gone")
    broken = TrainedModel(trained_run.record.model_copy(update={"signature": signature}), trained_run.onnx_bytes, trained_run.profile_bytes)
    with pytest.raises(
        MlopsError, match=r"model 'diabetes': the candidate cannot be scored on s3://\S+: columns missing from the data: gone"
    ):
        candidate_steps.evaluate(_candidate(env, broken), env.backends, execution_name=NAME)


def test_collect_refuses_a_run_of_another_model(env: Env, trained_run: TrainedModel) -> None:
    state = _prepared(env)
    other = TrainedModel(trained_run.record.model_copy(update={"model": "wine"}), trained_run.onnx_bytes, trained_run.profile_bytes)
    write_run(env.backends.store, MODEL, NAME, other)
    with pytest.raises(DataError, match="the run is of model 'wine', not 'diabetes'"):
        candidate_steps.collect(state, env.backends, execution_name=NAME)


def test_an_unreadable_run_record_is_a_data_error_naming_it(env: Env) -> None:
    state = _prepared(env)
    store = env.backends.store
    for name in ("model.onnx", "profile.json.gz"):
        store.s3.put_object(Bucket=store.bucket, Key=f"runs/{MODEL}/{NAME}/{name}", Body=b"x")
    store.s3.put_object(Bucket=store.bucket, Key=f"runs/{MODEL}/{NAME}/run.json", Body=b"{not json")
    with pytest.raises(DataError, match=f"runs/{MODEL}/{NAME}/run.json: unreadable run record"):
        candidate_steps.collect(state, env.backends, execution_name=NAME)


def test_base_data_missing_from_the_bucket_is_a_data_error_naming_it(env: Env) -> None:
    store = env.backends.store
    store.s3.delete_object(Bucket=store.bucket, Key=f"specs/{MODEL}/diabetes.csv")
    with pytest.raises(DataError, match=f"s3://{store.bucket}/specs/{MODEL}/diabetes.csv: no such object"):
        _prepared(env)


def test_s3_helpers_refuse_a_malformed_uri_and_encrypt_with_kms(env: Env) -> None:
    from serverless_mlops.retraining.runs import put_object, split_uri
    from serverless_mlops.store.artifacts import ArtifactStore

    with pytest.raises(DataError, match="s3://bucket-only: expected s3://bucket/key"):
        split_uri("s3://bucket-only")
    store = env.backends.store
    kms = ArtifactStore(store.bucket, store.s3, kms_key_id="alias/mlops")
    uri = put_object(kms, "snapshots/x/y.csv", b"a\n", "text/csv")
    head = store.s3.head_object(Bucket=store.bucket, Key="snapshots/x/y.csv")
    assert uri == f"s3://{store.bucket}/snapshots/x/y.csv"
    assert head["ServerSideEncryption"] == "aws:kms"


def test_steps_name_the_missing_part_of_the_document(env: Env) -> None:
    with pytest.raises(WorkflowStateError, match="has no 'data'"):
        release_steps.register(_start(), env.backends, execution_arn=ARN, execution_name=NAME)
    with pytest.raises(WorkflowStateError, match="has no 'candidate'"):
        release_steps.register(_prepared(env), env.backends, execution_arn=ARN, execution_name=NAME)
    with pytest.raises(WorkflowStateError, match="has no 'evaluation'"):
        release_steps.promote(
            _start().model_copy(update={"version": {"number": 1, "status": "registered"}}), env.backends, execution_name=NAME
        )
    with pytest.raises(WorkflowStateError, match="has no 'version'"):
        release_steps.reject(_start(), env.backends, execution_name=NAME)


def test_request_approval_without_a_token_is_refused(env: Env, trained_run: TrainedModel) -> None:
    with pytest.raises(MlopsError, match=r"model 'diabetes' version 1: request_approval needs the task token"):
        release_steps.request_approval(
            _registered(env, trained_run), env.backends, env.sns, env.topic, token="", execution_arn=ARN, execution_name=NAME
        )


def test_an_approval_decided_twice_in_the_registry_is_a_conflict(env: Env) -> None:
    from serverless_mlops.retraining.approvals import decide, put_pending

    put_pending(env.backends.workflow, MODEL, 4, token="t", execution_arn=ARN)
    decide(env.backends.workflow, MODEL, 4, "approved", by="ann")
    with pytest.raises(ConflictError, match="model 'diabetes' version 4 was already approved by ann"):
        decide(env.backends.workflow, MODEL, 4, "rejected", by="bob", reason="late")
    with pytest.raises(NotFoundError, match="model 'diabetes' version 5 has no approval request"):
        decide(env.backends.workflow, MODEL, 5, "rejected", by="bob")


class _Context:
    function_name = "fn"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    aws_request_id = "req-1"


def test_lambda_handlers_run_a_step_with_the_environments_dependencies(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_BUCKET", env.backends.store.bucket)
    monkeypatch.setenv("MLOPS_TABLE", env.backends.registry.table)
    monkeypatch.setenv("MLOPS_ALERT_TOPIC_ARN", env.topic)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    training_app.default_dependencies.cache_clear()
    release_app.default_dependencies.cache_clear()
    try:
        document = training_app.lambda_handler(_event(PREPARE, _start()), _Context())  # type: ignore[arg-type]
        failed = {**_event(NOTIFY, _start()), "state": {**document, "error": {"Error": "States.TaskFailed", "Cause": "boom"}}}
        document = release_app.lambda_handler(failed, _Context())  # type: ignore[arg-type]
    finally:
        training_app.default_dependencies.cache_clear()
        release_app.default_dependencies.cache_clear()
    assert document["notification"]["outcome"] == "failed"
    assert env.messages()[0]["body"]["reason"] == "Train failed: States.TaskFailed: boom"
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    metrics = {m["Name"]: record for record in records for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert metrics["RetrainingStepsCompleted"]["model"] == MODEL
    assert metrics["RetrainingFailed"]["model"] == MODEL
    assert metrics["RetrainingFailed"]["RetrainingFailed"] == [1.0]
