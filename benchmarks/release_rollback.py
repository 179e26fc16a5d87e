"""Release benchmark (`make bench`): how long from "guards breached" to "100% back on the champion" on the local stack.

The release machine the CDK app synthesizes (``local.assembly.synthesized``), provisioned into an in-process moto with
Step Functions execution on, its Lambda tasks run in-process by ``LocalInvoker`` (as tests/workflow does). breast-cancer
is trained once and registered twice: v1 in production, v2 the candidate. Each of RUNS releases starts with a 1 s bake
(``canary10``); once SetWeight has put the canary on the alias, an error burst on the candidate is put into CloudWatch
as the inference function's EMF records would be (``serving.guard_metrics``) — that instant is "guards breached" —
and the alias is polled every 5 ms until its canary is gone ("100% back on the champion" in the registry), then until
the execution ends RolledBack (the notification sent). The inference endpoint sees the alias at its next refresh
(``MLOPS_REFRESH_SECONDS``, default 30 s), which adds at most one refresh interval on top.

Prints medians and ranges side by side in one table, with the machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = 5
BAKE_SECONDS = 1
POLL_SECONDS = 0.005


def main() -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    from moto import mock_aws

    from serverless_mlops.aws import client
    from serverless_mlops.local.assembly import synthesized
    from serverless_mlops.local.lambda_runtime import LocalInvoker
    from serverless_mlops.local.provisioner import provision
    from serverless_mlops.model.fit import train
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.release import contract as r
    from serverless_mlops.release.control import start_release, wait_for_end
    from serverless_mlops.release.lock import ReleaseLockTable
    from serverless_mlops.serving import guard_metrics as gm
    from serverless_mlops.serving.endpoint_settings import EndpointSettings
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record

    model = "breast-cancer"
    trained = train(load_spec(ROOT / "models" / f"{model}.yaml"))
    template, assembly_dir = synthesized()
    to_canary_gone: list[float] = []
    to_rolled_back: list[float] = []
    check_seconds: list[float] = []
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), LocalInvoker():
        stack = provision(template, assembly_dir, Settings())
        settings = Settings(
            bucket=stack.output("ArtifactBucketName"),
            table=stack.output("RegistryTableName"),
            retraining_table=stack.output("RetrainingTableName"),
        )
        backends = Backends.from_settings(settings)
        registry = backends.registry
        sfn, cloudwatch = client("stepfunctions", settings), client("cloudwatch", settings)
        locks = ReleaseLockTable(settings.retraining_table, client("dynamodb", settings))
        machine = stack.output("ReleaseStateMachineArn")
        record = trained.record
        artifact = backends.store.put(model, trained.onnx_bytes, "model.onnx")
        profile = backends.store.put(model, trained.profile_bytes, "profile.json.gz")

        def register(run_id: str) -> int:
            lineage = lineage_of(record, run_id=run_id)
            return register_record(backends, record, artifact, profile, by="bench", lineage=lineage).version

        champion = register("champion")
        registry.promote(model, champion, by="bench")
        for run in range(RUNS + 1):  # the first one warms this process's imports and is not counted
            candidate = register(f"candidate-{run}")
            arn = start_release(sfn, machine, locks, model, candidate, strategy="canary10-10m", bake_seconds=BAKE_SECONDS)
            while registry.get_alias(model, "production").canary is None:
                time.sleep(POLL_SECONDS)
            values = {gm.REQUESTS: 200.0, gm.ROWS: 200.0, gm.ERRORS: 60.0, gm.INVALID_OUTPUTS: 0.0}
            emf = gm.emf_record(values, model=model, version=candidate, role=gm.CANARY, timestamp_ms=int(time.time() * 1000))
            namespace, data = gm.metric_data(emf)
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)
            breached = time.perf_counter()
            while registry.get_alias(model, "production").canary is not None:
                time.sleep(POLL_SECONDS)
            gone = time.perf_counter()
            described = wait_for_end(sfn, arn, timeout=60, poll_seconds=POLL_SECONDS)
            ended = time.perf_counter()
            output = json.loads(described.get("output") or "{}")
            if described["status"] != "SUCCEEDED" or output.get("outcome") != "rolled_back":
                raise SystemExit(f"release {run} ended {described['status']} {output.get('outcome')}: {output.get('outcome_reason')}")
            states = [
                e
                for e in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                if e["type"].endswith(("StateEntered", "StateExited"))
            ]
            entered = next(
                e["timestamp"]
                for e in states
                if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == r.STATE_CHECK_GUARDS
            )
            exited = next(
                e["timestamp"]
                for e in states
                if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == r.STATE_CHECK_GUARDS
            )
            if run:
                to_canary_gone.append(gone - breached)
                to_rolled_back.append(ended - breached)
                check_seconds.append((exited - entered).total_seconds())
        reason = output.get("outcome_reason")
    refresh = EndpointSettings.model_fields["refresh_seconds"].default

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"

    print(f"release rollback on the local stack (moto, in-process Lambdas), {RUNS} releases, bake {BAKE_SECONDS} s")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; reason: {reason}")
    print()
    print("| from guards breached to | median (min–max) |")
    print("| --- | --- |")
    print(f"| canary cleared in the registry (100% on the champion) | {cell(to_canary_gone)} |")
    print(f"| execution ended RolledBack (notified) | {cell(to_rolled_back)} |")
    print(f"| of which CheckGuards (its task, entered → exited) | {cell(check_seconds)} |")
    print(f"| + the endpoint's alias refresh (MLOPS_REFRESH_SECONDS) | at most {refresh:g} s |")
    bound = BAKE_SECONDS + 5
    print()
    print(
        f"budget: under 5 s plus one refresh interval; measured median {statistics.median(to_canary_gone):.2f} s "
        f"({'within' if max(to_canary_gone) < bound else 'OVER'} {bound} s including the {BAKE_SECONDS} s bake)"
    )


if __name__ == "__main__":
    main()
