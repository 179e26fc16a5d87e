"""Training data: CSV and Parquet, local and S3, checked against the spec; errors name the file, the column and the
1-based data rows (header excluded); the sha256 of the raw bytes is recorded."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serverless_mlops.errors import DataError, MlopsError
from serverless_mlops.model.data import load_dataset, read_bytes
from serverless_mlops.settings import Settings
from tests.helpers.specs import example_spec
from tests.helpers.training_data import GOOD_ROWS, HEADER, data_error, good_frame, make_spec, write, write_parquet

# --- reading good data -------------------------------------------------------------------------------------------


def test_csv_loads_with_typed_columns_and_the_raw_bytes_fingerprint(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS)

    dataset = load_dataset(make_spec(str(path)))

    frame = dataset.frame
    assert dataset.uri == str(path)
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(frame.columns) == {"age", "sex", "bmi", "y"}
    assert frame.columns[-1] == "y"
    assert len(frame) == 3
    assert frame["age"].tolist() == [30.0, 45.0, 60.0]
    assert frame["age"].dtype == np.float64
    assert frame["sex"].tolist() == ["a", "b", "a"]
    assert frame["y"].tolist() == [151.0, 75.0, 141.0]
    assert frame["y"].dtype == np.float64


def test_missing_numeric_feature_values_are_kept_as_nan_for_imputation(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "30,a,,1\n31,b,NA,2\n32,a,null,3\n33,b, nan ,4\n34,a,5.5,5\n")

    bmi = load_dataset(make_spec(str(path))).frame["bmi"]

    assert bmi.isna().tolist() == [True, True, True, True, False]
    assert bmi.iloc[4] == 5.5


def test_extra_columns_are_dropped_and_whitespace_is_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path, "id,y,bmi,sex,age,notes\n1, 10 , 22.5 , b ,40,hello\n")

    frame = load_dataset(make_spec(str(path))).frame

    assert set(frame.columns) == {"age", "sex", "bmi", "y"}
    assert frame.iloc[0].to_dict() == {"age": 40.0, "sex": "b", "bmi": 22.5, "y": 10.0}


def test_columns_follow_the_spec_order_then_the_target(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS)

    assert list(load_dataset(make_spec(str(path))).frame.columns) == ["age", "sex", "bmi", "y"]


def test_utf8_bom_in_the_header_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + (HEADER + GOOD_ROWS).encode())

    dataset = load_dataset(make_spec(str(path)))

    assert dataset.frame["age"].tolist() == [30.0, 45.0, 60.0]
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("targets", "expected"),
    [(["1", "0", "1"], [1, 0, 1]), (["1.0", "0.0", "1.0"], [1, 0, 1]), (["yes", "no", "yes"], ["yes", "no", "yes"])],
    ids=["integers", "integral-floats", "strings"],
)
def test_classification_target_keeps_integer_or_string_labels(tmp_path: Path, targets: list[str], expected: list[Any]) -> None:
    rows = "".join(f"30,a,22.5,{t}\n" for t in targets)
    path = write(tmp_path, HEADER + rows)

    y = load_dataset(make_spec(str(path), task="binary_classification", metric="f1")).frame["y"]

    assert y.tolist() == expected


def test_non_integral_numeric_labels_stay_labels_for_classification(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "30,a,22.5,0.5\n30,a,22.5,1.5\n")

    y = load_dataset(make_spec(str(path), task="binary_classification", metric="f1")).frame["y"]

    assert y.tolist() == ["0.5", "1.5"]


@pytest.mark.parametrize("name", ["breast-cancer", "wine", "diabetes"])
def test_example_datasets_load(name: str) -> None:
    spec = example_spec(name)

    dataset = load_dataset(spec)

    raw = Path(spec.data.uri).read_bytes()
    assert dataset.sha256 == hashlib.sha256(raw).hexdigest()
    assert len(dataset.frame) == raw.count(b"\n") - 1
    assert set(dataset.frame.columns) == {f.name for f in spec.features} | {spec.target}
    assert not dataset.frame[spec.numeric_features].isna().any().any()


def test_the_same_bytes_give_the_same_fingerprint_and_one_byte_changes_it(tmp_path: Path) -> None:
    first = write(tmp_path, HEADER + GOOD_ROWS, "a.csv")
    same = write(tmp_path, HEADER + GOOD_ROWS, "b.csv")
    changed = write(tmp_path, HEADER + GOOD_ROWS.replace("22.5", "22.6"), "c.csv")

    digests = [load_dataset(make_spec(str(p))).sha256 for p in (first, same, changed)]

    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


# --- Parquet -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [("train.parquet", None), ("train.pq", None), ("train.bin", "parquet")])
def test_parquet_loads_by_suffix_or_declared_format(tmp_path: Path, name: str, fmt: str | None) -> None:
    path = write_parquet(tmp_path, good_frame(), name)

    dataset = load_dataset(make_spec(str(path), fmt=fmt))

    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.frame["age"].tolist() == [30.0, 45.0, 60.0]
    assert dataset.frame["sex"].tolist() == ["a", "b", "a"]
    assert dataset.frame["bmi"].isna().tolist() == [False, False, True]
    assert dataset.frame["y"].tolist() == [151.0, 75.0, 141.0]


def test_parquet_categorical_dtype_is_read_as_strings(tmp_path: Path) -> None:
    frame = good_frame().assign(sex=pd.Categorical(["a", "b", "a"]))

    dataset = load_dataset(make_spec(str(write_parquet(tmp_path, frame))))

    assert dataset.frame["sex"].tolist() == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"sex": ["a", None, "b"]}, r"categorical column 'sex' has missing values at row 2$"),
        ({"sex": ["a", "b", "z"]}, r"column 'sex' has values outside the spec's categories at row 3 \(first: 'z'; allowed: 'a', 'b'\)$"),
        ({"bmi": [1.0, np.inf, 2.0]}, r"column 'bmi' has infinite values at row 2$"),
        ({"age": [30, 45, 121]}, r"column 'age' is outside the spec's range \[0\.0, 120\.0\] at row 3$"),
        ({"age": ["30", "forty", "50"]}, r"column 'age' must be numeric; non-numeric value at row 2$"),
        ({"y": [1.0, np.nan, 2.0]}, r"target column 'y' has missing values at row 2$"),
    ],
    ids=["categorical-missing", "unknown-category", "infinite", "out-of-range", "non-numeric", "missing-target"],
)
def test_parquet_values_are_checked_like_csv(tmp_path: Path, change: dict[str, list[Any]], pattern: str) -> None:
    path = write_parquet(tmp_path, good_frame().assign(**change))

    message = data_error(make_spec(str(path)))

    assert message.startswith(f"{path}: ")
    assert re.search(pattern, message), message


def test_parquet_missing_column(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, good_frame().drop(columns=["y"]))

    assert data_error(make_spec(str(path))) == f"{path}: missing column 'y' (found 3: 'age', 'sex', 'bmi')"


def test_file_that_is_not_parquet(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS, "train.parquet")

    message = data_error(make_spec(str(path)))

    assert message.startswith(f"{path}: cannot parse as parquet: ")


# --- bad CSV data: errors name file, column and 1-based data row -------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        pytest.param("30,a,22.5,1\n31,b,abc,2\n", r"column 'bmi' must be numeric; non-numeric value at row 2$", id="non-numeric"),
        pytest.param(
            "30,a,22.5,1\n31,b,1,2\n32,a,1.2.3,3\n", r"column 'bmi' must be numeric; non-numeric value at row 3$", id="non-numeric-row-3"
        ),
        pytest.param("30,a,inf,1\n", r"column 'bmi' has infinite values at row 1$", id="infinite"),
        pytest.param("30,a,1,1\n31,a,-Infinity,2\n", r"column 'bmi' has infinite values at row 2$", id="negative-infinite"),
        pytest.param("30,a,1,1\n31,a,1e400,2\n", r"column 'bmi' has infinite values at row 2$", id="overflow-to-infinite"),
        pytest.param("30,a,1,1\n130,b,1,2\n", r"column 'age' is outside the spec's range \[0\.0, 120\.0\] at row 2$", id="above-range"),
        pytest.param("-1,a,1,1\n", r"column 'age' is outside the spec's range \[0\.0, 120\.0\] at row 1$", id="below-range"),
        pytest.param("30,a,1,1\n31,,1,2\n", r"categorical column 'sex' has missing values at row 2$", id="categorical-empty"),
        pytest.param("30,NA,1,1\n", r"categorical column 'sex' has missing values at row 1$", id="categorical-na"),
        pytest.param(
            "30,a,1,1\n31,c,1,2\n",
            r"column 'sex' has values outside the spec's categories at row 2 \(first: 'c'; allowed: 'a', 'b'\)$",
            id="unknown-category",
        ),
        pytest.param(
            "30,A,1,1\n",
            r"column 'sex' has values outside the spec's categories at row 1 \(first: 'A'; allowed: 'a', 'b'\)$",
            id="category-case-matters",
        ),
        pytest.param("30,a,1,1\n31,b,1,\n", r"target column 'y' has missing values at row 2$", id="missing-target"),
        pytest.param("30,a,1,abc\n", r"target column 'y' must be a finite number; bad value at row 1$", id="non-numeric-target"),
        pytest.param("30,a,1,1\n31,a,1,inf\n", r"target column 'y' must be a finite number; bad value at row 2$", id="infinite-target"),
    ],
)
def test_bad_csv_value_names_file_column_and_row(tmp_path: Path, rows: str, pattern: str) -> None:
    path = write(tmp_path, HEADER + rows)

    message = data_error(make_spec(str(path)))
    assert message.startswith(f"{path}: ")
    assert re.search(pattern, message), message


def test_rows_are_listed_first_five_then_counted(tmp_path: Path) -> None:
    rows = "30,a,1,1\n" + "".join(f"30,a,x{i},1\n" for i in range(8))
    path = write(tmp_path, HEADER + rows)

    message = data_error(make_spec(str(path)))

    assert message.endswith("non-numeric value at rows 2, 3, 4, 5, 6 and 3 more")


def test_missing_classification_target(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "30,a,1,yes\n31,b,2,\n")

    message = data_error(make_spec(str(path), task="binary_classification", metric="f1"))

    assert message == f"{path}: target column 'y' has missing values at row 2"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("age,sex,y\n", "missing column 'bmi' (found 3: 'age', 'sex', 'y')"),
        ("sex,bmi\n", "missing columns 'age', 'y' (found 2: 'sex', 'bmi')"),
    ],
    ids=["one", "several"],
)
def test_missing_columns_are_named(tmp_path: Path, header: str, expected: str) -> None:
    path = write(tmp_path, header + "1,2,3\n")

    assert data_error(make_spec(str(path))) == f"{path}: {expected}"


def test_missing_target_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "age,sex,bmi\n30,a,1\n")

    assert data_error(make_spec(str(path))) == f"{path}: missing column 'y' (found 3: 'age', 'sex', 'bmi')"


def test_a_file_with_another_delimiter_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "age;sex;bmi;y\n30;a;1;1\n")

    message = data_error(make_spec(str(path)))

    assert message.startswith(f"{path}: missing columns 'age', 'sex', 'bmi', 'y' (found 1: 'age;sex;bmi;y')")
    assert message.endswith("the header was read as one column: the file must be comma-separated")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"

    assert data_error(make_spec(str(path))) == f"{path}: training data file not found"


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    message = data_error(make_spec(str(tmp_path)))

    assert message.startswith(f"{tmp_path}: cannot read training data")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"")

    message = data_error(make_spec(str(path)))

    assert message.startswith(f"{path}: cannot parse as csv: ")


def test_header_without_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER)

    assert data_error(make_spec(str(path))) == f"{path}: no data rows"


def test_row_with_too_many_fields_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "30,a,1,1\n31,b,2,2,extra\n")

    message = data_error(make_spec(str(path)))

    assert message.startswith(f"{path}: cannot parse as csv: ")
    assert "line 3" in message


def test_csv_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + GOOD_ROWS).encode("utf-16"))

    assert data_error(make_spec(str(path))).startswith(f"{path}: cannot parse as csv: ")


def test_unsupported_scheme() -> None:
    message = data_error(make_spec("https://example.com/train.csv"))

    assert message.startswith("https://example.com/train.csv: unsupported scheme")


def test_data_error_is_an_mlops_error(tmp_path: Path) -> None:
    with pytest.raises(MlopsError):
        load_dataset(make_spec(str(tmp_path / "absent.csv")))


# --- S3 URIs (reading from S3 on moto: tests/integration/test_data_s3.py) ---------------------------------------


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket-only", "s3://bucket-only/"])
def test_s3_uri_without_a_key(uri: str, settings: Settings) -> None:
    with pytest.raises(DataError, match=r"expected s3://bucket/key"):
        read_bytes(uri, settings)
