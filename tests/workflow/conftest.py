"""The retraining workflow, end to end on moto: the state machine the CDK app synthesizes, run by moto's Step
Functions interpreter, its Lambda tasks run in-process by :class:`~serverless_mlops.local.lambda_runtime.LocalInvoker`.

The app is synthesized once per pytest process from a test deployment config (one model, retries after 1 s with no
backoff so a throttled task costs seconds, not minutes); each test provisions it into a fresh ``mock_aws``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pandas as pd
import pytest

from serverless_mlops.local.assembly import synthesized
from serverless_mlops.model.fit import TrainedModel, train
from tests.helpers.release import ReleaseHarness, release_stack
from tests.helpers.specs import ROOT, example_spec
from tests.helpers.workflow import MODEL, TEST_CONFIG, Workflow, WorkflowSynth, provisioned

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")


@pytest.fixture(scope="session")
def workflow_synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowSynth]:
    """The app synthesized once from the test config, as local mode synthesizes it (no cdk-nag: tests/infra checks
    it); the assembly, with its staged layers, is removed at the end."""
    config = tmp_path_factory.mktemp("workflow-config") / "deployment.yaml"
    config.write_text(TEST_CONFIG, encoding="utf-8")
    outdir = tmp_path_factory.mktemp("workflow-synth")
    template, assembly_dir = synthesized(config=config, outdir=outdir)
    yield WorkflowSynth(template=template, assembly_dir=assembly_dir, config=config)
    shutil.rmtree(outdir, ignore_errors=True)


@pytest.fixture(scope="session")
def weak_champion(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """breast-cancer trained on 40 rows: a champion any full retraining beats."""
    spec = example_spec(MODEL)
    frame = pd.read_csv(ROOT / "models" / spec.data.uri)
    subset = pd.concat([frame[frame[spec.target] == label].head(20) for label in sorted(frame[spec.target].unique())])
    path = tmp_path_factory.mktemp("weak") / "subset.csv"
    subset.to_csv(path, index=False)
    return train(spec.model_copy(update={"data": spec.data.model_copy(update={"uri": str(path)})}))


@pytest.fixture
def workflow(workflow_synth: WorkflowSynth) -> Iterator[Workflow]:
    """The synthesized stack provisioned into a fresh moto, its Lambdas run in-process."""
    with provisioned(workflow_synth.template, workflow_synth.assembly_dir) as harness:
        yield harness


@pytest.fixture
def release(workflow_synth: WorkflowSynth) -> Iterator[ReleaseHarness]:
    with release_stack(workflow_synth.template, workflow_synth.assembly_dir) as harness:
        yield harness


@pytest.fixture
def versions(release: ReleaseHarness, weak_champion: TrainedModel) -> tuple[int, int]:
    """v1 in production, v2 registered (the candidate)."""
    return release.register(weak_champion, "champion", promote=True), release.register(weak_champion, "candidate")
