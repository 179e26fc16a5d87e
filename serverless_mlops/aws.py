"""One place that makes boto3 clients, so the endpoint (AWS, moto or LocalStack) is chosen once."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from serverless_mlops.settings import Settings

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=5, read_timeout=30)


_sessions = threading.local()


def _session() -> boto3.session.Session:
    """One boto3 Session per thread: a new Session reloads botocore's service models (~60 ms each time), and a
    Session must not be shared across threads."""
    session: boto3.session.Session | None = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = boto3.session.Session()
    return session


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` in the settings' region, at the settings' endpoint if one is set."""
    return _session().client(
        service,  # type: ignore[call-overload]
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_RETRIES,
    )
