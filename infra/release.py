"""Release: the second Step Functions workflow, which rolls a registered version out through the production alias's
canary and promotes it or rolls it back by itself (the contract: serverless_mlops/release/contract.py; the shape and
the guards: docs/releasing.md).

    Begin → ShadowFirst (Choice on $.phase) → SetWeight → Bake (Wait, SecondsPath $.current.bake_seconds) → CheckGuards → Decide
        Decide: advance → SetWeight | wait → Bake | promote → Promote → NotifyPromoted → Promoted
                | rollback → Rollback → NotifyRolledBack → RolledBack
    ShadowFirst, phase "shadow" (--shadow-first): SetShadow → ShadowBake (Wait, SecondsPath $.shadow_phase.bake_seconds)
        → CheckShadow → ShadowDecide: advance → SetWeight | wait → ShadowBake | rollback → Rollback
    any task fails → RollbackOnFailure (the shadow and canary cleared) → NotifyFailure → Failed
    Begin finds the model's release lock held → AlreadyRunning

- Two functions: ``release_workflow`` (Begin, SetShadow, SetWeight, Promote, Rollback, Notify*: the registry, the
  release lock items of the retraining table, the alert topic) and ``release_guards`` (CheckGuards and CheckShadow:
  GetMetricData and DescribeAlarms, and the registry's items to read and update: on a breach it clears the canary, or
  the shadow, at once).
- Every Lambda task retries Lambda's service errors and throttling (config ``retraining.retry``), has a timeout and
  catches everything into RollbackOnFailure. The machine logs ALL events (without execution data, as the retraining
  machine), traces with X-Ray and times out after :data:`MACHINE_TIMEOUT`; the release lock lives as long, and Begin
  refuses a plan whose bakes (with their extensions) could outlast it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.packaging import Layer, PythonFunction, StackBase
from infra.retraining import lambda_task, logged_state_machine, task_payload
from serverless_mlops.release import contract as r

WORKFLOW_SERVICE = "release-workflow"
GUARDS_SERVICE = "release-guards"
MACHINE_TIMEOUT = cdk.Duration.hours(48)
# the longest plan Begin accepts: the machine's timeout less an hour for the tasks themselves
MAX_PLAN = cdk.Duration.hours(47)
FUNCTION_TIMEOUT = cdk.Duration.seconds(60)
MEMORY_MB = 512


class Release(Construct):
    """The release workflow with its two functions and the policy of the people who run releases."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        base: StackBase,
        *,
        topic: sns.ITopic,
        coordination: dynamodb.ITableV2,
        layer: Layer,
    ) -> None:
        super().__init__(scope, construct_id)
        deployment, registry = base.deployment, base.table
        config = deployment.config
        retry = config.retraining.retry
        self.coordination = coordination

        environment = {**base.environment, "MLOPS_RETRAINING_TABLE": coordination.table_name}
        self.workflow = PythonFunction(
            self,
            "Workflow",
            function="release_workflow",
            description="serverless-mlops release: Begin, SetWeight, Promote, Rollback, Notify",
            layers=[layer],
            memory_mb=MEMORY_MB,
            timeout=FUNCTION_TIMEOUT,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": WORKFLOW_SERVICE,
                "MLOPS_ALERT_TOPIC_ARN": topic.topic_arn,
                "MLOPS_RELEASE_LOCK_TTL_SECONDS": str(int(MACHINE_TIMEOUT.to_seconds())),
                "MLOPS_RELEASE_MAX_PLAN_SECONDS": str(int(MAX_PLAN.to_seconds())),
            },
            log_retention_days=config.log_retention_days,
            logging=config.logging,
        )
        self.guards = PythonFunction(
            self,
            "Guards",
            function="release_guards",
            description="serverless-mlops release: CheckGuards (guard metrics, alarms; clears the canary on a breach)",
            layers=[layer],
            memory_mb=MEMORY_MB,
            timeout=FUNCTION_TIMEOUT,
            environment={**base.environment, "POWERTOOLS_SERVICE_NAME": GUARDS_SERVICE},
            log_retention_days=config.log_retention_days,
            logging=config.logging,
        )
        workflow, guards = self.workflow.function, self.guards.function
        # least privilege. workflow: the registry's items to read and update (versions, the alias and its canary; no
        # Put/Delete, no Scan), its release lock items of the coordination table, the alert topic
        registry.grant(workflow, "dynamodb:GetItem", "dynamodb:UpdateItem")
        workflow.add_to_role_policy(self.lock_statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]))
        topic.grant_publish(workflow)
        # guards: read metrics and alarms, read and update the registry's items (the alias's canary); nothing else
        registry.grant(guards, "dynamodb:GetItem", "dynamodb:UpdateItem")
        self.guard_reads = iam.Policy(
            self,
            "GuardReads",
            statements=[
                iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[
                        cdk.Stack.of(self).format_arn(
                            service="cloudwatch", resource="alarm", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
                        )
                    ],
                ),
            ],
        )
        self.guards.role.attach_inline_policy(self.guard_reads)

        def invoke(state: str, function: lambda_.IFunction, step: str) -> tasks.LambdaInvoke:
            return lambda_task(self, state, function, task_payload(step), FUNCTION_TIMEOUT, retry)

        failed = sfn.Fail(
            self,
            r.STATE_FAILED,
            state_name=r.STATE_FAILED,
            error=r.FAILED_ERROR,
            cause_path=sfn.JsonPath.format(
                "a release state failed with {}: the canary was cleared; the notification and the execution history name the cause",
                sfn.JsonPath.string_at("$.error.Error"),
            ),
        )
        notify_failure = invoke(r.STATE_NOTIFY_FAILURE, workflow, r.NOTIFY)
        notify_failure.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.notify_error")
        notify_failure.next(failed)
        rollback_on_failure = invoke(r.STATE_ROLLBACK_ON_FAILURE, workflow, r.ROLLBACK)
        # a failed rollback still notifies (the notification says the state failed; the canary may still be set)
        rollback_on_failure.add_catch(notify_failure, errors=[sfn.Errors.ALL], result_path="$.rollback_error")
        rollback_on_failure.next(notify_failure)

        def protect(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            task.add_catch(rollback_on_failure, errors=[sfn.Errors.ALL], result_path="$.error")
            return task

        begin = invoke(r.STATE_BEGIN, workflow, r.BEGIN)
        begin.add_catch(
            sfn.Succeed(
                self, r.STATE_ALREADY_RUNNING, state_name=r.STATE_ALREADY_RUNNING, comment="another release of the model holds its lock"
            ),
            errors=[r.ALREADY_RUNNING_ERROR],
            result_path="$.error",
        )
        protect(begin)
        set_weight = protect(invoke(r.STATE_SET_WEIGHT, workflow, r.SET_WEIGHT))
        bake = sfn.Wait(self, r.STATE_BAKE, state_name=r.STATE_BAKE, time=sfn.WaitTime.seconds_path("$.current.bake_seconds"))
        check = protect(invoke(r.STATE_CHECK_GUARDS, guards, r.CHECK_GUARDS))

        promoted = sfn.Succeed(self, r.STATE_PROMOTED, state_name=r.STATE_PROMOTED)
        rolled_back = sfn.Succeed(self, r.STATE_ROLLED_BACK, state_name=r.STATE_ROLLED_BACK, comment="production is unchanged")
        notify_promoted = protect(invoke(r.STATE_NOTIFY_PROMOTED, workflow, r.NOTIFY)).next(promoted)
        notify_rolled_back = protect(invoke(r.STATE_NOTIFY_ROLLED_BACK, workflow, r.NOTIFY)).next(rolled_back)
        promote = protect(invoke(r.STATE_PROMOTE, workflow, r.PROMOTE)).next(notify_promoted)
        rollback = protect(invoke(r.STATE_ROLLBACK, workflow, r.ROLLBACK)).next(notify_rolled_back)
        decide = (
            sfn.Choice(self, r.STATE_DECIDE, state_name=r.STATE_DECIDE)
            .when(sfn.Condition.string_equals("$.decision", "advance"), set_weight)
            .when(sfn.Condition.string_equals("$.decision", "wait"), bake)
            .when(sfn.Condition.string_equals("$.decision", "promote"), promote)
            .otherwise(rollback)
        )
        set_weight.next(bake).next(check).next(decide)
        # the shadow phase (mlops release start --shadow-first): the candidate scores production's requests in the
        # background before it serves any; it never reaches SetWeight unless CheckShadow passes it
        set_shadow = protect(invoke(r.STATE_SET_SHADOW, workflow, r.SET_SHADOW))
        shadow_bake = sfn.Wait(
            self, r.STATE_SHADOW_BAKE, state_name=r.STATE_SHADOW_BAKE, time=sfn.WaitTime.seconds_path("$.shadow_phase.bake_seconds")
        )
        check_shadow = protect(invoke(r.STATE_CHECK_SHADOW, guards, r.CHECK_SHADOW))
        shadow_decide = (
            sfn.Choice(self, r.STATE_SHADOW_DECIDE, state_name=r.STATE_SHADOW_DECIDE)
            .when(sfn.Condition.string_equals("$.decision", "advance"), set_weight)
            .when(sfn.Condition.string_equals("$.decision", "wait"), shadow_bake)
            .otherwise(rollback)
        )
        set_shadow.next(shadow_bake).next(check_shadow).next(shadow_decide)
        shadow_first = (
            sfn.Choice(self, r.STATE_SHADOW_FIRST, state_name=r.STATE_SHADOW_FIRST)
            .when(sfn.Condition.string_equals("$.phase", "shadow"), set_shadow)
            .otherwise(set_weight)
        )
        definition = sfn.Chain.start(begin).next(shadow_first)

        self.log_group, self.state_machine = logged_state_machine(
            self,
            name="release",
            stage=deployment.stage,
            retention_days=config.log_retention_days,
            comment="serverless-mlops release: canary/linear rollout of a model version, guards, promote or roll back, notify",
            definition=definition,
            timeout=MACHINE_TIMEOUT,
        )
        self.operator_policy = self._operator_policy(registry)
        self.alarms = self._alarms(topic)

    def _alarms(self, topic: sns.ITopic) -> dict[str, cloudwatch.Alarm]:
        """Alarms on the alert topic for what no Notify state can report: an execution that failed past its own
        failure notification, timed out at the machine's timeout, or was stopped by hand (StopExecution skips the
        rollback: the canary may still be set, `mlops release abort` clears it), and the two functions' errors."""
        period = cdk.Duration.minutes(5)
        machine = self.state_machine
        watched: dict[str, tuple[str, cloudwatch.IMetric]] = {
            "ReleaseFailed": ("the release workflow failed (an execution ended FAILED)", machine.metric_failed(period=period)),
            "ReleaseTimedOut": (
                "a release timed out at the machine's timeout, before any notification",
                machine.metric_timed_out(period=period),
            ),
            "ReleaseAborted": (
                "a release execution was stopped by hand: its canary may still be set (mlops release status / abort)",
                machine.metric_aborted(period=period),
            ),
            "WorkflowErrors": ("the release workflow function raised errors", self.workflow.function.metric_errors(period=period)),
            "GuardsErrors": ("the release guards function (CheckGuards) raised errors", self.guards.function.metric_errors(period=period)),
        }
        created = {}
        for construct_id, (description, metric) in watched.items():
            alarm = cloudwatch.Alarm(
                self,
                construct_id,
                alarm_description=description,
                metric=metric,
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(actions.SnsAction(topic))
            created[construct_id] = alarm
        return created

    def connect_retraining(self, function: PythonFunction) -> None:
        """Let the retraining workflow's release function start this machine (``retraining.promote_with: release``):
        its ARN and StartExecution on it. The function already reads the coordination table (the release lock)."""
        function.function.add_environment("MLOPS_RELEASE_STATE_MACHINE_ARN", self.state_machine.state_machine_arn)
        self.state_machine.grant_start_execution(function.function)

    def lock_statement(self, actions: list[str]) -> iam.PolicyStatement:
        """``actions`` on the coordination table's release lock items only (partition key ``RELEASE#…``; single-item
        actions, which always name one key)."""
        return iam.PolicyStatement(
            actions=actions,
            resources=[self.coordination.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{r.LOCK_PREFIX}*"]}},
        )

    def _operator_policy(self, registry: dynamodb.ITableV2) -> iam.ManagedPolicy:
        """What a person needs for ``mlops release start|status|abort``: start and read this machine's executions,
        read a release lock and mark it aborted, read the registry and clear the canary."""
        return iam.ManagedPolicy(
            self,
            "OperatorPolicy",
            description="serverless-mlops: start, follow and abort model releases (mlops release start/status/abort)",
            statements=[
                iam.PolicyStatement(
                    actions=["states:StartExecution", "states:ListExecutions"], resources=[self.state_machine.state_machine_arn]
                ),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                    resources=[
                        cdk.Stack.of(self).format_arn(
                            service="states",
                            resource="execution",
                            resource_name=f"{self.state_machine.state_machine_name}:*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
                self.lock_statement(["dynamodb:GetItem", "dynamodb:UpdateItem"]),
                iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[registry.table_arn]),
            ],
        )
