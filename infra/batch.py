"""Batch scoring: the Step Functions workflow behind ``mlops batch score`` (serverless_mlops/batch; docs/batch.md).

Prepare (the job function) pins the version and writes the shard manifest to ``batch/jobs/{job}/manifest.json`` of the
artifact bucket → ScoreShards, a Distributed Map whose ItemReader reads that JSON manifest and runs one STANDARD child
execution per shard (``batch.max_concurrency`` at once), each a Score task (the Score function) that retries any error
(``batch.retry``) and, when the retries are spent, ends its child in ShardFailed instead of failing the Map → Finalize
(the job function) writes ``_SUCCESS``, or fails the job naming the failed shards when more than
``batch.tolerated_failure_percent`` failed. Left out on purpose: ItemBatcher and EXPRESS children (moto parses
neither, and the tests run this definition on moto), ResultWriter (moto writes an empty manifest; Finalize reads the
shards' own records instead) and Step Functions' tolerated-failure settings (moto ignores them; Finalize applies the
share). The Map's result is discarded: a result array of 10,000 children would pass the 256 KiB state limit.

Both functions run on the inference layer (numpy, onnxruntime, msgspec, pydantic). Least privilege: the job function
reads the registry and ``batch/`` of the artifact bucket (inputs there, the jobs' records) and writes there; the Score
function also reads ``artifacts/`` (the pinned ONNX model). Buckets listed in ``batch.buckets`` are readable and
writable by both. The machine logs ALL events without execution data and traces with X-Ray, like the retraining one.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.nag import account_arn, acknowledge, acknowledge_function, bucket_objects, default_policy
from infra.packaging import Layer, PythonFunction, StackBase
from infra.retraining import lambda_task, logged_state_machine
from serverless_mlops.batch import contract as c

BATCH_PREFIX = "batch"
DATA_BUCKET = "a bucket the deployment config lists under batch.buckets: jobs read their inputs from it and write their outputs to it"
JOB_TIMEOUT_SECONDS = 600  # Prepare lists the input and reads each CSV header; Finalize reads every shard's counts


class BatchScoring(Construct):
    """The batch workflow with its job and Score functions."""

    def __init__(self, scope: Construct, construct_id: str, base: StackBase, *, layer: Layer) -> None:
        super().__init__(scope, construct_id)
        deployment, bucket, table = base.deployment, base.bucket, base.table
        config = deployment.config
        settings = config.batch
        self.bucket = bucket
        job_timeout = cdk.Duration.seconds(JOB_TIMEOUT_SECONDS)
        score_timeout = cdk.Duration.seconds(settings.timeout_seconds)

        self.job = PythonFunction(
            self,
            "JobFunction",
            function="batch_job",
            description="serverless-mlops batch scoring: Prepare (pin the version, split into shards) and Finalize (_SUCCESS)",
            layers=[layer],
            memory_mb=512,
            timeout=job_timeout,
            environment={
                **base.environment,
                "POWERTOOLS_SERVICE_NAME": "batch",
                "MLOPS_BATCH_SHARD_BYTES": str(settings.shard_bytes),
                "MLOPS_BATCH_TOLERATED_FAILURE_PERCENT": f"{settings.tolerated_failure_percent:g}",
            },
            log_retention_days=config.log_retention_days,
            logging=config.logging,
        )
        self.score = PythonFunction(
            self,
            "ScoreFunction",
            function="batch_score",
            description="serverless-mlops batch scoring: one shard through the serving code (onnxruntime) into its output",
            layers=[layer],
            memory_mb=settings.memory_mb,
            timeout=score_timeout,
            environment={**base.environment, "POWERTOOLS_SERVICE_NAME": "batch-score"},
            log_retention_days=config.log_retention_days,
            logging=config.logging,
        )
        job, score = self.job.function, self.score.function
        self.job.grant_objects(bucket, read=(BATCH_PREFIX,), put=(BATCH_PREFIX,))
        self.score.grant_objects(bucket, read=(BATCH_PREFIX, "artifacts"), put=(BATCH_PREFIX,))
        # Finalize removes a stale _FAILED; Score abandons a multipart upload it could not finish
        job.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects(f"{BATCH_PREFIX}/*")]))
        score.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:AbortMultipartUpload"], resources=[bucket.arn_for_objects(f"{BATCH_PREFIX}/*")])
        )
        table.grant_read_data(job)
        table.grant_read_data(score)
        self.data_buckets = [s3.Bucket.from_bucket_name(self, f"Data{i}", name) for i, name in enumerate(settings.buckets)]
        for data in self.data_buckets:
            data.grant_read_write(job)
            data.grant_read_write(score)

        # the state machine
        failed = sfn.Fail(
            self,
            c.STATE_FAILED,
            state_name=c.STATE_FAILED,
            error=c.JOB_FAILED_ERROR,
            cause_path=sfn.JsonPath.format("{}: {}", sfn.JsonPath.string_at("$.error.Error"), sfn.JsonPath.string_at("$.error.Cause")),
        )

        def job_task(state: str, payload: dict[str, object]) -> tasks.LambdaInvoke:
            # retried on Lambda's service errors and throttling
            task = lambda_task(self, state, job, sfn.TaskInput.from_object(payload), job_timeout, settings.retry)
            task.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")
            return task

        prepare = job_task(
            c.STATE_PREPARE,
            {"step": c.PREPARE, "request": sfn.JsonPath.entire_payload, "execution_name": sfn.JsonPath.execution_name},
        )
        score_task = lambda_task(
            self, c.STATE_SCORE, score, sfn.TaskInput.from_json_path_at("$"), score_timeout, None, construct_id="ScoreTask"
        )
        retry = settings.retry
        score_task.add_retry(
            errors=[sfn.Errors.ALL],
            interval=cdk.Duration.seconds(retry.interval_seconds),
            backoff_rate=retry.backoff_rate,
            max_attempts=retry.max_attempts,
        )
        # a shard whose retries are spent ends its child here; Finalize finds it has no counts and names it
        score_task.add_catch(
            sfn.Pass(self, c.STATE_SHARD_FAILED, state_name=c.STATE_SHARD_FAILED), errors=[sfn.Errors.ALL], result_path="$.error"
        )
        shards = sfn.DistributedMap(
            self,
            c.STATE_SCORE_SHARDS,
            state_name=c.STATE_SCORE_SHARDS,
            # by bucket name, not the bucket: given the bucket, CDK grants GetObject on all of it; the machine's own
            # grant below reads the jobs' records only
            item_reader=sfn.S3JsonItemReader(
                bucket_name_path=sfn.JsonPath.string_at("$.job.manifest_bucket"), key=sfn.JsonPath.string_at("$.job.manifest_key")
            ),
            item_selector={"job": sfn.JsonPath.object_at("$.job"), "shard": sfn.JsonPath.object_at("$$.Map.Item.Value")},
            max_concurrency=settings.max_concurrency,
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_path=sfn.JsonPath.DISCARD,
        )
        shards.item_processor(score_task)
        shards.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")
        finalize = job_task(c.STATE_FINALIZE, {"step": c.FINALIZE, "job": sfn.JsonPath.object_at("$.job")})
        definition = prepare.next(shards).next(finalize).next(sfn.Succeed(self, c.STATE_SUCCEEDED, state_name=c.STATE_SUCCEEDED))

        self.log_group, self.state_machine = logged_state_machine(
            self,
            name="batch",
            stage=deployment.stage,
            retention_days=config.log_retention_days,
            comment="serverless-mlops batch scoring: prepare (pin, shard), score each shard (Distributed Map), finalize (_SUCCESS)",
            definition=definition,
            timeout=cdk.Duration.days(7),
        )
        # the ItemReader reads a job's manifest, and only the jobs' records (KMS: decrypt those objects only)
        records = bucket.arn_for_objects(f"{c.PREFIX}/*")
        self.state_machine.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[records]))
        key = bucket.encryption_key
        assert key is not None  # ArtifactStore's bucket has its own KMS key
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{cdk.Stack.of(self).region}.amazonaws.com"},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [records]},
                },
            )
        )


def acknowledge_batch(batch: BatchScoring) -> None:
    """The batch workflow's cdk-nag findings, each with its reason."""
    stack = cdk.Stack.of(batch)
    for function in (batch.job, batch.score):
        acknowledge_function(function, bucket=batch.bucket, invocation="workflow")
    for data in batch.data_buckets:
        for function in (batch.job, batch.score):
            policy = default_policy(function.role)
            for finding in (
                "Action::s3:GetBucket*",
                "Action::s3:GetObject*",
                "Action::s3:List*",
                "Action::s3:DeleteObject*",
                "Action::s3:Abort*",
            ):
                acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", DATA_BUCKET)
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{data.bucket_name}/*]", DATA_BUCKET)
    machine = batch.state_machine
    policy = default_policy(machine.role)
    acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing and Step Functions' log delivery support no resource-level permissions: AWS requires '*'",
    )
    for function in (batch.job, batch.score):
        function_id = stack.get_logical_id(function.function.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "from LambdaInvoke's grant: lambda:InvokeFunction on this one function and its versions and aliases (ARN:*)",
        )
    acknowledge(policy, bucket_objects(batch.bucket, f"{c.PREFIX}/*"), "the ItemReader reads a job's manifest: the jobs' records only")
    map_policy = machine.node.find_child("DistributedMapPolicy").node.default_child
    assert map_policy is not None
    machine_id = stack.get_logical_id(machine.node.default_child)  # type: ignore[arg-type]
    selected = f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine_id}"}}]}}]}}'  # the machine's name, as cdk-nag prints it
    executions = account_arn(stack, "states", f"execution:{selected}")
    for suffix in (":*", "/*:*"):
        acknowledge(
            map_policy,
            f"AwsSolutions-IAM5[Resource::{executions}{suffix}]",
            "from DistributedMap: describe, stop and redrive this machine's own child executions (their names are made at run time)",
        )
