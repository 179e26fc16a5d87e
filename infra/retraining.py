"""Retraining: the Step Functions workflow that retrains a model, evaluates it against the champion and promotes only a
better one (the contract: serverless_mlops/retraining/contract.py; its shape: docs/deploying.md).

- The deployed specs are published to ``specs/{model}/`` of the artifact bucket (infra/specs.py), so a Lambda trains
  from what was deployed.
- Two functions: ``training`` (PrepareData, Train, Evaluate; the training layer) and ``release`` (Register, the
  approval request, Promote, RejectCandidate, Notify*; the inference layer). Each task sends
  ``{"step", "state": $, "execution", "execution_name"}`` and the handler returns the whole workflow document.
- Every Lambda task retries Lambda's service errors and throttling (config ``retraining.retry``), has a timeout and
  catches everything into NotifyFailure → Failed. The machine logs ALL events without execution data (a pending
  approval's task token would be in it), traces with X-Ray and times out after the approval wait + the train timeout
  + 1 h.
- The Train state is pluggable (``train_step``): any trainer that writes the run folder ``model.onnx``,
  ``profile.json.gz``, ``run.json`` to ``runs/{model}/{execution name}/`` can stand in for the Lambda; Evaluate
  collects that folder when the state has no ``candidate`` (serverless_mlops/retraining/runs.py).
- One EventBridge rule per spec with ``retraining.schedule`` starts the workflow with ``{"model", "trigger": "schedule"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct, IConstruct

from infra.config import Retry
from infra.nag import acknowledge, bucket_objects
from infra.packaging import RETENTION, Layer, PythonFunction, StackBase
from infra.specs import PublishedSpecs
from infra.storage import LogsKey, keyed_table
from serverless_mlops.model.fit import CODE_VERSION_ENV, code_version
from serverless_mlops.model.search import TRAIN_TIMEOUT_ENV
from serverless_mlops.retraining import contract as c

TRAINING_SERVICE = "training"
RELEASE_SERVICE = "release"
# Lambda's service errors and throttling: what AWS recommends a Lambda task retries (with backoff)
LAMBDA_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
)
# A Lambda task waits this much longer than its function's own timeout (a cold start, the invoke itself), so the
# function's timeout, which names the function, is what a slow step reports
TASK_MARGIN = cdk.Duration.seconds(30)


def task_payload(step: str, *, token: bool = False) -> sfn.TaskInput:
    """What every Lambda task sends: the step, the whole workflow document and the execution (+ the task token)."""
    payload: dict[str, object] = {
        "step": step,
        "state": sfn.JsonPath.entire_payload,
        "execution": sfn.JsonPath.execution_id,
        "execution_name": sfn.JsonPath.execution_name,
    }
    if token:
        payload["token"] = sfn.JsonPath.task_token
    return sfn.TaskInput.from_object(payload)


@dataclass(frozen=True)
class TrainContext:
    """What a Train step factory gets: the training function, the bucket, the run folder and helpers that give a
    state the workflow's retry, timeout and catch.

    The contract of a replacement: write ``model.onnx``, ``profile.json.gz`` and ``run.json`` (the
    ``TrainedModel.write`` layout) to :attr:`run_uri` and leave the workflow document as it was (``result_path``
    ``JsonPath.DISCARD``); Evaluate collects the folder into the candidate.
    """

    function: lambda_.IFunction
    bucket: s3.IBucket
    timeout: cdk.Duration
    retry: Retry
    failure: sfn.IChainable
    # cdk-nag findings a replacement causes on the state machine's role (e.g. sagemaker:CreateTrainingJob on
    # training-job/*), acknowledged there with the machine's own findings (infra/nag.py)
    machine_findings: dict[str, str] = field(default_factory=dict)

    @property
    def state_name(self) -> str:
        """The name the Train state must have (the CLI and the tests follow states by name)."""
        return c.STATE_TRAIN

    @property
    def run_uri(self) -> str:
        """``s3://{bucket}/runs/{model}/{execution name}/`` of this execution, as a States.Format expression."""
        return sfn.JsonPath.format(
            f"s3://{self.bucket.bucket_name}/{c.RUNS_PREFIX}/{{}}/{{}}/", sfn.JsonPath.string_at("$.model"), sfn.JsonPath.execution_name
        )

    @property
    def data_uri(self) -> str:
        """The snapshot PrepareData wrote (``s3://{bucket}/snapshots/{model}/{sha256}.csv``): the rows to train on."""
        return sfn.JsonPath.string_at("$.data.uri")

    def bucket_objects(self, prefix: str) -> str:
        """The cdk-nag finding of a grant on ``prefix/*`` of the artifact bucket (what ``bucket.grant_*`` with a prefix gives)."""
        return bucket_objects(self.bucket, f"{prefix}/*")

    def acknowledge(self, construct: IConstruct, reason: str, *findings: str) -> None:
        """Acknowledge cdk-nag ``findings`` (``AwsSolutions-IAM5[Resource::*]``, ...) on ``construct`` and its children,
        with the reason (every synth runs cdk-nag: an unacknowledged finding fails it)."""
        for finding in findings:
            acknowledge(construct, finding, reason)

    def acknowledge_machine(self, reason: str, *findings: str) -> None:
        """Acknowledge ``findings`` the replacement causes on the state machine's role (its service integration's grants)."""
        self.machine_findings.update(dict.fromkeys(findings, reason))

    def protect(self, task: sfn.TaskStateBase, *, lambda_errors: bool = False) -> sfn.TaskStateBase:
        """Catch everything into the failure notification, as every task of the workflow does (``lambda_errors``: also
        retry Lambda's service errors and throttling, for a Lambda task). The task must set its own timeout."""
        if lambda_errors:
            add_retry(task, self.retry)
        task.add_catch(self.failure, errors=[sfn.Errors.ALL], result_path="$.error")
        return task


TrainStep = Callable[[Construct, TrainContext], sfn.IChainable]


def lambda_train_step(scope: Construct, context: TrainContext) -> sfn.IChainable:
    """The default Train state: the training function's ``train`` step (fit, ONNX, parity, run folder, candidate)."""
    task = tasks.LambdaInvoke(
        scope,
        "TrainTask",
        state_name=context.state_name,
        lambda_function=context.function,
        payload=task_payload(c.TRAIN),
        output_path="$.Payload",
        retry_on_service_exceptions=False,
        task_timeout=sfn.Timeout.duration(context.timeout),
    )
    return context.protect(task, lambda_errors=True)


def lambda_task(
    scope: Construct,
    state: str,
    function: lambda_.IFunction,
    payload: sfn.TaskInput,
    timeout: cdk.Duration,
    retry: Retry | None,
    *,
    construct_id: str | None = None,
) -> tasks.LambdaInvoke:
    """A Lambda task as every workflow here has it (retraining, release, batch): the function's answer is the state's
    output, the SDK's own retries are off (the state's Retry decides: ``retry``, when given), and the task gives up
    TASK_MARGIN after the function's own ``timeout``."""
    task = tasks.LambdaInvoke(
        scope,
        construct_id or state,
        state_name=state,
        lambda_function=function,
        payload=payload,
        output_path="$.Payload",
        retry_on_service_exceptions=False,
        task_timeout=sfn.Timeout.duration(timeout.plus(TASK_MARGIN)),
    )
    if retry is not None:
        add_retry(task, retry)
    return task


def logged_state_machine(
    scope: Construct, *, name: str, stage: str, retention_days: int, comment: str, definition: sfn.IChainable, timeout: cdk.Duration
) -> tuple[logs.LogGroup, sfn.StateMachine]:
    """A state machine as every workflow here has it (retraining, release, batch): X-Ray tracing, and every event
    logged without execution data to an encrypted vended log group (``/aws/vendedlogs/states/``: the prefix keeps the
    account's CloudWatch Logs resource policy small). Without execution data because WaitForApproval's parameters
    carry the task token, and whoever reads a token can approve; inputs and outputs stay in the execution history,
    IAM-guarded per machine. Construct ids ``Logs`` and ``StateMachine`` under ``scope``."""
    log_group = logs.LogGroup(
        scope,
        "Logs",
        log_group_name=f"/aws/vendedlogs/states/serverless-mlops-{stage}-{name}",
        retention=RETENTION[retention_days],
        removal_policy=cdk.RemovalPolicy.DESTROY,
        encryption_key=LogsKey.of(scope),  # execution events name models, versions and metrics
    )
    machine = sfn.StateMachine(
        scope,
        "StateMachine",
        comment=comment,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
    )
    return log_group, machine


def add_retry(task: sfn.TaskStateBase, retry: Retry) -> None:
    task.add_retry(
        errors=list(LAMBDA_ERRORS),
        interval=cdk.Duration.seconds(retry.interval_seconds),
        backoff_rate=retry.backoff_rate,
        max_attempts=retry.max_attempts,
    )


class Retraining(Construct):
    """The retraining workflow with its two functions, the published specs and the schedules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        base: StackBase,
        *,
        topic: sns.ITopic,
        failures: sqs.IQueue,
        training_layer: Layer,
        release_layer: Layer,
        train_step: TrainStep | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        deployment, bucket, table = base.deployment, base.bucket, base.table
        config = deployment.config
        settings = config.retraining
        self.bucket = bucket
        self.approval_timeout = cdk.Duration.hours(settings.approval_timeout_hours)
        train_timeout = cdk.Duration.seconds(settings.train.timeout_seconds)
        release_timeout = cdk.Duration.seconds(settings.release.timeout_seconds)
        # the longest an execution may run: waiting for a person, plus training, plus an hour for everything else
        self.timeout = cdk.Duration.seconds(self.approval_timeout.to_seconds() + train_timeout.to_seconds() + 3600)

        # (a) the deployed specs, published where PrepareData reads them (infra/specs.py; built in this construct, so the
        # logical ids stay those of earlier deployments)
        self.published = PublishedSpecs(self, deployment, bucket)
        self.specs_folder, self.specs_role, self.specs = self.published.folder, self.published.role, self.published.deployment

        # the workflow's locks and pending approvals (task tokens): a table apart from the registry, so a token is
        # readable only by those granted on this table (serverless_mlops/retraining/table.py says why)
        self.table = keyed_table(self, "Table", retain=deployment.retain)

        # (b) the functions
        environment = {
            **base.environment,
            "MLOPS_ALERT_TOPIC_ARN": topic.topic_arn,
            "MLOPS_RETRAINING_TABLE": self.table.table_name,
            # a lock outlives no execution: it expires when the longest possible execution would have ended
            "MLOPS_LOCK_TTL_SECONDS": str(int(self.timeout.to_seconds())),
        }
        self.training = PythonFunction(
            self,
            "Training",
            function="training",
            description="serverless-mlops retraining: PrepareData, Train, Evaluate (scikit-learn, skl2onnx, onnxruntime)",
            layers=[training_layer],
            memory_mb=settings.train.memory_mb,
            timeout=train_timeout,
            # Lambda has no git: the commit synthesized is what a trained version's lineage names as its code
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": TRAINING_SERVICE,
                CODE_VERSION_ENV: code_version(),
                # a spec's hyperparameter search is refused when its estimated fits would outlast this function
                TRAIN_TIMEOUT_ENV: str(int(train_timeout.to_seconds())),
            },
            log_retention_days=config.log_retention_days,
            reserved_concurrency=settings.train.reserved_concurrency,
            logging=config.logging,
        )
        self.release = PythonFunction(
            self,
            "Release",
            function="release",
            description="serverless-mlops retraining: Register, approval requests, Promote, Reject, Notify",
            layers=[release_layer],
            memory_mb=settings.release.memory_mb,
            timeout=release_timeout,
            environment={**environment, "POWERTOOLS_SERVICE_NAME": RELEASE_SERVICE},
            log_retention_days=config.log_retention_days,
            reserved_concurrency=settings.release.reserved_concurrency,
            logging=config.logging,
        )
        training, release = self.training.function, self.release.function
        # least privilege. training: read the published specs, feedback, snapshots, runs, the newest labelled rows a
        # quality breach hands to Evaluate (holdout-recent) and artifacts (the champion);
        # write snapshots, runs and artifacts (the candidate); the registry for the lock and the champion
        self.training.grant_objects(
            bucket,
            read=(c.SPECS_PREFIX, c.FEEDBACK_PREFIX, c.SNAPSHOTS_PREFIX, c.RUNS_PREFIX, c.HOLDOUT_RECENT_PREFIX, "artifacts"),
            put=(c.SNAPSHOTS_PREFIX, c.RUNS_PREFIX, "artifacts"),
        )
        # the registry only to read (the champion: its alias and version); of the retraining table only its own lock
        # items (pk LOCK#{model}): it can neither move an alias nor read an approval's task token
        table.grant_read_data(training)
        training.add_to_role_policy(self.item_statement(["dynamodb:GetItem", "dynamodb:PutItem"], c.LOCK_PREFIX))
        # release: the registry (versions, run claims, aliases: releases own alias changes), run records and artifacts,
        # the alert topic, and the retraining table's items (approval requests with their tokens, releasing the lock)
        self.release.grant_objects(bucket, read=(c.RUNS_PREFIX, "artifacts"))
        table.grant_read_write_data(release)
        self.table.grant(release, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
        topic.grant_publish(release)

        # (c) the state machine, exactly as docs/deploying.md draws it
        retry = settings.retry

        def invoke(state: str, function: lambda_.IFunction, step: str, timeout: cdk.Duration) -> tasks.LambdaInvoke:
            return lambda_task(self, state, function, task_payload(step), timeout, retry)

        failed = sfn.Fail(
            self,
            c.STATE_FAILED,
            state_name=c.STATE_FAILED,
            error=c.FAILED_ERROR,
            cause_path=sfn.JsonPath.format(
                "a retraining state failed with {}: the failure notification and the execution history name the state and the cause",
                sfn.JsonPath.string_at("$.error.Error"),
            ),
        )
        notify_failure = invoke(c.STATE_NOTIFY_FAILURE, release, c.NOTIFY, release_timeout)
        # a failed failure notification still ends the execution as failed, with the original error in $.error
        notify_failure.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.notify_error")
        notify_failure.next(failed)
        # every other task catches everything into the failure notification (context.protect), the Train step's too
        context = TrainContext(
            function=training, bucket=bucket, timeout=train_timeout.plus(TASK_MARGIN), retry=retry, failure=notify_failure
        )
        protect = context.protect

        prepare = invoke(c.STATE_PREPARE, training, c.PREPARE, train_timeout)
        prepare.add_catch(
            sfn.Succeed(self, c.STATE_ALREADY_RUNNING, state_name=c.STATE_ALREADY_RUNNING, comment="another execution holds the lock"),
            errors=[c.ALREADY_RUNNING_ERROR],
            result_path="$.error",
        )
        protect(prepare)
        self.train_step = (train_step or lambda_train_step)(self, context)
        evaluate = protect(invoke(c.STATE_EVALUATE, training, c.EVALUATE, train_timeout))

        promoted = sfn.Succeed(self, c.STATE_PROMOTED, state_name=c.STATE_PROMOTED)
        not_promoted = sfn.Succeed(self, c.STATE_NOT_PROMOTED, state_name=c.STATE_NOT_PROMOTED, comment="production is unchanged")
        notify_promoted = protect(invoke(c.STATE_NOTIFY_PROMOTED, release, c.NOTIFY, release_timeout)).next(promoted)
        notify_rejected = protect(invoke(c.STATE_NOTIFY_REJECTED, release, c.NOTIFY, release_timeout)).next(not_promoted)
        promote = protect(invoke(c.STATE_PROMOTE, release, c.PROMOTE, release_timeout)).next(notify_promoted)
        reject = protect(invoke(c.STATE_REJECT, release, c.REJECT, release_timeout)).next(notify_rejected)

        wait_for_approval = tasks.LambdaInvoke(
            self,
            c.STATE_WAIT_FOR_APPROVAL,
            state_name=c.STATE_WAIT_FOR_APPROVAL,
            lambda_function=release,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=task_payload(c.REQUEST_APPROVAL, token=True),
            result_path="$.approval",  # what `mlops approve`/`reject` sent with send_task_success
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(self.approval_timeout),
        )
        add_retry(wait_for_approval, retry)
        wait_for_approval.add_catch(reject, errors=[sfn.Errors.TIMEOUT], result_path="$.error")  # nobody decided in time
        protect(wait_for_approval)
        approved = (
            sfn.Choice(self, c.STATE_APPROVED, state_name=c.STATE_APPROVED)
            .when(sfn.Condition.boolean_equals("$.approval.approved", True), promote)
            .otherwise(reject)
        )
        wait_for_approval.next(approved)
        needs_approval = (
            sfn.Choice(self, c.STATE_NEEDS_APPROVAL, state_name=c.STATE_NEEDS_APPROVAL)
            .when(sfn.Condition.boolean_equals("$.evaluation.require_approval", True), wait_for_approval)
            .otherwise(promote)
        )
        register = protect(invoke(c.STATE_REGISTER, release, c.REGISTER, release_timeout)).next(needs_approval)
        register_rejected = protect(invoke(c.STATE_REGISTER_REJECTED, release, c.REGISTER, release_timeout)).next(notify_rejected)
        gate = (
            sfn.Choice(self, c.STATE_GATE, state_name=c.STATE_GATE)
            .when(sfn.Condition.boolean_equals("$.evaluation.passed", True), register)
            .otherwise(register_rejected)
        )
        definition = sfn.Chain.start(prepare).next(self.train_step).next(evaluate).next(gate)

        self.log_group, self.state_machine = logged_state_machine(
            self,
            name="retraining",
            stage=deployment.stage,
            retention_days=config.log_retention_days,
            comment="serverless-mlops retraining: prepare, train, evaluate against the champion, gate, register, promote, notify",
            definition=definition,
            timeout=self.timeout,
        )
        self.approver_policy, self.releaser_policy = self._people_policies(table)
        self.machine_findings = context.machine_findings  # what the Train step brought (TrainContext.acknowledge_machine)

        # (e) scheduled retraining, for specs that ask for it
        self.schedules: dict[str, events.Rule] = {}
        for spec in deployment.specs:
            if spec.retraining.schedule is None:
                continue
            self.schedules[spec.name] = events.Rule(
                self,
                f"Schedule-{spec.name}",
                description=f"retraining of {spec.name}: {spec.retraining.schedule}",
                schedule=events.Schedule.expression(spec.retraining.schedule),
                targets=[
                    targets.SfnStateMachine(
                        self.state_machine,
                        input=events.RuleTargetInput.from_object({"model": spec.name, "trigger": "schedule"}),
                        dead_letter_queue=failures,
                        retry_attempts=2,
                    )
                ],
            )

    def item_statement(self, actions: Sequence[str], prefix: str) -> iam.PolicyStatement:
        """``actions`` on the retraining table's items whose partition key starts with ``prefix`` (``LOCK#``, ``APPROVAL#``).

        ``dynamodb:LeadingKeys`` is the partition key a request names; ``actions`` must be single-item ones (GetItem,
        PutItem, UpdateItem, DeleteItem), which always name one (a Scan names none, and ForAllValues holds vacuously)."""
        single_item = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
        if not set(actions) <= single_item:
            raise ValueError(f"item_statement: {sorted(set(actions) - single_item)} do not name one item's key")
        return iam.PolicyStatement(
            actions=list(actions),
            resources=[self.table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{prefix}*"]}},
        )

    def _people_policies(self, registry: dynamodb.ITableV2) -> tuple[iam.ManagedPolicy, iam.ManagedPolicy]:
        """The managed policies a person needs (attach them to a role or group; the stack outputs their ARNs).

        - approver (``mlops approve`` / ``mlops reject``): read the pending approval and record the decision on it (the
          retraining table's ``APPROVAL#`` items only, not locks), send the token back to this state machine
          (SendTaskSuccess; SendTaskFailure for tools that fail the task), and check the model exists in the registry.
        - releaser (``mlops promote`` / ``mlops rollback``): read the registry and move an alias (UpdateItem).

        Both record the caller's STS identity, which needs no permission (GetCallerIdentity is always allowed)."""
        approver = iam.ManagedPolicy(
            self,
            "ApproverPolicy",
            description="serverless-mlops: approve or reject a retraining candidate waiting for approval (mlops approve/reject)",
            statements=[
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure"], resources=[self.state_machine.state_machine_arn]
                ),
                self.item_statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], c.APPROVAL_PREFIX),
                iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[registry.table_arn]),
            ],
        )
        releaser = iam.ManagedPolicy(
            self,
            "ReleaserPolicy",
            description="serverless-mlops: promote a version or roll an alias back (mlops promote/rollback)",
            statements=[
                iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"], resources=[registry.table_arn]),
            ],
        )
        return approver, releaser
