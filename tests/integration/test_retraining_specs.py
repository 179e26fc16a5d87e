"""Published specs: the layout `cdk deploy` and local mode write under specs/, and reading it back in a Lambda."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serverless_mlops.errors import NotFoundError, SpecError
from serverless_mlops.retraining.specs import load_published_spec, publish_specs, spec_files
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.specs import example_spec


def test_a_local_data_file_is_published_beside_the_spec_and_read_back_from_s3(backends: Backends) -> None:
    spec = example_spec("wine")
    keys = publish_specs([spec], backends.store.s3, backends.store.bucket)
    assert keys == ["specs/wine/wine.csv", "specs/wine/spec.json"]
    published = json.loads(spec_files(spec)["wine/spec.json"])
    assert published["data"]["uri"] == "wine.csv"  # relative to the spec's own folder, as in a spec file
    loaded = load_published_spec("wine", backends.store.s3, backends.store.bucket)
    assert loaded.data.uri == f"s3://{backends.store.bucket}/specs/wine/wine.csv"
    assert loaded.model_copy(update={"data": spec.data}) == spec
    assert spec_files(spec)["wine/wine.csv"] == Path(spec.data.uri).read_bytes()


def test_an_s3_data_uri_is_kept_and_nothing_is_copied(backends: Backends) -> None:
    spec = example_spec("wine")
    remote = spec.model_copy(update={"data": spec.data.model_copy(update={"uri": "s3://lake/wine/2026.csv"})})
    assert list(spec_files(remote)) == ["wine/spec.json"]
    publish_specs([remote], backends.store.s3, backends.store.bucket)
    assert load_published_spec("wine", backends.store.s3, backends.store.bucket).data.uri == "s3://lake/wine/2026.csv"


def test_a_data_file_called_spec_json_is_refused(tmp_path: Path) -> None:
    spec = example_spec("wine")
    data = tmp_path / "spec.json"
    data.write_bytes(Path(spec.data.uri).read_bytes())
    with pytest.raises(SpecError, match=r"wine: data.uri: the data file may not be called 'spec.json'"):
        spec_files(spec.model_copy(update={"data": spec.data.model_copy(update={"uri": str(data)})}))


def test_reading_back_names_what_is_wrong(backends: Backends) -> None:
    s3, bucket = backends.store.s3, backends.store.bucket
    with pytest.raises(NotFoundError, match=rf"model 'wine' has no published spec at s3://{bucket}/specs/wine/spec.json"):
        load_published_spec("wine", s3, bucket)
    s3.put_object(Bucket=bucket, Key="specs/wine/spec.json", Body=b"{not json")
    with pytest.raises(SpecError, match=rf"s3://{bucket}/specs/wine/spec.json: not valid JSON"):
        load_published_spec("wine", s3, bucket)
    s3.put_object(Bucket=bucket, Key="specs/wine/spec.json", Body=spec_files(example_spec("diabetes"))["diabetes/spec.json"])
    with pytest.raises(SpecError, match=r"name: the spec published for model 'wine' is named 'diabetes'"):
        load_published_spec("wine", s3, bucket)
    s3.put_object(Bucket=bucket, Key="specs/wine/spec.json", Body=b'{"name": "wine"}')
    with pytest.raises(SpecError, match=r"invalid model spec: task: required field is missing"):
        load_published_spec("wine", s3, bucket)


@pytest.mark.parametrize(("code", "meaning"), [("NoSuchKey", "no such object"), ("AccessDenied", "or this role may not read it")])
def test_a_missing_key_reads_as_missing_whether_s3_says_404_or_403(code: str, meaning: str) -> None:
    """A role that may list only some prefixes gets 403, not 404, for a missing key: both name the object."""
    import boto3
    from botocore.stub import Stubber

    from serverless_mlops.retraining.runs import read_object

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(s3) as stub:
        for _ in range(2):
            stub.add_client_error("get_object", service_error_code=code, http_status_code=403 if code == "AccessDenied" else 404)
        with pytest.raises(NotFoundError, match=rf"no published spec at s3://b/specs/wine/spec.json \(.*{meaning}"):
            load_published_spec("wine", s3, "b")
        with pytest.raises(NotFoundError, match=rf"s3://b/runs/wine/x/run.json: .*{meaning}"):
            read_object(s3, "s3://b/runs/wine/x/run.json")
    with Stubber(s3) as stub:  # anything else is not "missing": it goes through as it is
        stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(s3.exceptions.ClientError, match="SlowDown"):
            read_object(s3, "s3://b/runs/wine/x/run.json")
