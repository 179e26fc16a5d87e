"""Local AWS: an embedded moto server on 127.0.0.1 (:class:`LocalAws`), its own API (``/moto-api/config`` and
``reset``: :func:`moto_api`), moto made to behave as AWS where the loop depends on it (fake credentials, DynamoDB's
per-request atomicity, Step Functions that execute), and the bucket and table the CDK app would create."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from serverless_mlops.aws import client
from serverless_mlops.settings import Settings
from serverless_mlops.store.registry import PARTITION_KEY, SORT_KEY

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def use_fake_credentials() -> None:
    """moto accepts any credentials; set harmless ones so nothing ever signs with a real account's keys."""
    for name, value in FAKE_CREDENTIALS.items():
        os.environ[name] = value
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


_DYNAMODB_LOCK = threading.RLock()


def serialize_moto_dynamodb() -> None:
    """Make moto apply each DynamoDB request atomically, as DynamoDB does.

    moto is a test double, not a database: its conditional PutItem reads, checks and writes in separate Python steps
    and its Query iterates a dict other threads mutate, so 16 threads registering at once got a duplicate version
    number and "dictionary changed size during iteration". DynamoDB guarantees per-request atomicity; this lock
    around moto's DynamoDB dispatcher gives moto (in-process and server, which share the backend) the same guarantee,
    so what local mode and the tests exercise is the registry's algorithm, not moto's races. Idempotent.
    """
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_serialized", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original(self, *args, **kwargs)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalAws:
    """A ThreadedMotoServer on 127.0.0.1; use as a context manager."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalAws:
        from moto.server import ThreadedMotoServer

        use_fake_credentials()
        serialize_moto_dynamodb()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        os.environ["MOTO_PORT"] = str(self.port)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_resources(settings: Settings) -> None:
    """Create the artifact bucket (versioned), the registry table and the retraining table (locks, approvals) if they
    do not exist."""
    s3 = client("s3", settings)
    try:
        s3.head_bucket(Bucket=settings.bucket)
    except s3.exceptions.ClientError:
        if settings.region == "us-east-1":
            s3.create_bucket(Bucket=settings.bucket)
        else:
            s3.create_bucket(Bucket=settings.bucket, CreateBucketConfiguration={"LocationConstraint": settings.region})
        s3.put_bucket_versioning(Bucket=settings.bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = client("dynamodb", settings)
    for table in (settings.table, settings.retraining_table):
        _ensure_table(dynamodb, table)


def _ensure_table(dynamodb: Any, table: str) -> None:
    try:
        dynamodb.describe_table(TableName=table)
    except dynamodb.exceptions.ResourceNotFoundException:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
                {"AttributeName": SORT_KEY, "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
        )
        dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def enable_step_functions_execution(endpoint_url: str) -> None:
    """Make a moto server run state machines (``execute_state_machine``), as ``mock_aws(config=...)`` does in-process."""
    moto_api(endpoint_url, "config", {"stepfunctions": {"execute_state_machine": True}})


@contextmanager
def restored_step_functions_config() -> Iterator[None]:
    """Put moto's process-wide Step Functions setting back as it was when the block began."""
    from moto.core.config import default_user_config

    previous = dict(default_user_config.get("stepfunctions", {}))
    try:
        yield
    finally:
        default_user_config["stepfunctions"] = previous  # type: ignore[typeddict-item]


def moto_api(endpoint_url: str, action: str, document: Mapping[str, Any] | None = None) -> None:
    """POST to a moto server's own API (``/moto-api/config``, ``/moto-api/reset``)."""
    from urllib.request import Request, urlopen

    body = json.dumps(document or {}).encode()
    url = f"{endpoint_url.rstrip('/')}/moto-api/{action}"
    request = Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})  # noqa: S310 - moto's own URL
    with urlopen(request, timeout=10) as response:  # noqa: S310 - the local moto server's own URL
        response.read()
