"""The scheduled drift checks, as deployed: the drift-check function (functions/drift_check) with its grants, and one
EventBridge rule per deployed model, on the schedule its spec gives (``drift.schedule``), that invokes it
asynchronously with ``{"model", "trigger": "schedule", "time"}``.

Built under the monitoring construct (infra/monitoring.py), whose topic it publishes alerts to and whose failures queue
takes its failed invocations and undeliverable schedule events, so its logical ids are ``MonitoringDriftCheck…`` and
``MonitoringSchedule…``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.packaging import Layer, PythonFunction, StackBase

SERVICE = "drift_check"


class DriftChecks:
    """The drift-check function and its schedules, created in ``scope`` (the monitoring construct)."""

    def __init__(self, scope: Construct, base: StackBase, *, layer: Layer, topic: sns.ITopic, failures: sqs.IQueue) -> None:
        deployment, bucket = base.deployment, base.bucket
        config = deployment.config
        settings = config.drift
        self.handler = PythonFunction(
            scope,
            "DriftCheck",
            function="drift_check",
            description="serverless-mlops drift check: captured data vs the model's training profile",
            layers=[layer],
            memory_mb=settings.memory_mb,
            timeout=cdk.Duration.seconds(settings.timeout_seconds),
            environment={**base.environment, "POWERTOOLS_SERVICE_NAME": SERVICE, "MLOPS_ALERT_TOPIC_ARN": topic.topic_arn},
            log_retention_days=config.log_retention_days,
            reserved_concurrency=settings.reserved_concurrency,
            logging=config.logging,
        )
        function = self.handler.function
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(failures), retry_attempts=2, max_event_age=cdk.Duration.hours(6)
        )
        # least privilege: read models, profiles and captured data; write reports and alert markers (and remove a marker whose
        # publish failed); read the registry
        self.handler.grant_objects(bucket, read=("artifacts", "capture"), put=("reports", "alerts"))
        # a failed publish removes its marker, so the retried window can alert (one action, not grant_delete's DeleteObject*)
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects("alerts/*")]))
        base.table.grant_read_data(function)
        topic.grant_publish(function)

        self.schedules: dict[str, events.Rule] = {}
        for spec in deployment.specs:
            self.schedules[spec.name] = events.Rule(
                scope,
                f"Schedule-{spec.name}",
                description=f"drift check of {spec.name}: {spec.drift.schedule}, window {spec.drift.window_hours} h",
                schedule=events.Schedule.expression(spec.drift.schedule),
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
