"""Retraining benchmarks (`make bench`): the Step Functions workflow end to end on moto, and the training function's
cold start as on Lambda.

1. The state machine the CDK app synthesizes (``local.assembly.synthesized``), provisioned into an in-process moto
   (``mock_aws`` with Step Functions execution on, as tests/workflow/conftest.py does), its Lambda tasks run
   in-process by ``LocalInvoker``. For each example model, 5 executions one after another: the first promotes (no
   champion yet), the later ones train on the same snapshot, are no better and end NotPromoted. Per outcome: the
   median wall time from ``start_execution`` to the terminal state (polled every 20 ms), and per state from the
   execution history's timestamps (entered → exited). A warm-up stack runs one execution per model first, so the
   measured ones do not pay this process's first imports (part 2 measures those).
2. The training function's cold start as on Lambda: python3.12 with the staged ``training`` code asset, the built
   ``training`` layer and this venv's boto3 compiled as the runtime's on PYTHONPATH (``-S -B``: nothing else, nothing
   written back), against a moto server holding the published specs: the import of ``functions.training.app``, then
   the first ``prepare``, ``train`` and ``evaluate`` through ``handle(event)``. Median of 3 fresh processes per
   model, and one more under ``python -X importtime`` for where the imports go.

Prints one Markdown table for docs/benchmarks.md, with the machine. ``python benchmarks/retraining.py --cold-start-child``
is one cold-start sample (run by part 2 in the runtime's interpreter; it imports nothing outside the standard
library before the handler).
"""

from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

CHILD = "--cold-start-child"
RUNS = 5  # executions per model (part 1)
COLD_RUNS = 3  # fresh processes (part 2)
POLL_SECONDS = 0.02
EXECUTION_TIMEOUT = 120.0


# -- part 2's child: one cold start in the runtime's interpreter (standard library only until the handler) ---------


def cold_start_child() -> None:
    """``retraining.py --cold-start-child MODEL EXECUTION_ARN`` with MLOPS_* naming a moto server: prints timings."""
    model, execution_arn = sys.argv[2], sys.argv[3]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]  # benchmarks/ is not on Lambda's path
    before = time.perf_counter()
    from functions.training.app import handle

    imported = time.perf_counter()
    state = {"model": model, "trigger": "manual", "reason": "benchmark", "requested_by": "bench"}
    name = execution_arn.rsplit(":", 1)[1]
    steps, first_imports = {}, {}
    for step in ("prepare", "train", "evaluate"):
        known = {module.split(".")[0] for module in sys.modules}
        began = time.perf_counter()
        state = handle({"step": step, "state": state, "execution": execution_arn, "execution_name": name})
        steps[step] = time.perf_counter() - began
        first_imports[step] = sorted({module.split(".")[0] for module in sys.modules} - known)
    done = time.perf_counter()
    figures = {
        "import_s": imported - before,
        "steps_s": steps,
        "first_imports": first_imports,
        "total_s": done - START,
        "max_rss_mb": peak_rss_mb(),
        "reason": state["evaluation"]["reason"],
    }
    print(json.dumps(figures))


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec (VmHWM; getrusage's ru_maxrss keeps the parent's across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the parent ------------------------------------------------------------------------------------------------------

Row = list[str]
HEADER = ["measurement", "total", "import", "PrepareData", "Train", "Evaluate", "Register", "Promote", "Notify", "Train share", "note"]


def main() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    sys.path.insert(0, str(root / "benchmarks"))
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
    # benchmarks/inference.py's machine(); importing it sets fake AWS credentials and ignores warnings, as we would
    from inference import machine

    began = time.perf_counter()
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    models = sorted(path.stem for path in (root / "models").glob("*.yaml"))
    workflow, notes = bench_workflow(models)
    cold, cold_notes = bench_cold_start(models)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; the script took {time.perf_counter() - began:.0f} s")
    for line in (*notes, *cold_notes):
        print(line)
    print("\n| " + " | ".join(HEADER) + " |\n|" + " --- |" * len(HEADER))
    for model in models:
        for row in (*workflow.get(model, []), *cold.get(model, [])):
            print(f"| {' | '.join(row)} |")


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def spec_path(model: str) -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "models" / f"{model}.yaml")


# -- part 1: the workflow on moto ------------------------------------------------------------------------------------


def bench_workflow(models: list[str]) -> tuple[dict[str, list[Row]], list[str]]:
    """Each model's executions on a freshly provisioned stack, after a warm-up on another (see :func:`run_stack`)."""
    from serverless_mlops.local.assembly import fresh_assembly, synthesized

    cached = fresh_assembly()
    source = f"{cached.parent.name} (fresh)" if cached is not None else "synthesized in-process"
    began = time.perf_counter()
    template, assembly_dir = synthesized()
    notes = [f"state machine: the CDK app's template, from {source} in {time.perf_counter() - began:.1f} s"]
    # warm-up: one execution per model on a stack of its own, so the first measured execution does not pay this
    # process's first imports and boto3 clients (part 2 measures those, as a cold start); one invoker for both stacks,
    # so the handlers keep their clients, as a warm Lambda does
    from serverless_mlops.local.lambda_runtime import LocalInvoker

    with LocalInvoker():
        warm, warm_notes = run_stack(template, assembly_dir, models, runs=1)
        measured, _ = run_stack(template, assembly_dir, models, runs=RUNS)
    notes += warm_notes
    notes.append("warm-up (not in the table), first execution in this process: " + ", ".join(
        f"{model} {seconds(samples[0][1]['wall'])}" for model, samples in warm.items()))  # fmt: skip
    rows: dict[str, list[Row]] = {}
    for model, samples in measured.items():
        by_outcome: dict[str, list[tuple[int, dict[str, float]]]] = {}
        for index, sample in samples:
            by_outcome.setdefault(str(sample["outcome"]), []).append((index, sample))
        rows[model] = [workflow_row(model, outcome, group) for outcome, group in by_outcome.items()]
    return rows, notes


def run_stack(template: dict, assembly_dir: object, models: list[str], *, runs: int) -> tuple[dict[str, list[tuple[int, dict]]], list[str]]:
    """The template provisioned into a fresh in-process moto (as tests/workflow/conftest.py does), then ``runs``
    executions per model, each started after the previous ended; per execution its wall time and state durations."""
    import gc

    from moto import mock_aws

    from serverless_mlops.aws import client
    from serverless_mlops.local.provisioner import provision
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.retraining import contract as c
    from serverless_mlops.retraining.specs import publish_specs, spec_key
    from serverless_mlops.settings import Settings

    terminal = (c.STATE_PROMOTED, c.STATE_NOT_PROMOTED, c.STATE_ALREADY_RUNNING, c.STATE_FAILED)
    notes: list[str] = []
    results: dict[str, list[tuple[int, dict]]] = {}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        stack = provision(template, assembly_dir, Settings())
        settings = Settings(bucket=stack.output("ArtifactBucketName"), table=stack.output("RegistryTableName"))
        sfn, s3 = client("stepfunctions", settings), client("s3", settings)
        arn = stack.output("StateMachineArn")
        for model in models:
            try:
                s3.head_object(Bucket=settings.bucket, Key=spec_key(model))
            except s3.exceptions.ClientError:
                publish_specs([load_spec(spec_path(model))], s3, settings.bucket)
                notes.append(f"{model}: the deployment does not publish its spec; the benchmark published it")
        for model in models:
            samples = []
            for index in range(1, runs + 1):
                name = f"{model}-bench-{index}"
                document = {"model": model, "trigger": "manual", "reason": "benchmark", "requested_by": "bench"}
                gc.collect()  # this process's heap (moto's state, two runtimes) is not a Lambda's: no full collection mid-run
                gc.freeze()
                start = time.perf_counter()
                execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(document))["executionArn"]
                while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
                    if time.perf_counter() - start > EXECUTION_TIMEOUT:
                        raise SystemExit(f"{name} still running after {EXECUTION_TIMEOUT:.0f} s")
                    time.sleep(POLL_SECONDS)
                wall = time.perf_counter() - start
                durations, last = state_durations(sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"])
                if last not in terminal or described["status"] != "SUCCEEDED":
                    raise SystemExit(f"{name} ended {described['status']} in {last!r}: {described.get('error')} {described.get('cause')}")
                samples.append((index, {"wall": wall, "outcome": last, **durations}))
            results[model] = samples
    return results, notes


def state_durations(events: list[dict]) -> tuple[dict[str, float], str]:
    """Seconds in each state (entered → exited, the history's timestamps; ms resolution), the execution's own start →
    end (``history``), and the last state entered."""
    entered: dict[str, object] = {}
    durations: dict[str, float] = {}
    last = ""
    started = ended = None
    for event in events:
        kind = event["type"]
        if kind == "ExecutionStarted":
            started = event["timestamp"]
        elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            ended = event["timestamp"]
        elif kind.endswith("StateEntered"):
            last = event["stateEnteredEventDetails"]["name"]
            entered[last] = event["timestamp"]
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            durations[name] = durations.get(name, 0.0) + (event["timestamp"] - entered[name]).total_seconds()
    if started is not None and ended is not None:
        durations["history"] = (ended - started).total_seconds()
    return durations, last


def workflow_row(model: str, outcome: str, group: list[tuple[int, dict]]) -> Row:
    import statistics

    from serverless_mlops.retraining import contract as c

    samples = [sample for _, sample in group]

    def median(*names: str) -> float | None:
        values = [sum(s[n] for n in names if n in s) for s in samples if any(n in s for n in names)]
        return statistics.median(values) if values else None

    tasks = (c.STATE_PREPARE, c.STATE_TRAIN, c.STATE_EVALUATE, c.STATE_REGISTER, c.STATE_REGISTER_REJECTED, c.STATE_PROMOTE)
    tasks += (c.STATE_NOTIFY_PROMOTED, c.STATE_NOTIFY_REJECTED)
    wall, train = median("wall"), median(c.STATE_TRAIN)
    in_tasks = statistics.median(sum(s.get(t, 0.0) for t in tasks) for s in samples)
    indexes = [index for index, _ in group]
    which = f"execution #{indexes[0]}" if len(indexes) == 1 else f"executions #{indexes[0]}–#{indexes[-1]}"
    if indexes != list(range(indexes[0], indexes[-1] + 1)):
        which = "executions " + ", ".join(f"#{i}" for i in indexes)
    register = c.STATE_REGISTER if outcome == c.STATE_PROMOTED else c.STATE_REGISTER_REJECTED
    return [
        f"workflow on moto, in-process: {model} → {outcome}",
        seconds(wall),
        "–",
        seconds(median(c.STATE_PREPARE)),
        seconds(train),
        seconds(median(c.STATE_EVALUATE)),
        f"{seconds(median(c.STATE_REGISTER, c.STATE_REGISTER_REJECTED))} ({register})",
        seconds(median(c.STATE_PROMOTE)),
        seconds(median(c.STATE_NOTIFY_PROMOTED, c.STATE_NOTIFY_REJECTED)),
        f"{train / wall * 100:.0f}%" if train is not None and wall else "–",
        f"{which}{' (median)' if len(samples) > 1 else ''}; the history's start → end {seconds(median('history'))},"
        f" of it {seconds(in_tasks)} in the Lambda tasks",
    ]


# -- part 2: the training function's cold start ------------------------------------------------------------------------


def bench_cold_start(models: list[str]) -> tuple[dict[str, list[Row]], list[str]]:
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from inference import import_times, runtime_boto3

    from infra.packaging import stage_code
    from layers.build import build_layer, find_runtime_python
    from serverless_mlops.local.moto import LocalAws, ensure_resources
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.retraining.lock import release
    from serverless_mlops.retraining.specs import publish_specs
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends

    python = find_runtime_python()
    if python is None:
        label = "training cold start, python3.12 + training layer (as on Lambda)"
        row = [label, "not measured", *["–"] * (len(HEADER) - 3), "no Python 3.12 interpreter here (set MLOPS_LAYER_PYTHON)"]
        return {models[-1]: [row]}, []
    asset = stage_code("training")
    layer = build_layer("training")
    scratch = Path(tempfile.mkdtemp(prefix="bench-retraining-"))
    rows: dict[str, list[Row]] = {}
    notes = [f"cold start: code asset {asset.relative_to(asset.parent.parent.parent)}, layer {layer.name}"]
    try:
        runtime = runtime_boto3(python, scratch / "var-runtime")
        (scratch / "bin").mkdir()  # PATH: no git, as on Lambda (training asks git for the code version)
        with LocalAws() as aws:
            settings = Settings(endpoint_url=aws.endpoint_url, bucket="bench-retraining", table="bench-retraining-registry")
            ensure_resources(settings)
            backends = Backends.from_settings(settings)
            publish_specs([load_spec(spec_path(model)) for model in models], backends.store.s3, settings.bucket)
            child_env = {key: value for key, value in os.environ.items() if key.startswith(("AWS_", "POWERTOOLS_"))}
            child_env |= {
                "MLOPS_BUCKET": settings.bucket,
                "MLOPS_TABLE": settings.table,
                "MLOPS_ENDPOINT_URL": aws.endpoint_url,
                "POWERTOOLS_SERVICE_NAME": "training",
                "PATH": str(scratch / "bin"),
                "LANG": "C.UTF-8",
                "PYTHONPATH": os.pathsep.join(map(str, (asset, layer / "python", runtime))),
            }

            def cold(model: str, tag: str, *flags: str) -> subprocess.CompletedProcess[str]:
                execution = f"arn:aws:states:us-east-1:123456789012:execution:bench:{model}-cold-{tag}"
                command = [python.executable, "-S", "-B", *flags, str(Path(__file__).resolve()), CHILD, model, execution]
                done = subprocess.run(command, capture_output=True, text=True, env=child_env, cwd=asset, timeout=300, check=False)
                release(backends.registry, model, execution)  # as Notify does: the next process's PrepareData takes it again
                if done.returncode != 0:
                    raise SystemExit(f"cold start of {model} ({tag}) failed ({done.returncode}):\n{done.stderr[-3000:]}")
                return done

            measured: dict[str, tuple[list[dict], list[float]]] = {}
            for model in models:
                samples, walls = [], []
                for index in range(1, COLD_RUNS + 1):
                    start = time.perf_counter()
                    out = cold(model, str(index)).stdout
                    walls.append(time.perf_counter() - start)
                    samples.append(json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{"import_s"'))))
                measured[model] = (samples, walls)
            # where a cold start's imports go: own time per top-level package (python -X importtime), one more process
            err = cold(models[0], "importtime", "-X", "importtime").stderr
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    costs = import_times(err)
    top = sorted(costs.items(), key=lambda item: -item[1])[:10]
    notes.append(f"cold start, {models[0]}: biggest imports (own time, python -X importtime): "
                 + ", ".join(f"{name} {value * 1e3:.0f} ms" for name, value in top))  # fmt: skip
    for model, (samples, walls) in measured.items():
        first = samples[-1]["first_imports"]
        for step in ("prepare", "train", "evaluate"):
            names = [name for name in first[step] if not name.startswith("_") and name not in sys.stdlib_module_names]
            notes.append(f"cold start, {model}: packages first imported by {step}: {', '.join(names) or 'none'}")
        biggest = sorted((name for name in first["train"] if not name.startswith("_")), key=lambda name: -costs.get(name, 0.0))[:4]
        imports = (sum(costs.get(name, 0.0) for name in first["train"]), biggest)
        rows[model] = [cold_row(model, python.version, samples, walls, imports)]
    return rows, notes


def cold_row(model: str, version: str, samples: list[dict], walls: list[float], train_imports: tuple[float, list[str]]) -> Row:
    import statistics

    def median(path: str) -> float:
        def get(sample: dict) -> float:
            value: object = sample
            for key in path.split("."):
                value = value[key]  # type: ignore[index]
            return float(value)  # type: ignore[arg-type]

        return statistics.median(get(s) for s in samples)

    total, train = median("total_s"), median("steps_s.train")
    return [
        f"training function cold start, python3.12 + layer (as on Lambda): {model}",
        seconds(total),
        seconds(median("import_s")),
        seconds(median("steps_s.prepare")),
        seconds(train),
        seconds(median("steps_s.evaluate")),
        "–",
        "–",
        "–",
        f"{train / total * 100:.0f}%",
        f"Python {version}; median of {len(samples)} fresh processes (fastest {seconds(min(s['total_s'] for s in samples))});"
        f" total = import + prepare + train + evaluate, {seconds(statistics.median(walls))} with the interpreter's start and exit;"
        f" the first Train imports {', '.join(train_imports[1])}, …: about {seconds(train_imports[0])} of it"
        f" (python -X importtime); peak RSS {median('max_rss_mb'):.0f} MB; no champion, so Evaluate scores the candidate alone",
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        cold_start_child()
    else:
        main()
