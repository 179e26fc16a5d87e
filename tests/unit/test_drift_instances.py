"""A CSV or JSON file of instances read into the drift check's columns (``mlops drift check --current rows.csv``).

The same rows give the same columns as captured rows do; missing values are data (the rows the model cannot predict
are counted, never dropped silently); a block boundary changes nothing; every refusal is one line with its place.
No AWS here: the model is the trained example's ONNX graph.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serverless_mlops.drift import instances
from serverless_mlops.drift.capture_reader import CaptureReader, CurrentData
from serverless_mlops.drift.instances import FileRows, read_rows
from serverless_mlops.errors import DataError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.onnx_model import OnnxModel
from serverless_mlops.store.capture_format import encode_records
from tests.helpers.drift_data import fresh_sample, records_for


@pytest.fixture(autouse=True, params=["pandas", "csv module"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both CSV readers: pandas' (files from FAST_BYTES on) and the exact one (smaller files, errors)."""
    monkeypatch.setattr(instances, "FAST_BYTES", 0 if request.param == "pandas" else 1 << 62)
    return str(request.param)


def only_pandas(monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """Under the pandas reader, fail if the exact one reads (a clean file must not need it)."""
    if reader == "pandas":

        def exact(*args: Any) -> None:
            raise AssertionError("the exact reader read a file pandas should have read")

        monkeypatch.setattr(instances, "_csv_blocks", exact)


class Loads:
    """The model loader read_rows takes, counting its calls."""

    def __init__(self, trained: TrainedModel) -> None:
        self.trained = trained
        self.calls = 0

    def __call__(self) -> OnnxModel:
        self.calls += 1
        return OnnxModel(self.trained.record.signature, self.trained.onnx_bytes)


def read(path: Path, trained: TrainedModel) -> tuple[FileRows, Loads]:
    loads = Loads(trained)
    return read_rows(path, trained.record.signature, 1, loads), loads


def captured(trained: TrainedModel, frame: pd.DataFrame) -> CurrentData:
    signature = trained.record.signature
    reader = CaptureReader({f.name: f.kind for f in signature.features}, "categorical" if signature.is_classification else "numeric")
    reader.add(io.BytesIO(encode_records(records_for(trained, frame))), "captured")
    return reader.result


def assert_same_columns(ours: CurrentData, theirs: CurrentData) -> None:
    assert ours.rows == theirs.rows
    for name, column in [*theirs.columns.items(), ("prediction", theirs.prediction)]:
        mine = ours.prediction if name == "prediction" else ours.columns[name]
        assert (mine.kind, mine.missing) == (column.kind, column.missing), name
        assert mine.counts == column.counts, name
        np.testing.assert_allclose(mine.values(), column.values(), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("model", ["diabetes", "wine"])
@pytest.mark.parametrize("chunk", [instances.CHUNK_ROWS, 7])
def test_rows_of_a_csv_or_json_file_are_the_columns_their_captures_would_be(
    trained_models: dict[str, TrainedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, model: str, chunk: int
) -> None:
    monkeypatch.setattr(instances, "CHUNK_ROWS", chunk)  # 7: blocks that end mid-file change nothing
    only_pandas(monkeypatch, reader)
    trained = trained_models[model]
    frame = fresh_sample(model, 60, 11)
    expected = captured(trained, frame)
    csv_file = tmp_path / "rows.csv"
    frame.to_csv(csv_file, index=False)  # with the target column, which is not a feature
    rows, loads = read(csv_file, trained)
    assert_same_columns(rows.current, expected)
    assert (rows.predicted, rows.not_predicted, rows.absent, loads.calls) == (60, 0, [], 1)
    assert rows.note() is None

    json_file = tmp_path / "rows.json"
    json_file.write_text(
        json.dumps({"instances": [{k: (str(v) if k == "sex" else v) for k, v in r.items()} for r in frame.to_dict("records")]})
    )
    assert_same_columns(read(json_file, trained)[0].current, expected)

    with_predictions = frame.assign(prediction=[r["prediction"] for r in records_for(trained, frame)])
    with_predictions.to_csv(csv_file, index=False)
    rows, loads = read(csv_file, trained)
    assert_same_columns(rows.current, expected)
    assert (rows.predicted, loads.calls) == (None, 0)  # the file's own predictions; the model is not even loaded


def test_empty_cells_and_nan_are_missing_values_and_their_rows_are_not_predicted(
    trained_models: dict[str, TrainedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    monkeypatch.setattr(instances, "CHUNK_ROWS", 4)
    only_pandas(monkeypatch, reader)
    path = tmp_path / "rows.csv"
    frame = fresh_sample("diabetes", 10, 12).drop(columns=["target"]).astype(str)
    frame.loc[1, "bmi"] = ""
    frame.loc[2, "bmi"] = "nan"
    frame.loc[5, "bp"] = "NaN"
    frame.loc[6, "s1"] = "NA"
    frame.loc[6, "s2"] = "null"
    frame.loc[9, "sex"] = ""
    frame.to_csv(path, index=False)
    rows, _ = read(path, trained_models["diabetes"])
    current = rows.current
    assert current.rows == 10
    assert {name: c.missing for name, c in current.columns.items() if c.missing} == {"bmi": 2, "bp": 1, "s1": 1, "s2": 1, "sex": 1}
    assert current.columns["sex"].counts.total() == 9
    assert (rows.predicted, rows.not_predicted) == (5, 5)
    assert current.prediction.missing == 5
    assert int(np.isfinite(current.prediction.values()).sum()) == 5
    assert rows.note() == f"{path}: 5 of 10 rows have a missing feature value: not predicted, so their prediction counts as missing"
    assert rows.summary()["not_predicted_rows"] == 5

    frame["bmi"] = ""  # no row can be predicted: said so, the rows are still checked
    frame.to_csv(path, index=False)
    rows, _ = read(path, trained_models["diabetes"])
    assert (rows.current.rows, rows.predicted, rows.current.prediction.missing) == (10, 0, 10)
    assert "all 10 rows have a missing feature value" in str(rows.note())


def test_missing_values_with_a_prediction_column_are_counted_and_the_model_is_not_needed(
    trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    frame = fresh_sample("diabetes", 8, 13).drop(columns=["target"]).astype({"age": float})
    frame["prediction"] = 150.0
    frame.loc[0, "bmi"] = np.nan  # pandas writes an empty cell
    frame.loc[1, "prediction"] = np.nan
    frame.loc[2, "age"] = np.inf  # kept, as the capture reader keeps it: the check counts it as out of range
    frame.to_csv(path, index=False)
    rows, loads = read(path, trained_models["diabetes"])
    assert loads.calls == 0
    assert (rows.current.columns["bmi"].missing, rows.current.prediction.missing) == (1, 1)
    assert np.isinf(rows.current.columns["age"].values()).sum() == 1
    assert (rows.predicted, rows.not_predicted) == (None, 0)


def test_a_feature_column_absent_from_the_file(trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    frame = fresh_sample("diabetes", 8, 14).drop(columns=["target", "bmi", "sex"])
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as refused:  # the model needs every feature
        read(path, trained_models["diabetes"])
    assert str(refused.value).startswith(f"{path}: no columns 'sex', 'bmi' in the file, so the model cannot predict its rows")
    assert "add a 'prediction' column" in str(refused.value)

    frame.assign(prediction=150.0).to_csv(path, index=False)  # with predictions the other columns can be checked
    rows, _ = read(path, trained_models["diabetes"])
    assert rows.absent == ["sex", "bmi"]
    bmi = rows.current.columns["bmi"]
    assert (bmi.missing, bmi.absent, bmi.values().size) == (8, 8, 0)
    assert rows.current.columns["age"].absent == 0


def test_json_null_nan_and_keys_a_record_lacks_are_missing_values(trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {k: (str(v) if k == "sex" else v) for k, v in r.items()} for r in fresh_sample("diabetes", 6, 15).to_dict("records")
    ]
    records[0]["bmi"] = None
    del records[1]["bmi"]
    records[2]["bp"] = float("nan")  # NaN is what Python's json writes for it
    records[3]["sex"] = None
    records[4]["s1"] = ""
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(records))
    rows, _ = read(path, trained_models["diabetes"])
    columns = rows.current.columns
    assert (columns["bmi"].missing, columns["bmi"].absent) == (2, 1)
    assert (columns["bp"].missing, columns["sex"].missing, columns["s1"].missing) == (1, 1, 1)
    assert (rows.predicted, rows.not_predicted) == (1, 5)

    path.write_text("[]")  # nothing to check: no rows, no error
    assert read(path, trained_models["diabetes"])[0].current.rows == 0


def test_predicted_class_labels_in_a_float_column_are_the_model_s_labels(trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    trained = trained_models["wine"]
    frame = fresh_sample("wine", 30, 16)
    labels = [r["prediction"] for r in records_for(trained, frame)]
    path = tmp_path / "rows.csv"
    frame.assign(prediction=[float(label) for label in labels]).to_csv(path, index=False)  # 1.0, as a float column writes 1
    assert read(path, trained)[0].current.prediction.counts == captured(trained, frame).prediction.counts


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("age,sex,prediction\n1,a,1\n2,a,3,4\n", "row 2 has more values (4) than the header has columns (3)"),
        ("age,sex,prediction\n1,a,1\n2,a,1\n3,a,1\n4,a,1\n\n5,a,1,2\n", "row 5 has more values (4) than the header has columns (3)"),
        (
            "age,sex,bmi,prediction\n1,a,2,1\n2,a,3,1\n3,a,4,1\n4,a,abc,1\n",
            "row 4, column 'bmi': expected a number (an empty cell or nan is a missing value)",
        ),
        ("", "empty file; expected a CSV file with a header"),
    ],
)
def test_a_malformed_csv_is_one_line_naming_its_row(
    trained_models: dict[str, TrainedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    monkeypatch.setattr(instances, "CHUNK_ROWS", 3)  # rows are counted across blocks; a blank line is no row
    path = tmp_path / "rows.csv"
    path.write_text(content)
    with pytest.raises(DataError) as refused:
        read(path, trained_models["diabetes"])
    assert str(refused.value) == f"{path}: {message}"


def test_a_short_row_lacks_the_other_values_and_empty_cells_past_the_header_are_nothing(
    trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("age,sex,bmi,prediction\n50,a,20.5,100\n51,b\n52,a,21,90,\n53, b , NaN ,80\n")  # as pandas and csv.DictReader read them
    rows, _ = read(path, trained_models["diabetes"])
    columns = rows.current.columns
    assert (rows.current.rows, columns["bmi"].missing, rows.current.prediction.missing, columns["sex"].missing) == (4, 2, 1, 0)
    assert columns["sex"].counts == {"a": 2, "b": 2}  # stripped, as training reads a category
    np.testing.assert_array_equal(rows.current.prediction.values(), [100.0, np.nan, 90.0, 80.0])


def test_rows_the_model_refuses_are_named_with_their_place(
    trained_models: dict[str, TrainedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instances, "CHUNK_ROWS", 4)
    frame = fresh_sample("diabetes", 10, 17).drop(columns=["target"]).astype({"age": float})
    frame.loc[1, "bmi"] = np.nan  # not predicted, so the refused row's place is still counted from the file
    frame.loc[6, "age"] = 500.0  # outside the spec's range [0, 120]
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as refused:
        read(path, trained_models["diabetes"])
    assert str(refused.value).startswith(f"{path}: cannot predict row 7, field 'age': outside the allowed range [0.0, 120.0]")
    assert str(refused.value).endswith("(add a 'prediction' column to check the rows as they are)")

    records = frame.assign(sex=frame["sex"].astype(str)).to_dict("records")
    records[3]["bmi"] = "abc"
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"rows\.json: instance 3, field 'bmi': expected a number or null$"):
        read(path, trained_models["diabetes"])
    path.write_text(json.dumps({"inputs": [[1, 2]]}))
    with pytest.raises(DataError, match="expected records"):
        read(path, trained_models["diabetes"])


def test_a_file_the_csv_reader_cannot_read_is_named_with_the_line_it_reached(
    trained_models: dict[str, TrainedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instances, "CHUNK_ROWS", 2)
    frame = fresh_sample("diabetes", 5, seed=1)
    path = tmp_path / "rows.csv"
    lines = frame.to_csv(index=False).splitlines()
    lines.insert(4, lines[3].replace(",", ',"' + "9" * 200_000 + '",', 1))  # line 5: a field over the csv module's limit
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"rows\.csv: not a readable CSV file \(line 5: field larger than field limit"):
        read(path, trained_models["diabetes"])
    path.write_bytes(b"age,sex\n\xff\xfe1,2\n")
    with pytest.raises(DataError, match=r"rows\.csv: not UTF-8 text \(invalid start byte at byte 8\)"):
        read(path, trained_models["diabetes"])
    with pytest.raises(DataError, match=r"missing\.csv: cannot read input: No such file or directory"):
        read(tmp_path / "missing.csv", trained_models["diabetes"])
