"""The deploy pipeline's config: the stages in order (each its own account and region, config overrides, whether a
person approves it first), the repository the pipeline builds from, and the optional GitHub OIDC role.

Read from ``infra/pipeline.yaml`` unless the CDK context names another file (``-c pipeline_config=PATH``). A stage's
deployment is ``infra/deployment.yaml`` (or ``-c config=``) with the stage's ``overrides`` merged in, validated like
any deployment config. Every problem is one :class:`~infra.config.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.config import ROOT, ConfigError, Deployment, load_deployment
from serverless_mlops.model.spec import validation_problems

DEFAULT_PIPELINE_CONFIG = ROOT / "infra" / "pipeline.yaml"
Account = Annotated[str, Field(pattern=r"^\d{12}$", description="a 12-digit AWS account id (quote it in YAML)")]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="an AWS region, e.g. us-east-1")]
# owner/name as GitHub spells them: letters, digits, '-', '_' and '.'
Repository = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$", description="owner/name")]
Branch = Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,200}$", description="a branch name")]
GITHUB_ROLE_NAME = "serverless-mlops-github-deploy"  # the role GitHub Actions assumes (infra/github_oidc.py)
CONNECTION_ARN = r"arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}"


def stack_name(stage: str) -> str:
    """The stack of a stage (as the main app names it: infra/app.py)."""
    return f"serverless-mlops-{stage}"


def checks_role_arn(stage: PipelineStage) -> str:
    """The role the post-deploy checks assume in a stage in another account (infra/pipeline.py ChecksStack). Here, not
    in infra/ci_permissions.py, so `mlops init-ci` needs no aws_cdk (and no jsii runtime) to name it."""
    return f"arn:aws:iam::{stage.account}:role/{stack_name(stage.name)}-checks"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where the pipeline builds from: a repository reached through a CodeConnections (CodeStar) connection."""

    connection_arn: str = Field(description="the connection's ARN (Developer Tools console → Settings → Connections)")
    repository: Repository
    branch: Branch = "main"

    @field_validator("connection_arn")
    @classmethod
    def _is_a_connection(cls, value: str) -> str:
        if not re.fullmatch(CONNECTION_ARN, value):
            raise ValueError(f"expected a CodeConnections ARN (arn:aws:codeconnections:REGION:ACCOUNT:connection/ID), got {value!r}")
        return value


class PipelineStage(_Strict):
    """One stage the pipeline deploys to, in the order the file lists them."""

    name: Literal["dev", "prod"] = Field(description="the deployment's stage: the stack is serverless-mlops-<name>")
    account: Account
    region: Region
    needs_approval: bool = Field(default=False, description="a person approves in the pipeline before this stage deploys")
    overrides: dict[str, Any] = Field(default_factory=dict, description="merged into the deployment config for this stage")

    @field_validator("overrides")
    @classmethod
    def _no_stage(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        if "stage" in overrides:
            raise ValueError("'stage' comes from the stage's name; leave it out")
        return overrides


class GithubOidc(_Strict):
    """The role GitHub Actions assumes (mlops init-ci --github), trusted only for one repository and ref."""

    repository: Repository
    ref: Annotated[str, Field(pattern=r"^refs/(heads|tags)/[A-Za-z0-9._/-]{1,200}$")] = "refs/heads/main"
    create_provider: bool = Field(default=True, description="false when the account already has GitHub's OIDC provider")


class PipelineConfig(_Strict):
    account: Account = Field(description="where the pipeline itself runs")
    region: Region
    source: Source
    stages: Annotated[list[PipelineStage], Field(min_length=1)]
    github: GithubOidc | None = None

    @model_validator(mode="after")
    def _stages_once(self) -> PipelineConfig:
        names = [stage.name for stage in self.stages]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"stages: each stage may appear once; repeated: {', '.join(repeated)}")
        return self


class Pipeline:
    """A validated pipeline config with each stage's deployment loaded."""

    def __init__(self, config: PipelineConfig, deployments: dict[str, Deployment], source: Path) -> None:
        self.config = config
        self.deployments = deployments
        self.source = source


def read_pipeline_config(path: str | Path | None = None) -> tuple[PipelineConfig, Path]:
    """The validated pipeline config (without the stages' deployments) and the file it came from."""
    import yaml

    source = Path(path) if path is not None else DEFAULT_PIPELINE_CONFIG
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: pipeline config not found (docs/deploying.md, 'The pipeline')") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the pipeline config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: invalid pipeline config: expected a mapping at the top level")
    try:
        return PipelineConfig.model_validate(document), source
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid pipeline config: " + "; ".join(validation_problems(exc, document))) from exc


def load_pipeline(path: str | Path | None = None, *, deployment: str | Path | None = None) -> Pipeline:
    """Read and validate the pipeline config, and load each stage's deployment (``deployment``'s config plus the
    stage's overrides)."""
    config, source = read_pipeline_config(path)
    deployments: dict[str, Deployment] = {}
    for index, stage in enumerate(config.stages):
        try:
            deployments[stage.name] = load_deployment(deployment, stage=stage.name, overrides=stage.overrides)
        except ConfigError as exc:
            raise ConfigError(f"{source}: stages[{index}] ({stage.name}): {exc}") from exc
    return Pipeline(config, deployments, source)
