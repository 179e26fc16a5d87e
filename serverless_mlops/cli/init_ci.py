"""``mlops init-ci --github``: write the GitHub Actions deploy workflow into a project, from its pipeline config.

The workflow is a template shipped in this package (``templates/github-deploy.yml``, one job per stage from
``templates/github-deploy-stage.yml``) filled from ``infra/pipeline.yaml``: the branch, the role the stack
``serverless-mlops-github`` creates (infra/github_oidc.py), and each stage in order with its region. It runs what the
CodePipeline pipeline runs: ``make lint`` and ``make test``, one synth of every stage, then per stage a deploy of that
stage's synthesized assembly, the model gate and the smoke test. Stages deploy in the config's order; a stage that
needs approval waits for its GitHub environment's required reviewers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from serverless_mlops.errors import MlopsError

WORKFLOW = Path(".github") / "workflows" / "deploy.yml"
CHECKS_STEP = """      - name: the stage's checks role
        uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: {role}
          aws-region: {region}
          role-chaining: true
"""


def _template(name: str) -> str:
    return resources.files("serverless_mlops.cli").joinpath("templates", name).read_text(encoding="utf-8")


def _filled(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@@{key}@@", value)
    if "@@" in template:
        raise MlopsError(f"the workflow template has an unfilled placeholder near {template[template.index('@@') :][:40]!r}")
    return template


def github_workflow(config_path: Path | None = None) -> str:
    """The deploy workflow for the pipeline config at ``config_path`` (default infra/pipeline.yaml)."""
    from infra.stages import GITHUB_ROLE_NAME, checks_role_arn, read_pipeline_config

    config, source = read_pipeline_config(config_path)
    if config.github is None:
        raise MlopsError(f"{source}: github: the workflow needs the github section (repository, ref), which the role trusts")
    ref = config.github.ref
    if not ref.startswith("refs/heads/"):
        raise MlopsError(f"{source}: github.ref: the workflow deploys on a push to a branch (refs/heads/NAME), got {ref!r}")
    role = f"arn:aws:iam::{config.account}:role/{GITHUB_ROLE_NAME}"
    jobs = []
    previous = "synth"
    for stage in config.stages:
        approval = "needs approval: give this environment required reviewers" if stage.needs_approval else "no approval"
        # a stage in another account: the checks run as its checks role (infra/pipeline.py ChecksStack), chained
        checks = "" if stage.account == config.account else CHECKS_STEP.format(role=checks_role_arn(stage), region=stage.region)
        jobs.append(
            _filled(
                _template("github-deploy-stage.yml"),
                {
                    "STAGE": stage.name,
                    "NEEDS": previous,
                    "APPROVAL": approval,
                    "ROLE_ARN": role,
                    "REGION": stage.region,
                    "ASSEMBLY": stage.name.capitalize(),
                    "CHECKS_CREDENTIALS": checks,
                },
            ).rstrip("\n")
        )
        previous = f"deploy-{stage.name}"
    values = {"CONFIG": str(config_path or "infra/pipeline.yaml"), "REF": ref, "BRANCH": ref.removeprefix("refs/heads/")}
    return _filled(_template("github-deploy.yml"), {**values, "STAGE_JOBS": "\n".join(jobs)})


def init_ci(
    github: Annotated[bool, typer.Option("--github", help="write the GitHub Actions workflow (.github/workflows/deploy.yml)")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", dir_okay=False, help="the pipeline config (default: infra/pipeline.yaml)")
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", file_okay=False, help="the project to write into")] = Path(),
    force: Annotated[bool, typer.Option("--force", help="replace an existing workflow file")] = False,
) -> None:
    """Write the CI that deploys this project: with --github, a GitHub Actions workflow that assumes the OIDC role,
    tests, synthesizes, and deploys each stage in order with the model gate and the smoke test after each."""
    if not github:
        raise MlopsError("say which CI to write: --github (the CodePipeline pipeline needs no file: cdk deploy -c pipeline=true)")
    text = github_workflow(config)
    target = directory / WORKFLOW
    if target.exists() and not force:
        raise MlopsError(f"{target} exists: pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {target}: deploy the role once (npx cdk deploy -c github=true serverless-mlops-github), then push")


def register_commands(app: typer.Typer) -> None:
    app.command("init-ci")(init_ci)
