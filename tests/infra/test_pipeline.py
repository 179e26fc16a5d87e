"""The deploy pipeline (``-c pipeline=true``, infra/pipeline.py) as synthesized from infra/pipeline.yaml: source →
synth (lint, test, synth) → self-mutation → each stage in order, an approval before the stage that asks, the model gate
and the smoke test after each; the artifact store encrypted with a rotated key; cdk-nag clean. And the pipeline
config's mistakes, each one line naming the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.app import ServerlessMlopsStack, build_app
from infra.config import ConfigError, merged
from infra.github_oidc import GITHUB_STACK
from infra.pipeline import PIPELINE_STACK, PipelineStack
from infra.stages import DEFAULT_PIPELINE_CONFIG, GITHUB_ROLE_NAME, load_pipeline
from tests.helpers.template import NO_STAGING
from tests.infra.test_checks import KNOWN_WARNINGS, _plugin_reports


@dataclass
class PipelineSynth:
    stack: PipelineStack
    raw: dict[str, Any]
    assembly_dir: Path
    stage_templates: dict[str, dict[str, Any]]  # stack name → template

    def resources(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.raw["Resources"].items() if r["Type"] == kind}

    def stages(self) -> list[dict[str, Any]]:
        ((_, pipeline),) = self.resources("AWS::CodePipeline::Pipeline").items()
        return pipeline["Properties"]["Stages"]  # type: ignore[no-any-return]

    def stage(self, name: str) -> dict[str, Any]:
        (found,) = [stage for stage in self.stages() if stage["Name"] == name]
        return found

    def commands(self, project: dict[str, Any]) -> list[str]:
        """Every command of a CodeBuild project's inline buildspec, phase by phase."""
        spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
        return [command for phase in spec["phases"].values() for command in phase.get("commands", [])]

    def project_of(self, action: dict[str, Any]) -> dict[str, Any]:
        return self.raw["Resources"][action["Configuration"]["ProjectName"]["Ref"]]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def pipeline() -> PipelineSynth:
    app = build_app(context={**NO_STAGING, "pipeline": "true"})
    stack = app.node.find_child(PIPELINE_STACK)
    assert isinstance(stack, PipelineStack)
    assembly = app.synth()  # the cdk-nag plugins raise on any unacknowledged finding, in the pipeline and in each stage
    templates = {s.stack_name: s.template for s in assembly.stacks_recursively}
    return PipelineSynth(stack, templates[PIPELINE_STACK], Path(assembly.directory), templates)


def test_source_synth_self_mutation_then_each_stage_in_order(pipeline: PipelineSynth) -> None:
    names = [stage["Name"] for stage in pipeline.stages()]
    assert names[:3] == ["Source", "Build", "UpdatePipeline"], names
    assert [name for name in names if name in ("Dev", "Prod")] == ["Dev", "Prod"]
    assert names.index("Dev") < names.index("Prod")
    (source,) = pipeline.stage("Source")["Actions"]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    config = load_pipeline().config
    assert source["Configuration"]["ConnectionArn"] == config.source.connection_arn
    assert source["Configuration"]["FullRepositoryId"] == config.source.repository
    assert source["Configuration"]["BranchName"] == config.source.branch
    (mutate,) = pipeline.stage("UpdatePipeline")["Actions"]
    assert "cdk -a . deploy" in " ".join(pipeline.commands(pipeline.project_of(mutate)))


def test_codebuild_runs_lint_test_and_synth_with_the_layers(pipeline: PipelineSynth) -> None:
    (synth,) = pipeline.stage("Build")["Actions"]
    project = pipeline.project_of(synth)
    commands = pipeline.commands(project)
    assert commands == ["make install", "make lint", "make test", "make synth PIPELINE=true"]
    spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "22"}
    assert spec["artifacts"]["base-directory"] == "cdk.out"


def actions_by_order(stage: dict[str, Any]) -> list[tuple[int, str, str]]:
    return sorted((action["RunOrder"], action["Name"], action["ActionTypeId"]["Provider"]) for action in stage["Actions"])


def test_approval_before_prod_only_and_the_checks_after_each_stage(pipeline: PipelineSynth) -> None:
    dev, prod = actions_by_order(pipeline.stage("Dev")), actions_by_order(pipeline.stage("Prod"))
    assert not [action for action in dev if action[2] == "Manual"]
    assert prod[0][1:] == ("Approve-prod", "Manual"), prod
    for stage, actions in (("dev", dev), ("prod", prod)):
        deploy = max(order for order, _, provider in actions if provider == "CloudFormation")
        (gate,) = [order for order, name, _ in actions if name == "ModelGate"]
        (smoke,) = [order for order, name, _ in actions if name == "Smoke"]
        assert deploy < gate < smoke, (stage, actions)
        by_name = {action["Name"]: action for action in pipeline.stage(stage.capitalize())["Actions"]}
        assert by_name[f"serverless-mlops-{stage}.Deploy"]["Configuration"]["StackName"] == f"serverless-mlops-{stage}"
        region = "us-east-1"
        assert pipeline.commands(pipeline.project_of(by_name["Smoke"]))[-1] == (
            f".venv/bin/mlops --region {region} smoke --stack serverless-mlops-{stage}"
        )
        assert pipeline.commands(pipeline.project_of(by_name["ModelGate"]))[-1] == (
            f".venv/bin/mlops --region {region} retrain-if-changed --stack serverless-mlops-{stage}"
        )


def test_artifacts_are_encrypted_with_a_rotated_key(pipeline: PipelineSynth) -> None:
    ((_, resource),) = pipeline.resources("AWS::CodePipeline::Pipeline").items()
    store = resource["Properties"]["ArtifactStore"]
    assert store["EncryptionKey"]["Type"] == "KMS"
    key_id = store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]
    assert pipeline.raw["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    (bucket,) = pipeline.resources("AWS::S3::Bucket").values()
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_cdk_nag_found_nothing_unacknowledged(pipeline: PipelineSynth) -> None:
    report = json.loads((pipeline.assembly_dir / "validation-report.json").read_text(encoding="utf-8"))
    plugins = _plugin_reports(report)
    assert {"AwsSolutions", "Serverless"} <= {plugin["pluginName"] for plugin in plugins}
    for plugin in plugins:
        if plugin["pluginName"] in ("AwsSolutions", "Serverless"):
            assert plugin["violations"] == [], plugin["pluginName"]
        else:  # the stages' own warning: the shipped deployment.yaml subscribes nobody to alerts
            assert {(v["ruleName"], v["severity"]) for v in plugin["violations"]} <= {(rule, "warning") for rule in KNOWN_WARNINGS}


def test_each_stage_is_its_stack_in_its_account_with_its_overrides(pipeline: PipelineSynth) -> None:
    config = load_pipeline().config
    for stage in config.stages:
        deploy = pipeline.stack.stages[[s.name for s in config.stages].index(stage.name)]
        assert isinstance(deploy.stack, ServerlessMlopsStack)
        assert (deploy.stack.stack_name, deploy.stack.account, deploy.stack.region) == (
            f"serverless-mlops-{stage.name}",
            stage.account,
            stage.region,
        )
        assert deploy.stack.deployment.stage == stage.name
    refresh = {
        name: function["Properties"]["Environment"]["Variables"]["MLOPS_REFRESH_SECONDS"]
        for name, template in pipeline.stage_templates.items()
        if name != PIPELINE_STACK
        for function in template["Resources"].values()
        if function["Type"] == "AWS::Lambda::Function"
        and "MLOPS_REFRESH_SECONDS" in function["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert refresh == {"serverless-mlops-dev": "5", "serverless-mlops-prod": "30"}  # deployment.yaml's 5; prod's override


# -- the config ---------------------------------------------------------------------------------------------------------


def write_config(tmp_path: Path, change: dict[str, Any]) -> Path:
    import yaml

    document = merged(yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text(encoding="utf-8")), change)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


PROD = {"name": "prod", "account": "222222222222", "region": "eu-west-1"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {"connection_arn": "arn:aws:iam::1:role/x"}}, "source.connection_arn: expected a CodeConnections ARN"),
        ({"account": "12345"}, "account: String should match pattern"),
        ({"stages": [PROD, PROD]}, "each stage may appear once; repeated: prod"),
        ({"stages": [{**PROD, "name": "qa"}]}, "stages[0] (qa).name: Input should be 'dev' or 'prod'"),
        ({"stages": [{**PROD, "overrides": {"stage": "dev"}}]}, "stages[0] (prod).overrides: 'stage' comes from the stage's name"),
        ({"stages": []}, "stages: List should have at least 1 item"),
        ({"github": {"repository": "org/repo", "ref": "main"}}, "github.ref: String should match pattern"),
    ],
)
def test_a_wrong_pipeline_config_names_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = write_config(tmp_path, change)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert str(caught.value).startswith(f"{path}: invalid pipeline config: ")
    assert message in str(caught.value), str(caught.value)


def test_a_wrong_override_names_the_stage_and_the_deployment_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"stages": [{**PROD, "overrides": {"inference": {"timeout_seconds": 99}}}]})
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: stages[0] (prod): "), message
    assert "inference.timeout_seconds: Input should be less than 30" in message


def test_overrides_merge_mappings_key_by_key_and_replace_the_rest(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"stages": [{**PROD, "overrides": {"inference": {"memory_mb": 2048}, "alerts": []}}]})
    deployment = load_pipeline(path).deployments["prod"]
    assert deployment.stage == "prod"
    assert deployment.config.inference.memory_mb == 2048
    assert deployment.config.inference.refresh_seconds == 5  # the rest of inference: deployment.yaml's
    assert merged({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_a_missing_or_broken_pipeline_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pipeline config not found"):
        load_pipeline(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- one\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_pipeline(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(tmp_path / "bad.yaml")


# -- GitHub Actions: the OIDC role (-c github=true) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def github() -> tuple[dict[str, Any], Path, list[str]]:
    """The GitHub role's template, the assembly directory, and the nested assemblies (one per stage)."""
    app = build_app(context={**NO_STAGING, "github": "true"})
    assembly = app.synth()  # cdk-nag: raises on any unacknowledged finding
    (stack,) = [s for s in assembly.stacks_recursively if s.stack_name == GITHUB_STACK]
    nested = sorted(path.name for path in Path(assembly.directory).glob("assembly-*"))
    return stack.template, Path(assembly.directory), nested


def test_the_github_role_trusts_one_repository_and_ref_only(github: tuple[dict[str, Any], Path, list[str]]) -> None:
    template, _, _ = github
    config = load_pipeline().config
    assert config.github is not None
    (provider,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::OIDCProvider"]
    assert provider["Properties"] == {"ClientIdList": ["sts.amazonaws.com"], "Url": "https://token.actions.githubusercontent.com"}
    (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["RoleName"] == GITHUB_ROLE_NAME
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    repository, ref = config.github.repository, config.github.ref
    assert statement["Condition"] == {  # StringEquals only: no StringLike, no wildcard
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": [f"repo:{repository}:ref:{ref}"]
            + [f"repo:{repository}:environment:{stage.name}" for stage in config.stages],
        }
    }
    assert "*" not in json.dumps(statement)
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    assumed = policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert assumed["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert all(re.fullmatch(r"arn:aws:iam::\d{12}:role/cdk-hnb659fds-[a-z-]+-role-\d{12}-[a-z0-9-]+", arn) for arn in assumed["Resource"])


def test_the_github_app_has_each_stage_as_an_assembly_and_is_nag_clean(github: tuple[dict[str, Any], Path, list[str]]) -> None:
    _, directory, nested = github
    assert nested == ["assembly-Dev", "assembly-Prod"]  # what the workflow's deploy jobs deploy
    report = json.loads((directory / "validation-report.json").read_text(encoding="utf-8"))
    for plugin in _plugin_reports(report):
        if plugin["pluginName"] in ("AwsSolutions", "Serverless"):
            assert plugin["violations"] == [], plugin["pluginName"]


def test_github_needs_the_github_section(tmp_path: Path) -> None:
    import yaml

    document = yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text(encoding="utf-8"))
    del document["github"]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"github: -c github=true needs the github section"):
        build_app(context={**NO_STAGING, "github": "true", "pipeline_config": str(path)})


# -- a stage in another account ---------------------------------------------------------------------------------------

OTHER = "222222222222"


@pytest.fixture(scope="module")
def cross_account(tmp_path_factory: pytest.TempPathFactory) -> PipelineSynth:
    """The pipeline with prod in another account than the pipeline's."""
    path = write_config(tmp_path_factory.mktemp("cross"), {})
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["stages"][1]["account"] = OTHER
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    app = build_app(context={**NO_STAGING, "pipeline": "true", "pipeline_config": str(path)})
    stack = app.node.find_child(PIPELINE_STACK)
    assert isinstance(stack, PipelineStack)
    assembly = app.synth()  # cdk-nag on the pipeline, both stages and prod's checks stack
    templates = {s.stack_name: s.template for s in assembly.stacks_recursively}
    return PipelineSynth(stack, templates[PIPELINE_STACK], Path(assembly.directory), templates)


def test_a_stage_in_another_account_is_checked_through_its_own_checks_role(cross_account: PipelineSynth) -> None:
    assert set(cross_account.stage_templates) == {
        PIPELINE_STACK,
        "serverless-mlops-dev",
        "serverless-mlops-prod",
        "serverless-mlops-prod-checks",
    }
    dev, prod = cross_account.stack.stages
    assert dev.checks is None
    assert prod.checks is not None
    assert (prod.checks.account, prod.checks.stack_name) == (OTHER, "serverless-mlops-prod-checks")
    checks = cross_account.stage_templates["serverless-mlops-prod-checks"]
    (role,) = [r for r in checks["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["RoleName"] == "serverless-mlops-prod-checks"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {
        "ArnLike": {
            "aws:PrincipalArn": [
                "arn:aws:iam::111111111111:role/serverless-mlops-pipeline-*",
                f"arn:aws:iam::111111111111:role/{GITHUB_ROLE_NAME}",
            ]
        }
    }
    by_name = {action["Name"]: action for action in cross_account.stage("Prod")["Actions"]}
    commands = cross_account.commands(cross_account.project_of(by_name["Smoke"]))
    assert commands == [
        "make install",
        "aws configure set profile.stage-checks.role_arn arn:aws:iam::222222222222:role/serverless-mlops-prod-checks",
        "aws configure set profile.stage-checks.credential_source EcsContainer",
        "AWS_PROFILE=stage-checks .venv/bin/mlops --region us-east-1 smoke --stack serverless-mlops-prod",
    ]
    # the step's role may assume that role (and use the pipeline's artifacts), not call prod's resources itself
    granted = json.dumps(cross_account.raw["Resources"])
    assert "arn:aws:iam::222222222222:role/serverless-mlops-prod-checks" in granted
    assert ":222222222222:function:" not in granted
    dev_commands = cross_account.commands(cross_account.project_of({a["Name"]: a for a in cross_account.stage("Dev")["Actions"]}["Smoke"]))
    assert dev_commands == ["make install", ".venv/bin/mlops --region us-east-1 smoke --stack serverless-mlops-dev"]


def test_the_github_role_can_use_an_existing_provider() -> None:
    import aws_cdk as cdk

    from infra.github_oidc import GithubStack

    config = load_pipeline().config
    config = config.model_copy(update={"github": config.github.model_copy(update={"create_provider": False})})  # type: ignore[union-attr]
    app = cdk.App()
    stack = GithubStack(app, "github", config=config)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::OIDCProvider"]
    (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Federated"]
    assert principal == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::111111111111:oidc-provider/token.actions.githubusercontent.com"]]
    }


def test_pipeline_and_github_together_hold_the_stages_in_the_pipeline() -> None:
    app = build_app(context={**NO_STAGING, "pipeline": "true", "github": "true"}, nag=False)
    assert {child.node.id for child in app.node.children} >= {PIPELINE_STACK, GITHUB_STACK}
    assert not {"Dev", "Prod"} & {child.node.id for child in app.node.children}  # no second copy of the stages


def test_an_unreadable_pipeline_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the pipeline config"):
        load_pipeline(tmp_path)  # a directory
