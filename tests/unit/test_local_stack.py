"""The local stack's pure parts: the intrinsic resolver, creation order, names, and the in-process Lambda invoker's
calls (installing it into moto's Lambda is tested in tests/integration/test_lambda_runtime.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serverless_mlops.local.assembly import asset_source
from serverless_mlops.local.lambda_runtime import LocalInvoker
from serverless_mlops.local.provisioner import BUCKET, FUNCTION, physical_name
from serverless_mlops.local.template import LocalStackError, Resolver, Unresolvable, creation_order, references
from tests.helpers.local_handlers import forget_handler_package, lambda_context, write_handler_package


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(
        region="eu-west-1",
        account="123456789012",
        stack_name="st",
        refs={"Bucket": "st-bucket", "Topic": "arn:aws:sns:eu-west-1:123456789012:t", "Env": "dev"},
        attributes={("Fn", "Arn"): "arn:aws:lambda:eu-west-1:123456789012:function:f"},
        conditions={"IsDev": {"Fn::Equals": [{"Ref": "Env"}, "dev"]}, "IsProd": {"Fn::Not": [{"Condition": "IsDev"}]}},
    )


def test_ref_gives_pseudo_parameters_and_resources(resolver: Resolver) -> None:
    value = {"Fn::Join": [":", [{"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}, {"Ref": "AWS::Partition"}, {"Ref": "Bucket"}]]}
    assert resolver.resolve(value) == "eu-west-1:123456789012:aws:st-bucket"
    assert resolver.resolve({"Ref": "AWS::URLSuffix"}) == "amazonaws.com"
    assert resolver.touched == {"Bucket"}


def test_get_att_in_both_spellings_and_through_the_fallback(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::GetAtt": ["Fn", "Arn"]}) == "arn:aws:lambda:eu-west-1:123456789012:function:f"
    assert resolver.resolve({"Fn::GetAtt": "Fn.Arn"}) == "arn:aws:lambda:eu-west-1:123456789012:function:f"
    resolver.attribute = lambda name, attribute: f"{name}/{attribute}" if name == "Other" else None
    assert resolver.resolve({"Fn::GetAtt": ["Other", "Name"]}) == "Other/Name"
    with pytest.raises(Unresolvable, match=r"Fn::GetAtt Missing\.Arn"):
        resolver.resolve({"Fn::GetAtt": ["Missing", "Arn"]})


def test_sub_with_variables_attributes_pseudo_and_escapes(resolver: Resolver) -> None:
    text = "s3://${Bucket}/${Key} ${Fn.Arn} ${AWS::Region} ${!Literal}"
    assert resolver.resolve({"Fn::Sub": [text, {"Key": {"Ref": "Env"}}]}) == (
        "s3://st-bucket/dev arn:aws:lambda:eu-west-1:123456789012:function:f eu-west-1 ${Literal}"
    )
    assert resolver.resolve({"Fn::Sub": "cdk-${AWS::AccountId}-${AWS::Region}"}) == "cdk-123456789012-eu-west-1"


def test_select_split_base64_and_nested_structures(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}) == "b"
    assert resolver.resolve({"Fn::Base64": "hi"}) == "aGk="
    document = {"A": [{"Ref": "Bucket"}, {"B": {"Ref": "Env"}}], "N": 3, "T": True}
    assert resolver.resolve(document) == {"A": ["st-bucket", {"B": "dev"}], "N": 3, "T": True}
    with pytest.raises(Unresolvable, match="out of range"):
        resolver.resolve({"Fn::Select": [5, ["a"]]})


def test_join_renders_non_strings_as_cloudformation_does(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::Join": ["", ["n=", 3, " b=", True, " o=", {"Fn::Split": [",", "x"]}]]}) == 'n=3 b=true o=["x"]'


def test_conditions_and_no_value(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::If": ["IsDev", "d", "p"]}) == "d"
    assert resolver.resolve({"Fn::If": ["IsProd", "d", "p"]}) == "p"
    assert resolver.resolve({"Fn::And": [{"Condition": "IsDev"}, {"Fn::Or": [False, True]}]}) is True
    assert resolver.resolve({"K": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]}, "L": [{"Ref": "AWS::NoValue"}, 1]}) == {"L": [1]}
    with pytest.raises(Unresolvable, match="Condition 'Nope'"):
        resolver.condition("Nope")


def test_unknown_references_and_functions_are_named(resolver: Resolver) -> None:
    with pytest.raises(Unresolvable, match="Ref 'Ghost'"):
        resolver.resolve({"Ref": "Ghost"})
    with pytest.raises(Unresolvable, match="Fn::ImportValue: not supported locally"):
        resolver.resolve({"Fn::ImportValue": "x"})


def test_references_and_creation_order_follow_refs_getatt_sub_and_depends_on() -> None:
    resources: dict[str, Any] = {
        "Machine": {"Properties": {"Definition": {"Fn::Sub": ["${Fn.Arn} ${X}", {"X": {"Ref": "Topic"}}]}}},
        "Fn": {"Properties": {"Role": {"Fn::GetAtt": "Role.Arn"}}, "DependsOn": "Policy"},
        "Policy": {"Properties": {"Roles": [{"Ref": "Role"}]}},
        "Role": {"Properties": {"Name": {"Fn::Sub": "${AWS::Region}-${!Skip}"}}},
        "Topic": {},
    }
    assert references(resources["Machine"]["Properties"]) == {"Fn", "Topic"}
    order = creation_order(resources)
    assert order.index("Role") < order.index("Policy") < order.index("Fn") < order.index("Machine")
    assert order.index("Topic") < order.index("Machine")
    with pytest.raises(LocalStackError, match="circular"):
        creation_order({"A": {"Properties": {"Ref": "B"}}, "B": {"Properties": {"Ref": "A"}}})


def test_physical_names_are_lower_case_for_buckets_and_fit_aws_limits() -> None:
    assert physical_name("serverless-mlops-dev", "ArtifactsBucket88671897", BUCKET) == "serverless-mlops-dev-artifactsbucket88671897"
    long = physical_name("serverless-mlops-dev", "Retraining" * 8, FUNCTION)
    assert len(long) == 64
    assert long != physical_name("serverless-mlops-dev", "Retraining" * 9, FUNCTION)


def test_asset_source_reads_the_assembly_manifests(tmp_path: Path) -> None:
    (tmp_path / "asset.abc").mkdir()
    manifest = {"files": {"abc": {"source": {"path": "asset.abc"}}, "gone": {"source": {"path": "/nowhere/at/all"}}}}
    (tmp_path / "st.assets.json").write_text(json.dumps(manifest))
    assert asset_source(tmp_path, "abc.zip") == tmp_path / "asset.abc"
    with pytest.raises(LocalStackError, match="does not exist"):
        asset_source(tmp_path, "gone.zip")
    with pytest.raises(LocalStackError, match="in no"):
        asset_source(tmp_path, "other.zip", owner="Deploy")
    with pytest.raises(LocalStackError, match="cloud assembly"):
        asset_source(None, "abc.zip")


# -- the invoker ------------------------------------------------------------------------------------------------------


@pytest.fixture
def handler_root(tmp_path: Path) -> Iterator[Path]:
    yield write_handler_package(tmp_path)
    forget_handler_package(tmp_path)


def test_call_runs_the_handler_with_its_environment_and_restores_the_process_environment(
    handler_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_STRAY", "from the shell")
    monkeypatch.setenv("MLOPS_BUCKET", "the-shell-bucket")
    invoker = LocalInvoker(code_root=handler_root, endpoint_url="http://127.0.0.1:5999")
    result, errored, _ = invoker.call("localfns.app.lambda_handler", {"MLOPS_BUCKET": "b1"}, {}, lambda_context())
    assert not errored
    assert result["cached_bucket"] == "b1"
    assert result["trace_disabled"] == "1"
    assert result["endpoint"] == "http://127.0.0.1:5999"
    assert result["stray"] is None  # the process's MLOPS_ settings are not the function's
    assert 0 < result["remaining_ms"] <= 3000
    assert os.environ["MLOPS_STRAY"] == "from the shell"
    assert os.environ["MLOPS_BUCKET"] == "the-shell-bucket"
    assert "POWERTOOLS_TRACE_DISABLED" not in os.environ


def test_the_dependency_cache_is_cleared_when_the_environment_changes(handler_root: Path) -> None:
    invoker = LocalInvoker(code_root=handler_root)
    first, _, _ = invoker.call("localfns.app.lambda_handler", {"MLOPS_BUCKET": "b1"}, {}, lambda_context())
    second, _, _ = invoker.call("localfns.app.lambda_handler", {"MLOPS_BUCKET": "b2"}, {}, lambda_context())
    assert (first["cached_bucket"], second["cached_bucket"]) == ("b1", "b2")
    assert first["endpoint"] is None


def test_an_exception_becomes_lambdas_error_document(handler_root: Path) -> None:
    invoker = LocalInvoker(code_root=handler_root)
    result, errored, logs = invoker.call("localfns.app.lambda_handler", {}, {"boom": True}, lambda_context())
    assert errored
    assert result == {"errorType": "KeyError", "errorMessage": "'no such thing'"}
    assert "Traceback" in logs
    for handler, problem in (("nomodule", "expected module.function"), ("localfns.app.not_callable", "no function 'not_callable'")):
        result, errored, _ = invoker.call(handler, {}, {}, lambda_context())
        assert errored
        assert result["errorType"] == "LocalStackError"
        assert problem in result["errorMessage"]


def test_a_handler_without_a_dependency_cache_and_the_context_names(handler_root: Path) -> None:
    source = "def handler(event, context):\n    return [context.log_group_name, context.log_stream_name]\n"
    (handler_root / "localfns" / "plain.py").write_text(source)
    context = lambda_context("plainfn")
    result, errored, _ = LocalInvoker(code_root=handler_root).call("localfns.plain.handler", {}, {}, context)
    assert not errored
    assert result == ["/aws/lambda/plainfn", f"local/{context.aws_request_id}"]
