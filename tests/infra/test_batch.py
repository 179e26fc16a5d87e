"""The batch scoring workflow as synthesized: the Distributed Map moto can run (ItemReader over the S3 JSON manifest,
STANDARD children; no ItemBatcher, EXPRESS children or ResultWriter), settings from the config, least privilege."""

from __future__ import annotations

import json
from typing import Any

from infra.config import BatchConfig
from serverless_mlops.batch import contract as c
from tests.helpers.template import Synth, as_list, s3_grants, statements

BATCH_HANDLERS = ("functions.batch_job.app.lambda_handler", "functions.batch_score.app.lambda_handler")


def definition(synth: Synth) -> dict[str, Any]:
    machine = synth.resources("AWS::StepFunctions::StateMachine")[
        synth.resource_id("AWS::StepFunctions::StateMachine", "BatchStateMachine")
    ]
    body = machine["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return json.loads("".join(p if isinstance(p, str) else "<ref>" for p in parts))  # type: ignore[no-any-return]


def test_the_machine_is_a_distributed_map_moto_can_run(synth: Synth) -> None:
    config = synth.stack.deployment.config.batch
    states = definition(synth)["States"]
    assert definition(synth)["StartAt"] == c.STATE_PREPARE
    assert states[c.STATE_PREPARE]["Next"] == c.STATE_SCORE_SHARDS
    shards = states[c.STATE_SCORE_SHARDS]
    assert shards["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert shards["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert shards["ItemReader"]["Parameters"] == {"Bucket.$": "$.job.manifest_bucket", "Key.$": "$.job.manifest_key"}
    assert shards["MaxConcurrency"] == config.max_concurrency
    assert shards["ResultPath"] is None  # Finalize reads the shards' own records, not a result array
    for absent in ("ItemBatcher", "ResultWriter", "ToleratedFailurePercentage", "ToleratedFailureCount"):
        assert absent not in shards
    score = shards["ItemProcessor"]["States"][c.STATE_SCORE]
    (retry,) = score["Retry"]
    assert (retry["ErrorEquals"], retry["MaxAttempts"]) == (["States.ALL"], config.retry.max_attempts)
    assert score["Catch"][0]["Next"] == c.STATE_SHARD_FAILED
    assert score["TimeoutSeconds"] > config.timeout_seconds
    assert states[c.STATE_FINALIZE]["Next"] == c.STATE_SUCCEEDED
    for state in (c.STATE_PREPARE, c.STATE_SCORE_SHARDS, c.STATE_FINALIZE):
        assert states[state]["Catch"][0]["Next"] == c.STATE_FAILED


def test_functions_get_their_settings_from_the_config(synth: Synth) -> None:
    config = synth.stack.deployment.config.batch
    functions = {f["Properties"]["Handler"]: f["Properties"] for f in synth.resources("AWS::Lambda::Function").values()}
    job, score = (functions[h] for h in BATCH_HANDLERS)
    assert job["Environment"]["Variables"]["MLOPS_BATCH_SHARD_BYTES"] == str(config.shard_bytes)
    assert job["Environment"]["Variables"]["MLOPS_BATCH_TOLERATED_FAILURE_PERCENT"] == f"{config.tolerated_failure_percent:g}"
    assert (score["MemorySize"], score["Timeout"]) == (config.memory_mb, config.timeout_seconds)
    assert job["Layers"] == score["Layers"] == functions["functions.inference.app.lambda_handler"]["Layers"]  # the inference layer


def test_prod_sets_every_batch_option(prod: Synth) -> None:
    assert prod.stack.deployment.config.batch != BatchConfig()
    assert prod.stack.deployment.config.batch.buckets == ["example-batch-data"]
    output = prod.raw["Outputs"]["BatchStateMachineArn"]
    assert output["Value"] == {"Ref": prod.resource_id("AWS::StepFunctions::StateMachine", "BatchStateMachine")}


def test_least_privilege(synth: Synth) -> None:
    job, score = s3_grants(synth, "BatchJobFunctionRoleDefaultPolicy"), s3_grants(synth, "BatchScoreFunctionRoleDefaultPolicy")
    buckets = synth.stack.deployment.config.batch.buckets
    for grants in (job, score):  # a bucket listed under batch.buckets: read and write, that bucket only
        data = {key for key in grants if key.startswith(":s3:::")}
        assert {key.removeprefix(":s3:::").removesuffix("/*") for key in data} == set(buckets)
    assert set(job) - {k for k in job if k.startswith(":s3:::")} == {"/batch/*"}
    assert set(score) - {k for k in score if k.startswith(":s3:::")} == {"/batch/*", "/artifacts/*"}
    assert not {a for a in score["/artifacts/*"] if not a.startswith("s3:Get")}  # the model: read only
    machine = {key: actions for key, actions in s3_grants(synth, "BatchStateMachineRoleDefaultPolicy").items() if key != ":*"}
    assert machine == {f"/{c.PREFIX}/*": {"s3:GetObject"}}  # the manifest, nothing else (":*": its functions' versions)
    invokes = [s for n, _k, s in statements(synth) if n.startswith("BatchStateMachine") and "lambda:InvokeFunction" in as_list(s["Action"])]
    ids = [synth.resource_id("AWS::Lambda::Function", prefix) for prefix in ("BatchJobFunction", "BatchScoreFunction")]
    resources = [json.dumps(r) for s in invokes for r in as_list(s["Resource"])]
    assert resources
    assert all(any(i in r for i in ids) for r in resources)
    reads = ("dynamodb:Get", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGet", "dynamodb:Describe", "dynamodb:ConditionCheck")
    dynamodb = [a for n, _k, s in statements(synth) if n.startswith("Batch") for a in as_list(s["Action"]) if a.startswith("dynamodb:")]
    assert dynamodb
    assert all(a.startswith(reads) for a in dynamodb)  # a batch job reads the registry, never writes it
