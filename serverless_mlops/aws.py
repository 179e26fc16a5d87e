"""One place that makes boto3 clients, so the endpoint (AWS, moto or LocalStack) is chosen once."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from serverless_mlops.settings import Settings

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=5, read_timeout=30)


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` in the settings' region, at the settings' endpoint if one is set."""
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_RETRIES,
    )
