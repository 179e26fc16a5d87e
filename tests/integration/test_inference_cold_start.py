"""A fresh process imports the deployed handler and serves a request from a moto server, as a cold Lambda does.

It must not import the training stack (scikit-learn, scipy, pandas, joblib, skl2onnx, onnx) nor unpickle anything:
numpy and botocore import the standard library's ``pickle`` module themselves, so what is checked is that no
``pickle.load``/``loads``/``Unpickler`` is ever called. Outside Lambda tracing is off, so the X-Ray SDK stays out too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from serverless_mlops.local.moto import LocalAws, ensure_resources
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import records, register

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, pickle, sys

calls = []
def spy(name):
    real = getattr(pickle, name)
    def wrapper(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)
    return wrapper
for name in ("load", "loads", "Unpickler"):
    setattr(pickle, name, spy(name))

from functions.inference import app
from tests.helpers.events import LambdaContext, load_event

event = load_event(path="/v1/models/wine/predict", body={"instances": json.loads(os.environ["ROWS"])})
response = app.lambda_handler(event, LambdaContext())
flushed = app.flush()
training = {"sklearn", "scipy", "pandas", "joblib", "skl2onnx", "onnx", "pyarrow", "moto", "aws_xray_sdk"}
print(json.dumps({
    "status": response["statusCode"],
    "body": json.loads(response["body"]),
    "imported": sorted(m for m in sys.modules if m.split(".")[0] in training),
    "unpickled": calls,
    "flushed": flushed,
}))
"""


def test_a_cold_process_serves_without_the_training_stack_or_pickle(trained_models: dict[str, TrainedModel]) -> None:
    with LocalAws() as aws:
        settings = Settings(endpoint_url=aws.endpoint_url)
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        register(backends, trained_models["wine"], "wine-1", promote=True)
        # the in-process moto server shares moto's state with earlier mock_aws tests in this process: count only new keys
        before = {o["Key"] for o in backends.store.s3.list_objects_v2(Bucket=settings.bucket, Prefix="capture/wine/").get("Contents", [])}
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MLOPS_ENDPOINT_URL": aws.endpoint_url,
            "POWERTOOLS_METRICS_NAMESPACE": "ServerlessMlops",
            "ROWS": json.dumps(records("wine", 3)),
        }
        result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["status"] == 200, report["body"]
        assert report["body"]["model"] == "wine"
        assert len(report["body"]["predictions"]) == 3
        assert report["imported"] == []
        assert report["unpickled"] == []
        assert len(report["flushed"]) == 1  # app.flush() wrote the buffered capture, as mlops serve does on shutdown
        listing = backends.store.s3.list_objects_v2(Bucket=settings.bucket, Prefix="capture/wine/")
        assert [o["Key"] for o in listing["Contents"] if o["Key"] not in before] == report["flushed"]
