"""The workflow's training-side steps (training Lambda, training layer): prepare, train (+ collect), evaluate.

- :func:`prepare` takes the model's retraining lock, then snapshots the published spec's base data plus every
  labelled file under ``feedback/{model}/`` into one content-addressed CSV, ``snapshots/{model}/{sha256}.csv``.
- :func:`train` trains on that snapshot and writes the run folder to ``runs/{model}/{execution name}/`` (the
  pluggable contract, see :mod:`serverless_mlops.retraining.runs`), then :func:`collect` puts its artifacts in the
  artifact store.
- :func:`evaluate` scores the candidate and the production champion with onnxruntime on the same holdout (the
  snapshot split by :func:`serverless_mlops.model.fit.split_holdout`), checks that the candidate's ONNX metric is the
  one its training run reported, and records the gate's decision (:mod:`serverless_mlops.retraining.gate`). A run
  started by a quality breach also scores both on the newest labelled rows it handed over (``recent``), and those
  decide (:func:`serverless_mlops.retraining.gate.decide_with_recent`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from serverless_mlops.errors import DataError, MlopsError, NotFoundError
from serverless_mlops.model.data import Dataset, coerce, parse_frame
from serverless_mlops.model.fit import TrainedModel, sha256_hex
from serverless_mlops.model.signature import Signature
from serverless_mlops.model.spec import Metric, ModelSpec, Task
from serverless_mlops.retraining import lock
from serverless_mlops.retraining.contract import FEEDBACK_PREFIX
from serverless_mlops.retraining.gate import GateResult, decide, decide_with_recent, holds
from serverless_mlops.retraining.runs import put_object, read_object, read_record, read_run, snapshot_key, write_run
from serverless_mlops.retraining.specs import NO_PARQUET, load_published_spec, spec_key
from serverless_mlops.retraining.state import (
    Candidate,
    Champion,
    DataSnapshot,
    Evaluation,
    RecentEvaluation,
    RecentRows,
    WorkflowState,
)
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import PRODUCTION

if TYPE_CHECKING:
    import pandas as pd

PARQUET_SUFFIXES = (".parquet", ".pq")  # refused by name: the training function reads CSV only
METRIC_TOLERANCE = 1e-9  # the same ONNX graph on the same rows: the metric must be the training run's, to rounding


class CannotScoreError(MlopsError):
    """A model cannot be scored on the snapshot (features it needs are missing, or its metric is undefined there)."""


# -- prepare ----------------------------------------------------------------------------------------------------------
def _read_uri(s3: Any, uri: str) -> bytes:
    """The published spec's base data: in the artifact bucket beside the spec, or at the spec's own s3:// URI."""
    try:
        return read_object(s3, uri)
    except NotFoundError as exc:
        raise DataError(str(exc)) from exc


def feedback_keys(s3: Any, bucket: str, model: str) -> list[str]:
    """Every object under feedback/{model}/, sorted by key (folder markers skipped)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{FEEDBACK_PREFIX}/{model}/"):
        keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return sorted(keys)


def _feedback_frame(s3: Any, bucket: str, key: str, spec: ModelSpec) -> pd.DataFrame:
    uri = f"s3://{bucket}/{key}"
    suffix = key[key.rfind(".") :].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if suffix in PARQUET_SUFFIXES:
        # refused like any unreadable file (not skipped): a run must not silently train on less than was put there
        raise DataError(
            f"{uri}: Parquet feedback cannot be read ({NO_PARQUET}): convert it to .csv with the spec's features and target {spec.target!r}"
        )
    if suffix != ".csv":
        raise DataError(f"{uri}: feedback files must be .csv with the spec's features and target {spec.target!r}")
    return coerce(parse_frame(read_object(s3, uri), "csv", uri), spec, uri)


def snapshot_frame(spec: ModelSpec, s3: Any, bucket: str) -> tuple[pd.DataFrame, int, list[str]]:
    """The base data followed by every feedback file (sorted by key): (frame, base rows, feedback keys)."""
    import pandas as pd

    if spec.data.resolved_format == "parquet":  # a spec published before the synth refused it (infra/config.py)
        raise DataError(f"{spec.data.uri}: Parquet base data cannot be read ({NO_PARQUET}): convert it to CSV and deploy again")
    base = coerce(parse_frame(_read_uri(s3, spec.data.uri), "csv", spec.data.uri), spec, spec.data.uri)
    keys = feedback_keys(s3, bucket, spec.name)
    frames = [base] + [_feedback_frame(s3, bucket, key, spec) for key in keys]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else base
    return frame, len(base), keys


def prepare(state: WorkflowState, backends: Backends, *, execution_arn: str, lock_ttl_seconds: float) -> WorkflowState:
    """Take the lock, then write the training snapshot; returns the state with ``data``."""
    model = state.model
    lock.acquire(backends.workflow, model, execution_arn, ttl_seconds=lock_ttl_seconds)
    store = backends.store
    spec = load_published_spec(model, store.s3, store.bucket)
    frame, base_rows, keys = snapshot_frame(spec, store.s3, store.bucket)
    body = frame.to_csv(index=False, lineterminator="\n").encode()
    digest = sha256_hex(body)
    uri = put_object(store, snapshot_key(model, digest), body, "text/csv")
    data = DataSnapshot(
        spec_uri=f"s3://{store.bucket}/{spec_key(model)}",
        uri=uri,
        sha256=digest,
        rows=len(frame),
        base_rows=base_rows,
        feedback_rows=len(frame) - base_rows,
        feedback_files=keys,
        lock_owner=execution_arn,
    )
    return state.model_copy(update={"data": data})


def load_snapshot(state: WorkflowState, backends: Backends, spec: ModelSpec) -> Dataset:
    """The snapshot PrepareData wrote, verified against its sha256, read as the spec reads its data."""
    data = state.need_data()
    raw = read_object(backends.store.s3, data.uri)
    if sha256_hex(raw) != data.sha256:
        raise DataError(f"{data.uri}: the snapshot's sha256 is not the {data.sha256[:12]}… PrepareData recorded; refusing to use it")
    return Dataset(frame=coerce(parse_frame(raw, "csv", data.uri), spec, data.uri), uri=data.uri, sha256=data.sha256)


# -- train ------------------------------------------------------------------------------------------------------------
def train(state: WorkflowState, backends: Backends, *, execution_name: str) -> WorkflowState:
    """Train the published spec on the snapshot, write the run folder, collect it; returns the state with ``candidate``."""
    from serverless_mlops.model.fit import train as train_model

    data = state.need_data()
    store = backends.store
    spec = load_published_spec(state.model, store.s3, store.bucket)
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"uri": data.uri, "format": "csv"})})
    trained = train_model(spec, dataset=load_snapshot(state, backends, spec), source=data.spec_uri)
    trained = replace(trained, record=trained.record.model_copy(update={"trained_by": f"retraining:{execution_name}"}))
    record_uri = write_run(store, state.model, execution_name, trained)
    return _collected(state, backends, record_uri, trained)  # the bytes in hand, not read back from the folder just written


def collect(state: WorkflowState, backends: Backends, *, execution_name: str) -> WorkflowState:
    """Read the run folder a trainer wrote for this execution and put its artifacts in the store (content-addressed)."""
    record_uri, run = read_run(backends.store, state.model, execution_name)
    return _collected(state, backends, record_uri, run)


def _collected(state: WorkflowState, backends: Backends, record_uri: str, run: TrainedModel) -> WorkflowState:
    """The state with ``candidate``: the run checked against the snapshot, its artifacts put in the store."""
    data = state.need_data()
    record = run.record
    if record.model != state.model:
        raise DataError(f"{record_uri}: the run is of model {record.model!r}, not {state.model!r}")
    if record.data_sha256 != data.sha256:
        raise DataError(
            f"{record_uri}: model {state.model!r} was trained on data with sha256 {record.data_sha256[:12]}…, not the snapshot "
            f"{data.uri} ({data.sha256[:12]}…) PrepareData made; a trainer must train on the snapshot"
        )
    candidate = Candidate(
        run_id=record.run_id,
        record=record_uri,
        artifact=backends.store.put(state.model, run.onnx_bytes, "model.onnx"),
        profile=backends.store.put(state.model, run.profile_bytes, "profile.json.gz"),
        metrics=record.metrics,
        parity=record.parity.model_dump(),
    )
    return state.model_copy(update={"candidate": candidate})


# -- evaluate ---------------------------------------------------------------------------------------------------------
def score(signature: Signature, onnx_bytes: bytes, holdout: pd.DataFrame, task: Task, metric: Metric) -> float:
    """``metric`` of an ONNX model on ``holdout`` (features by the model's own signature); CannotScoreError if it can't."""
    from serverless_mlops.model.fit import _feeds, compute_metrics, open_session

    missing = [name for name in [*signature.feature_names, signature.target] if name not in holdout.columns]
    if missing:
        raise CannotScoreError(f"columns missing from the data: {', '.join(missing)}")
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    try:
        outputs = open_session(onnx_bytes).run(None, _feeds(signature, holdout))
        values = compute_metrics(task, holdout[signature.target].to_numpy(), outputs, signature.classes)
    except (ValueError, TypeError, RuntimeError, Fail, InvalidArgument, RuntimeException) as exc:
        raise CannotScoreError(f"scoring failed: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from exc
    if metric.value not in values or not np.isfinite(values[metric.value]):
        raise CannotScoreError(f"{metric.value} is not defined on this holdout")
    return float(values[metric.value])


def _champion(backends: Backends, model: str, spec: ModelSpec, holdout: pd.DataFrame) -> tuple[Champion | None, str]:
    registry = backends.registry
    try:
        alias = registry.get_alias(model, PRODUCTION)
    except NotFoundError:
        return None, ""
    entry = registry.describe(model, alias.version)
    try:
        onnx_bytes = backends.store.get(entry.artifact, model=model, version=entry.version)
        value = score(entry.signature, onnx_bytes, holdout, Task(entry.signature.task), spec.evaluation.metric)
    except CannotScoreError as exc:
        return Champion(version=entry.version, value=None, alias_revision=alias.revision), str(exc)
    return Champion(version=entry.version, value=value, alias_revision=alias.revision), ""


def load_recent_rows(recent: RecentRows, backends: Backends, spec: ModelSpec) -> pd.DataFrame:
    """The recent labelled rows the quality check wrote, verified against the sha256 the input recorded, read as the
    spec reads its data (a missing or mistyped column is an error naming the file and the column)."""
    try:
        raw = read_object(backends.store.s3, recent.uri)
    except NotFoundError as exc:
        raise DataError(f"{recent.uri}: the recent labelled rows named in the input cannot be read: {exc}") from exc
    if sha256_hex(raw) != recent.sha256:
        raise DataError(
            f"{recent.uri}: the recent labelled rows' sha256 is not the {recent.sha256[:12]}… the input recorded; refusing them"
        )
    frame = coerce(parse_frame(raw, "csv", recent.uri), spec, recent.uri)
    if len(frame) != recent.rows:
        raise DataError(f"{recent.uri}: {len(frame)} rows, the input recorded {recent.rows}")
    return frame


def _on_recent(
    state: WorkflowState, backends: Backends, spec: ModelSpec, record_signature: Signature, onnx_bytes: bytes, holdout_gate: GateResult
) -> tuple[RecentEvaluation, GateResult] | None:
    """Candidate and champion on the recent labelled rows, and the combined gate; None when the input names none."""
    recent = state.recent
    if recent is None:
        return None
    frame = load_recent_rows(recent, backends, spec)
    metric = spec.evaluation.metric
    try:
        value = score(record_signature, onnx_bytes, frame, spec.task, metric)
    except CannotScoreError as exc:
        raise MlopsError(f"model {state.model!r}: the candidate cannot be scored on the recent labelled rows {recent.uri}: {exc}") from exc
    champion, problem = _champion(backends, state.model, spec, frame)
    gate = decide(
        metric,
        value,
        champion_version=champion.version if champion else None,
        champion_value=champion.value if champion else None,
        champion_problem=problem,
        min_improvement=spec.evaluation.min_improvement,
        floor=spec.evaluation.floor,
    )
    found = RecentEvaluation(
        uri=recent.uri,
        sha256=recent.sha256,
        rows=len(frame),
        window=recent.window,
        candidate=value,
        champion=champion.value if champion else None,
        improvement=gate.improvement,
        passed=gate.passed,
        reason=gate.reason,
    )
    return found, decide_with_recent(holdout_gate, gate, rows=len(frame))


def evaluate(state: WorkflowState, backends: Backends, *, execution_name: str) -> WorkflowState:
    """Candidate vs production champion on the same holdout; returns the state with ``evaluation``."""
    from serverless_mlops.model.fit import split_holdout

    if state.candidate is None:  # a pluggable trainer (SageMaker, Fargate) wrote the run folder without collecting it
        state = collect(state, backends, execution_name=execution_name)
    candidate = state.need_candidate()
    record = read_record(backends.store.s3, candidate.record)
    spec = ModelSpec.model_validate(record.spec)
    dataset = load_snapshot(state, backends, spec)
    _, holdout = split_holdout(spec, dataset.frame, source=dataset.uri)
    metric = spec.evaluation.metric
    onnx_bytes = backends.store.get(candidate.artifact, model=state.model, version=f"candidate {candidate.run_id}")
    try:
        value = score(record.signature, onnx_bytes, holdout, spec.task, metric)
    except CannotScoreError as exc:
        raise MlopsError(f"model {state.model!r}: the candidate cannot be scored on {dataset.uri}: {exc}") from exc
    reported = candidate.metrics.get(metric.value)
    diff = abs(value - reported) if reported is not None else None
    parity = {
        "metric": metric.value,
        "training": reported,
        "onnx": value,
        "abs_diff": diff,
        "tolerance": METRIC_TOLERANCE,
        "passed": diff is not None and diff <= METRIC_TOLERANCE,
    }
    champion, problem = _champion(backends, state.model, spec, holdout)
    version, champion_value = (champion.version, champion.value) if champion else (None, None)
    if state.recent is None:
        on_holdout = decide(
            metric,
            value,
            champion_version=version,
            champion_value=champion_value,
            champion_problem=problem,
            min_improvement=spec.evaluation.min_improvement,
            floor=spec.evaluation.floor,
        )
    else:  # the recent rows decide; the split holdout only guards (gate.decide_with_recent)
        on_holdout = holds(metric, value, champion_version=version, champion_value=champion_value, floor=spec.evaluation.floor)
    result = on_holdout
    recent = _on_recent(state, backends, spec, record.signature, onnx_bytes, on_holdout)
    if recent is not None:
        result = recent[1]
    passed, reason = result.passed, result.reason
    if not parity["passed"]:
        passed = False
        shown = "no value" if reported is None else f"{reported:.6g}"
        reason = f"parity: the candidate's ONNX {metric.value} on the holdout is {value:.6g}, its training run reported {shown}; {reason}"
    evaluation = Evaluation(
        metric=metric.value,
        higher_is_better=metric.higher_is_better,
        candidate=value,
        champion=champion,
        min_improvement=spec.evaluation.min_improvement,
        floor=spec.evaluation.floor,
        improvement=on_holdout.improvement,
        holdout_rows=len(holdout),
        parity=parity,
        passed=passed,
        reason=reason,
        require_approval=spec.evaluation.require_approval,
        recent=recent[0] if recent is not None else None,
    )
    return state.model_copy(update={"evaluation": evaluation})
