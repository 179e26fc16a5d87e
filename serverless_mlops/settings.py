"""Typed settings for talking to AWS (or moto, or LocalStack), read from the environment on demand.

Nothing reads the environment at import time: callers build ``Settings.from_env()`` when they need it, and the CLI
lets flags override each field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BUCKET = "serverless-mlops-artifacts"
DEFAULT_TABLE = "serverless-mlops-registry"
DEFAULT_RETRAINING_TABLE = "serverless-mlops-retraining"  # locks and pending approvals (task tokens), apart from the registry
DEFAULT_REGION = "us-east-1"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str = Field(default=DEFAULT_BUCKET, min_length=3)
    table: str = Field(default=DEFAULT_TABLE, min_length=3)
    retraining_table: str = Field(default=DEFAULT_RETRAINING_TABLE, min_length=3)
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    kms_key_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, str | None] = {
            "bucket": env.get("MLOPS_BUCKET"),
            "table": env.get("MLOPS_TABLE"),
            "retraining_table": env.get("MLOPS_RETRAINING_TABLE"),
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            "endpoint_url": env.get("MLOPS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL"),
            "kms_key_id": env.get("MLOPS_KMS_KEY_ID"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v})
