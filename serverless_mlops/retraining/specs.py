"""Published specs: what a deployment gives the retraining workflow to train from.

``cdk deploy`` (a BucketDeployment, infra/retraining.py) and local mode publish each deployed model's spec as
``specs/{model}/spec.json`` in the artifact bucket, with the spec's base data beside it: a local data path becomes the
file's name (resolved against the spec's own folder, as a spec file's relative path is), an ``s3://`` URI stays as it
is. :func:`spec_files` is the one definition of that layout; :func:`load_published_spec` reads it back.
:func:`deploy_problem` says which specs a deployment could publish but its training function could not read.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from serverless_mlops.errors import NotFoundError, SpecError
from serverless_mlops.model.spec import ModelSpec, parse_spec
from serverless_mlops.retraining.contract import SPECS_PREFIX
from serverless_mlops.store.artifacts import read_failure

SPEC_FILE = "spec.json"
# why the training function reads only CSV: layers/README.md (pyarrow would not fit beside scikit-learn and scipy)
NO_PARQUET = "the training layer has no pyarrow (it would not fit Lambda's 250 MB)"


def spec_prefix(model: str) -> str:
    return f"{SPECS_PREFIX}/{model}"


def spec_key(model: str) -> str:
    return f"{spec_prefix(model)}/{SPEC_FILE}"


def spec_files(spec: ModelSpec) -> dict[str, bytes]:
    """The files that publish ``spec``, keyed by their path under ``specs/`` (``{model}/spec.json``, ``{model}/<data>``)."""
    from serverless_mlops.model.data import read_bytes

    document = spec.model_dump(mode="json", by_alias=True)
    files: dict[str, bytes] = {}
    if "://" not in spec.data.uri:
        name = PurePosixPath(spec.data.uri.replace("\\", "/")).name
        if name == SPEC_FILE:
            raise SpecError(f"{spec.name}: data.uri: the data file may not be called {SPEC_FILE!r} (the published spec is)")
        files[f"{spec.name}/{name}"] = read_bytes(spec.data.uri)
        document["data"] = {**document["data"], "uri": name}
    files[f"{spec.name}/{SPEC_FILE}"] = json.dumps(document, indent=2, sort_keys=True).encode()
    return files


def deploy_problem(spec: ModelSpec) -> str | None:
    """Why PrepareData could not read ``spec``'s base data once deployed ("field: problem", one line), or None.

    A deployment publishes a local data file beside the spec; the training role reads the artifact bucket only (its
    name is generated at deploy time, so an ``s3://`` URI cannot be checked against it), and its layer reads CSV only.
    Training the spec locally (``mlops train``) reads either, so the spec itself stays valid.
    """
    data = spec.data
    if "://" in data.uri:
        return (
            f"data.uri: {data.uri} is in another bucket; the retraining role can read only the artifact bucket: "
            "copy the data next to the spec (a local path; cdk deploy publishes it)"
        )
    if data.resolved_format == "parquet":
        field = "data.format" if data.format == "parquet" else "data.uri"
        return f"{field}: {data.uri} is Parquet, which retraining cannot read ({NO_PARQUET}): convert it to CSV"
    return None


def publish_specs(specs: list[ModelSpec], s3: Any, bucket: str) -> list[str]:
    """Upload the published layout of each spec (what ``cdk deploy`` does); returns the keys written."""
    keys = []
    for spec in specs:
        for relative, body in spec_files(spec).items():
            key = f"{SPECS_PREFIX}/{relative}"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            keys.append(key)
    return keys


def load_published_spec(model: str, s3: Any, bucket: str) -> ModelSpec:
    """The deployed spec of ``model``, its relative data path resolved to ``s3://{bucket}/specs/{model}/<file>``."""
    key = spec_key(model)
    uri = f"s3://{bucket}/{key}"
    try:
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as exc:
        if (meaning := read_failure(exc)) is None:
            raise
        raise NotFoundError(
            f"model {model!r} has no published spec at {uri} ({meaning}): list its spec in the deployment config and "
            "deploy (cdk deploy), or publish it locally (mlops local up)"
        ) from exc
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise SpecError(f"{uri}: not valid JSON: {exc}") from exc
    spec = parse_spec(document, source=uri)
    if spec.name != model:
        raise SpecError(f"{uri}: name: the spec published for model {model!r} is named {spec.name!r}")
    if "://" not in spec.data.uri:
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"uri": f"s3://{bucket}/{spec_prefix(model)}/{spec.data.uri}"})})
    return spec
