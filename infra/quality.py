"""The scheduled quality checks, as deployed: the quality-check function (functions/quality_check) with its grants,
one EventBridge rule per deployed model (on ``quality.schedule``, else the drift check's schedule) that invokes it
asynchronously with ``{"model", "trigger": "schedule", "time"}``, an alarm per model and floor on ``RealizedMetric``,
and a dashboard row (realized and estimated accuracy or RMSE per model, label coverage, the function's health).

Built under the monitoring construct (infra/monitoring.py), whose topic it publishes to, whose failures queue takes
its failed invocations, and whose dashboard and alarms it joins: logical ids ``MonitoringQualityCheck…``.

Least privilege: the function reads captured predictions (``capture/``, and ``predictions/``: the same rows without
their features, :mod:`serverless_mlops.store.prediction_columns`), ground truth (``ground-truth/``), the
versions' models and profiles (``artifacts/``: the ONNX graph recomputes probabilities, the profile holds the
calibration) and earlier quality reports (``reports/``, the report's time series); it writes reports, alert
markers (and removes a marker whose publish failed) and the newest labelled rows it hands to retraining
(``holdout-recent/``, written only, never read back), reads the registry, publishes to the alert topic and, when the
retraining workflow is connected, starts it. Nothing else.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.packaging import NAMESPACE, Layer, PythonFunction, StackBase
from serverless_mlops.model.quality_spec import QualityMetric
from serverless_mlops.quality.recent_key import HOLDOUT_RECENT_PREFIX

SERVICE = "quality_check"


def realized_metric(model: str, metric: str, statistic: str = "Average") -> cloudwatch.Metric:
    """``RealizedMetric`` as the quality function emits it, on its (model, metric) dimension set (any version)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name="RealizedMetric",
        dimensions_map={"service": SERVICE, "model": model, "metric": metric},
        statistic=statistic,
        period=cdk.Duration.hours(1),
    )


def estimated_metric(model: str, metric: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name="EstimatedMetric",
        dimensions_map={"service": SERVICE, "model": model, "metric": metric},
        statistic="Average",
        period=cdk.Duration.hours(1),
    )


def label_coverage(model: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name="LabelCoverage",
        dimensions_map={"service": SERVICE, "model": model},
        statistic="Average",
        period=cdk.Duration.hours(1),
    )


class QualityChecks:
    """The quality-check function, its schedules, its alarms and its dashboard row, created in ``scope``."""

    def __init__(
        self,
        scope: Construct,
        base: StackBase,
        *,
        layer: Layer,
        topic: sns.ITopic,
        failures: sqs.IQueue,
        dashboard: cloudwatch.Dashboard,
    ) -> None:
        deployment, bucket = base.deployment, base.bucket
        config = deployment.config
        self.topic = topic
        self.handler = PythonFunction(
            scope,
            "QualityCheck",
            function="quality_check",
            description="serverless-mlops quality check: ground truth joined to captured predictions, realized and estimated metrics",
            layers=[layer],
            memory_mb=config.quality.memory_mb,
            timeout=cdk.Duration.seconds(config.quality.timeout_seconds),
            reserved_concurrency=config.quality.reserved_concurrency,
            environment={**base.environment, "POWERTOOLS_SERVICE_NAME": SERVICE, "MLOPS_ALERT_TOPIC_ARN": topic.topic_arn},
            log_retention_days=config.log_retention_days,
            logging=config.logging,
        )
        function = self.handler.function
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(failures), retry_attempts=2, max_event_age=cdk.Duration.hours(6)
        )
        self.handler.grant_objects(
            bucket,
            read=("artifacts", "capture", "predictions", "ground-truth", "reports"),
            put=("reports", "alerts", HOLDOUT_RECENT_PREFIX),
        )
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects("alerts/*")]))
        base.table.grant_read_data(function)
        topic.grant_publish(function)

        self.schedules: dict[str, events.Rule] = {}
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for spec in deployment.specs:
            expression = spec.quality.schedule or spec.drift.schedule
            self.schedules[spec.name] = events.Rule(
                scope,
                f"QualitySchedule-{spec.name}",
                description=f"quality check of {spec.name}: {expression}, window {spec.quality.window}",
                schedule=events.Schedule.expression(expression),
                targets=[
                    targets.LambdaFunction(
                        function,
                        event=events.RuleTargetInput.from_object(
                            {"model": spec.name, "trigger": "schedule", "time": events.EventField.time}
                        ),
                        dead_letter_queue=failures,
                        retry_attempts=2,
                    )
                ],
            )
            for metric, floor in sorted(spec.quality.floors.items()):
                self.alarms[f"Quality-{spec.name}-{metric.value}"] = self._floor_alarm(scope, spec.name, metric, floor)

        headline = {spec.name: "accuracy" if spec.task.is_classification else "rmse" for spec in deployment.specs}
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Quality: realized (labels) and estimated (CBPE)",
                left=[
                    *(realized_metric(n, m).with_(label=f"{n} {m} realized") for n, m in headline.items()),
                    *(estimated_metric(n, m).with_(label=f"{n} {m} estimated") for n, m in headline.items() if m == "accuracy"),
                ],
            ),
            cloudwatch.GraphWidget(title="Label coverage", left=[label_coverage(n).with_(label=n) for n in headline]),
            cloudwatch.GraphWidget(title="Quality checks", left=[function.metric_invocations(), function.metric_errors()]),
        )
        if self.alarms:
            dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Quality alarms", alarms=list(self.alarms.values()), width=24))

    def _floor_alarm(self, scope: Construct, model: str, metric: QualityMetric, floor: float) -> cloudwatch.Alarm:
        """Fires when any version's realized ``metric`` crosses the spec's floor (below; above for error metrics)."""
        operator = cloudwatch.ComparisonOperator
        higher = metric.higher_is_better
        alarm = cloudwatch.Alarm(
            scope,
            f"QualityFloor-{model}-{metric.value}",
            alarm_description=f"{model}: realized {metric.value} {'below' if higher else 'above'} its floor {floor} "
            f"(quality.floors; see reports/{model}/quality/ in the bucket)",
            metric=realized_metric(model, metric.value, "Minimum" if higher else "Maximum"),
            threshold=floor,
            comparison_operator=operator.LESS_THAN_THRESHOLD if higher else operator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no labels yet is not a breach
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        return alarm

    def connect_retraining(self, state_machine: sfn.StateMachine) -> None:
        """Let a breach start the retraining workflow (for specs with ``retrain_on_quality``)."""
        self.handler.function.add_environment("MLOPS_RETRAIN_STATE_MACHINE_ARN", state_machine.state_machine_arn)
        state_machine.grant_start_execution(self.handler.function)
