"""Typed settings, read from the environment on demand, one way for every function: :class:`Settings` (where the
artifacts and the registry are: bucket, tables, region, endpoint), :class:`FunctionSettings` (a function's own
variables, as pydantic fields aliased by the variable's name, validated with the AWS settings) and
:class:`ConfigurationError`, whose message names each variable at fault.

Nothing reads the environment at import time: handlers build their settings on their first invocation (once per
cold start), and the CLI lets flags override each field. Outside Lambda the bucket and tables have defaults (the
local stack's names); inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set) a missing ``MLOPS_BUCKET`` or ``MLOPS_TABLE``
is a :class:`ConfigurationError` naming the variable, never a silent default that points at someone else's bucket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serverless_mlops.errors import MlopsError

DEFAULT_BUCKET = "serverless-mlops-artifacts"
DEFAULT_TABLE = "serverless-mlops-registry"
DEFAULT_RETRAINING_TABLE = "serverless-mlops-retraining"  # locks and pending approvals (task tokens), apart from the registry
DEFAULT_REGION = "us-east-1"
LAMBDA_MARKER = "AWS_LAMBDA_FUNCTION_NAME"  # set by the Lambda runtime in every execution environment


class ConfigurationError(MlopsError):
    """A function's environment is invalid; the message names each variable and what is wrong with it."""


def _problems(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """``VARIABLE: what is wrong`` for each error (``names`` maps a field to its variable)."""
    names = names or {}
    return "; ".join(
        f"{names.get(str(err['loc'][0]), '.'.join(str(p) for p in err['loc'])) if err['loc'] else 'value'}: "
        f"{err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def require_in_lambda(env: Mapping[str, str], names: tuple[str, ...], *, given: set[str] | None = None) -> None:
    """Inside Lambda, a :class:`ConfigurationError` naming each of ``names`` that is unset or blank (``given``: the
    names set some other way, such as a CLI flag); outside Lambda, nothing: the local defaults apply."""
    if not env.get(LAMBDA_MARKER):
        return
    given = given or set()
    missing = [name for name in names if name not in given and not env.get(name, "").strip()]
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)} not set: the function {env[LAMBDA_MARKER]} needs "
            f"{'it' if len(missing) == 1 else 'them'} (the stack sets each from its resources)"
        )


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str = Field(default=DEFAULT_BUCKET, min_length=3)
    table: str = Field(default=DEFAULT_TABLE, min_length=3)
    retraining_table: str = Field(default=DEFAULT_RETRAINING_TABLE, min_length=3)
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    kms_key_id: str | None = None

    VARIABLES: ClassVar[dict[str, str]] = {
        "bucket": "MLOPS_BUCKET",
        "table": "MLOPS_TABLE",
        "retraining_table": "MLOPS_RETRAINING_TABLE",
        "region": "AWS_REGION",
        "endpoint_url": "MLOPS_ENDPOINT_URL",
        "kms_key_id": "MLOPS_KMS_KEY_ID",
    }
    REQUIRED_IN_LAMBDA: ClassVar[tuple[str, ...]] = ("MLOPS_BUCKET", "MLOPS_TABLE")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
        """The settings in ``environ`` (default ``os.environ``), ``overrides`` (the CLI's flags) winning.

        Inside Lambda, :attr:`REQUIRED_IN_LAMBDA` must be set: a missing one is a :class:`ConfigurationError` naming it.
        """
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
        given = {cls.VARIABLES.get(k, k) for k, v in values.items() if v and str(v).strip()}
        require_in_lambda(env, cls.REQUIRED_IN_LAMBDA, given=given)
        try:
            return cls(**{k: v for k, v in values.items() if v})
        except ValidationError as exc:
            raise ConfigurationError(f"invalid settings: {_problems(exc, cls.VARIABLES)}") from exc


class FunctionSettings(BaseModel):
    """A function's environment: its own variables as fields aliased by the variable's name (``MLOPS_…``) beside
    ``aws``; :meth:`from_env` validates them all once, on the function's first invocation."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    aws: Settings = Field(default_factory=Settings)
    REQUIRED: ClassVar[tuple[str, ...]] = ()  # variables this function needs inside Lambda beyond the bucket and table
    NAME: ClassVar[str] = "function"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        names = [field.alias for field in cls.model_fields.values() if field.alias]
        values: dict[str, Any] = {name: env[name] for name in names if env.get(name, "").strip()}
        require_in_lambda(env, (*Settings.REQUIRED_IN_LAMBDA, *cls.REQUIRED))  # every missing one in one message
        aws = Settings.from_env(env)
        try:
            return cls.model_validate({"aws": aws, **values})
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {cls.NAME} settings: {_problems(exc)}") from exc
