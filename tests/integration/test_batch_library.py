"""Batch scoring's parts on moto S3 without Step Functions: sharding by bytes (every row scored once, whatever the
shard size), refusals naming object, offset and field, JSON Lines, resuming, the tolerated failure share."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pandas as pd
import pytest

from serverless_mlops.batch import contract as c
from serverless_mlops.batch.finalize import finalize
from serverless_mlops.batch.models import PinnedModels
from serverless_mlops.batch.objects import Objects, Upload
from serverless_mlops.batch.prepare import prepare
from serverless_mlops.batch.score import score_shard
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import onnx_outputs, register
from tests.helpers.specs import ROOT

MODEL = "breast-cancer"


@pytest.fixture
def objects(backends: Backends, settings: Settings) -> Objects:
    return Objects(backends.store.s3, settings.bucket)


def frame(rows: int, start: int = 0) -> pd.DataFrame:
    data = pd.read_csv(ROOT / "models" / "data" / "breast_cancer.csv")
    return data.drop(columns=["target"]).iloc[start : start + rows].reset_index(drop=True)


def put(objects: Objects, key: str, body: str | bytes) -> None:
    objects.s3.put_object(Bucket=objects.bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def read(objects: Objects, key: str) -> str:
    return str(objects.s3.get_object(Bucket=objects.bucket, Key=key)["Body"].read().decode())


def run(
    objects: Objects, backends: Backends, request: c.BatchRequest, *, job_id: str, shard_bytes: int, tolerated: float = 0.0
) -> dict[str, Any]:
    job = prepare(request, backends, objects, job_id=job_id, shard_bytes=shard_bytes, tolerated_failure_percent=tolerated)
    shards = [c.Shard.model_validate(s) for s in objects.read_json(objects.bucket, job.manifest_key)]
    models = PinnedModels(backends)
    for shard in shards:
        score_shard(job, shard, objects, models.load, block_bytes=700)
    return finalize(job, objects)


def outputs(objects: Objects, prefix: str) -> pd.DataFrame:
    keys = sorted(
        o["Key"]
        for o in objects.s3.list_objects_v2(Bucket=objects.bucket, Prefix=prefix)["Contents"]
        if o["Key"].endswith(".csv") and "/part-" in o["Key"]
    )
    frames = [pd.read_csv(io.StringIO(read(objects, key))) for key in keys]
    return pd.concat([f for f in frames if len(f)], ignore_index=True)


@pytest.mark.parametrize("shard_bytes", [97, 1024, 1 << 20])
def test_every_row_is_scored_once_by_the_pinned_version_whatever_the_shard_size(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel], shard_bytes: int
) -> None:
    version = register(backends, trained_models[MODEL], "run-1", promote=True).version
    rows = frame(60)
    put(objects, "in/a.csv", rows.iloc[:45].to_csv(index=False))
    put(objects, "in/b.csv", rows.iloc[45:].to_csv(index=False, lineterminator="\r\n"))  # CRLF, no trailing newline below
    put(objects, "in/c.csv", rows.iloc[:0].to_csv(index=False))  # a header only
    request = c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    summary = run(objects, backends, request, job_id="job-1", shard_bytes=shard_bytes)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"], summary["version"]) == (60, 60, 0, version)
    scored = outputs(objects, "out/")
    assert list(scored.columns[: rows.shape[1]]) == list(rows.columns)
    assert len(scored) == 60
    pd.testing.assert_frame_equal(
        scored[rows.columns].sort_values("mean radius").reset_index(drop=True),
        rows.sort_values("mean radius").reset_index(drop=True),
        check_exact=False,
    )
    labels, _probabilities = onnx_outputs(trained_models[MODEL], rows.to_dict("records"))
    expected = pd.DataFrame({"mean radius": rows["mean radius"], "mean texture": rows["mean texture"], "prediction": labels})
    merged = scored.merge(expected, on=["mean radius", "mean texture"], suffixes=("", "_expected"))
    assert len(merged) == 60
    assert (merged["prediction"] == merged["prediction_expected"]).all()
    assert (scored["model_version"] == version).all()
    assert json.loads(read(objects, "out/_SUCCESS"))["shards"] == summary["shards"]


def test_bad_rows_are_refused_naming_object_offset_and_field_and_the_rest_are_scored(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    register(backends, trained_models[MODEL], "run-1", promote=True)
    rows = frame(10)
    text = rows.to_csv(index=False)
    lines = text.splitlines()
    header = next(csv.reader([lines[0]]))
    radius = header.index("mean radius")
    bad = next(csv.reader([lines[3]]))
    bad[radius] = "abc"
    lines[3] = ",".join(bad)
    short = lines[5].rsplit(",", 1)[0]
    lines[5] = short
    missing = next(csv.reader([lines[7]]))
    missing[radius] = ""
    lines[7] = ",".join(missing)
    lines.insert(8, "")  # a blank line is no row
    body = "\n".join(lines) + "\n"
    put(objects, "in/x.csv", body)
    request = c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/in/x.csv", output=f"s3://{objects.bucket}/out")
    summary = run(objects, backends, request, job_id="job-bad", shard_bytes=1 << 20)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (10, 7, 3)
    refused = [json.loads(line) for line in read(objects, "out/refused/part-00000.jsonl").splitlines()]
    offsets = {body.encode().index(lines[i].encode()): i for i in (3, 5, 7)}
    assert [(offsets[r["offset"]], r["field"]) for r in refused] == [(3, "mean radius"), (5, None), (7, "mean radius")]
    assert refused[0]["problem"] == "expected a number, got string"
    assert "abc" not in json.dumps(refused)
    assert refused[2]["problem"] == "missing"
    assert all(r["object"] == f"s3://{objects.bucket}/in/x.csv" for r in refused)


def test_json_lines_in_json_lines_out(objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    version = register(backends, trained_models[MODEL], "run-1", promote=True).version
    records = frame(5).to_dict("records")
    records[2] = {**records[2], "mean radius": float("nan")}
    body = "\n".join(json.dumps(r) for r in records) + "\n[1, 2]\n{not json\n"
    put(objects, "in/r.jsonl", body)
    request = c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    summary = run(objects, backends, request, job_id="job-jsonl", shard_bytes=1 << 20)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (7, 4, 3)
    scored = [json.loads(line) for line in read(objects, "out/part-00000.jsonl").splitlines()]
    assert [r["model_version"] for r in scored] == [version] * 4
    assert set(scored[0]["probabilities"]) == {"0", "1"}
    problems = [json.loads(line)["problem"] for line in read(objects, "out/refused/part-00000.jsonl").splitlines()]
    assert problems == [
        "expected a finite number (NaN and infinity are refused)",
        "expected a JSON object of feature values",
        "not valid JSON",
    ]


def test_a_rerun_with_the_job_id_keeps_the_pinned_version_and_skips_done_shards(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    first = register(backends, trained_models[MODEL], "run-1", promote=True).version
    put(objects, "in/a.csv", frame(30).to_csv(index=False))
    request = c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    job = prepare(request, backends, objects, job_id="job-r", shard_bytes=512)
    shards = [c.Shard.model_validate(s) for s in objects.read_json(objects.bucket, job.manifest_key)]
    models = PinnedModels(backends)
    score_shard(job, shards[0], objects, models.load)
    second = register(backends, trained_models[MODEL], "run-2", promote=True).version
    assert second != first
    again = prepare(request, backends, objects, job_id="job-r", shard_bytes=512)
    assert again.version == first
    results = [score_shard(again, shard, objects, models.load) for shard in shards]
    assert [r.skipped for r in results] == [True] + [False] * (len(shards) - 1)
    other = request.model_copy(update={"output": f"s3://{objects.bucket}/elsewhere/"})
    with pytest.raises(c.BatchError, match="job id 'job-r' was used for another job"):
        prepare(other, backends, objects, job_id="job-r", shard_bytes=512)


def test_finalize_fails_naming_the_shards_beyond_the_tolerated_share(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    register(backends, trained_models[MODEL], "run-1", promote=True)
    put(objects, "in/a.csv", frame(40).to_csv(index=False))
    request = c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    job = prepare(request, backends, objects, job_id="job-f", shard_bytes=2048, tolerated_failure_percent=0)
    shards = [c.Shard.model_validate(s) for s in objects.read_json(objects.bucket, job.manifest_key)]
    assert len(shards) >= 3
    models = PinnedModels(backends)
    for shard in shards[1:]:
        score_shard(job, shard, objects, models.load)
    objects.write_json(objects.bucket, c.error_key("job-f", 0), {"error": "RuntimeError: disk on fire"})
    with pytest.raises(
        c.BatchJobFailed, match=r"1 of \d+ shard\(s\) failed .*shard 0 \(s3://.*/in/a.csv bytes 0-2048\): RuntimeError: disk on fire"
    ):
        finalize(job, objects)
    assert json.loads(read(objects, "out/_FAILED"))["shards_failed"] == 1
    tolerant = job.model_copy(update={"tolerated_failure_percent": 50.0})
    assert finalize(tolerant, objects)["shards_failed"] == 1
    assert "_FAILED" not in {
        o["Key"].rsplit("/", 1)[-1] for o in objects.s3.list_objects_v2(Bucket=objects.bucket, Prefix="out/")["Contents"]
    }


def test_prepare_names_what_is_wrong(objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    register(backends, trained_models[MODEL], "run-1", promote=True)
    base = f"s3://{objects.bucket}"
    cases = {
        "in1/": ("in1/a.csv", "x,y\n1,2\n", "lacks feature column\\(s\\) mean radius"),
        "in2/": ("in2/a.parquet", "PAR1", "not a CSV"),
        "in3/": (None, None, "no objects under"),
    }
    for prefix, (key, body, message) in cases.items():
        if key is not None:
            put(objects, key, body)
        with pytest.raises(c.BatchError, match=message):
            prepare(
                c.BatchRequest(model=MODEL, input=f"{base}/{prefix}", output=f"{base}/o/"),
                backends,
                objects,
                job_id="j" + prefix[:-1],
                shard_bytes=100,
            )
    with pytest.raises(c.BatchError, match="lies under input"):
        prepare(
            c.BatchRequest(model=MODEL, input=f"{base}/in1/", output=f"{base}/in1/out/"), backends, objects, job_id="j4", shard_bytes=100
        )


def test_an_upload_past_one_part_is_multipart(objects: Objects) -> None:
    upload = Upload(objects, objects.bucket, "big.txt", "text/plain", part_bytes=5 << 20)
    chunk = b"x" * (3 << 20)
    for _ in range(5):
        upload.write(chunk)
    upload.close()  # two full parts and the last 3 MiB
    assert objects.s3.head_object(Bucket=objects.bucket, Key="big.txt")["ContentLength"] == 15 << 20
    aborted = Upload(objects, objects.bucket, "gone.txt", "text/plain", part_bytes=5 << 20)
    aborted.write(b"y" * (6 << 20))
    aborted.abort()
    assert "Contents" not in objects.s3.list_objects_v2(Bucket=objects.bucket, Prefix="gone")


def test_regression_quoted_columns_crlf_bad_bytes_and_a_long_last_line(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    import serverless_mlops.batch.objects as objects_module

    monkeypatch.setattr(objects_module, "CONTINUATION_BYTES", 16)  # finishing a shard's last line takes several reads
    version = register(backends, trained_models["diabetes"], "run-1", promote=True).version
    data = pd.read_csv(ROOT / "models" / "data" / "diabetes.csv").drop(columns=["target"]).head(8)
    data.insert(0, "note", ["plain", "has, comma", 'has "quote"', "x", "y", "z", "w", "v"])
    lines = data.to_csv(index=False).splitlines()
    raw = [line.encode() for line in lines]
    assert raw[7].startswith(b"w,")
    raw[7] = b"\xff\xfe" + raw[7][1:]  # not UTF-8: that row is refused, the others scored
    put(objects, "in/d.csv", b"\r\n".join(raw) + b"\r\n")
    request = c.BatchRequest(model="diabetes", input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    summary = run(objects, backends, request, job_id="job-reg", shard_bytes=300)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (8, 7, 1)
    scored = outputs(objects, "out/")
    assert list(scored.columns) == [*data.columns, "prediction", "model_version"]
    assert sorted(scored["note"]) == sorted(n for n in data["note"] if n != "w")
    expected, _ = onnx_outputs(trained_models["diabetes"], data.drop(columns=["note"]).to_dict("records"))
    by_note = dict(zip(data["note"], expected, strict=True))
    assert all(abs(row.prediction - by_note[row.note]) < 1e-5 for row in scored.itertuples())
    assert (scored["model_version"] == version).all()
    (refused,) = [json.loads(line) for key in _refused_keys(objects) for line in read(objects, key).splitlines()]
    assert refused["problem"] == "not UTF-8 text"


def _refused_keys(objects: Objects) -> list[str]:
    listed = objects.s3.list_objects_v2(Bucket=objects.bucket, Prefix="out/refused/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_prepare_refuses_headers_it_cannot_use(objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    register(backends, trained_models[MODEL], "run-1", promote=True)
    names = ",".join(f'"{n}"' for n in frame(1).columns)
    cases = {
        "in1/a.csv": (f"{names},prediction\n", "already has column\\(s\\) prediction, which scoring adds"),
        "in2/a.csv": ("x" * (70 << 10), "longer than 65,536 bytes"),
        "in3/a.csv": (b"\xff\xfe,a\n1,2\n", "not UTF-8 text"),
    }
    for key, (body, message) in cases.items():
        put(objects, key, body)
        prefix = key.split("/")[0]
        with pytest.raises(c.BatchError, match=message):
            prepare(
                c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/{prefix}/", output=f"s3://{objects.bucket}/o/"),
                backends,
                objects,
                job_id=prefix,
                shard_bytes=1 << 20,
            )


def test_values_the_model_refuses_in_a_well_formed_block_are_named_and_the_rest_scored(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    register(backends, trained_models[MODEL], "run-1", promote=True)
    rows = frame(6)
    rows.loc[1, "mean area"] = float("inf")  # numpy's reader takes it; validation refuses it
    rows.loc[4, "worst area"] = 1e39  # beyond float32
    put(objects, "in/w.csv", rows.to_csv(index=False))
    request = c.BatchRequest(model=MODEL, input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    summary = run(objects, backends, request, job_id="job-w", shard_bytes=1 << 20)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (6, 4, 2)
    refused = [json.loads(line) for line in read(objects, "out/refused/part-00000.jsonl").splitlines()]
    assert [(r["field"], r["problem"]) for r in refused] == [
        ("mean area", "expected a finite number (NaN and infinity are refused)"),
        ("worst area", "outside the float32 range the model computes in"),
    ]


def test_regression_rows_by_row_refusals_csv_and_json_lines(
    objects: Objects, backends: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    register(backends, trained_models["diabetes"], "run-1", promote=True)
    data = pd.read_csv(ROOT / "models" / "data" / "diabetes.csv").drop(columns=["target"]).head(5)
    text = data.to_csv(index=False).replace(f",{data.loc[2, 'bmi']},", ",nan,", 1)
    put(objects, "in/a.csv", text)
    records = data.to_dict("records")
    del records[1]["sex"]
    put(objects, "in/b.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    request = c.BatchRequest(model="diabetes", input=f"s3://{objects.bucket}/in/", output=f"s3://{objects.bucket}/out/")
    summary = run(objects, backends, request, job_id="job-r2", shard_bytes=1 << 20)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (10, 8, 2)
    problems = [json.loads(line) for key in _refused_keys(objects) for line in read(objects, key).splitlines()]
    assert sorted((p["field"], p["problem"]) for p in problems) == [
        ("bmi", "expected a finite number (NaN and infinity are refused)"),
        ("sex", "missing"),
    ]
    scored = [json.loads(line) for line in read(objects, "out/part-00001.jsonl").splitlines()]
    assert all(isinstance(r["prediction"], float) and "probabilities" not in r for r in scored)
