"""Training data read from S3 (on moto's in-process mock): CSV and Parquet, the same checks and fingerprint as a local
file, and errors that name the URI (tests/unit/test_data.py has the local-file cases)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from serverless_mlops.model.data import load_dataset, read_bytes
from serverless_mlops.settings import Settings
from tests.helpers.specs import MODELS, example_spec
from tests.helpers.training_data import HEADER, data_error, good_frame, make_spec, write_parquet

BUCKET = "training-data"


@pytest.fixture
def s3_bucket(settings: Settings) -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=settings.region)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def test_csv_from_s3(s3_bucket: Any, settings: Settings) -> None:
    raw = (MODELS / "data" / "diabetes.csv").read_bytes()
    s3_bucket.put_object(Bucket=BUCKET, Key="prefix/diabetes.csv", Body=raw)
    spec = example_spec("diabetes")
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"uri": f"s3://{BUCKET}/prefix/diabetes.csv"})})

    dataset = load_dataset(spec, settings)

    local = load_dataset(example_spec("diabetes"))
    assert dataset.uri == f"s3://{BUCKET}/prefix/diabetes.csv"
    assert dataset.sha256 == hashlib.sha256(raw).hexdigest() == local.sha256
    pd.testing.assert_frame_equal(dataset.frame, local.frame)


def test_parquet_from_s3(s3_bucket: Any, settings: Settings, tmp_path: Path) -> None:
    raw = write_parquet(tmp_path, good_frame()).read_bytes()
    s3_bucket.put_object(Bucket=BUCKET, Key="train.parquet", Body=raw)

    dataset = load_dataset(make_spec(f"s3://{BUCKET}/train.parquet"), settings)

    assert dataset.sha256 == hashlib.sha256(raw).hexdigest()
    assert dataset.frame["sex"].tolist() == ["a", "b", "a"]


def test_bad_value_in_s3_csv_names_the_uri_column_and_row(s3_bucket: Any, settings: Settings) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="train.csv", Body=(HEADER + "30,a,1,1\n31,a,?,2\n").encode())

    message = data_error(make_spec(f"s3://{BUCKET}/train.csv"), settings)

    assert message == f"s3://{BUCKET}/train.csv: column 'bmi' must be numeric; non-numeric value at row 2"


def test_no_such_s3_object(s3_bucket: Any, settings: Settings) -> None:
    uri = f"s3://{BUCKET}/missing/train.csv"

    assert data_error(make_spec(uri), settings) == f"{uri}: no such object"


def test_no_such_s3_bucket(s3_bucket: Any, settings: Settings) -> None:
    uri = "s3://no-such-bucket-here/train.csv"

    assert data_error(make_spec(uri), settings) == f"{uri}: no such bucket"


def test_read_bytes_returns_the_object_unchanged(s3_bucket: Any, settings: Settings) -> None:
    body = b"\x00\x01binary\xff"
    s3_bucket.put_object(Bucket=BUCKET, Key="blob", Body=body)

    assert read_bytes(f"s3://{BUCKET}/blob", settings) == body
