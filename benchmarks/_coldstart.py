"""One cold start of the inference handler, run by benchmarks/inference.py in a fresh process.

``python benchmarks/_coldstart.py MODEL ROW_JSON`` (with MLOPS_BUCKET, MLOPS_TABLE and MLOPS_ENDPOINT_URL naming a
local moto server) imports the handler, sends one prediction request through it (which resolves the alias in the
registry, fetches and verifies the ONNX artifact from S3 and opens the session) and prints the timings as JSON.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402


class Context:
    function_name = "inference"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:inference"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/inference"
    log_stream_name = "cold"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def main() -> None:
    model, row = sys.argv[1], json.loads(sys.argv[2])
    if not any(Path(entry, "functions", "__init__.py").is_file() for entry in sys.path):  # else a code asset on PYTHONPATH
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from functions.inference.app import lambda_handler

    imported = time.perf_counter()
    path = f"/v1/models/{model}/predict"
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "127.0.0.1"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": json.dumps({"instances": [row]}),
        "isBase64Encoded": False,
    }
    response = lambda_handler(event, Context())
    done = time.perf_counter()
    if response.get("statusCode") != 200:
        raise SystemExit(f"cold start request failed: {response.get('statusCode')} {response.get('body')}")
    print(json.dumps({"import_s": imported - START, "first_request_s": done - imported, "total_s": done - START}))


if __name__ == "__main__":
    if len(sys.argv) == 1:  # run by hand (make bench skips _*.py): this one is one sample of benchmarks/inference.py
        print("benchmarks/_coldstart.py: one cold start sample for benchmarks/inference.py; nothing to measure on its own")
    else:
        main()
