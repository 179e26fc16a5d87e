"""The deployment config: one typed document (pydantic) that says what `cdk deploy` creates.

Read from ``infra/deployment.yaml`` unless the CDK context names another file (``cdk synth -c config=PATH``);
``-c stage=prod`` overrides the file's stage. Every problem, in the file or in a model spec it lists, becomes one
:class:`ConfigError` whose message names the file and the field.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serverless_mlops.errors import MlopsError, SpecError
from serverless_mlops.model.spec import ModelSpec, load_spec, validation_problems
from serverless_mlops.retraining.specs import deploy_problem

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "infra" / "deployment.yaml"
# The HTTP API gives up on an integration after 30 s: the function must answer (or time out) before that.
HTTP_API_TIMEOUT_SECONDS = 30
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# A Standard workflow runs at most a year; the machine's timeout is the approval wait + the train timeout + 1 h.
MAX_APPROVAL_HOURS = 364 * 24
MemoryMb = Annotated[int, Field(ge=128, le=10240)]  # what Lambda allows
LambdaTimeout = Annotated[int, Field(ge=1, le=LAMBDA_MAX_TIMEOUT_SECONDS)]
# a function's own share of the account's concurrency (also its cap); none = the unreserved pool
ReservedConcurrency = Annotated[int, Field(ge=1)] | None
# AWS tags (the rules every tagging service shares): 50 user tags a resource, a key of 1-128 and a value of 0-256
# characters, letters, numbers, spaces and _ . : / = + - @ only, and no key or value starting with aws: (AWS's own)
PROJECT = "serverless-mlops"
MAX_TAGS = 50
TAG_KEY_LENGTH = 128
TAG_VALUE_LENGTH = 256
TAG_PUNCTUATION = frozenset("_.:/=+-@")


class ConfigError(MlopsError):
    """The deployment config (or a spec it lists) is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subscription(_Strict):
    """Who hears about drift: an email address, an HTTPS endpoint or an SQS queue (by ARN)."""

    protocol: Literal["email", "https", "sqs"]
    endpoint: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _endpoint_fits_protocol(self) -> Subscription:
        checks = {
            "email": (r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address"),
            "https": (r"https://[^\s/]+(/\S*)?", "an https:// URL"),
            "sqs": (
                r"arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?",
                "an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)",
            ),
        }
        pattern, expected = checks[self.protocol]
        if not re.fullmatch(pattern, self.endpoint):
            raise ValueError(f"endpoint: expected {expected} for protocol {self.protocol!r}, got {self.endpoint!r}")
        return self


class Auth(_Strict):
    """How callers authenticate: IAM (SigV4, the default) or JWT from an OIDC issuer such as Cognito."""

    mode: Literal["iam", "jwt"] = "iam"
    issuer: str | None = Field(default=None, description="JWT only: the issuer URL (https://…)")
    audience: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, description="JWT only: accepted aud values")

    @model_validator(mode="after")
    def _jwt_fields(self) -> Auth:
        if self.mode == "jwt":
            if not self.issuer or not re.fullmatch(r"https://\S+", self.issuer):
                raise ValueError("issuer: mode 'jwt' needs the issuer's https:// URL")
            if not self.audience:
                raise ValueError("audience: mode 'jwt' needs at least one audience")
        elif self.issuer is not None or self.audience:
            raise ValueError("issuer/audience apply only to mode 'jwt'")
        return self


# -- cold start, concurrency, architecture and logging options (issue 20); each is off by default ---------------------
class ProvisionedAutoscaling(_Strict):
    """Application Auto Scaling's target tracking of the live alias's provisioned concurrency: it keeps the share of
    provisioned environments in use (``LambdaProvisionedConcurrencyUtilization``) near ``utilization``."""

    min: Annotated[int, Field(ge=1)]
    max: Annotated[int, Field(ge=1)]
    utilization: Annotated[float, Field(gt=0.0, lt=1.0, description="target share of provisioned environments in use")] = 0.7

    @model_validator(mode="after")
    def _min_le_max(self) -> ProvisionedAutoscaling:
        if self.min > self.max:
            raise ValueError(f"min: {self.min} exceeds max ({self.max})")
        return self


class Logging(_Strict):
    """Lambda's advanced logging controls, on every function: JSON records, and Lambda drops the records below each
    level before CloudWatch ingests (and bills) them. ``system_level`` WARN drops the platform's START, END and REPORT
    lines (Duration, Billed Duration and Max Memory stay in the function's CloudWatch metrics)."""

    application_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] = "INFO"
    system_level: Literal["DEBUG", "INFO", "WARN"] = "WARN"


class Concurrency(_Strict):
    reserved: Annotated[int, Field(ge=1)] | None = Field(default=None, description="reserved concurrency; none = the account pool")
    provisioned: Annotated[int, Field(ge=0)] = Field(default=0, description="pre-warmed environments; billed while deployed")
    autoscaling: ProvisionedAutoscaling | None = Field(
        default=None, description="target tracking of the live alias's provisioned concurrency; none = fixed at provisioned"
    )

    @model_validator(mode="after")
    def _provisioned_within_reserved(self) -> Concurrency:
        if self.reserved is not None and self.provisioned > self.reserved:
            raise ValueError(f"provisioned: {self.provisioned} exceeds reserved ({self.reserved})")
        return self

    @model_validator(mode="after")
    def _autoscaling_fits(self) -> Concurrency:
        scaling = self.autoscaling
        if scaling is None:
            return self
        if not scaling.min <= self.provisioned <= scaling.max:
            raise ValueError(
                f"provisioned: autoscaling moves the provisioned concurrency between {scaling.min} and {scaling.max};"
                f" set provisioned (its value at deploy time) within that range, not {self.provisioned}"
            )
        if self.reserved is not None and scaling.max > self.reserved:
            raise ValueError(f"autoscaling.max: {scaling.max} exceeds reserved ({self.reserved})")
        return self


class Throttling(_Strict):
    """The HTTP API stage's default route throttling."""

    rate_limit: Annotated[float, Field(gt=0)] = 100.0
    burst_limit: Annotated[int, Field(ge=1)] = 200


class Inference(_Strict):
    memory_mb: MemoryMb = 1024
    timeout_seconds: Annotated[int, Field(ge=1, lt=HTTP_API_TIMEOUT_SECONDS)] = 10
    concurrency: Concurrency = Concurrency()
    throttling: Throttling = Throttling()
    capture_sample: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    max_rows: Annotated[int, Field(ge=1)] = 1000
    # how soon a promotion or rollback is served: each warm environment re-reads the alias this often (one GetItem)
    refresh_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    snap_start: bool = Field(
        default=False, description="Lambda SnapStart on the published versions (python3.12+): restores a snapshot of a warmed environment"
    )

    @model_validator(mode="after")
    def _snap_start_alone(self) -> Inference:
        if self.snap_start and self.concurrency.provisioned:
            raise ValueError("snap_start: Lambda does not combine SnapStart with provisioned concurrency; choose one")
        return self


class DriftCheck(_Strict):
    memory_mb: MemoryMb = 1024
    timeout_seconds: LambdaTimeout = 300
    reserved_concurrency: ReservedConcurrency = None


class QualityCheck(_Strict):
    # a week of captures: a million rows' probabilities and the labelled rows, with headroom
    memory_mb: MemoryMb = 2048
    timeout_seconds: LambdaTimeout = 600
    reserved_concurrency: ReservedConcurrency = None


class TrainFunction(_Strict):
    """The training function (PrepareData, Train, Evaluate): fits scikit-learn models, so memory is CPU here."""

    memory_mb: MemoryMb = 3008
    timeout_seconds: LambdaTimeout = LAMBDA_MAX_TIMEOUT_SECONDS
    reserved_concurrency: ReservedConcurrency = None


class ReleaseFunction(_Strict):
    """The release function (Register, WaitForApproval's request, Promote, RejectCandidate, Notify*): registry and SNS calls."""

    memory_mb: MemoryMb = 512
    timeout_seconds: LambdaTimeout = 60
    reserved_concurrency: ReservedConcurrency = None


class Retry(_Strict):
    """How a Lambda task retries Lambda's service errors and throttling (AWS's guidance: 2 s, x2, 6 attempts)."""

    interval_seconds: Annotated[int, Field(ge=1, le=3600, description="wait before the first retry")] = 2
    backoff_rate: Annotated[float, Field(ge=1.0, le=10.0, description="each wait is the previous one times this")] = 2.0
    max_attempts: Annotated[int, Field(ge=0, le=20, description="retries after the first attempt; 0 = none")] = 6


class RetrainingConfig(_Strict):
    train: TrainFunction = TrainFunction()
    release: ReleaseFunction = ReleaseFunction()
    retry: Retry = Retry()
    approval_timeout_hours: Annotated[
        int, Field(ge=1, le=MAX_APPROVAL_HOURS, description="how long WaitForApproval waits for `mlops approve`/`reject`")
    ] = 72


BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]


class BatchConfig(_Strict):
    """Batch scoring (``mlops batch score``; infra/batch.py): the Score function, shard size, fan-out, tolerance."""

    memory_mb: MemoryMb = Field(default=2048, description="the Score function's memory (CPU grows with it)")
    timeout_seconds: LambdaTimeout = Field(default=LAMBDA_MAX_TIMEOUT_SECONDS, description="the Score function's timeout: one shard")
    shard_mb: Annotated[float, Field(ge=0.001, le=1024, description="bytes of input per shard (one child execution), in MiB")] = 64.0
    max_concurrency: Annotated[int, Field(ge=1, le=10_000, description="child executions at once (Distributed Map's MaxConcurrency)")] = 100
    tolerated_failure_percent: Annotated[
        float, Field(ge=0, le=100, description="share of shards that may fail (after retries) while the job still succeeds")
    ] = 0.0
    retry: Retry = Field(default=Retry(max_attempts=2), description="how a shard's Score task retries any error")
    buckets: list[BucketName] = Field(
        default_factory=list, description="buckets jobs may read inputs from and write outputs to, beside the artifact bucket's batch/"
    )

    @property
    def shard_bytes(self) -> int:
        return int(self.shard_mb * 2**20)


class Alarms(_Strict):
    error_rate_percent: Annotated[float, Field(gt=0, le=100)] = Field(default=5.0, description="5xx responses as % of requests")
    latency_p99_ms: Annotated[int, Field(ge=1)] = 1000
    period_minutes: Annotated[int, Field(ge=1, le=1440)] = 5


def tag_problem(text: str, what: str, longest: int) -> str | None:
    """Why AWS would refuse ``text`` as a tag key or value (``what``), or None."""
    if len(text) > longest:
        return f"{what} is {len(text)} characters long; AWS allows at most {longest}"
    if text[:4].lower() == "aws:":
        return f"{what} starts with {text[:4]!r}, a prefix AWS reserves for its own tags"
    wrong = sorted({c for c in text if c not in TAG_PUNCTUATION and unicodedata.category(c)[0] not in "LNZ"})
    if wrong:
        return f"{what} holds {''.join(wrong)!r}; a tag allows letters, numbers, spaces and _ . : / = + - @"
    return None


class DeploymentConfig(_Strict):
    stage: Literal["dev", "prod"] = "dev"
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="tags for every resource the stack creates (beside project and stage, which every deployment carries)",
    )
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, description="spec files, relative to the config")]
    alerts: list[Subscription] = Field(default_factory=list)
    auth: Auth = Auth()
    inference: Inference = Inference()
    drift: DriftCheck = DriftCheck()
    quality: QualityCheck = QualityCheck()
    alarms: Alarms = Alarms()
    retraining: RetrainingConfig = RetrainingConfig()
    batch: BatchConfig = BatchConfig()
    log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365] = 30
    capture_retention_days: Annotated[int, Field(ge=32, description="days captured requests are kept (drift windows reach 31)")] = 90
    architecture: Literal["x86_64", "arm64"] = Field(
        default="x86_64", description="every function's and layer's CPU architecture; arm64 (Graviton) is billed about 20% less a GB-second"
    )
    logging: Logging = Logging()

    @field_validator("tags")
    @classmethod
    def _tags_aws_accepts(cls, tags: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, value in tags.items():
            if not key:
                problems.append("a key is empty; AWS needs 1 to 128 characters")
                continue
            found = (tag_problem(key, f"key {key!r}", TAG_KEY_LENGTH), tag_problem(value, f"{key!r}: value {value!r}", TAG_VALUE_LENGTH))
            problems += [problem for problem in found if problem is not None]
        if "stage" in tags:
            problems.append("key 'stage' is set from the stage field; leave it out")
        total = len(tags.keys() | {"project", "stage"})
        if total > MAX_TAGS:
            problems.append(f"{total} tags with project and stage; AWS allows {MAX_TAGS} a resource")
        if problems:
            raise ValueError("; ".join(problems))
        return tags


class Deployment:
    """A validated config with its model specs loaded."""

    def __init__(self, config: DeploymentConfig, specs: list[ModelSpec], source: Path) -> None:
        self.config = config
        self.specs = specs
        self.source = source

    @property
    def stage(self) -> str:
        return self.config.stage

    @property
    def tags(self) -> dict[str, str]:
        """What every resource is tagged with: project and stage, then the config's tags (which may rename the project)."""
        return {"project": PROJECT, **self.config.tags, "stage": self.config.stage}

    @property
    def retain(self) -> bool:
        """Prod keeps its bucket and table when the stack is destroyed; dev removes them."""
        return self.config.stage == "prod"


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: mappings merge key by key, anything else (a list too) is replaced."""
    result = dict(base)
    for key, value in overrides.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


def load_deployment(path: str | Path | None = None, *, stage: str | None = None, overrides: dict[str, Any] | None = None) -> Deployment:
    """Read, validate and resolve the deployment config; ``stage`` (from the CDK context) overrides the file's, and
    ``overrides`` (a pipeline stage's, infra/stages.py) are merged in, mappings key by key."""
    import yaml

    source = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: deployment config not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the deployment config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: invalid deployment config: expected a mapping at the top level")
    if overrides:
        document = merged(document, overrides)
    if stage is not None:
        document = {**document, "stage": stage}
    try:
        config = DeploymentConfig.model_validate(document)
    except ValidationError as exc:
        problems = validation_problems(exc, document)
        raise ConfigError(f"{source}: invalid deployment config: " + "; ".join(problems)) from exc
    specs = []
    for index, spec_path in enumerate(config.models):
        resolved = (source.parent / spec_path).resolve()
        try:
            specs.append(load_spec(resolved))
        except SpecError as exc:
            raise ConfigError(f"{source}: models[{index}]: {exc}") from exc
        problem = deploy_problem(specs[-1])
        if problem is not None:
            raise ConfigError(f"{source}: models[{index}] ({spec_path}, model {specs[-1].name}): {problem}")
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{source}: models: each model may be deployed once; repeated: {', '.join(repeated)}")
    return Deployment(config, specs, source)
