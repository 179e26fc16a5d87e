"""``mlops drift check`` and ``mlops drift report`` against moto (in-process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serverless_mlops.cli import main
from serverless_mlops.cli.drift import parse_window
from serverless_mlops.drift.check import ABSENT
from serverless_mlops.errors import DataError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.store.capture_format import capture_key, encode_records
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.drift_data import drifted_frame, fresh_sample, records_for

WHEN = datetime(2026, 11, 25, 11, 20, tzinfo=UTC)
WINDOW = "2026-11-25T11:00Z/2026-11-25T12:00Z"


@pytest.fixture
def registered(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    version = register_run(trained_models["diabetes"], backends, by="cli-test")
    backends.registry.promote("diabetes", version.version, by="cli-test")
    return backends


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_a_window_in_s3_prints_a_table_and_json(
    registered: Backends, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str]
) -> None:
    store = registered.store
    body = encode_records(records_for(trained_models["diabetes"], drifted_frame(250, 1), when=WHEN))
    store.s3.put_object(Bucket=store.bucket, Key=capture_key("diabetes", WHEN, "x"), Body=body)

    code, out, err = run(capsys, "drift", "check", "diabetes", "--window", WINDOW)
    assert code == 0, err
    assert "diabetes v1: 2026-11-25T11:00:00.000Z → 2026-11-25T12:00:00.000Z, 250 rows" in out
    assert "drift: 9 of 10 features drifted" in out
    assert "bmi" in out
    assert "prediction" in out

    code, out, err = run(capsys, "drift", "check", "diabetes", "--window", WINDOW, "--json", "--write-report")
    assert code == 0, err
    document = json.loads(out)
    assert document["status"] == "drift"
    assert document["result"]["rows"] == 250
    assert document["report"]["html"].endswith("/reports/diabetes/v1/20261125T1100Z-20261125T1200Z/report.html")

    code, out, err = run(capsys, "--json", "drift", "report", "diabetes")
    assert code == 0, err
    assert json.loads(out)["html"] == document["report"]["html"]
    code, out, _ = run(capsys, "drift", "report", "diabetes")
    assert document["report"]["json"] in out.replace("\n", "")


def test_check_a_local_file_and_save_the_html(
    registered: Backends, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capture = tmp_path / "capture.jsonl.gz"
    capture.write_bytes(encode_records(records_for(trained_models["diabetes"], fresh_sample("diabetes", 300, 2), when=WHEN)))
    page = tmp_path / "report.html"
    code, out, err = run(capsys, "drift", "check", "diabetes", "--current", str(capture), "--html", str(page))
    assert code == 0, err
    assert "no drift: 0 of 10 features drifted" in out
    assert page.read_text().startswith("<!doctype html>")

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"ts": 1}\n')
    code, out, err = run(capsys, "--json", "drift", "check", "diabetes", "--current", str(broken))
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    assert document["status"] == "insufficient_data"
    assert f"{broken} line 1: missing model, version, features, prediction" in document["skipped_sources"][0]["error"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["drift", "check", "nope", "--window", "24h"], "nope"),
        (["drift", "check", "diabetes", "--window", "yesterday"], "--window 'yesterday': expected a length"),
        (["drift", "check", "diabetes", "--window", "2026-11-25T12:00Z/2026-11-25T11:00Z"], "the end must be after the start"),
        (["drift", "check", "diabetes", "--window", "24h", "--current", "x.jsonl"], "not both"),
        (["drift", "check", "diabetes", "--current", "/no/such/file.jsonl"], "/no/such/file.jsonl: capture file not found"),
        (["drift", "report", "diabetes"], "no drift report for model 'diabetes'"),
    ],
)
def test_user_errors_are_one_line(registered: Backends, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error:")
    assert fragment in err


def test_window_lengths_end_now() -> None:
    now = datetime(2026, 11, 25, 12, 34, 56, tzinfo=UTC)
    assert parse_window("24h", now) == (datetime(2026, 11, 24, 12, 34, tzinfo=UTC), datetime(2026, 11, 25, 12, 34, tzinfo=UTC))
    assert parse_window("90m", now)[0] == datetime(2026, 11, 25, 11, 4, tzinfo=UTC)
    assert parse_window("7d", now)[1] - parse_window("7d", now)[0] == timedelta(days=7)
    start, end = parse_window("2026-11-25T10:00/2026-11-25T13:00+01:00", now)  # no offset means UTC
    assert (start, end) == (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    with pytest.raises(DataError, match="not an ISO 8601 time"):
        parse_window("x/2026-11-25T11:00Z", now)
    with pytest.raises(DataError, match="expected a length"):
        parse_window("0h", now)


def test_report_open_downloads_the_html(
    registered: Backends, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    store = registered.store
    body = encode_records(records_for(trained_models["diabetes"], fresh_sample("diabetes", 120, 3), when=WHEN))
    store.s3.put_object(Bucket=store.bucket, Key=capture_key("diabetes", WHEN, "y"), Body=body)
    store.s3.put_object(Bucket=store.bucket, Key=capture_key("diabetes", WHEN, "z"), Body=b"not gzip, not json\n")
    code, out, err = run(capsys, "drift", "check", "diabetes", "--window", WINDOW, "--write-report")
    assert code == 0, err
    assert "skipped" in out
    assert "report: s3://serverless-mlops-artifacts/reports/diabetes/v1/" in out.replace("\n", "")
    code, out, err = run(capsys, "drift", "report", "diabetes", "--open")
    assert code == 0, err
    [uri] = opened
    assert uri.startswith("file://")
    assert Path(uri.removeprefix("file://")).read_text().startswith("<!doctype html>")
    assert "opened " in out


def test_check_rows_from_a_csv_or_json_file_predicts_them_with_the_baseline_model(
    registered: Backends, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    drifted = tmp_path / "drifted.csv"
    drifted_frame(300, 4).to_csv(drifted, index=False)  # with the target column, as a user's data file has it
    code, out, err = run(capsys, "--json", "drift", "check", "diabetes", "--current", str(drifted))
    assert code == 0, err
    result = json.loads(out)["result"]
    assert result["status"] == "drift"
    assert result["rows"] == 300
    assert result["prediction"]["current_rows"] == 300  # predicted by version 1's ONNX graph
    assert "target" not in {f["name"] for f in result["features"]}

    fresh = tmp_path / "fresh.json"
    records = fresh_sample("diabetes", 300, 5).drop(columns=["target"]).to_dict("records")
    fresh.write_text(json.dumps({"instances": records}))
    code, out, err = run(capsys, "drift", "check", "diabetes", "--current", str(fresh))
    assert code == 0, err
    assert "no drift: 0 of 10 features drifted" in out


def test_rows_the_model_refuses_name_the_row_and_how_to_check_them_anyway(
    registered: Backends, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = fresh_sample("diabetes", 20, 6)
    frame.loc[3, "sex"] = "unknown-category"
    rows = tmp_path / "rows.csv"
    frame.to_csv(rows, index=False)
    code, out, err = run(capsys, "drift", "check", "diabetes", "--current", str(rows))
    assert code == 1
    assert f"{rows}: cannot predict row 4, field 'sex'" in err
    assert "add a 'prediction' column" in err

    frame["prediction"] = 150.0  # predictions recorded elsewhere: the rows are checked as they are
    frame.to_csv(rows, index=False)
    code, out, err = run(capsys, "--json", "drift", "check", "diabetes", "--current", str(rows))
    assert code == 0, err
    assert json.loads(out)["result"]["rows"] == 20

    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"age": 50.0}]))
    code, out, err = run(capsys, "drift", "check", "diabetes", "--current", str(missing))
    assert code == 1
    assert f"{missing}: no columns 'sex', 'bmi'" in err
    missing.write_text(json.dumps({"inputs": [[1, 2]]}))
    code, out, err = run(capsys, "drift", "check", "diabetes", "--current", str(missing))
    assert code == 1
    assert "expected records" in err


def test_missing_values_in_a_csv_are_data_not_errors(registered: Backends, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frame = fresh_sample("diabetes", 200, 7).drop(columns=["target"])
    frame["prediction"] = 150.0
    frame.loc[:9, "bmi"] = np.nan  # an empty cell
    frame.loc[10:14, "prediction"] = np.nan
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    code, out, err = run(capsys, "--json", "drift", "check", "diabetes", "--current", str(path))
    assert code == 0, err  # the capture format's JSON could not hold NaN: this crashed
    result = json.loads(out)["result"]
    bmi = next(f for f in result["features"] if f["name"] == "bmi")
    assert bmi["quality"]["missing_share"] == pytest.approx(10 / 200)
    assert result["prediction"]["current_rows"] == 195
    assert json.loads(out)["current_file"]["prediction"] == "file"

    path.write_text(frame.drop(columns=["prediction"]).to_csv(index=False).replace(",,", ",NaN,", 5))  # 5 empty cells, 5 NaN; no prediction
    code, out, err = run(capsys, "--json", "drift", "check", "diabetes", "--current", str(path))
    assert code == 0, err
    document = json.loads(out)
    assert document["current_file"] | {"file": ""} == {
        "file": "",
        "rows": 200,
        "prediction": "model",
        "predicted_rows": 190,
        "not_predicted_rows": 10,
        "absent_columns": [],
    }
    assert document["result"]["prediction"]["current_rows"] == 190
    code, out, err = run(capsys, "drift", "check", "diabetes", "--current", str(path))
    assert code == 0, err
    said = "".join(out.split())  # the console wraps at 80 columns, inside a long path too
    expected = f"{path}: 10 of 200 rows have a missing feature value: not predicted, so their prediction counts as missing"
    assert "".join(expected.split()) in said


def test_a_feature_column_absent_from_a_csv(registered: Backends, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frame = fresh_sample("diabetes", 200, 8).drop(columns=["target", "bmi"])
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    code, _, err = run(capsys, "drift", "check", "diabetes", "--current", str(path))
    assert code == 1  # without predictions the model would need it
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {path}: no column 'bmi' in the file, so the model cannot predict its rows")
    assert "Traceback" not in err

    frame.assign(prediction=150.0).to_csv(path, index=False)
    code, out, err = run(capsys, "--json", "drift", "check", "diabetes", "--current", str(path))
    assert code == 0, err
    document = json.loads(out)
    assert document["current_file"]["absent_columns"] == ["bmi"]
    bmi = next(f for f in document["result"]["features"] if f["name"] == "bmi")
    assert bmi["verdict"] == "insufficient_data"
    assert ABSENT.format(name="bmi") in bmi["notes"]
    assert {f["verdict"] for f in document["result"]["features"] if f["name"] != "bmi"} <= {"drift", "no_drift"}
