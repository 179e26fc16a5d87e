"""Steps 7 and 8 of ``make demo`` (:mod:`serverless_mlops.local.demo`): the retrained version released as a canary
through the release workflow (its guard metrics pass, it is promoted), then a deliberately broken candidate whose
invalid outputs breach the guards, rolled back by the workflow itself. Traffic flows over HTTP while each release runs."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.markup import escape

from serverless_mlops.local.environment import receive_alerts
from serverless_mlops.local.tour import Tour, TourError
from serverless_mlops.model.fit import TrainedModel

# the release steps: half the requests on the candidate, for longer than the endpoint takes to see the canary
# (MLOPS_REFRESH_SECONDS, 5 s in infra/deployment.yaml), with traffic flowing until the release ends
RELEASE_STRATEGY = "canary50-1m"
RELEASE_BAKE_SECONDS = 12
RELEASE_TIMEOUT_SECONDS = 120


def release(tour: Tour, model: str, version: int, *, reason: str, seed: int) -> tuple[dict[str, Any], dict[int, int]]:
    """Release ``version`` through the release workflow and send traffic until it ends: (its output, requests per
    version that answered)."""
    from serverless_mlops.aws import client
    from serverless_mlops.release.control import start_release
    from serverless_mlops.release.lock import ReleaseLockTable

    settings, stack = tour.info.settings, tour.env.stack
    sfn = client("stepfunctions", settings)
    locks = ReleaseLockTable(stack.output("RetrainingTableName"), client("dynamodb", settings))
    arn = start_release(
        sfn,
        stack.output("ReleaseStateMachineArn"),
        locks,
        model,
        version,
        strategy=RELEASE_STRATEGY,
        bake_seconds=RELEASE_BAKE_SECONDS,
        requested_by="demo",
        reason=reason,
    )
    tour.say(f"   release {escape(arn.rsplit(':', 1)[-1])}: {RELEASE_STRATEGY} with a {RELEASE_BAKE_SECONDS} s bake; sending traffic")
    rows = tour.rows(tour.frame(model).sample(20, random_state=seed), tour.spec(model))
    served: dict[int, int] = {}
    started = time.perf_counter()
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        for row in rows:
            answer = tour.predict(model, [row])
            served[answer["version"]] = served.get(answer["version"], 0) + 1
        if time.perf_counter() - started > RELEASE_TIMEOUT_SECONDS:
            raise TourError(f"release of {model} v{version} still running after {RELEASE_TIMEOUT_SECONDS} s")
    described = sfn.describe_execution(executionArn=arn)
    output = dict(json.loads(described.get("output") or "{}"))
    if described["status"] != "SUCCEEDED":
        raise TourError(f"release of {model} v{version} ended {described['status']}: {described.get('cause', '')}")
    answered = ", ".join(f"v{v}: {n}" for v, n in sorted(served.items()))
    tour.say(f"   requests answered meanwhile by {answered}")
    for check in output.get("checks", []):
        candidate = check["candidate"]
        tour.say(
            f"   CheckGuards at {check['weight']:g}%: {check['decision']} ({escape(check['reason'])};"
            f" candidate {candidate['requests']} requests, {candidate['errors']} errors, {candidate['invalid']} invalid rows)"
        )
    return output, served


def show_notices(tour: Tour) -> None:
    """Read what the alert topic delivered to the inbox meanwhile, keep it and show each subject."""
    notices = receive_alerts(tour.info, wait_seconds=5)
    tour.result.alerts.extend(notices)
    for notice in notices:
        tour.say(f"   notification in the inbox: [bold]{escape(notice.subject)}[/bold]")


def release_canary(tour: Tour, model: str, *, seed: int) -> None:
    with tour.step(7, "release the retrained version as a canary: guards pass, promoted") as outcome:
        promotion = tour.result.workflow_output.get("promotion") or {}
        candidate = int(promotion["to_version"])
        output, served = release(tour, model, candidate, reason="demo: the retrained version, gradually", seed=seed)
        tour.result.releases["canary"], tour.result.release_traffic["canary"] = output, served
        if output.get("outcome") != "promoted":
            raise TourError(f"the canary release of {model} v{candidate} ended {output.get('outcome')}: {output.get('outcome_reason')}")
        production = tour.backends.registry.get_alias(model, "production")
        tour.say(f"   [green]promoted[/green]: production → v{production.version}; {escape(str(output.get('outcome_reason')))}")
        show_notices(tour)
        outcome.append(f"v{candidate} promoted after {len(output.get('checks', []))} guard check(s)")


def release_broken(tour: Tour, model: str, *, seed: int) -> None:
    from serverless_mlops.model.fit import train
    from serverless_mlops.retraining.specs import spec_key
    from serverless_mlops.store.lifecycle import register_run

    with tour.step(8, "release a broken candidate: its invalid outputs roll it back by itself") as outcome:
        settings = tour.info.settings
        trained = train(tour.spec(model), settings=settings, source=f"s3://{tour.info.bucket}/{spec_key(model)}")
        broken = TrainedModel(
            record=trained.record, onnx_bytes=doubled_probabilities(trained.onnx_bytes), profile_bytes=trained.profile_bytes
        )
        entry = register_run(broken, tour.backends, by="demo")
        tour.say(f"   registered v{entry.version}: the same model with its probabilities doubled (they no longer sum to 1)")
        before = tour.backends.registry.get_alias(model, "production").version
        output, served = release(tour, model, entry.version, reason="demo: a broken candidate", seed=seed)
        tour.result.releases["broken"], tour.result.release_traffic["broken"] = output, served
        production = tour.backends.registry.get_alias(model, "production")
        if output.get("outcome") != "rolled_back" or production.version != before or production.canary is not None:
            raise TourError(f"the broken release of {model} v{entry.version} ended {output.get('outcome')}: {output.get('outcome_reason')}")
        tour.say(f"   [yellow]rolled back[/yellow]: production stays v{production.version}; {escape(str(output.get('outcome_reason')))}")
        show_notices(tour)
        outcome.append(f"v{entry.version} rolled back: {output.get('outcome_reason')}")


def doubled_probabilities(onnx_bytes: bytes) -> bytes:
    """A copy of a classifier's ONNX model whose probabilities output is doubled: it loads and answers, but every row's
    probabilities sum to 2, an invalid output the guard metrics count."""
    import onnx
    from onnx import TensorProto, helper

    graph_model = onnx.load_from_string(onnx_bytes)
    graph = graph_model.graph
    (output,) = [o for o in graph.output if "prob" in o.name]
    raw = f"{output.name}_before_doubling"
    for node in graph.node:
        for index, name in enumerate(node.output):
            if name == output.name:
                node.output[index] = raw
    graph.initializer.append(helper.make_tensor("demo_two", TensorProto.FLOAT, [], [2.0]))
    graph.node.append(helper.make_node("Mul", [raw, "demo_two"], [output.name], name="demo_double"))
    return bytes(graph_model.SerializeToString())
