"""Cold-start, concurrency, architecture and logging options (issue 20), synthesized: each is off by default (dev) and
does what the config asks when it is on (``tuned``: arm64, SnapStart, reserved concurrency on every function, other log
levels; ``prod``: provisioned concurrency with target-tracking autoscaling). And the cost estimate's counts of what the
stack holds at rest (keys, alarms, dashboards) are the template's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.config import ConfigError, load_deployment
from serverless_mlops.cost.usage import Usage
from tests.helpers.specs import ROOT
from tests.helpers.template import HANDLERS, WORKFLOW_HANDLERS, Synth, synthesize

TUNED_CONFIG = f"""
stage: dev
models: [{ROOT}/models/wine.yaml]
architecture: arm64
logging: {{application_level: DEBUG, system_level: INFO}}
inference:
  snap_start: true
  concurrency: {{reserved: 50}}
drift: {{reserved_concurrency: 3}}
quality: {{reserved_concurrency: 1}}
retraining:
  train: {{reserved_concurrency: 2}}
  release: {{reserved_concurrency: 5}}
"""
WINE = f"{ROOT}/models/wine.yaml"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    config = tmp_path_factory.mktemp("tuned") / "tuned.yaml"
    config.write_text(TUNED_CONFIG, encoding="utf-8")
    return synthesize(config, "dev")


def by_handler(synth: Synth) -> dict[str, dict[str, Any]]:
    found = {f["Properties"]["Handler"]: f["Properties"] for f in synth.resources("AWS::Lambda::Function").values()}
    return {name: found[handler] for name, handler in {**HANDLERS, **WORKFLOW_HANDLERS}.items()}


def test_defaults_x86_json_logs_info_and_system_warn_nothing_reserved_no_snapstart(dev: Synth) -> None:
    for name, properties in by_handler(dev).items():
        assert properties["Architectures"] == ["x86_64"], name
        assert properties["LoggingConfig"]["LogFormat"] == "JSON", name
        assert properties["LoggingConfig"]["ApplicationLogLevel"] == "INFO", name
        assert properties["LoggingConfig"]["SystemLogLevel"] == "WARN", name
        assert properties["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "INFO", name
        assert "SnapStart" not in properties, name
        assert "ReservedConcurrentExecutions" not in properties, name
    assert dev.resources("AWS::ApplicationAutoScaling::ScalableTarget") == {}
    ours = [
        layer["Properties"]
        for layer in dev.resources("AWS::Lambda::LayerVersion").values()
        if layer["Properties"].get("Description", "").startswith("serverless-mlops")
    ]
    assert [layer["CompatibleArchitectures"] for layer in ours] == [["x86_64"], ["x86_64"]]


def test_the_tuned_config_reaches_every_function(tuned: Synth) -> None:
    functions = by_handler(tuned)
    for name, properties in functions.items():
        # the training function stays on x86_64: its layer does not fit on arm64 (layers/rules.py X86_ONLY)
        assert properties["Architectures"] == ["x86_64" if name == "training" else "arm64"], name
        assert properties["LoggingConfig"] == {
            "LogFormat": "JSON",
            "ApplicationLogLevel": "DEBUG",
            "SystemLogLevel": "INFO",
            "LogGroup": properties["LoggingConfig"]["LogGroup"],
        }, name
        assert properties["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "DEBUG", name
    reserved = {name: properties.get("ReservedConcurrentExecutions") for name, properties in functions.items()}
    # the release workflow's and batch scoring's functions run only inside their state machines: no option of their own
    workflow_only = {"release_workflow": None, "release_guards": None, "batch_job": None, "batch_score": None}
    assert reserved == {"inference": 50, "drift_check": 3, "quality_check": 1, "training": 2, "release": 5, **workflow_only}
    # SnapStart on the inference function only: its versions are what the live alias serves
    assert functions["inference"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert all("SnapStart" not in properties for name, properties in functions.items() if name != "inference")
    tuned.template.has_resource_properties("AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": Match.absent()})
    # the inference layer is the arm64 build (layers/build/inference-py312-manylinux_2_34_aarch64-…)
    stack = tuned.stack
    assert stack.inference_layer.path.name.split("-")[2] == "manylinux_2_34_aarch64"
    assert stack.training_layer.path.name.split("-")[2] == "manylinux_2_34_x86_64"
    layers = {
        layer["Properties"].get("Description", "").split(":")[0]: layer["Properties"]
        for layer in tuned.resources("AWS::Lambda::LayerVersion").values()
    }
    assert layers["serverless-mlops inference"]["CompatibleArchitectures"] == ["arm64"]
    assert layers["serverless-mlops training"]["CompatibleArchitectures"] == ["x86_64"]


def test_provisioned_concurrency_scales_on_utilization(prod: Synth) -> None:
    (alias_id,) = prod.resources("AWS::Lambda::Alias")
    (target_id, target), *more = prod.resources("AWS::ApplicationAutoScaling::ScalableTarget").items()
    assert more == []
    properties = target["Properties"]
    assert (properties["MinCapacity"], properties["MaxCapacity"]) == (2, 10)
    assert properties["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert properties["ServiceNamespace"] == "lambda"
    assert alias_id in str(properties["ResourceId"])  # function:<name>:live, of the alias the API calls
    (policy,) = prod.resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 0.6
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("architecture: sparc\n", "architecture: Input should be 'x86_64' or 'arm64'"),
        ("logging: {system_level: ERROR}\n", "logging.system_level: Input should be 'DEBUG', 'INFO' or 'WARN'"),
        ("logging: {application_level: VERBOSE}\n", "logging.application_level: Input should be 'TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'"),
        (
            "inference: {snap_start: true, concurrency: {provisioned: 2}}\n",
            "inference: snap_start: Lambda does not combine SnapStart with provisioned concurrency; choose one",
        ),
        (
            "inference: {concurrency: {autoscaling: {min: 1, max: 5}}}\n",
            "inference.concurrency: provisioned: autoscaling moves the provisioned concurrency between 1 and 5; set provisioned",
        ),
        (
            "inference: {concurrency: {provisioned: 3, autoscaling: {min: 4, max: 2}}}\n",
            "inference.concurrency.autoscaling: min: 4 exceeds max (2)",
        ),
        (
            "inference: {concurrency: {reserved: 5, provisioned: 3, autoscaling: {min: 1, max: 8}}}\n",
            "inference.concurrency: autoscaling.max: 8 exceeds reserved (5)",
        ),
        (
            "inference: {concurrency: {provisioned: 1, autoscaling: {min: 1, max: 2, utilization: 1.0}}}\n",
            "inference.concurrency.autoscaling.utilization: Input should be less than 1",
        ),
        ("drift: {reserved_concurrency: 0}\n", "drift.reserved_concurrency: Input should be greater than or equal to 1"),
    ],
)
def test_bad_options_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(f"models: [{WINE}]\n{body}", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid deployment config: ") as raised:
        load_deployment(path)
    assert message in str(raised.value)


def test_the_estimates_stack_counts_are_the_templates(dev: Synth) -> None:
    specs = dev.stack.deployment.specs
    floors = sum(len(spec.quality.floors) for spec in specs)
    usage = Usage(requests=0, estimator="", features=1, models=len(specs), quality_alarms=floors)
    assert floors > 0  # the example specs set quality floors, so their alarms are counted
    assert len(dev.resources("AWS::KMS::Key")) == usage.kms_keys
    assert len(dev.resources("AWS::CloudWatch::Alarm")) == usage.stack_alarms + usage.alarms_per_model * usage.models + floors
    assert len(dev.resources("AWS::CloudWatch::Dashboard")) == usage.dashboards
    # the state machines are STANDARD: transitions are what they bill
    machines = dev.resources("AWS::StepFunctions::StateMachine").values()
    assert len(machines) == 3  # retraining, release, batch scoring
    assert {machine["Properties"].get("StateMachineType", "STANDARD") for machine in machines} == {"STANDARD"}


def test_the_training_layer_is_x86_64_only() -> None:
    from aws_cdk import App, Stack

    from infra.packaging import Layer, PackagingError

    with pytest.raises(PackagingError, match=r"layer 'training' is built for x86_64 only \(layers/rules.py X86_ONLY says why\), not arm64"):
        Layer(Stack(App(), "S"), "L", group="training", architecture="arm64")
    with pytest.raises(PackagingError, match=r"layer 'inference': architecture 'sparc'; choose one of x86_64, arm64"):
        Layer(Stack(App(), "S"), "L", group="inference", architecture="sparc")
