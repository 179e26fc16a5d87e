"""The CLI's last line of defence: AWS errors, bugs and interrupts still end in one line and a non-zero exit."""

from __future__ import annotations

import pytest
from moto import mock_aws

from serverless_mlops.cli import main
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, list[str]]:
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_an_aws_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():  # no table: DynamoDB answers ResourceNotFoundException
        code, err = _run(capsys, ["list"])
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("error: AWS: ")
    assert "ResourceNotFoundException" in err[0]


def test_a_bug_is_one_line_that_points_at_debug(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("registry exploded\nsecond line")

    monkeypatch.setattr(DynamoDBRegistry, "list_models", boom)
    with mock_aws():
        code, err = _run(capsys, ["list"])
    assert code == 1
    assert err == ["internal error: RuntimeError: registry exploded second line (run with --debug for the traceback)"]


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(DynamoDBRegistry, "list_models", boom)
    with mock_aws(), pytest.raises(RuntimeError, match="registry exploded"):
        main(["--debug", "list"])


def test_ctrl_c_exits_130_quietly(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(DynamoDBRegistry, "list_models", interrupted)
    with mock_aws():
        code, err = _run(capsys, ["list"])
    assert (code, err) == (130, [])  # the shell convention for SIGINT; no traceback


def test_a_usage_mistake_exits_2_and_says_which_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, ["promote", "wine", "two"])
    assert code == 2
    assert len(err) == 1  # one line, like every other error: no usage box
    assert err[0].startswith("error: Invalid value for 'version'")
    assert err[0].endswith("(see mlops promote --help)")
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nosuch"], "error: No such command 'nosuch'. (see mlops --help)"),
        (["list", "--bogus"], "error: No such option: --bogus (see mlops list --help)"),
        (["retrain"], "error: Missing argument 'model'. (see mlops retrain --help)"),
        (
            ["local", "alerts", "--wait", "50"],
            "error: Invalid value for '--wait': Input should be less than or equal to 20 (see mlops local alerts --help)",
        ),
    ],
)
def test_every_usage_mistake_is_one_line_naming_the_command(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    assert _run(capsys, args) == (2, [expected])


def test_a_group_alone_shows_its_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local"]) == 0
    assert "mlops local [OPTIONS] COMMAND" in capsys.readouterr().out


def test_long_messages_are_cut_to_one_bounded_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def huge(*args: object, **kwargs: object) -> None:
        raise RuntimeError("x" * 10_000)

    monkeypatch.setattr(DynamoDBRegistry, "list_models", huge)
    with mock_aws():
        code, err = _run(capsys, ["list"])
    assert code == 1
    assert len(err) == 1
    assert len(err[0]) < 2200
