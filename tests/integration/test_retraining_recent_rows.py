"""Evaluate with the newest labelled rows a quality breach handed over (``recent`` in the input), on moto: both models
scored on the split holdout and on the recent rows, the recent rows deciding (gate.decide_with_recent), what was used
recorded in the evaluation and the version's lineage; a file that is not what the input recorded, or lacks a column,
fails naming the file (and the column), never skipped.

The diabetes model (rmse): the candidate is trained on PrepareData's snapshot once per module; the champion is a
heavily regularized one that the candidate beats on the split holdout.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from serverless_mlops.errors import DataError, MlopsError
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.fit import TrainedModel, _feeds, open_session, train
from serverless_mlops.retraining import candidate_steps, release_steps
from serverless_mlops.retraining.runs import read_run, write_run
from serverless_mlops.retraining.specs import publish_specs
from serverless_mlops.retraining.state import RecentRows, WorkflowState
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.specs import example_spec

MODEL = "diabetes"
NAME = "diabetes-quality-20261207T1200"
ARN = f"arn:aws:states:us-east-1:123456789012:execution:retraining:{NAME}"


@pytest.fixture(scope="module")
def trained_run() -> TrainedModel:
    with mock_aws():
        settings = Settings()
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        publish_specs([example_spec(MODEL)], backends.store.s3, backends.store.bucket)
        state = candidate_steps.prepare(WorkflowState(model=MODEL), backends, execution_arn=ARN, lock_ttl_seconds=3600)
        candidate_steps.train(state, backends, execution_name=NAME)
        return read_run(backends.store, MODEL, NAME)[1]


@pytest.fixture(scope="module")
def weak_champion() -> TrainedModel:
    spec = example_spec(MODEL)
    return train(spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"params": {"alpha": 1000.0}})}))


def predictions(trained: TrainedModel, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    signature = trained.record.signature
    (values,) = open_session(trained.onnx_bytes).run(None, _feeds(signature, frame))[:1]
    return np.asarray(values, dtype=np.float64).reshape(-1)


def recent_frame(label_by: TrainedModel, rows: int = 150) -> pd.DataFrame:
    """Rows of the base data whose target is what ``label_by`` predicts: that model is right on every one of them."""
    spec = example_spec(MODEL)
    frame = pd.read_csv(spec.data.uri).tail(rows).reset_index(drop=True)
    frame[spec.target] = predictions(label_by, frame)
    return frame[[f.name for f in spec.features] + [spec.target]]


def put_recent(backends: Backends, frame: pd.DataFrame, *, model: str = MODEL) -> RecentRows:
    body = frame.to_csv(index=False).encode()
    digest = hashlib.sha256(body).hexdigest()
    key = f"holdout-recent/{model}/20261130T1200Z-20261207T1200Z/{digest}.csv"
    backends.store.s3.put_object(Bucket=backends.store.bucket, Key=key, Body=body)
    return RecentRows(uri=f"s3://{backends.store.bucket}/{key}", sha256=digest, rows=len(frame), window="20261130T1200Z-20261207T1200Z")


def candidate_state(backends: Backends, run: TrainedModel, recent: RecentRows | None) -> WorkflowState:
    publish_specs([example_spec(MODEL)], backends.store.s3, backends.store.bucket)
    start = WorkflowState(model=MODEL, trigger="quality", reason="quality breach", recent=recent)
    state = candidate_steps.prepare(start, backends, execution_arn=ARN, lock_ttl_seconds=3600)
    write_run(backends.store, MODEL, NAME, run)
    return candidate_steps.collect(state, backends, execution_name=NAME)


def promote(backends: Backends, trained: TrainedModel) -> int:
    entry = register_run(trained, backends, by="test")
    backends.registry.promote(MODEL, entry.version, by="test")
    return entry.version


def test_the_recent_rows_decide_where_the_holdout_alone_would_promote(
    backends: Backends, trained_run: TrainedModel, weak_champion: TrainedModel
) -> None:
    version = promote(backends, weak_champion)
    holdout_only = candidate_steps.evaluate(candidate_state(backends, trained_run, None), backends, execution_name=NAME).need_evaluation()
    assert holdout_only.passed  # on the split holdout the candidate beats the weak champion
    assert holdout_only.recent is None

    # the newest labelled rows agree with the champion, not with the candidate
    recent = put_recent(backends, recent_frame(label_by=weak_champion))
    state = candidate_steps.evaluate(candidate_state(backends, trained_run, recent), backends, execution_name=NAME)
    evaluation = state.need_evaluation()
    assert not evaluation.passed
    # the split holdout's figures are unchanged, the recent rows' beside them
    assert (evaluation.candidate, evaluation.improvement) == (holdout_only.candidate, holdout_only.improvement)
    assert evaluation.champion == holdout_only.champion
    found = evaluation.recent
    assert found is not None
    assert (found.uri, found.sha256, found.rows, found.window) == (recent.uri, recent.sha256, 150, recent.window)
    assert found.champion is not None
    assert found.champion < 1e-3  # rmse of the champion on rows labelled by its own predictions (float32 rounding)
    frame = recent_frame(label_by=weak_champion)
    expected = float(np.sqrt(np.mean((predictions(trained_run, frame) - frame["target"].to_numpy()) ** 2)))
    assert found.candidate == pytest.approx(expected, rel=1e-6)
    assert not found.passed
    assert found.improvement == pytest.approx(found.champion - found.candidate)
    assert evaluation.reason.startswith(f"fails: on the 150 newest labelled rows rmse {found.candidate:.4g}"[:40])
    assert f"does not beat champion v{version}" in evaluation.reason
    assert f"on the split holdout rmse {evaluation.candidate:.4g}"[:30] in evaluation.reason
    assert "is not worse than champion" in evaluation.reason

    # Register keeps it in the version's lineage (a rejected version: what was tried and on what)
    registered = release_steps.register(state, backends, execution_arn=ARN, execution_name=NAME)
    entry = backends.registry.describe(MODEL, registered.need_version().number)
    assert entry.status == "rejected"
    assert entry.lineage.trigger == "quality"
    assert entry.lineage.recent_rows == found.model_dump(mode="json")
    assert entry.lineage.recent_rows["uri"] == recent.uri
    assert "newest labelled rows" in entry.description


def test_better_on_the_recent_rows_promotes(backends: Backends, trained_run: TrainedModel, weak_champion: TrainedModel) -> None:
    promote(backends, weak_champion)
    recent = put_recent(backends, recent_frame(label_by=trained_run))  # the newest rows agree with the candidate
    evaluation = candidate_steps.evaluate(candidate_state(backends, trained_run, recent), backends, execution_name=NAME).need_evaluation()
    assert evaluation.passed
    assert evaluation.recent is not None
    assert evaluation.recent.passed
    assert evaluation.reason.startswith("passes: on the 150 newest labelled rows")


def test_without_a_champion_only_the_floor_counts_on_the_recent_rows(backends: Backends, trained_run: TrainedModel) -> None:
    recent = put_recent(backends, recent_frame(label_by=trained_run))
    evaluation = candidate_steps.evaluate(candidate_state(backends, trained_run, recent), backends, execution_name=NAME).need_evaluation()
    assert evaluation.recent is not None
    assert evaluation.recent.champion is None
    assert "no champion in production" in evaluation.reason
    assert evaluation.passed == evaluation.recent.passed


def test_a_file_that_is_not_what_the_input_recorded_or_lacks_a_column_fails_naming_it(
    backends: Backends, trained_run: TrainedModel, weak_champion: TrainedModel
) -> None:
    promote(backends, weak_champion)
    frame = recent_frame(label_by=weak_champion)
    recent = put_recent(backends, frame)
    state = candidate_state(backends, trained_run, recent)
    key = recent.uri.removeprefix(f"s3://{backends.store.bucket}/")
    backends.store.s3.put_object(Bucket=backends.store.bucket, Key=key, Body=frame.head(10).to_csv(index=False).encode())
    with pytest.raises(DataError, match=rf"^{recent.uri}: the recent labelled rows' sha256 is not the {recent.sha256[:12]}… the input"):
        candidate_steps.evaluate(state, backends, execution_name=NAME)

    without_bmi = put_recent(backends, frame.drop(columns=["bmi"]))
    state = candidate_state(backends, trained_run, without_bmi)
    with pytest.raises(DataError, match=rf"^{without_bmi.uri}: missing column 'bmi'"):
        candidate_steps.evaluate(state, backends, execution_name=NAME)

    text = frame.astype(object)
    text.loc[3, "bmi"] = "heavy"
    mistyped = put_recent(backends, text)
    state = candidate_state(backends, trained_run, mistyped)
    with pytest.raises(DataError, match=rf"^{mistyped.uri}: column 'bmi' must be numeric; non-numeric value at row"):
        candidate_steps.evaluate(state, backends, execution_name=NAME)

    gone = mistyped.model_copy(update={"uri": mistyped.uri.replace(".csv", "-gone.csv")})
    state = candidate_state(backends, trained_run, gone)
    with pytest.raises(DataError, match=rf"^{gone.uri}: the recent labelled rows named in the input cannot be read"):
        candidate_steps.evaluate(state, backends, execution_name=NAME)

    short = put_recent(backends, frame)
    state = candidate_state(backends, trained_run, short.model_copy(update={"rows": 151}))
    with pytest.raises(DataError, match=rf"^{short.uri}: 150 rows, the input recorded 151$"):
        candidate_steps.evaluate(state, backends, execution_name=NAME)


def test_a_candidate_that_cannot_score_the_recent_rows_fails_naming_the_file(
    backends: Backends, trained_run: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    recent = put_recent(backends, recent_frame(label_by=trained_run))
    state = candidate_state(backends, trained_run, recent)
    real = candidate_steps.score

    def score(signature: Any, onnx_bytes: bytes, frame: pd.DataFrame, *args: Any) -> float:
        if len(frame) == recent.rows:  # the recent rows (the split holdout has another size)
            raise candidate_steps.CannotScoreError("rmse is not defined on this holdout")
        return real(signature, onnx_bytes, frame, *args)

    monkeypatch.setattr(candidate_steps, "score", score)
    message = rf"^model 'diabetes': the candidate cannot be scored on the recent labelled rows {recent.uri}: rmse is not defined"
    with pytest.raises(MlopsError, match=message):
        candidate_steps.evaluate(state, backends, execution_name=NAME)
