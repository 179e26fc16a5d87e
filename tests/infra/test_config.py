"""A bad deployment config fails the synth with one line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.app import build_app, main
from infra.config import ConfigError, load_deployment

ROOT = Path(__file__).resolve().parents[2]
WINE = f"{ROOT}/models/wine.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"models: [{WINE}]\nstage: qa\n", "stage: Input should be 'dev' or 'prod'"),
        ("stage: dev\n", "models: required field is missing"),
        ("models: []\n", "models: List should have at least 1 item"),
        (f"models: [{WINE}]\ninference: {{timeout_seconds: 30}}\n", "inference.timeout_seconds: Input should be less than 30"),
        (f"models: [{WINE}]\ninference: {{memory_mb: 64}}\n", "inference.memory_mb: Input should be greater than or equal to 128"),
        (
            f"models: [{WINE}]\ninference: {{concurrency: {{reserved: 2, provisioned: 3}}}}\n",
            "inference.concurrency: provisioned: 3 exceeds reserved (2)",
        ),
        (f"models: [{WINE}]\nauth: {{mode: jwt}}\n", "auth: issuer: mode 'jwt' needs the issuer's https:// URL"),
        (
            f"models: [{WINE}]\nauth: {{mode: jwt, issuer: 'https://id.example.com'}}\n",
            "auth: audience: mode 'jwt' needs at least one audience",
        ),
        (f"models: [{WINE}]\nauth: {{mode: iam, audience: [x]}}\n", "auth: issuer/audience apply only to mode 'jwt'"),
        (f"models: [{WINE}]\nalerts: [{{protocol: email, endpoint: not-an-address}}]\n", "alerts[0]: endpoint: expected an email address"),
        (
            f"models: [{WINE}]\nalerts: [{{protocol: https, endpoint: 'http://plain.example.com'}}]\n",
            "alerts[0]: endpoint: expected an https:// URL",
        ),
        (f"models: [{WINE}]\nalerts: [{{protocol: sqs, endpoint: my-queue}}]\n", "alerts[0]: endpoint: expected an SQS queue ARN"),
        (
            f"models: [{WINE}]\nalerts: [{{protocol: sms, endpoint: '+15550100'}}]\n",
            "alerts[0].protocol: Input should be 'email', 'https' or 'sqs'",
        ),
        (f"models: [{WINE}]\ninference: {{memroy_mb: 512}}\n", "inference.memroy_mb: unknown field"),
        (f"models: [{WINE}]\ncapture_retention_days: 7\n", "capture_retention_days: Input should be greater than or equal to 32"),
        (f"models: [{WINE}]\nlog_retention_days: 10\n", "log_retention_days: Input should be 7, 14, 30, 60, 90, 180 or 365"),
        (
            f"models: [{WINE}]\nretraining: {{train: {{timeout_seconds: 1200}}}}\n",
            "retraining.train.timeout_seconds: Input should be less than or equal to 900",
        ),
        (
            f"models: [{WINE}]\nretraining: {{release: {{memory_mb: 64}}}}\n",
            "retraining.release.memory_mb: Input should be greater than or equal to 128",
        ),
        (
            f"models: [{WINE}]\nretraining: {{retry: {{interval_seconds: 0}}}}\n",
            "retraining.retry.interval_seconds: Input should be greater than or equal to 1",
        ),
        (
            f"models: [{WINE}]\nretraining: {{retry: {{backoff_rate: 0.5}}}}\n",
            "retraining.retry.backoff_rate: Input should be greater than or equal to 1",
        ),
        (f"models: [{WINE}]\nretraining: {{retry: {{max_attempts: -1}}}}\n", "retraining.retry.max_attempts: Input should be greater"),
        (f"models: [{WINE}]\nretraining: {{approval_timeout_hours: 0}}\n", "retraining.approval_timeout_hours: Input should be greater"),
        (f"models: [{WINE}]\nretraining: {{approval_timeout_hours: 9000}}\n", "retraining.approval_timeout_hours: Input should be less"),
        (f"models: [{WINE}]\nretraining: {{retries: {{}}}}\n", "retraining.retries: unknown field"),
        (f"models: [{WINE}, {WINE}]\n", "models: each model may be deployed once; repeated: wine"),
        (f"models: [{WINE}]\ntags: {{team: 42}}\n", "tags.team: Input should be a valid string"),
        (f"models: [{WINE}]\ntags: [team]\n", "tags: Input should be a valid dictionary"),
        (f"models: [{WINE}]\ntags: {{'': x}}\n", "tags: a key is empty; AWS needs 1 to 128 characters"),
        (f"models: [{WINE}]\ntags: {{k{'x' * 128}: v}}\n", f"tags: key 'k{'x' * 128}' is 129 characters long; AWS allows at most 128"),
        (f"models: [{WINE}]\ntags: {{team: v{'x' * 256}}}\n", f"tags: 'team': value 'v{'x' * 256}' is 257 characters long; AWS allows"),
        (f"models: [{WINE}]\ntags: {{'AWS:owner': me}}\n", "tags: key 'AWS:owner' starts with 'AWS:', a prefix AWS reserves for"),
        (f"models: [{WINE}]\ntags: {{owner: 'aws:me'}}\n", "tags: 'owner': value 'aws:me' starts with 'aws:', a prefix AWS reserves"),
        (
            f"models: [{WINE}]\ntags: {{'team#1': ml, cost: '$4'}}\n",
            "tags: key 'team#1' holds '#'; a tag allows letters, numbers, spaces and _ . : / = + - @; 'cost': value '$4' holds '$'",
        ),
        (f"models: [{WINE}]\ntags: {{stage: prod}}\n", "tags: key 'stage' is set from the stage field; leave it out"),
        (
            f"models: [{WINE}]\ntags: {{{', '.join(f't{i}: v' for i in range(49))}}}\n",
            "tags: 51 tags with project and stage; AWS allows 50 a resource",
        ),
        ("models: [missing.yaml]\n", "models[0]: "),
        ("- just\n- a list\n", "expected a mapping at the top level"),
        ("models: [unclosed\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_file_and_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_deployment(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_a_spec_error_names_the_spec_file_too(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: Bad Name\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\[0\]: .*broken.yaml: invalid model spec: name: "):
        load_deployment(write(tmp_path, "models: [broken.yaml]\n"))


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere.yaml: deployment config not found"):
        load_deployment(tmp_path / "nowhere.yaml")


def test_the_stage_override_wins_and_prod_retains(tmp_path: Path) -> None:
    path = write(tmp_path, f"models: [{WINE}]\nstage: dev\n")
    assert load_deployment(path, stage="prod").retain
    assert not load_deployment(path).retain


def test_every_deployment_is_tagged_with_its_project_and_stage_then_the_config_tags(tmp_path: Path) -> None:
    path = write(tmp_path, f"models: [{WINE}]\n")
    assert load_deployment(path).tags == {"project": "serverless-mlops", "stage": "dev"}
    assert load_deployment(path, stage="prod").tags == {"project": "serverless-mlops", "stage": "prod"}
    # letters, numbers and spaces of any script, the punctuation AWS allows, empty values, and the project renamed
    tagged = write(tmp_path, f"models: [{WINE}]\ntags: {{project: fraud, 'cost center': '', équipe: 'ml/ops_1 = a+b@c.d:e', 部门: 数据}}\n")
    assert load_deployment(tagged, stage="prod").tags == {
        "project": "fraud",
        "cost center": "",
        "équipe": "ml/ops_1 = a+b@c.d:e",
        "部门": "数据",
        "stage": "prod",
    }
    # at most 48 of one's own beside project and stage (50 a resource)
    many = write(tmp_path, f"models: [{WINE}]\ntags: {{{', '.join(f't{i}: v' for i in range(48))}}}\n")
    assert len(load_deployment(many).tags) == 50


def test_cdk_context_names_the_config_and_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "models: []\n")
    # what `cdk synth -c config=… -c stage=…` gives the app
    with pytest.raises(ConfigError, match=f"{path}: invalid deployment config: models: "):
        build_app(context={"config": str(path), "stage": "prod"})
    with pytest.raises(ConfigError, match="stage: must be one of dev, prod, got 'test'"):
        build_app(context={"config": str(path), "stage": "test"})


def test_the_app_prints_one_line_and_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, f"models: [{WINE}]\ninference: {{timeout_seconds: 45}}\n")
    monkeypatch.setattr("infra.config.DEFAULT_CONFIG", path)
    with pytest.raises(SystemExit) as caught:
        main()
    assert str(caught.value).startswith(f"error: {path}: invalid deployment config: inference.timeout_seconds: ")


def test_a_layer_that_cannot_be_built_stops_the_synth_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from layers.build import LayerBuildError

    def offline(name: str, **_options: object) -> Path:
        raise LayerBuildError(f"layer {name!r} (manylinux_2_34_x86_64, Python 3.12): pip install failed: ERROR: no network")

    monkeypatch.setattr("infra.packaging.build_layer", offline)
    with pytest.raises(SystemExit, match=r"^error: layer 'inference' .*pip install failed: ERROR: no network$"):
        main()


# -- specs the deployment could publish but retraining could not read ---------------------------------------------
def wine_with_data(tmp_path: Path, data: str) -> None:
    """other.yaml: models/wine.yaml with its data block replaced by ``data`` (YAML flow mapping)."""
    text = Path(WINE).read_text(encoding="utf-8").replace("  uri: data/wine.csv\n", "")
    assert "\ndata:\n" in text
    (tmp_path / "other.yaml").write_text(text.replace("\ndata:\n", f"\ndata: {data}\n"), encoding="utf-8")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "{uri: s3://other/x.csv}",
            "models[1] (other.yaml, model wine): data.uri: s3://other/x.csv is in another bucket; the retraining role can read"
            " only the artifact bucket: copy the data next to the spec (a local path; cdk deploy publishes it)",
        ),
        (
            "{uri: data/x.parquet}",
            "models[1] (other.yaml, model wine): data.uri: {dir}/data/x.parquet is Parquet, which retraining cannot read"
            " (the training layer has no pyarrow (it would not fit Lambda's 250 MB)): convert it to CSV",
        ),
        (
            "{uri: data/x.bin, format: parquet}",
            "models[1] (other.yaml, model wine): data.format: {dir}/data/x.bin is Parquet, which retraining cannot read",
        ),
    ],
)
def test_a_spec_whose_data_retraining_cannot_read_stops_the_synth_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: str, message: str
) -> None:
    wine_with_data(tmp_path, data)
    diabetes = ROOT / "models" / "diabetes.yaml"
    path = write(tmp_path, f"models: [{diabetes}, other.yaml]\n")
    monkeypatch.setattr("infra.config.DEFAULT_CONFIG", path)
    with pytest.raises(SystemExit) as caught:
        main()
    assert str(caught.value).startswith(f"error: {path}: " + message.format(dir=tmp_path.resolve()))
    assert "\n" not in str(caught.value)


def test_such_a_spec_still_trains_locally(tmp_path: Path) -> None:
    # the refusal is the deployment's: the spec itself stays valid for `mlops train` (which reads s3:// and Parquet)
    from serverless_mlops.model.spec import load_spec

    wine_with_data(tmp_path, "{uri: s3://other/x.csv}")
    assert load_spec(tmp_path / "other.yaml").data.uri == "s3://other/x.csv"
