"""The synthesized stack deployed on an embedded moto server, its Lambdas running in this process
(:func:`deployed_locally`): a :class:`~serverless_mlops.local.moto.LocalAws` server, the template provisioned into
it (:mod:`serverless_mlops.local.provisioner`) and the in-process Lambda runtime installed
(:mod:`serverless_mlops.local.lambda_runtime`), all stopped when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serverless_mlops.local.lambda_runtime import LocalInvoker
from serverless_mlops.local.provisioner import LocalStack, provision
from serverless_mlops.local.template import DEFAULT_STACK
from serverless_mlops.settings import Settings

if TYPE_CHECKING:
    from serverless_mlops.local.moto import LocalAws


@dataclass(frozen=True)
class LocalDeployment:
    """The stack deployed on an embedded moto server, its Lambdas running in this process (:func:`deployed_locally`)."""

    aws: LocalAws
    stack: LocalStack
    invoker: LocalInvoker

    @property
    def endpoint_url(self) -> str:
        return self.aws.endpoint_url

    @property
    def settings(self) -> Settings:
        """Settings for the CLI and the library: the server's endpoint and the stack's bucket and table."""
        names = {"ArtifactBucketName": "bucket", "RegistryTableName": "table", "RetrainingTableName": "retraining_table"}
        return self.stack.settings.model_copy(update={name: self.stack.outputs[o] for o, name in names.items() if o in self.stack.outputs})


@contextmanager
def deployed_locally(
    template: Mapping[str, Any],
    assembly_dir: str | Path | None,
    *,
    stack_name: str = DEFAULT_STACK,
    settings: Settings | None = None,
    port: int | None = None,
) -> Iterator[LocalDeployment]:
    """Start a moto server on 127.0.0.1, provision ``template`` into it and install the in-process Lambda runtime;
    everything stops when the block ends, and moto's process-wide Step Functions setting is put back (a later
    in-process ``mock_aws()`` copies it)."""
    from serverless_mlops.local.moto import LocalAws, moto_api, restored_step_functions_config

    with restored_step_functions_config(), LocalAws(port) as aws:
        # moto keeps its state in this process, not in the server: start from nothing, as a new deployment does
        moto_api(aws.endpoint_url, "reset")
        base = (settings or Settings()).model_copy(update={"endpoint_url": aws.endpoint_url})
        stack = provision(template, assembly_dir, base, stack_name=stack_name)
        with LocalInvoker(endpoint_url=aws.endpoint_url) as invoker:
            yield LocalDeployment(aws=aws, stack=stack, invoker=invoker)
