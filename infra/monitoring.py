"""Monitoring: the alert topic, failure capture, alarms and a dashboard, and the scheduled drift checks they watch.

- The drift checks (the drift-check function and one schedule per model) are deployed by infra/drift.py, composed here
  because they publish to this topic and fail into this queue.
- Invocations that fail after Lambda's retries (and events EventBridge cannot deliver) land in one SQS queue of
  failures, which has its own alarm. Alert deliveries SNS cannot make land there too.
- The alert topic is encrypted with a customer-managed KMS key (CloudWatch alarms need one to publish to an encrypted
  topic) and refuses publishing over plain HTTP; subscriptions come from the deployment config.
- Alarms: the API's 5xx rate and p99 latency, dataset drift per model (``DatasetDrift``), model-load failures
  (``ModelLoadFailures``) and failed drift checks; all notify the topic.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import Deployment
from infra.drift import SERVICE, DriftChecks
from infra.inference import SERVICE as INFERENCE_SERVICE
from infra.inference import InferenceApi
from infra.packaging import NAMESPACE, Layer, StackBase


def drift_metric(model: str) -> cloudwatch.Metric:
    """``DatasetDrift`` (0/1) as the drift function emits it: powertools adds the service dimension to ``model``."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name="DatasetDrift",
        dimensions_map={"service": SERVICE, "model": model},
        statistic="Maximum",
        period=cdk.Duration.hours(1),
    )


def model_load_failures() -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name="ModelLoadFailures",
        dimensions_map={"service": INFERENCE_SERVICE},
        statistic="Sum",
        period=cdk.Duration.minutes(5),
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        base: StackBase,
        *,
        layer: Layer,
        inference: InferenceApi,
    ) -> None:
        super().__init__(scope, construct_id)
        deployment = base.deployment
        config = deployment.config

        self.key = kms.Key(
            self,
            "AlertsKey",
            description="serverless-mlops alert topic",
            enable_key_rotation=True,
            # dev schedules the key's deletion with the stack (7 days' grace); prod keeps it, like its data
            removal_policy=cdk.RemovalPolicy.RETAIN if deployment.retain else cdk.RemovalPolicy.DESTROY,
            pending_window=None if deployment.retain else cdk.Duration.days(7),
        )
        # CloudWatch alarms publish to the encrypted topic: the key must let the service use it, for this account's alarms
        # only (aws:SourceAccount: without it any account's alarm could have CloudWatch use this key, the confused deputy)
        cloudwatch_here = iam.ServicePrincipal("cloudwatch.amazonaws.com").with_conditions(
            {"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}
        )
        self.key.grant(cloudwatch_here, "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "Alerts", display_name=f"serverless-mlops {deployment.stage} alerts", master_key=self.key, enforce_ssl=True
        )

        self.failures = sqs.Queue(
            self,
            "Failures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        for index, subscription in enumerate(config.alerts):
            subscriber: sns.ITopicSubscription
            if subscription.protocol == "email":
                subscriber = subscriptions.EmailSubscription(subscription.endpoint, dead_letter_queue=self.failures)
            elif subscription.protocol == "https":
                subscriber = subscriptions.UrlSubscription(subscription.endpoint, dead_letter_queue=self.failures)
            else:
                queue = sqs.Queue.from_queue_arn(self, f"Subscriber{index}", subscription.endpoint)
                subscriber = subscriptions.SqsSubscription(queue, dead_letter_queue=self.failures)
            self.topic.add_subscription(subscriber)
        if not config.alerts:
            cdk.Annotations.of(self.topic).add_warning_v2(
                "serverless-mlops:no-alert-subscribers",
                f"{deployment.source}: alerts subscribes nobody, so drift alerts and alarms reach no one; add an email, https or"
                " sqs subscriber under alerts",
            )

        # the drift checks (function, grants, one schedule per model) are built in infra/drift.py, under this construct
        # so that their logical ids stay those of earlier deployments
        self.drift = DriftChecks(self, base, layer=layer, topic=self.topic, failures=self.failures)
        self.handler, self.schedules = self.drift.handler, self.drift.schedules

        self.alarms = self._alarms(deployment, inference)
        self.dashboard = self._dashboard(deployment, inference)

    def connect_retraining(self, state_machine: sfn.StateMachine, functions: dict[str, lambda_.IFunction]) -> None:
        """Let drift start the retraining workflow (for specs with ``retrain_on_drift``): its ARN and the permission;
        and watch the workflow: alarms on failed, timed-out and aborted executions (a machine-level timeout stops the
        workflow before any Notify state runs, so only an alarm can say so) and on its functions' errors and throttles."""
        self.handler.function.add_environment("MLOPS_RETRAIN_STATE_MACHINE_ARN", state_machine.state_machine_arn)
        state_machine.grant_start_execution(self.handler.function)
        period = cdk.Duration.minutes(5)
        watched = {
            "RetrainingFailed": ("the retraining workflow failed (an execution ended FAILED)", state_machine.metric_failed(period=period)),
            "RetrainingTimedOut": (
                "the retraining workflow timed out: the machine-level timeout ended it before any notification",
                state_machine.metric_timed_out(period=period),
            ),
            "RetrainingAborted": (
                "a retraining execution was aborted (stopped by hand or by a deployment)",
                state_machine.metric_aborted(period=period),
            ),
        }
        for name, function in functions.items():
            watched[f"{name}Errors"] = (f"the {name.lower()} function raised errors", function.metric_errors(period=period))
            watched[f"{name}Throttles"] = (f"the {name.lower()} function was throttled", function.metric_throttles(period=period))
        created = {
            construct_id: self._alarm(construct_id, description, metric, 1, above=False)
            for construct_id, (description, metric) in watched.items()
        }
        self.alarms.update(created)
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Retraining alarms", alarms=list(created.values()), width=24))

    def _alarm(self, construct_id: str, description: str, metric: cloudwatch.IMetric, threshold: float, *, above: bool) -> cloudwatch.Alarm:
        """An alarm that fires on one period over its threshold, treats no data as fine, and notifies the alert topic."""
        operator = cloudwatch.ComparisonOperator
        created = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=operator.GREATER_THAN_THRESHOLD if above else operator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        created.add_alarm_action(actions.SnsAction(self.topic))
        return created

    def _alarms(self, deployment: Deployment, inference: InferenceApi) -> dict[str, cloudwatch.Alarm]:
        limits = deployment.config.alarms
        period = cdk.Duration.minutes(limits.period_minutes)
        stage = inference.stage
        alarm = self._alarm

        error_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": stage.metric_server_error(statistic="Sum", period=period),
                "requests": stage.metric_count(statistic="Sum", period=period),
            },
            label="5xx %",
            period=period,
        )
        failures = self.failures.metric_approximate_number_of_messages_visible(statistic="Maximum", period=cdk.Duration.minutes(5))
        alarms = {
            "ApiErrorRate": alarm(
                "ApiErrorRate",
                f"inference API: 5xx responses above {limits.error_rate_percent}% of requests",
                error_rate,
                limits.error_rate_percent,
                above=True,
            ),
            "ApiLatencyP99": alarm(
                "ApiLatencyP99",
                f"inference API: p99 latency above {limits.latency_p99_ms} ms",
                stage.metric_latency(statistic="p99", period=period),
                limits.latency_p99_ms,
                above=True,
            ),
            "ModelLoadFailures": alarm(
                "ModelLoadFailuresAlarm",
                "inference: a model could not be loaded (missing artifact, checksum mismatch, bad ONNX)",
                model_load_failures(),
                1,
                above=False,
            ),
            "Failures": alarm(
                "FailuresAlarm",
                "a drift check failed after its retries, or an alert or schedule could not be delivered",
                failures,
                1,
                above=False,
            ),
        }
        for spec in deployment.specs:
            alarms[f"Drift-{spec.name}"] = alarm(
                f"Drift-{spec.name}",
                f"{spec.name}: the latest drift check found dataset drift (see reports/{spec.name}/ in the bucket)",
                drift_metric(spec.name),
                1,
                above=False,
            )
        return alarms

    def _dashboard(self, deployment: Deployment, inference: InferenceApi) -> cloudwatch.Dashboard:
        stage = inference.stage
        inference_fn = inference.handler.function
        drift_fn = self.handler.function
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"serverless-mlops-{deployment.stage}")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors", left=[stage.metric_count(), stage.metric_server_error(), stage.metric_client_error()]
            ),
            cloudwatch.GraphWidget(title="API latency", left=[stage.metric_latency(statistic=s) for s in ("p50", "p90", "p99")]),
            cloudwatch.GraphWidget(
                title="Inference function",
                left=[inference_fn.metric_invocations(), inference_fn.metric_errors(), inference_fn.metric_throttles()],
                right=[inference_fn.metric_duration(statistic="p99")],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dataset drift (1 = drifted)", left=[drift_metric(spec.name).with_(label=spec.name) for spec in deployment.specs]
            ),
            cloudwatch.GraphWidget(title="Model load failures", left=[model_load_failures()]),
            cloudwatch.GraphWidget(
                title="Drift checks",
                left=[drift_fn.metric_invocations(), drift_fn.metric_errors()],
                right=[self.failures.metric_approximate_number_of_messages_visible()],
            ),
        )
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24))
        return dashboard
