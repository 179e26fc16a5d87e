"""The quality check as deployed: least privilege (reads capture, ground truth, models and reports; writes reports, alert
markers and the newest labelled rows for retraining; reads the registry; publishes alerts; starts retraining; nothing
else), a schedule per model, an alarm per model and floor, a dashboard row."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from tests.helpers.template import Synth, as_list, dumps, policy_statements, s3_grants


def _actions(synth: Synth) -> set[str]:
    return {action for statement in policy_statements(synth, "quality_check") for action in as_list(statement["Action"])}


def test_quality_reads_captures_ground_truth_models_and_reports_and_writes_reports_and_alerts(synth: Synth) -> None:
    grants = s3_grants(synth, "MonitoringQualityCheckRoleDefaultPolicy")
    reads = {"/artifacts/*", "/capture/*", "/predictions/*", "/ground-truth/*"}
    assert set(grants) == reads | {"/reports/*", "/alerts/*", "/holdout-recent/*"}
    for read_only in ("/artifacts/*", "/capture/*", "/predictions/*", "/ground-truth/*"):
        assert not {a for a in grants[read_only] if a.startswith(("s3:Put", "s3:Delete"))}, read_only
    assert all("s3:PutObject" in grants[p] for p in ("/reports/*", "/alerts/*"))
    assert [p for p, actions in grants.items() if any(a.startswith("s3:Delete") for a in actions)] == ["/alerts/*"]
    assert {a for a in grants["/alerts/*"] if a.startswith("s3:Delete")} == {"s3:DeleteObject"}


def test_quality_may_do_nothing_else(synth: Synth) -> None:
    services = {action.split(":")[0] for action in _actions(synth)}
    assert services <= {"s3", "kms", "dynamodb", "sns", "states", "sqs", "xray", "logs"}
    assert {a for a in _actions(synth) if a.startswith("dynamodb:")} <= {
        "dynamodb:BatchGetItem",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:Scan",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DescribeTable",
    }  # read only: the registry
    assert {a for a in _actions(synth) if a.startswith("sns:")} == {"sns:Publish"}
    assert {a for a in _actions(synth) if a.startswith("states:")} == {"states:StartExecution"}
    # a failed asynchronous invocation goes to the failures queue (Lambda's on-failure destination: grant_send_messages)
    assert {a for a in _actions(synth) if a.startswith("sqs:")} == {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    assert not {a for a in _actions(synth) if a.startswith("lambda:") or a.startswith("iam:")}


def test_a_quality_schedule_per_model_from_its_spec(synth: Synth) -> None:
    specs = synth.stack.deployment.specs
    (function_id,) = [n for n, f in synth.resources("AWS::Lambda::Function").items() if "QualityCheck" in n]
    rules = [r for r in synth.resources("AWS::Events::Rule").values() if function_id in dumps(r["Properties"]["Targets"])]
    assert len(rules) == len(specs)
    for spec in specs:
        (rule,) = [r for r in rules if json.dumps(spec.name) in r["Properties"]["Targets"][0]["InputTransformer"]["InputTemplate"]]
        assert rule["Properties"]["ScheduleExpression"] == (spec.quality.schedule or spec.drift.schedule)
        (target,) = rule["Properties"]["Targets"]
        assert "DeadLetterConfig" in target


def test_an_alarm_per_model_and_floor_and_a_dashboard_row(synth: Synth) -> None:
    specs = synth.stack.deployment.specs
    alarms = [a for name, a in synth.resources("AWS::CloudWatch::Alarm").items() if name.startswith("MonitoringQualityFloor")]
    assert len(alarms) == sum(len(spec.quality.floors) for spec in specs)
    for spec in specs:
        for metric, floor in spec.quality.floors.items():
            synth.template.has_resource_properties(
                "AWS::CloudWatch::Alarm",
                {
                    "MetricName": "RealizedMetric",
                    "Namespace": "ServerlessMlops",
                    "Threshold": floor,
                    "Dimensions": Match.array_equals(
                        [
                            {"Name": "metric", "Value": metric.value},
                            {"Name": "model", "Value": spec.name},
                            {"Name": "service", "Value": "quality_check"},
                        ]
                    ),
                    "ComparisonOperator": "LessThanThreshold" if metric.higher_is_better else "GreaterThanThreshold",
                    "AlarmActions": [Match.any_value()],
                },
            )
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body: Any = dumps(dashboard["Properties"]["DashboardBody"])
    assert "Quality: realized (labels) and estimated (CBPE)" in body
    assert "RealizedMetric" in body
    assert "EstimatedMetric" in body
    assert "LabelCoverage" in body


def test_recent_labelled_rows_are_written_by_quality_only_and_read_by_training_only(synth: Synth) -> None:
    # the quality check writes holdout-recent/ and never reads it back; the training function (Evaluate) reads it and
    # never writes it; no other function touches it (PrepareData's feedback/ is a different prefix: no training on it)
    quality = s3_grants(synth, "MonitoringQualityCheckRoleDefaultPolicy")["/holdout-recent/*"]
    assert quality == {"s3:PutObject"}
    training = s3_grants(synth, "RetrainingTrainingRoleDefaultPolicy")["/holdout-recent/*"]
    assert training == {"s3:GetObject*"}
    others = [
        name
        for name, policy in synth.resources("AWS::IAM::Policy").items()
        if "holdout-recent" in dumps(policy) and not name.startswith(("MonitoringQualityCheckRole", "RetrainingTrainingRole"))
    ]
    assert others == []
    # listing is limited to the prefixes each reads: quality may not list holdout-recent/, training may
    listing = [s for s in policy_statements(synth, "quality_check") if s["Action"] == "s3:ListBucket"]
    assert listing
    assert all("holdout-recent/*" not in dumps(s["Condition"]) for s in listing)
    training_listing = [s for s in policy_statements(synth, "training") if s["Action"] == "s3:ListBucket"]
    assert any("holdout-recent/*" in dumps(s["Condition"]) for s in training_listing)
