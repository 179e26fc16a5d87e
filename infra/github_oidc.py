"""The role GitHub Actions assumes through GitHub's OIDC provider (``cdk deploy -c github=true``; the workflow is what
``mlops init-ci --github`` writes).

The trust policy names one repository and nothing broader: the workflow's jobs on one ref (``repo:OWNER/NAME:ref:REF``,
the test and synth jobs) and its deploy jobs, which run in a GitHub environment per stage
(``repo:OWNER/NAME:environment:STAGE``: GitHub puts the environment, not the ref, in a deploy job's token; each
environment's deployment branch rule limits it to that ref, docs/deploying.md). The audience must be ``sts.amazonaws.com``.
No wildcard in either. The role may assume the CDK bootstrap roles of each stage's account and region (what ``cdk deploy``
does) and run the checks after a deploy (:func:`infra.pipeline.verify_statements`).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.ci_permissions import acknowledge_wildcards, checks_assume_statement, verify_statements
from infra.nag import default_policy
from infra.stages import GITHUB_ROLE_NAME as ROLE_NAME
from infra.stages import GithubOidc, PipelineConfig

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
GITHUB_STACK = "serverless-mlops-github"
# the roles `cdk bootstrap` creates (default qualifier), which `cdk deploy` assumes
BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")


def subjects(github: GithubOidc, stages: list[str]) -> list[str]:
    """The token subjects the role trusts: the ref's jobs and each stage's environment, in one repository."""
    return [f"repo:{github.repository}:ref:{github.ref}", *(f"repo:{github.repository}:environment:{stage}" for stage in stages)]


class GithubDeployRole(Construct):
    """GitHub's OIDC provider (or the account's existing one) and the role the deploy workflow assumes."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        github = config.github
        assert github is not None
        stack = cdk.Stack.of(self)
        if github.create_provider:
            provider = iam.CfnOIDCProvider(self, "Provider", url=f"https://{GITHUB_ISSUER}", client_id_list=[AUDIENCE])
            provider_arn = provider.attr_arn
        else:
            provider_arn = f"arn:{stack.partition}:iam::{stack.account}:oidc-provider/{GITHUB_ISSUER}"
        conditions = {
            "StringEquals": {
                f"{GITHUB_ISSUER}:aud": AUDIENCE,
                f"{GITHUB_ISSUER}:sub": subjects(github, [stage.name for stage in config.stages]),
            }
        }
        self.role = iam.Role(
            self,
            "Role",
            role_name=ROLE_NAME,
            assumed_by=iam.WebIdentityPrincipal(provider_arn, conditions),
            max_session_duration=cdk.Duration.hours(1),
            description=f"GitHub Actions of {github.repository} ({github.ref} and its stage environments) deploying serverless-mlops",
        )
        bootstrap = [
            f"arn:{stack.partition}:iam::{stage.account}:role/cdk-hnb659fds-{role}-role-{stage.account}-{stage.region}"
            for stage in config.stages
            for role in BOOTSTRAP_ROLES
        ]
        self.role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole", "sts:TagSession"], resources=bootstrap))
        for stage in config.stages:  # the checks: here, or through the stage's checks role in its own account
            for statement in verify_statements(stage) if stage.account == config.account else [checks_assume_statement(stage)]:
                self.role.add_to_policy(statement)


class GithubStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(account=config.account, region=config.region),
            description="serverless-mlops: the role GitHub Actions deploys with (OIDC)",
            tags={"project": "serverless-mlops", "stage": "ci"},
        )
        self.deploy = GithubDeployRole(self, "GithubDeploy", config=config)
        policy = default_policy(self.deploy.role)
        assert isinstance(policy, iam.CfnPolicy)
        acknowledge_wildcards(policy)
