"""Console benchmark (`python benchmarks/ui.py`): the three pages of `mlops ui` on 50 models × 200 versions (moto).

The registry is filled on moto in-process: each model's first version is registered through the registry (the wine
example's signature, artifacts and metrics), the other 199 are its item with the version number changed, written with
BatchWriteItem; production points at the newest version, staging at the one before; each model has three drift
reports and a quality report in the bucket, and the retraining state machine has an execution per model. Each page is
fetched through Starlette's TestClient (the app ``mlops ui`` serves, without the socket) once (the first load: no
report read yet), then UI_BENCH_RUNS times (default 15); printed: the first load, the median and the slowest, the
budget (300 ms), and the AWS requests a page makes once its reports are cached (counted on botocore's before-call
event), which stay the same whatever the number of versions. The models page shows 25 models (its first page).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(name, value)

MODELS, VERSIONS, BUDGET_MS = 50, 200, 300.0


def fill(backends: Any, settings: Any) -> str:
    from serverless_mlops.aws import client
    from serverless_mlops.model.fit import train
    from serverless_mlops.store.lifecycle import register_run
    from serverless_mlops.store.registry import STAGING, version_item
    from tests.helpers.specs import example_spec

    trained = train(example_spec("wine"))
    db = client("dynamodb", settings)
    document = {"status": "no_drift", "drifted_share": 0.1, "drifted_features": 1, "checked_features": 13, "version": VERSIONS}
    quality = {"status": "ok", "versions": [{"version": VERSIONS, "labelled": 300, "realized": {"f1": 0.93}}]}
    sfn = client("stepfunctions", settings)
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    machine = sfn.create_state_machine(name="retraining", definition=definition, roleArn="arn:aws:iam::123456789012:role/r")
    for m in range(MODELS):
        name = f"model-{m:02d}"
        record = trained.record.model_copy(update={"model": name})
        first = register_run(type(trained)(**{**trained.__dict__, "record": record}), backends, by="bench")
        items = [version_item(first.model_copy(update={"version": v})) for v in range(2, VERSIONS + 1)]
        for start in range(0, len(items), 25):
            db.batch_write_item(RequestItems={settings.table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]})
        backends.registry.promote(name, VERSIONS, by="bench")
        backends.registry.set_alias(name, STAGING, VERSIONS - 1, by="bench")
        s3 = backends.store.s3
        for day in range(3):
            key = f"reports/{name}/v{VERSIONS}/2026120{day + 1}T0000Z-2026120{day + 1}T0600Z/report.json"
            s3.put_object(Bucket=backends.store.bucket, Key=key, Body=json.dumps(document).encode())
        key = f"reports/{name}/quality/20261201T0000Z-20261208T0000Z/quality.json"
        s3.put_object(Bucket=backends.store.bucket, Key=key, Body=json.dumps(quality).encode())
        sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=f"{name}-manual-20261207T0000Z", input="{}")
    return str(machine["stateMachineArn"])


def main() -> None:
    from moto import mock_aws
    from starlette.testclient import TestClient

    from serverless_mlops.aws import client
    from serverless_mlops.local.moto import ensure_resources, serialize_moto_dynamodb
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends
    from serverless_mlops.ui.app import create_app
    from serverless_mlops.ui.data import ConsoleData

    runs = int(os.environ.get("UI_BENCH_RUNS", "15"))
    serialize_moto_dynamodb()
    with mock_aws():
        settings = Settings()
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        started = time.perf_counter()
        machine = fill(backends, settings)
        print(f"filled {MODELS} models × {VERSIONS} versions on moto in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        sfn = client("stepfunctions", settings)
        data = ConsoleData(backends, sfn=sfn, retraining_arn=machine)
        calls: list[str] = []
        for service in (backends.store.s3, sfn, backends.registry.db):  # type: ignore[attr-defined]
            service.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
        pages = {"models": "/", "model": "/models/model-07", "version": f"/models/model-07/versions/{VERSIONS}"}
        print(f"{'page':<8} {'first ms':>9} {'median ms':>10} {'max ms':>8} {'budget ms':>10} {'median/budget':>14} {'AWS requests':>13}")
        with TestClient(create_app(data)) as ui:
            for page, path in pages.items():
                began = time.perf_counter()
                assert ui.get(path).status_code == 200, path  # the first load: no report read yet
                first = (time.perf_counter() - began) * 1000
                calls.clear()
                ui.get(path)
                requests = len(calls)
                samples = []
                for _ in range(runs):
                    began = time.perf_counter()
                    answer = ui.get(path)
                    samples.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200
                median = statistics.median(samples)
                ratio = median / BUDGET_MS
                print(f"{page:<8} {first:>9.1f} {median:>10.1f} {max(samples):>8.1f} {BUDGET_MS:>10.0f} {ratio:>14.2f} {requests:>13}")


if __name__ == "__main__":
    main()
