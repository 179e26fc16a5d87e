"""The ``mlops`` command line, driven through ``main(argv)`` against moto (in-process).

Every failure a user can cause must end as exit code 1 and exactly one ``error:`` line on stderr, with no traceback;
``--json`` output must parse. Models are trained through the CLI once per module and the run folders reused.

Each CLI call costs about half a second (two boto3 clients), so the registry is set up once per module (``world``):
tests that only read use it as is; tests that change aliases or versions register a model of their own, under a
unique name, so they cannot disturb one another.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnxruntime as ort
import pytest
from moto import mock_aws

from serverless_mlops.cli import main
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.specs import EXAMPLE_NAMES, MODELS

USER = "cli-tester"
CALLER = "arn:aws:sts::123456789012:user/moto"  # moto's STS identity: what promote and rollback record, whatever MLOPS_USER says


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


def invoke(args: list[str]) -> Result:
    """Run ``main`` with stdout and stderr captured (usable where capsys is not, e.g. in module fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_one_error_line(result: Result, *fragments: str) -> str:
    assert result.code == 1, (result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("error:"), line
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in line, line
    return line


# --- trained once per module -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    folder: Path
    train: Result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """diabetes (regression, a categorical feature, a range) twice, wine (multiclass, sanitized input names) once."""
    made: dict[str, Run] = {}
    for key, name in (("diabetes", "diabetes"), ("diabetes-again", "diabetes"), ("wine", "wine")):
        folder = tmp_path_factory.mktemp(key) / "run"
        made[key] = Run(folder, invoke(["--json", "train", str(MODELS / f"{name}.yaml"), "--out", str(folder)]))
        assert made[key].train.code == 0, f"training {key} failed: {made[key].train.err}"
    return made


def register(cli: Any, folder: Path, *extra: str) -> dict[str, Any]:
    document: dict[str, Any] = cli("--json", "register", folder, *extra).json()
    return document


@pytest.fixture(scope="module")
def world(runs: dict[str, Run]) -> Iterator[Backends]:
    """One moto registry for the module: diabetes 1 (production) and 2, wine 1 (staging). Tests must not change it."""
    settings = Settings()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MLOPS_ENDPOINT_URL", "MLOPS_BUCKET", "MLOPS_TABLE", "MLOPS_KMS_KEY_ID"):
            env.delenv(name, raising=False)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("MLOPS_USER", USER)
        with mock_aws():
            ensure_resources(settings)
            for args in (
                ["register", runs["diabetes"].folder, "--promote"],
                ["register", runs["diabetes-again"].folder],
                ["register", runs["wine"].folder],
                ["promote", "wine", "1", "--alias", "staging"],
            ):
                result = invoke([str(a) for a in args])
                assert result.code == 0, result.err
            yield Backends.from_settings(settings)


@dataclass(frozen=True)
class Fresh:
    name: str
    spec: Path
    folders: list[Path]


@pytest.fixture
def fresh_model(world: Backends, cli: Any, tmp_path: Path) -> Any:
    """A model of the test's own: the diabetes spec under a unique name, trained and registered ``versions`` times."""

    def make(versions: int = 1, *, register_them: bool = True) -> Fresh:
        name = f"t-{uuid.uuid4().hex[:10]}"
        spec = tmp_path / f"{name}.yaml"
        text = (MODELS / "diabetes.yaml").read_text(encoding="utf-8")
        text = text.replace("name: diabetes", f"name: {name}").replace("uri: data/diabetes.csv", f"uri: {MODELS / 'data' / 'diabetes.csv'}")
        spec.write_text(text, encoding="utf-8")
        folders = []
        for i in range(versions):
            folder = tmp_path / f"run-{i}"
            trained = cli("train", spec, "--out", folder)
            assert trained.code == 0, trained.err
            assert trained.out.startswith(f"trained {name} → ")
            if register_them:
                assert register(cli, folder)["version"] == i + 1
            folders.append(folder)
        return Fresh(name, spec, folders)

    return make


# --- train -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["diabetes", "wine"])
def test_train_json_writes_the_run_folder(runs: dict[str, Run], key: str) -> None:
    run = runs[key]
    result = run.train.json()

    assert {p.name for p in run.folder.iterdir()} >= {"model.onnx", "profile.json.gz", "run.json"}
    assert result["model"] == key
    assert Path(result["run_dir"]) == run.folder
    assert result["parity"]["passed"] is True
    assert result["data_sha256"] == hashlib.sha256((MODELS / "data" / f"{key}.csv").read_bytes()).hexdigest()
    record = json.loads((run.folder / "run.json").read_text(encoding="utf-8"))
    assert record["run_id"] == result["run_id"]
    assert record["metrics"] == result["metrics"]
    expected_metric = {"diabetes": "rmse", "wine": "f1"}[key]
    assert expected_metric in result["metrics"]
    ort.InferenceSession((run.folder / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])


def test_each_training_is_a_new_run(runs: dict[str, Run]) -> None:
    assert runs["diabetes"].train.json()["run_id"] != runs["diabetes-again"].train.json()["run_id"]


def test_train_with_bad_spec_is_one_line(cli: Any, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text((MODELS / "diabetes.yaml").read_text(encoding="utf-8").replace("task: regression", "task: guessing"))

    result = cli("train", spec, "--out", tmp_path / "run")

    assert_one_error_line(result, str(spec), "task")
    assert not (tmp_path / "run").exists()


def test_train_with_bad_data_names_file_column_and_row(cli: Any, tmp_path: Path) -> None:
    lines = (MODELS / "data" / "diabetes.csv").read_text(encoding="utf-8").splitlines(keepends=True)[:41]
    fields = lines[3].rstrip("\n").split(",")
    fields[2] = "thirty"  # bmi of data row 3
    lines[3] = ",".join(fields) + "\n"
    data = tmp_path / "data" / "diabetes.csv"
    data.parent.mkdir()
    data.write_text("".join(lines), encoding="utf-8")
    spec = tmp_path / "diabetes.yaml"
    spec.write_text((MODELS / "diabetes.yaml").read_text(encoding="utf-8"), encoding="utf-8")

    result = cli("train", spec, "--out", tmp_path / "run")

    assert_one_error_line(result, str(data), "'bmi'", "row 3")
    assert not (tmp_path / "run").exists()


def test_train_promote_registers_and_promotes(world: Backends, cli: Any, fresh_model: Any) -> None:
    fresh = fresh_model(0)
    name = fresh.name

    result = cli("--json", "train", fresh.spec, "--out", fresh.spec.parent / "run", "--promote").json()

    registered = result["registered"]
    assert registered["version"] == 1
    assert registered["run_id"] == result["run_id"]
    assert registered["alias"]["name"] == "production"
    assert registered["alias"]["version"] == 1
    production = world.registry.resolve(name)
    assert production.version == 1
    assert production.lineage.run_id == result["run_id"]
    assert production.created_by == USER


# --- validate ----------------------------------------------------------------------------------------------------


def test_validate_good_specs(cli: Any) -> None:
    specs = [MODELS / f"{name}.yaml" for name in EXAMPLE_NAMES]

    result = cli("validate", *specs)

    assert result.code == 0, result.err
    assert result.err == ""
    for name, path in zip(EXAMPLE_NAMES, specs, strict=True):
        assert f"ok {path}: {name}" in result.out


def test_validate_json(cli: Any) -> None:
    specs = [str(MODELS / f"{name}.yaml") for name in EXAMPLE_NAMES]

    assert cli("--json", "validate", *specs).json() == {"valid": specs}


BAD_SPEC_EDITS = [
    pytest.param("task: regression", "task: regression\ncolour: red", ("colour", "unknown field"), id="unknown-field"),
    pytest.param("name: diabetes", "name: Diabetes_Model", ("name", "lower-case letters"), id="bad-name"),
    pytest.param("metric: rmse", "metric: accuracy", ("evaluation.metric: 'accuracy'", "regression"), id="metric-for-task"),
    pytest.param("alpha: 1.0", "alfa: 1.0", ("estimator.params", "alfa"), id="unknown-estimator-param"),
    pytest.param("alpha: 1.0", "alpha: -3", ("estimator.params", "'alpha'"), id="invalid-estimator-param"),
    pytest.param("sklearn.linear_model.Ridge", "sklearn.linear_model.Ridgge", ("estimator.class", "not an importable"), id="no-such-class"),
    pytest.param(
        "sklearn.linear_model.Ridge", "sklearn.linear_model.LogisticRegression", ("estimator.class", "not a regressor"), id="wrong-kind"
    ),
    pytest.param("name: diabetes", "name: [diabetes", ("not valid YAML at line", "column"), id="invalid-yaml"),
    pytest.param("range: [0, 120]", "range: [120, 0]", ("features[0] (age)", "min < max"), id="bad-range"),
]


@pytest.mark.parametrize(("old", "new", "fragments"), BAD_SPEC_EDITS)
def test_validate_bad_spec_is_one_error_line(cli: Any, tmp_path: Path, old: str, new: str, fragments: tuple[str, ...]) -> None:
    text = (MODELS / "diabetes.yaml").read_text(encoding="utf-8")
    assert old in text
    spec = tmp_path / "diabetes.yaml"
    spec.write_text(text.replace(old, new, 1), encoding="utf-8")

    result = cli("validate", spec)

    assert_one_error_line(result, str(spec), *fragments)


def test_validate_missing_file(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"

    assert_one_error_line(cli("validate", missing), str(missing), "not found")


def test_validate_stops_at_the_first_bad_spec_after_reporting_good_ones(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not\n- a mapping\n", encoding="utf-8")

    result = cli("validate", MODELS / "wine.yaml", bad)

    assert_one_error_line(result, str(bad), "expected a mapping")
    assert f"ok {MODELS / 'wine.yaml'}" in result.out


# --- register ----------------------------------------------------------------------------------------------------


def test_register_uploads_the_run_and_records_its_lineage(world: Backends, cli: Any, fresh_model: Any) -> None:
    fresh = fresh_model(1, register_them=False)
    name, folder = fresh.name, fresh.folders[0]

    entry = register(cli, folder)

    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    onnx = (folder / "model.onnx").read_bytes()
    assert entry["model"] == name
    assert entry["version"] == 1
    assert entry["status"] == "registered"
    assert entry["run_id"] == run["run_id"]
    assert entry["created_by"] == USER
    assert entry["artifact"]["sha256"] == hashlib.sha256(onnx).hexdigest()
    bucket, _, key = entry["artifact"]["uri"].removeprefix("s3://").partition("/")
    stored = boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key, VersionId=entry["artifact"]["version_id"])
    assert stored["Body"].read() == onnx


def test_registering_the_same_run_twice_yields_the_same_version(world: Backends, cli: Any, runs: dict[str, Run]) -> None:
    again = register(cli, runs["diabetes"].folder)

    assert again["version"] == 1
    assert again["run_id"] == runs["diabetes"].train.json()["run_id"]
    versions = cli("--json", "list", "diabetes").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]


def test_a_new_run_becomes_the_next_version_and_registers_once(world: Backends, cli: Any, fresh_model: Any) -> None:
    fresh = fresh_model(2)  # registers them as 1 and 2
    name, folders = fresh.name, fresh.folders

    assert [register(cli, folder)["version"] for folder in reversed(folders)] == [2, 1]
    assert [v["version"] for v in cli("--json", "list", name).json()["versions"]] == [1, 2]


def test_register_human_output(world: Backends, cli: Any, runs: dict[str, Run]) -> None:
    result = cli("register", runs["wine"].folder)

    assert result.code == 0, result.err
    assert "registered wine version 1" in " ".join(result.out.split())


def test_register_a_folder_that_is_not_a_run(world: Backends, cli: Any, tmp_path: Path) -> None:
    assert_one_error_line(cli("register", tmp_path), str(tmp_path), "not a training run folder")


# --- list, describe (read-only) ----------------------------------------------------------------------------------


def test_list_models_json(world: Backends, cli: Any) -> None:
    document = cli("--json", "list").json()

    rows = {row["model"]: row for row in document["models"]}
    assert rows["diabetes"] == {"model": "diabetes", "latest": 2, "aliases": {"production": 1}}
    assert rows["wine"] == {"model": "wine", "latest": 1, "aliases": {"staging": 1}}


def test_list_models_table(world: Backends, cli: Any) -> None:
    result = cli("list")

    assert result.code == 0, result.err
    assert "diabetes" in result.out
    assert "wine" in result.out
    assert "production→1" in result.out


def test_list_pages_through_models(world: Backends, cli: Any) -> None:
    everything = [row["model"] for row in cli("--json", "list", "--page-size", "1000").json()["models"]]
    seen: list[str] = []
    token: str | None = None
    for _ in range(len(everything) + 2):
        args = ["--json", "list", "--page-size", "1"] + (["--next-token", token] if token else [])
        page = cli(*args).json()
        assert len(page["models"]) <= 1
        seen += [row["model"] for row in page["models"]]
        token = page["next_token"]
        if token is None:
            break

    assert token is None
    assert seen == everything
    assert {"diabetes", "wine"} <= set(seen)


def test_list_shows_more_when_there_are_more(world: Backends, cli: Any) -> None:
    result = cli("list", "--page-size", "1")

    assert result.code == 0, result.err
    assert "more: --next-token " in result.out


def test_list_versions_of_a_model(world: Backends, cli: Any, runs: dict[str, Run]) -> None:
    versions = cli("--json", "list", "diabetes").json()["versions"]

    assert [v["version"] for v in versions] == [1, 2]
    assert [v["aliases"] for v in versions] == [["production"], []]
    assert [v["run_id"] for v in versions] == [runs["diabetes"].train.json()["run_id"], runs["diabetes-again"].train.json()["run_id"]]
    assert all(v["status"] == "registered" for v in versions)


def test_list_versions_table(world: Backends, cli: Any) -> None:
    result = cli("list", "diabetes")

    assert result.code == 0, result.err
    assert "production" in result.out
    assert "rmse=" in result.out


def test_describe_production_by_default(world: Backends, cli: Any, runs: dict[str, Run]) -> None:
    entry = cli("--json", "describe", "diabetes").json()

    diabetes = runs["diabetes"].folder
    run = json.loads((diabetes / "run.json").read_text(encoding="utf-8"))
    assert entry["version"] == 1
    assert entry["lineage"]["run_id"] == run["run_id"]
    assert entry["lineage"]["data_sha256"] == run["data_sha256"]
    assert entry["lineage"]["estimator"] == "sklearn.linear_model.Ridge"
    assert entry["artifact"]["sha256"] == hashlib.sha256((diabetes / "model.onnx").read_bytes()).hexdigest()
    assert [f["name"] for f in entry["signature"]["features"]] == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def test_describe_a_version(world: Backends, cli: Any, runs: dict[str, Run]) -> None:
    entry = cli("--json", "describe", "diabetes", "--version", "2").json()

    assert entry["version"] == 2
    assert entry["lineage"]["run_id"] == runs["diabetes-again"].train.json()["run_id"]


def test_describe_table(world: Backends, cli: Any) -> None:
    result = cli("describe", "diabetes", "--version", "2")

    assert result.code == 0, result.err
    assert "diabetes version 2" in result.out
    assert "sklearn.linear_model.Ridge" in result.out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["describe", "wine"], ("model 'wine' has no alias 'production'",)),
        (["describe", "diabetes", "--version", "9"], ("model 'diabetes' has no version 9",)),
        (["describe", "diabetes", "--alias", "staging"], ("no alias 'staging'",)),
    ],
    ids=["no-production-alias", "no-such-version", "no-such-alias"],
)
def test_describe_errors(world: Backends, cli: Any, args: list[str], fragments: tuple[str, ...]) -> None:
    assert_one_error_line(cli(*args), *fragments)


# --- promote, rollback, history, archive (each test on a model of its own) -----------------------------------------


def test_promote_moves_the_alias_and_counts_revisions(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name

    first = cli("--json", "promote", name, "1").json()
    second = cli("--json", "promote", name, "2", "--reason", "better rmse").json()

    assert (first["name"], first["version"], first["revision"]) == ("production", 1, 1)
    assert (second["name"], second["version"], second["revision"]) == ("production", 2, 2)
    assert world.registry.resolve(name).version == 2


def test_promote_human_output(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(1).name

    result = cli("promote", name, "1", "--alias", "staging")

    assert result.code == 0, result.err
    assert f"{name}: staging → version 1 (revision 1)" in result.out
    assert world.registry.resolve(name, "staging").version == 1


def test_promote_with_the_current_revision_succeeds(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name
    cli("promote", name, "1")

    assert cli("--json", "promote", name, "2", "--expected-revision", "1").json()["revision"] == 2
    assert world.registry.resolve(name).version == 2


def test_promote_with_a_stale_revision_is_one_line(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name
    cli("promote", name, "1")
    cli("promote", name, "2")

    result = cli("--json", "promote", name, "1", "--expected-revision", "1")

    assert_one_error_line(result, "'production'", "revision 2, not 1")
    assert result.out == ""
    assert world.registry.resolve(name).version == 2


def test_promote_with_expected_revision_zero_when_the_alias_exists(world: Backends, cli: Any) -> None:
    assert_one_error_line(cli("promote", "diabetes", "2", "--expected-revision", "0"), "revision 1, not 0")
    assert world.registry.resolve("diabetes").version == 1


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["promote", "diabetes", "7"], ("model 'diabetes' has no version 7",)),
        (["promote", "diabetes", "2", "--alias", "not an alias!"], ("invalid alias name",)),
        (["rollback", "diabetes"], ("no earlier version",)),
        (["rollback", "wine"], ("no alias 'production'",)),
        (["history", "wine"], ("no alias 'production'",)),
        (["archive", "diabetes", "1"], ("version 1", "aliased as production")),
        (["archive", "wine", "1"], ("version 1", "aliased as staging")),
    ],
    ids=[
        "no-such-version",
        "bad-alias-name",
        "nothing-to-roll-back-to",
        "rollback-without-alias",
        "history-without-alias",
        "archive-production",
        "archive-staging",
    ],
)
def test_alias_errors_are_one_line_and_change_nothing(world: Backends, cli: Any, args: list[str], fragments: tuple[str, ...]) -> None:
    before = {name: [a.model_dump() for a in world.registry.aliases(name)] for name in ("diabetes", "wine")}

    assert_one_error_line(cli(*args), *fragments)

    assert {name: [a.model_dump() for a in world.registry.aliases(name)] for name in ("diabetes", "wine")} == before
    assert [v.status for v in world.registry.list_versions("diabetes").items] == ["registered", "registered"]
    assert world.registry.describe("wine", 1).status == "registered"


def test_rollback_returns_to_the_previous_version(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name
    cli("promote", name, "1")
    cli("promote", name, "2")

    back = cli("--json", "rollback", name, "--reason", "latency").json()

    assert back["version"] == 1
    assert back["from_version"] == 2
    assert back["revision"] == 3
    assert world.registry.resolve(name).version == 1
    assert_one_error_line(cli("rollback", name), "no earlier version")


def test_rollback_and_history_human_output(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name
    cli("promote", name, "1")
    cli("promote", name, "2")

    rolled = cli("rollback", name)
    history = cli("history", name)

    assert rolled.code == 0, rolled.err
    assert "rolled back from version 2 to version 1" in rolled.out
    assert history.code == 0, history.err
    assert "rollback" in history.out
    assert CALLER in "".join(line.split("│")[6].strip() for line in history.out.splitlines() if line.count("│") == 8)


def test_history_lists_every_move(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name
    cli("promote", name, "1")
    cli("promote", name, "2", "--reason", "new data")
    cli("rollback", name, "--reason", "regression in prod")

    changes = cli("--json", "history", name).json()

    assert [c["revision"] for c in changes] == [1, 2, 3]
    assert [c["action"] for c in changes] == ["promote", "promote", "rollback"]
    assert [(c["from_version"], c["to_version"]) for c in changes] == [(None, 1), (1, 2), (2, 1)]
    assert [c["reason"] for c in changes][1:] == ["new data", "regression in prod"]
    assert {c["by"] for c in changes} == {CALLER}


def test_archive_an_unaliased_version(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(2).name
    cli("promote", name, "1")

    archived = cli("--json", "archive", name, "2").json()

    assert archived["version"] == 2
    assert archived["status"] == "archived"
    assert world.registry.describe(name, 2).status == "archived"
    assert_one_error_line(cli("promote", name, "2"), "version 2 is archived")
    assert world.registry.resolve(name).version == 1


def test_archive_human_output(world: Backends, cli: Any, fresh_model: Any) -> None:
    name = fresh_model(1).name

    result = cli("archive", name, "1")

    assert result.code == 0, result.err
    assert f"{name} version 1 archived" in result.out


# --- predict -----------------------------------------------------------------------------------------------------


def csv_piece(name: str, rows: int, folder: Path, *, step: int = 1) -> Path:
    """The header and ``rows`` data rows (every ``step``-th) of an example CSV, target column included."""
    lines = (MODELS / "data" / f"{name}.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    path = folder / f"{name}-{rows}.csv"
    path.write_text(lines[0] + "".join(lines[1::step][:rows]), encoding="utf-8")
    return path


def records_from_csv(path: Path, numeric: set[str]) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [{k: float(v) if k in numeric else v for k, v in row.items()} for row in csv.DictReader(handle)]


def reference_outputs(backends: Backends, model: str, version: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the registered ONNX graph itself gives, fetched straight from S3 and checked against the registry's sha256."""
    entry = backends.registry.describe(model, version)
    bucket, _, key = entry.artifact.uri.removeprefix("s3://").partition("/")
    onnx = boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(onnx).hexdigest() == entry.artifact.sha256
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    feeds = {
        f.input_name: np.array([r[f.name] for r in records], dtype=np.float32 if f.kind == "numeric" else object).reshape(-1, 1)
        for f in entry.signature.features
    }
    signature = entry.signature
    if signature.is_classification:
        labels, probabilities = session.run([signature.label_output, signature.probabilities_output], feeds)
        return {"predictions": labels.ravel().tolist(), "probabilities": probabilities.astype(np.float64).tolist()}
    (values,) = session.run([signature.value_output], feeds)
    return {"predictions": values.ravel().astype(np.float64).tolist()}


def write_input(folder: Path, kind: str, name: str, records: list[dict[str, Any]], feature_order: list[str]) -> Path:
    if kind == "csv":
        path = folder / f"{name}-input.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        return path
    path = folder / f"{name}-{kind}.json"
    if kind == "instances":
        document: Any = {"instances": records}
    elif kind == "inputs":
        document = {"inputs": [[r[f] for f in feature_order] for r in records]}
    else:
        document = records
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["instances", "inputs", "csv", "bare-list"])
@pytest.mark.parametrize(("model", "selector"), [("diabetes", []), ("wine", ["--alias", "staging"])], ids=["diabetes", "wine"])
def test_predict_matches_the_registered_onnx_model(
    world: Backends, cli: Any, tmp_path: Path, model: str, selector: list[str], kind: str
) -> None:
    signature = world.registry.describe(model, 1).signature
    numeric = {f.name for f in signature.features if f.kind == "numeric"}
    records = records_from_csv(csv_piece(model, 6, tmp_path, step=29), numeric)
    path = write_input(tmp_path, kind, model, records, signature.feature_names)

    result = cli("--json", "predict", model, "--input", path, *selector).json()

    expected = reference_outputs(world, model, 1, records)
    assert result["model"] == model
    assert result["version"] == 1
    assert len(result["predictions"]) == 6
    if signature.is_classification:
        assert result["predictions"] == expected["predictions"]
        assert len(set(result["predictions"])) > 1  # the rows span several classes
        assert result["probabilities"] == pytest.approx(np.array(expected["probabilities"]), abs=1e-6)
        assert set(result["predictions"]) <= set(signature.classes or [])
    else:
        assert "probabilities" not in result
        assert result["predictions"] == pytest.approx(expected["predictions"], rel=1e-6, abs=1e-6)


def test_predict_a_chosen_version(world: Backends, cli: Any, tmp_path: Path) -> None:
    path = csv_piece("diabetes", 3, tmp_path)

    result = cli("--json", "predict", "diabetes", "--input", path, "--version", "2").json()

    numeric = {f.name for f in world.registry.describe("diabetes", 2).signature.features if f.kind == "numeric"}
    expected = reference_outputs(world, "diabetes", 2, records_from_csv(path, numeric))
    assert result["version"] == 2
    assert result["predictions"] == pytest.approx(expected["predictions"], rel=1e-6, abs=1e-6)


def test_predict_table(world: Backends, cli: Any, tmp_path: Path) -> None:
    result = cli("predict", "diabetes", "--input", csv_piece("diabetes", 4, tmp_path))

    assert result.code == 0, result.err
    assert "diabetes version 1" in result.out
    assert "4 prediction(s)" in result.out


DIABETES_ROW = {"age": 59.0, "sex": "b", "bmi": 32.1, "bp": 101.0, "s1": 157.0, "s2": 93.2, "s3": 38.0, "s4": 4.0, "s5": 4.8598, "s6": 87.0}
CSV_HEADER = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,target\n"
CSV_ROW = "59,b,32.1,101,157,93.2,38,4,4.8598,87,151\n"


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in DIABETES_ROW.items() if k != key}


BAD_INPUTS = [
    # JSON instances are named by their index from 0; CSV rows by data row from 1, as in every other message
    pytest.param("in.json", {"instances": [DIABETES_ROW, _without("s6")]}, ("instance 1", "'s6'", "missing"), id="missing-feature"),
    pytest.param(
        "in.json", {"instances": [_without("s6"), _without("s6")]}, ("no feature 's6' in the input",), id="feature-absent-everywhere"
    ),
    pytest.param(
        "in.json", {"instances": [DIABETES_ROW | {"bmi": "32.1"}]}, ("instance 0", "'bmi'", "expected a number"), id="string-for-number"
    ),
    pytest.param(
        "in.json",
        {"instances": [DIABETES_ROW, DIABETES_ROW | {"age": 130}]},
        ("instance 1", "'age'", "outside the allowed range [0.0, 120.0]"),
        id="out-of-range",
    ),
    pytest.param(
        "in.json", {"instances": [DIABETES_ROW | {"sex": "z"}]}, ("instance 0", "'sex'", "unknown category"), id="unknown-category"
    ),
    pytest.param(
        "in.json", {"inputs": [list(DIABETES_ROW.values())[:-1]]}, ("instance 0", "expected 10 values in signature order"), id="short-row"
    ),
    pytest.param("in.json", [[1, 2, 3]], ("instance 0", "expected an object of feature values"), id="list-of-lists"),
    pytest.param("in.json", {"instances": []}, ("no instances",), id="no-instances"),
    pytest.param("in.json", {"rows": []}, ("expected a list of records",), id="json-wrong-shape"),
    pytest.param("in.json", '{"instances": [{"age": 59,}]}', ("not valid JSON", "line 1, column"), id="invalid-json"),
    pytest.param(
        "in.csv", CSV_HEADER + CSV_ROW + CSV_ROW.replace("32.1", "thin"), ("row 2", "'bmi'", "expected a number"), id="csv-non-numeric"
    ),
    pytest.param(
        "in.csv", CSV_HEADER + CSV_ROW + CSV_ROW.replace(",87,", ",,"), ("row 2", "'s6'", "expected a number"), id="csv-empty-cell"
    ),
    pytest.param(
        "in.csv",
        CSV_HEADER + CSV_ROW + CSV_ROW.replace("59,", "130,", 1),
        ("row 2", "'age'", "outside the allowed range"),
        id="csv-out-of-range",
    ),
    pytest.param(
        "in.csv", CSV_HEADER + CSV_ROW + CSV_ROW.replace(",b,", ",z,"), ("row 2", "'sex'", "unknown category"), id="csv-unknown-category"
    ),
    pytest.param(
        "in.csv", CSV_HEADER.replace("s6,", "") + CSV_ROW.replace(",87,", ","), ("no column 's6' in the input",), id="csv-missing-column"
    ),
    pytest.param(
        "in.csv", CSV_HEADER + CSV_ROW + CSV_ROW.strip() + ",extra\n", ("row 2", "more values than the header"), id="csv-extra-value"
    ),
]


@pytest.mark.parametrize(("file_name", "content", "fragments"), BAD_INPUTS)
def test_predict_bad_input_is_one_line_naming_file_row_and_field(
    world: Backends, cli: Any, tmp_path: Path, file_name: str, content: Any, fragments: tuple[str, ...]
) -> None:
    path = tmp_path / file_name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")

    result = cli("--json", "predict", "diabetes", "--input", path)

    assert_one_error_line(result, str(path), *fragments)
    assert result.out == ""


def test_predict_reads_json_from_stdin(world: Backends, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"instances": [DIABETES_ROW]})))

    result = cli("--json", "predict", "diabetes", "--input", "-").json()

    assert result["predictions"] == pytest.approx(
        reference_outputs(world, "diabetes", 1, [DIABETES_ROW])["predictions"], rel=1e-6, abs=1e-6
    )


def test_predict_missing_input_file(world: Backends, cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"

    assert_one_error_line(cli("predict", "diabetes", "--input", missing), str(missing), "cannot read input")


def test_predict_csv_with_a_utf8_bom(world: Backends, cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_piece("diabetes", 3, tmp_path).read_bytes())

    result = cli("--json", "predict", "diabetes", "--input", path).json()

    numeric = {f.name for f in world.registry.describe("diabetes", 1).signature.features if f.kind == "numeric"}
    expected = reference_outputs(world, "diabetes", 1, records_from_csv(csv_piece("diabetes", 3, tmp_path), numeric))
    assert result["predictions"] == pytest.approx(expected["predictions"], rel=1e-6, abs=1e-6)


# --- unknown models ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["describe", "nosuch"],
        ["describe", "nosuch", "--version", "1"],
        ["list", "nosuch"],
        ["promote", "nosuch", "1"],
        ["rollback", "nosuch"],
        ["history", "nosuch"],
        ["archive", "nosuch", "1"],
        ["predict", "nosuch", "--input", "unused.json"],
    ],
    ids=lambda args: "-".join(a for a in args if not a.startswith("-") and a != "nosuch"),
)
def test_unknown_model_is_one_line(world: Backends, cli: Any, args: list[str]) -> None:
    assert_one_error_line(cli(*args), "model 'nosuch' is not registered")


def test_list_with_no_models(world: Backends, cli: Any) -> None:
    ensure_resources(Settings(table="empty-registry"))

    assert cli("--json", "--table", "empty-registry", "list").json() == {"models": [], "next_token": None}
