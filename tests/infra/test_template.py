"""The synthesized template: what every function, route, store and alarm must have, on both stages."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk.assertions import Match

from infra.config import HTTP_API_TIMEOUT_SECONDS, load_deployment
from tests.helpers.template import Synth, as_list, dumps, s3_grants, statements

# The only statements with Resource "*", and why AWS requires it:
#   X-Ray: PutTraceSegments/PutTelemetryRecords have no resource-level permissions (active tracing).
#   KMS key policies: a key policy's Resource is always "*", meaning "this key".
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
#   The state machine: X-Ray tracing (with sampling rules) and CloudWatch Logs' vended-log delivery for its log group.
MACHINE_STAR_ACTIONS = XRAY_ACTIONS | {"xray:GetSamplingRules", "xray:GetSamplingTargets"} | {
    f"logs:{action}"
    for action in ("CreateLogDelivery", "GetLogDelivery", "UpdateLogDelivery", "DeleteLogDelivery", "ListLogDeliveries",
                   "PutResourcePolicy", "DescribeResourcePolicies", "DescribeLogGroups")
}  # fmt: skip


def functions(synth: Synth) -> dict[str, dict]:
    """The app's functions; CDK's own provider for emptying dev buckets on destroy (a short-lived custom resource) aside."""
    return {n: f for n, f in synth.resources("AWS::Lambda::Function").items() if f["Properties"]["Handler"].startswith("functions.")}


def test_every_function_sets_memory_timeout_tracing_and_the_runtime(synth: Synth) -> None:
    # inference, drift check, quality check, training, release; the release workflow's two; batch job, batch score
    assert len(functions(synth)) == 9
    for name, function in functions(synth).items():
        properties = function["Properties"]
        assert properties["MemorySize"] >= 128, name
        assert 1 <= properties["Timeout"] <= 900, name
        assert properties["TracingConfig"] == {"Mode": "Active"}, name
        assert properties["Runtime"] == "python3.12", name
        assert properties["LoggingConfig"]["LogGroup"], name
        assert len(properties["Layers"]) == 1, name


def test_inference_answers_before_the_http_api_gives_up(synth: Synth) -> None:
    (inference,) = [f for f in functions(synth).values() if f["Properties"]["Handler"] == "functions.inference.app.lambda_handler"]
    assert inference["Properties"]["Timeout"] < HTTP_API_TIMEOUT_SECONDS


def test_handlers_and_environment_follow_the_contract(synth: Synth) -> None:
    by_handler = {f["Properties"]["Handler"]: f["Properties"]["Environment"]["Variables"] for f in functions(synth).values()}
    inference = by_handler["functions.inference.app.lambda_handler"]
    drift = by_handler["functions.drift_check.app.lambda_handler"]
    for env in (inference, drift):
        assert {"MLOPS_BUCKET", "MLOPS_TABLE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"} <= set(env)
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ServerlessMlops"
    models = [spec.name for spec in synth.stack.deployment.specs]
    assert inference["MLOPS_MODELS"] == ",".join(models)
    assert inference["POWERTOOLS_SERVICE_NAME"] == "inference"
    assert drift["POWERTOOLS_SERVICE_NAME"] == "drift_check"
    assert "Ref" in drift["MLOPS_ALERT_TOPIC_ARN"]
    machine_id = synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    assert drift["MLOPS_RETRAIN_STATE_MACHINE_ARN"] == {"Ref": machine_id}  # drift may start retraining (retrain_on_drift)


def _is_default_key_admin(kind: str, statement: dict) -> bool:
    """KMS's default key policy: the account (root) administers its key through IAM, else the key becomes unmanageable."""
    return kind == "AWS::KMS::Key" and statement["Action"] == "kms:*" and ":root" in dumps(statement["Principal"])


def test_no_statement_allows_every_action(synth: Synth) -> None:
    for name, kind, statement in statements(synth):
        if statement["Effect"] != "Allow" or _is_default_key_admin(kind, statement):
            continue
        for action in as_list(statement.get("Action", [])):
            assert not action.endswith("*") or action.rstrip("*")[-1:] not in ("", ":"), (name, statement)


def test_resource_star_only_where_aws_requires_it(synth: Synth) -> None:
    for name, kind, statement in statements(synth):
        if statement["Effect"] != "Allow" or "*" not in as_list(statement.get("Resource", [])):
            continue
        if kind == "AWS::KMS::Key":
            continue  # a key policy's Resource is always "*" (this key)
        machines = (
            "RetrainingStateMachineRoleDefaultPolicy",
            "ReleaseStateMachineRoleDefaultPolicy",
            "BatchStateMachineRoleDefaultPolicy",
        )
        allowed = MACHINE_STAR_ACTIONS if name.startswith(machines) else XRAY_ACTIONS
        if name.startswith("ReleaseGuardReads"):
            allowed = {"cloudwatch:GetMetricData"}  # CheckGuards' metric reads: no resource-level permissions
        assert set(as_list(statement["Action"])) <= allowed, (name, statement)


def test_only_the_retraining_workflow_may_write_the_registry(synth: Synth) -> None:
    writers = set()
    for name, _kind, statement in statements(synth):
        actions = as_list(statement.get("Action", []))
        if [a for a in actions if a.startswith("dynamodb:") and not a.startswith(("dynamodb:Get", "dynamodb:Query", "dynamodb:Scan",
            "dynamodb:BatchGet", "dynamodb:Describe", "dynamodb:ConditionCheck"))]:  # fmt: skip
            writers.add(name.split("RoleDefaultPolicy")[0] if "RoleDefaultPolicy" in name else name[:-8])  # ManagedPolicy: no hash
    # training: its lock (retraining table, LOCK# items only); release: versions, aliases, approvals; people's managed
    # policies: approvers (APPROVAL# items), releasers (aliases). tests/infra/test_approvals_iam.py checks each table
    # the release workflow (issue 17): its function (canary, promotion; RELEASE# lock items), CheckGuards (clears the
    # canary on a breach) and the release operators' policy (abort: the lock's mark, the canary); tests/infra/test_release.py
    assert writers == {
        "RetrainingTraining", "RetrainingRelease", "RetrainingApproverPolicy", "RetrainingReleaserPolicy",
        "ReleaseWorkflow", "ReleaseGuards", "ReleaseOperatorPolicy",
    }  # fmt: skip


def test_inference_reads_artifacts_and_writes_only_captures_and_labels(synth: Synth) -> None:
    grants = s3_grants(synth, "InferenceHandlerRoleDefaultPolicy")
    assert set(grants) == {"/artifacts/*", "/capture/*", "/predictions/*", "/ground-truth/*"}
    assert "s3:PutObject" not in grants["/artifacts/*"]
    for written in ("/capture/*", "/predictions/*", "/ground-truth/*"):  # written, never read back: a caller cannot read others' labels
        assert "s3:PutObject" in grants[written]
        assert not {a for a in grants[written] if a.startswith(("s3:Get", "s3:Delete"))}


def test_drift_reads_artifacts_and_captures_and_writes_reports_and_alerts(synth: Synth) -> None:
    grants = s3_grants(synth, "MonitoringDriftCheckRoleDefaultPolicy")
    assert set(grants) == {"/artifacts/*", "/capture/*", "/reports/*", "/alerts/*"}
    assert all("s3:PutObject" not in grants[p] for p in ("/artifacts/*", "/capture/*"))
    assert all("s3:PutObject" in grants[p] for p in ("/reports/*", "/alerts/*"))
    # only an alert marker whose publish failed may be removed, so a retried window can still alert
    assert [p for p, actions in grants.items() if any(a.startswith("s3:Delete") for a in actions)] == ["/alerts/*"]
    assert {a for a in grants["/alerts/*"] if a.startswith("s3:Delete")} == {"s3:DeleteObject"}


def test_every_route_is_authorized(dev: Synth, prod: Synth) -> None:
    for synth, kind in ((dev, "AWS_IAM"), (prod, "JWT")):
        routes = synth.resources("AWS::ApiGatewayV2::Route")
        assert routes
        for route in routes.values():
            assert route["Properties"]["AuthorizationType"] == kind
        # the function routes every path itself (predict, labels, V2): one authorized proxy route serves them all
        assert {route["Properties"]["RouteKey"] for route in routes.values()} == {"ANY /{proxy+}"}
    prod.template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "JwtConfiguration": {"Audience": ["client-one"], "Issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"},
        },
    )
    for route in prod.resources("AWS::ApiGatewayV2::Route").values():
        assert "AuthorizerId" in route["Properties"]


def test_stage_logs_access_and_throttles_by_default(dev: Synth, prod: Synth) -> None:
    for synth, (rate, burst) in ((dev, (100, 200)), (prod, (10, 20))):
        (stage,) = synth.resources("AWS::ApiGatewayV2::Stage").values()
        properties = stage["Properties"]
        assert properties["DefaultRouteSettings"] == {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}
        assert "$context.requestId" in json.loads(properties["AccessLogSettings"]["Format"]).values()
        assert "Fn::GetAtt" in properties["AccessLogSettings"]["DestinationArn"]


def test_concurrency_comes_from_the_config(dev: Synth, prod: Synth) -> None:
    dev.template.has_resource_properties("AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": Match.absent()})
    prod.template.has_resource_properties(
        "AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 2}}
    )
    prod.template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "functions.inference.app.lambda_handler", "ReservedConcurrentExecutions": 20}
    )
    # the API calls the alias, so provisioned environments serve the requests
    (integration,) = prod.resources("AWS::ApiGatewayV2::Integration").values()
    (alias_id,) = prod.resources("AWS::Lambda::Alias")
    assert integration["Properties"]["IntegrationUri"] == {"Ref": alias_id}


def test_topic_and_queue_are_encrypted_and_ssl_only(synth: Synth) -> None:
    (topic,) = synth.resources("AWS::SNS::Topic").values()
    assert "Fn::GetAtt" in topic["Properties"]["KmsMasterKeyId"]
    synth.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    (queue,) = synth.resources("AWS::SQS::Queue").values()
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    for kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy"):
        for policy in synth.resources(kind).values():
            denies = [
                s
                for s in policy["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            ]
            assert denies, (kind, policy)
    synth.template.has_resource_properties("AWS::DynamoDB::GlobalTable", {"SSESpecification": {"SSEEnabled": True}})


def test_a_schedule_and_a_drift_alarm_per_model_from_its_spec(synth: Synth) -> None:
    specs = synth.stack.deployment.specs
    rules = {name: r for name, r in synth.resources("AWS::Events::Rule").items() if name.startswith("MonitoringSchedule")}
    assert len(rules) == len(specs)  # the quality schedules: tests/infra/test_quality.py
    for spec in specs:
        (rule,) = [r for r in rules.values() if r["Properties"]["ScheduleExpression"] == spec.drift.schedule and spec.name in dumps(r)]
        (target,) = rule["Properties"]["Targets"]
        transformer = target["InputTransformer"]
        assert transformer["InputPathsMap"] == {"time": "$.time"}
        assert json.loads(transformer["InputTemplate"].replace("<time>", '"T"')) == {"model": spec.name, "trigger": "schedule", "time": "T"}
        assert "DeadLetterConfig" in target
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
        synth.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": "DatasetDrift",
                "Namespace": "ServerlessMlops",
                "Dimensions": Match.array_equals([{"Name": "model", "Value": spec.name}, {"Name": "service", "Value": "drift_check"}]),
                "AlarmActions": [Match.any_value()],
            },
        )


def test_alarms_for_errors_latency_model_loads_and_failures(synth: Synth) -> None:
    limits = synth.stack.deployment.config.alarms
    alarms = list(synth.resources("AWS::CloudWatch::Alarm").values())
    floors = sum(len(spec.quality.floors) for spec in synth.stack.deployment.specs)
    # the API's, drift per model, the retraining workflow's, the release workflow's (tests/infra/test_release.py), quality floors
    assert len(alarms) == 4 + len(synth.stack.deployment.specs) + 3 + 4 + 5 + floors
    assert all(a["Properties"]["AlarmActions"] for a in alarms)
    (rate,) = [a for a in alarms if "Metrics" in a["Properties"]]
    assert rate["Properties"]["Threshold"] == limits.error_rate_percent
    assert {m["Id"] for m in rate["Properties"]["Metrics"]} >= {"errors", "requests"}
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in rate["Properties"]["Metrics"] if "MetricStat" in m} == {"5xx", "Count"}
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Latency", "ExtendedStatistic": "p99", "Threshold": limits.latency_p99_ms}
    )
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "ModelLoadFailures", "Namespace": "ServerlessMlops", "Dimensions": [{"Name": "service", "Value": "inference"}]},
    )
    synth.template.has_resource_properties("AWS::CloudWatch::Alarm", {"MetricName": "ApproximateNumberOfMessagesVisible"})
    synth.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_the_retraining_workflow_and_its_functions_are_watched_by_alarms(synth: Synth) -> None:
    """A machine-level timeout ends the workflow before any Notify state: only an alarm can tell someone."""
    machine = synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    topic = next(iter(synth.resources("AWS::SNS::Topic")))
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        synth.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": "AWS/States",
                "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": machine}}],
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "AlarmActions": [{"Ref": topic}],
            },
        )
    for function in (synth.stack.retraining.training.function, synth.stack.retraining.release.function):
        name = synth.stack.resolve(function.function_name)
        for metric in ("Errors", "Throttles"):
            synth.template.has_resource_properties(
                "AWS::CloudWatch::Alarm",
                {"MetricName": metric, "Namespace": "AWS/Lambda", "Dimensions": [{"Name": "FunctionName", "Value": name}], "Threshold": 1},
            )


def test_a_deployment_that_alerts_nobody_is_warned_at_synth(dev: Synth, prod: Synth) -> None:
    from aws_cdk.assertions import Annotations

    warning = Match.string_like_regexp("alerts subscribes nobody, so drift alerts and alarms reach no one")
    Annotations.from_stack(dev.stack).has_warning("*", warning)
    Annotations.from_stack(prod.stack).has_no_warning("*", warning)


def test_failed_asynchronous_drift_checks_land_in_the_failures_queue(synth: Synth) -> None:
    (queue_id,) = synth.resources("AWS::SQS::Queue")
    synth.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}},
        },
    )


def test_alert_subscriptions_come_from_the_config(dev: Synth, prod: Synth) -> None:
    dev.template.resource_count_is("AWS::SNS::Subscription", 0)
    subscriptions = prod.resources("AWS::SNS::Subscription")
    protocols = sorted(s["Properties"]["Protocol"] for s in subscriptions.values())
    assert protocols == ["email", "https", "sqs"]
    assert all("RedrivePolicy" in s["Properties"] for s in subscriptions.values())


def test_outputs_have_stable_names(synth: Synth) -> None:
    outputs = synth.raw["Outputs"]
    assert {"ApiUrl", "AlertTopicArn", "ArtifactBucketName", "RegistryTableName"} <= set(outputs)
    stack_name = synth.stack.stack_name
    for name in ("ApiUrl", "AlertTopicArn", "ArtifactBucketName", "RegistryTableName"):
        assert outputs[name]["Export"]["Name"] == f"{stack_name}-{name}"


def test_the_shipped_config_deploys_every_example_model() -> None:
    deployment = load_deployment()
    assert [spec.name for spec in deployment.specs] == ["breast-cancer", "wine", "diabetes"]
    assert deployment.config.auth.mode == "iam"


def test_alarms_watch_the_metrics_and_services_the_handlers_emit() -> None:
    """The alarm dimensions are the handlers' service names (powertools adds them); the metric names are theirs."""
    from infra.drift import SERVICE as DRIFT
    from infra.inference import SERVICE as INFERENCE

    root = Path(__file__).resolve().parents[2]
    inference = (root / "functions/inference/telemetry.py").read_text(encoding="utf-8")
    drift = (root / "functions/drift_check/app.py").read_text(encoding="utf-8")
    assert f'observability("{INFERENCE}")' in inference
    assert '"ModelLoadFailures"' in inference
    assert f'observability("{DRIFT}")' in drift
    assert '"DatasetDrift"' in drift
