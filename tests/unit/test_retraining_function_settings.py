"""The retraining functions' settings: one style (serverless_mlops.settings), validated on the first invocation; inside
Lambda a missing bucket, registry table or retraining table fails with the variable named, never a silent default."""

from __future__ import annotations

import pytest

from functions.release import app as release_app
from functions.training import app as training_app
from serverless_mlops.settings import DEFAULT_BUCKET, ConfigurationError, Settings

IN_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "mlops-training", "MLOPS_BUCKET": "b-1", "MLOPS_TABLE": "t-1", "MLOPS_RETRAINING_TABLE": "r-1"}


@pytest.mark.parametrize("missing", ["MLOPS_BUCKET", "MLOPS_TABLE", "MLOPS_RETRAINING_TABLE"])
@pytest.mark.parametrize("settings_class", [training_app.TrainingSettings, release_app.ReleaseSettings])
def test_inside_lambda_a_missing_required_variable_is_named(settings_class: type[training_app.TrainingSettings], missing: str) -> None:
    env = {k: v for k, v in IN_LAMBDA.items() if k != missing}
    with pytest.raises(ConfigurationError, match=rf"^{missing} not set: the function mlops-training needs it"):
        settings_class.from_env(env)
    with pytest.raises(ConfigurationError, match=rf"^{missing} not set"):
        settings_class.from_env(env | {missing: "  "})  # blank is missing


def test_every_missing_variable_is_named_in_one_message() -> None:
    with pytest.raises(ConfigurationError, match=r"^MLOPS_BUCKET, MLOPS_TABLE, MLOPS_RETRAINING_TABLE not set: .* needs them"):
        release_app.ReleaseSettings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "mlops-release"})


def test_outside_lambda_the_local_defaults_apply() -> None:
    assert Settings.from_env({}).bucket == DEFAULT_BUCKET
    assert training_app.TrainingSettings.from_env({}).aws.bucket == DEFAULT_BUCKET


def test_the_training_function_fails_its_first_invocation_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in IN_LAMBDA.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLOPS_RETRAINING_TABLE")
    training_app.default_dependencies.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="MLOPS_RETRAINING_TABLE not set"):
            training_app.default_dependencies()  # what handle() calls on the first invocation
    finally:
        training_app.default_dependencies.cache_clear()


def test_a_function_variable_is_validated_and_named() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid training settings: MLOPS_LOCK_TTL_SECONDS: Input should be greater than 0"):
        training_app.TrainingSettings.from_env({"MLOPS_LOCK_TTL_SECONDS": "0"})
    assert training_app.TrainingSettings.from_env({"MLOPS_LOCK_TTL_SECONDS": "60"}).lock_ttl_seconds == 60
    assert release_app.ReleaseSettings.from_env({"MLOPS_ALERT_TOPIC_ARN": "arn:t"}).alert_topic_arn == "arn:t"


def test_the_inside_lambda_check_counts_a_cli_flag_as_set() -> None:
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f"}, bucket="b-2", table="t-2").bucket == "b-2"
