"""The price table ``mlops cost estimate`` multiplies usage by: ``prices.yaml`` beside this module, one entry a price,
each with its unit, the date it was last known to hold and the AWS page that publishes it.

Reading it checks every entry (a missing field, a non-positive price, a date that is not one, a source that is not an
https URL are one :class:`PriceTableError` naming the file and the entry) and that every price the estimate uses is
there, so a table edited by hand cannot silently price a line at zero.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serverless_mlops.errors import MlopsError

PRICES = Path(__file__).with_name("prices.yaml")
# every price the estimate reads (serverless_mlops/cost/estimate.py); a table must hold each
REQUIRED = frozenset(
    {
        "lambda_requests",
        "lambda_gb_second_x86_64",
        "lambda_gb_second_arm64",
        "lambda_provisioned_gb_second_x86_64",
        "lambda_provisioned_gb_second_arm64",
        "lambda_provisioned_duration_gb_second_x86_64",
        "lambda_provisioned_duration_gb_second_arm64",
        "lambda_snapstart_cache_gb_second",
        "lambda_snapstart_restore_gb",
        "http_api_requests",
        "stepfunctions_standard_transitions",
        "cloudwatch_custom_metric_month",
        "cloudwatch_alarm_month",
        "cloudwatch_dashboard_month",
        "cloudwatch_logs_ingestion_gb",
        "cloudwatch_logs_storage_gb_month",
        "s3_standard_gb_month",
        "s3_put_requests",
        "s3_get_requests",
        "kms_key_month",
        "kms_requests",
        "dynamodb_read_request_units",
        "dynamodb_write_request_units",
        "dynamodb_storage_gb_month",
        "sagemaker_serverless_gb_second",
        "sagemaker_data_processed_gb",
        "sagemaker_realtime_ml_t2_medium_hour",
        "sagemaker_realtime_ml_m5_large_hour",
    }
)


class PriceTableError(MlopsError):
    """The price table cannot be read or lacks a price; the message names the file and the entry."""


class Price(BaseModel):
    """``usd`` for every ``per`` units of ``unit``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd: Annotated[float, Field(gt=0)]
    per: Annotated[float, Field(gt=0)] = 1
    unit: Annotated[str, Field(min_length=1)]
    as_of: date
    source: Annotated[str, Field(pattern=r"^https://\S+$")]
    note: str = ""

    def of(self, quantity: float) -> float:
        """What ``quantity`` units cost."""
        return quantity / self.per * self.usd


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: Annotated[str, Field(min_length=1)]
    currency: str = "USD"
    prices: dict[str, Price]

    def __getitem__(self, name: str) -> Price:
        return self.prices[name]


def load_prices(path: Path | str | None = None) -> PriceTable:
    """The price table at ``path`` (default: the committed ``prices.yaml``), checked."""
    import yaml

    source = Path(path) if path is not None else PRICES
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PriceTableError(f"{source}: price table not found") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PriceTableError(f"{source}: cannot read the price table: {' '.join(str(exc).split())}") from exc
    try:
        table = PriceTable.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc']) or 'top level'}: {error['msg']}" for error in exc.errors())
        raise PriceTableError(f"{source}: invalid price table: {problems}") from exc
    missing = sorted(REQUIRED - set(table.prices))
    if missing:
        raise PriceTableError(f"{source}: the estimate needs these prices, which the table lacks: {', '.join(missing)}")
    return table
