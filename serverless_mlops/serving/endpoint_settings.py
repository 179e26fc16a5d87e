"""The inference function's settings: :class:`EndpointSettings`, read from the environment once per cold start and
validated the way every function's are (:class:`serverless_mlops.settings.FunctionSettings`: a
:class:`~serverless_mlops.settings.ConfigurationError` names each variable at fault and what is wrong with it).

``MODEL_NAME`` is the one spelling of a model name the endpoint serves (``MLOPS_MODELS`` lists such names, and the
endpoint answers 404 for any other). Nothing here reads the environment at import time.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from serverless_mlops.settings import FunctionSettings

MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


class EndpointSettings(FunctionSettings):
    """The inference function's environment, validated once per cold start (``from_env``)."""

    NAME: ClassVar[str] = "inference"
    max_rows: int = Field(default=1000, ge=1, alias="MLOPS_MAX_ROWS")
    max_body_bytes: int = Field(default=5_000_000, ge=1024, le=6 * 1024 * 1024, alias="MLOPS_MAX_BODY_BYTES")
    refresh_seconds: float = Field(default=30.0, ge=0, alias="MLOPS_REFRESH_SECONDS")
    capture_sample: float = Field(default=1.0, ge=0, le=1, alias="MLOPS_CAPTURE_SAMPLE")
    capture_max_rows: int = Field(default=1000, ge=1, alias="MLOPS_CAPTURE_MAX_ROWS")
    capture_max_seconds: float = Field(default=60.0, gt=0, alias="MLOPS_CAPTURE_MAX_SECONDS")
    models: frozenset[str] = Field(default=frozenset(), alias="MLOPS_MODELS")
    alias_check_budget_ms: int = Field(default=200, ge=10, le=5000, alias="MLOPS_ALIAS_CHECK_BUDGET_MS")
    capture_flush_budget_ms: int = Field(default=400, ge=10, le=5000, alias="MLOPS_CAPTURE_FLUSH_BUDGET_MS")
    model_reload_budget_ms: int = Field(default=2000, ge=100, le=30_000, alias="MLOPS_MODEL_RELOAD_BUDGET_MS")
    model_load_budget_ms: int = Field(default=4000, ge=100, le=30_000, alias="MLOPS_MODEL_LOAD_BUDGET_MS")
    backoff_max_seconds: float = Field(default=300.0, ge=1, le=3600, alias="MLOPS_BACKOFF_MAX_SECONDS")
    labels_budget_ms: int = Field(default=1000, ge=10, le=10_000, alias="MLOPS_LABELS_BUDGET_MS")
    # how often the shadow's summed guard metrics are published (0: one record per request; serving/guard_tally.py)
    shadow_metrics_seconds: float = Field(default=10.0, ge=0, le=60, alias="MLOPS_SHADOW_METRICS_SECONDS")

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = {part.strip() for part in value.split(",") if part.strip()}
            bad = sorted(name for name in names if not MODEL_NAME.fullmatch(name))
            if bad:
                raise ValueError(f"not model names: {', '.join(bad)} (lower-case letters, digits and '-')")
            return frozenset(names)
        return value
