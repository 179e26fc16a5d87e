"""``mlops local``: the whole stack as a background daemon, driven through the real CLI on 127.0.0.1.

One stack per module (``stack``: ``mlops local up`` through ``main``, so up's own code is measured, from the session's
synthesized template) serves the tests that only use it: the commands ``up`` prints are run as printed (in bash), and
the client commands also run in-process (through ``main``). Tests that start or break a stack of their own use their
own state folder; every stack is stopped in a ``finally``, and each stop is checked: the daemon's pid is gone and
both ports refuse connections.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from serverless_mlops.cli import local as cli_local
from serverless_mlops.cli import local_daemon, main
from serverless_mlops.errors import MlopsError
from serverless_mlops.local.environment import LocalInfo

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MLOPS = str(BIN / "mlops")
TIMEOUT = 150  # seconds any one CLI call may take (up waits up to 120 s for the daemon)
# what the tests' environment may carry that would point a command at something else than the stack under test
FOREIGN = ("MLOPS_ENDPOINT_URL", "AWS_ENDPOINT_URL", "MLOPS_BUCKET", "MLOPS_TABLE", "MLOPS_RETRAIN_STATE_MACHINE_ARN", "MLOPS_API_URL")


def cli_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env.update({"MLOPS_LOCAL_DIR": str(state_dir), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "COLUMNS": "250"})
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"})
    return env


def mlops(state_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLOPS, *args], env=cli_env(state_dir), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def bash(state_dir: Path, script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], env=cli_env(state_dir), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def ports(info: LocalInfo) -> list[int]:
    return [int(urlsplit(url).port or 0) for url in (info.endpoint_url, info.api_url)]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_nothing_left(info: LocalInfo, state_dir: Path) -> None:
    deadline = time.monotonic() + 30  # an event wait: it returns as soon as the daemon is gone
    while local_daemon.is_daemon(info.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not local_daemon.is_daemon(info.pid), f"daemon {info.pid} still running"
    assert all(refused(port) for port in ports(info)), f"a port of {info} still accepts connections"
    assert not (state_dir / local_daemon.STATE_FILE).exists()


def force_stop(info: LocalInfo | None) -> None:
    """Last resort in a finally: a stack a failed test left behind is killed, never left running."""
    if info is not None and local_daemon.is_daemon(info.pid):
        os.killpg(info.pid, signal.SIGKILL)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def sample_info(pid: int, **changes: Any) -> LocalInfo:
    values: dict[str, Any] = {
        "pid": pid,
        "started_at": "2026-01-01T00:00:00Z",
        "stack_name": "serverless-mlops-dev",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:1",
        "api_url": "http://127.0.0.1:2",
        "bucket": "bucket-b",
        "table": "table-t",
        "alert_topic_arn": "arn:aws:sns:us-east-1:123456789012:alerts",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:retrain",
        "alerts_queue_url": "http://127.0.0.1:1/123456789012/inbox",
        "functions": {"inference": "inf"},
        "models": ["wine", "diabetes"],
    }
    return LocalInfo(**(values | changes))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of the test's own, for the subprocesses and for in-process ``main``."""
    folder = tmp_path / "state"
    monkeypatch.setenv(local_daemon.DIR_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def template(dev_synth: Path) -> Path:
    return dev_synth / "serverless-mlops-dev.template.json"


@dataclass
class Stack:
    state_dir: Path
    out: str  # what up printed on stdout
    info: LocalInfo

    def lines(self) -> list[str]:
        return [line.strip() for line in self.out.splitlines()]


def run_main(state_dir: Path, *args: str) -> tuple[int, str, str]:
    """``main`` in this process (so its code is measured) on the state folder, outside any test's capsys: exit code,
    stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setenv(local_daemon.DIR_ENV, str(state_dir))
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def stack(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``mlops local up`` (training the deployed models) once per module, through ``main``; stopped with
    ``mlops local down`` at the end, which must leave nothing running."""
    state_dir = tmp_path_factory.mktemp("local-stack")
    info = None
    try:
        code, out, err = run_main(state_dir, "local", "up", "--aws-port", "0", "--api-port", "0", "--template", str(template))
        assert code == 0, out + err
        info = LocalInfo.model_validate_json((state_dir / local_daemon.STATE_FILE).read_text())
        yield Stack(state_dir, out, info)
        code, out, err = run_main(state_dir, "local", "down")
        assert code == 0, err
        assert out.strip() == f"stopped the local stack (pid {info.pid})"
        assert_nothing_left(info, state_dir)
    finally:
        force_stop(info)


# -- one stack, many commands ---------------------------------------------------------------------------------------


def test_up_trains_the_deployed_models_and_prints_commands_that_work_as_printed(stack: Stack, tmp_path: Path) -> None:
    info = stack.info
    assert set(info.models) == {"breast-cancer", "wine", "diabetes"}
    for model in info.models:
        assert any(line.startswith(model) and "v1 in production" in line for line in stack.lines()), stack.out
        assert re.search(rf"^  {model} +v1 in production  \w+=\d+\.\d{{3}}  \(\d+\.\d s\)$", stack.out, flags=re.M), stack.out
    assert f"the local stack is up (pid {info.pid}" in stack.out
    assert local_daemon.is_daemon(info.pid)
    steps = stack.lines()[stack.lines().index("try next:") + 1 :]
    commands = [re.sub(r"\s+# .*$", "", line) for line in steps]
    (predict,) = [c for c in commands if c.startswith("curl") and "/predict" in c]
    model = predict.split("/v1/models/")[1].split("/")[0]
    assert commands[0] == 'eval "$(mlops local env)"'
    assert commands[-1] == "mlops local down"
    assert f"mlops local tick {model}" in commands
    assert "mlops local alerts --wait 5" in commands
    # an alert on the topic, so `alerts --wait 5` has something to show at once
    sns = boto3.client("sns", endpoint_url=info.endpoint_url, region_name=info.region)
    sns.publish(TopicArn=info.alert_topic_arn, Subject="Drift: a test alert", Message=json.dumps({"status": "drift", "rows": 7}))
    assert "mlops ui" in commands  # the console; it serves until Ctrl-C, so it is not run here (tests/integration/test_ui.py)
    runnable = [c for c in commands if not c.startswith(("mlops retrain", "mlops rollback", "mlops local down", "mlops ui"))]
    script = "set -e\n" + "\n".join(f"echo; echo '>>> {i}'\n{c}" for i, c in enumerate(runnable))
    ran = bash(stack.state_dir, script, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = dict(re.findall(r">>> (\d+)\n(.*?)(?=\n>>> |\Z)", ran.stdout, flags=re.S))
    by_command = {runnable[int(i)]: text.strip() for i, text in out.items()}
    predicted = json.loads(by_command[predict])
    assert predicted["model"] == model
    assert predicted["version"] == 1
    assert len(predicted["predictions"]) == 1
    assert json.loads(by_command[f"curl -s {info.api_url}/openapi.json"])["openapi"].startswith("3.")
    assert all(name in by_command["mlops list"] for name in info.models)
    assert f"drift check of {model}" in by_command[f"mlops local tick {model}"]
    assert "Drift: a test alert: status=drift, rows=7" in by_command["mlops local alerts --wait 5"]


def test_predict_over_http_returns_a_prediction(stack: Stack) -> None:
    with (ROOT / "models" / "data" / "wine.csv").open() as rows:
        first, second = itertools.islice(csv.DictReader(rows), 2)
    instances = [{k: float(v) for k, v in row.items() if k != "target"} for row in (first, second)]
    answer = post_json(f"{stack.info.api_url}/v1/models/wine/predict", {"instances": instances})
    assert answer["model"] == "wine"
    assert answer["version"] == 1
    assert answer["predictions"] == [int(first["target"]), int(second["target"])]


def test_the_printed_retrain_and_rollback_work_after_a_promotion(stack: Stack, tmp_path: Path) -> None:
    commands = [re.sub(r"\s+# .*$", "", line) for line in stack.lines()]
    (retrain,) = [c for c in commands if c.startswith("mlops retrain")]
    (rollback,) = [c for c in commands if c.startswith("mlops rollback")]
    model = retrain.split()[2]
    spec = ROOT / "models" / f"{model}.yaml"
    script = f'set -e\neval "$(mlops local env)"\n{retrain}\nmlops train {spec} --promote --out {tmp_path / "run"}\n{rollback}\n'
    ran = bash(stack.state_dir, script, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "promoted" in ran.stdout  # the workflow's outcome line ("promoted" or "not promoted")
    assert re.search(rf"{model}: production rolled back from version \d+ to version 1", ran.stdout), ran.stdout


def readme_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README's five-minute tour lost its example"
    return match.group(1).splitlines()


def test_readme_example_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    """The README's five-minute tour (docs/local-stack.md includes it), run in bash against the module's stack (whose
    fixture runs its first and last lines, up with a free port and the session's template, and down)."""
    lines = readme_block()
    assert lines[0].startswith("mlops local up ")
    assert lines[-1].startswith("mlops local down ")
    ran = bash(stack.state_dir, "set -e\n" + "\n".join(lines[1:-1]), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"pid            {stack.info.pid}" in ran.stdout
    assert '"model":"wine","version":1,"predictions":[0]' in ran.stdout
    assert "✓ drift check of wine" in ran.stdout
    assert re.search(r"not promoted: v\d+ registered as rejected: f1", ran.stdout), ran.stdout  # same data: no better


def test_env_output_evaluated_in_bash_points_mlops_at_the_stack(stack: Stack, tmp_path: Path) -> None:
    ran = bash(stack.state_dir, 'eval "$(mlops local env)" && mlops --json list && echo "$MLOPS_API_URL" >&2', cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    listed = json.loads(ran.stdout)
    assert {m["model"] for m in listed["models"]} == set(stack.info.models)
    assert ran.stderr.strip() == stack.info.api_url


def test_up_twice_refuses_naming_the_running_stack(stack: Stack) -> None:
    again = mlops(stack.state_dir, "local", "up", "--api-port", "0")
    line = one_line_error(again)
    assert f"pid {stack.info.pid}" in line
    assert stack.info.api_url in line
    assert "mlops local down" in line
    assert local_daemon.is_daemon(stack.info.pid)


def test_client_commands_in_process(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(local_daemon.DIR_ENV, str(stack.state_dir))
    info = stack.info
    assert main(["local", "status"]) == 0
    out = capsys.readouterr().out
    assert "the local stack is running" in out
    assert str(info.pid) in out
    assert info.api_url in out
    assert info.table in out

    assert main(["local", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] is True
    assert status["pid"] == info.pid
    assert status["uptime"]

    assert main(["local", "env"]) == 0
    exports = capsys.readouterr().out.splitlines()
    assert f"export MLOPS_ENDPOINT_URL={info.endpoint_url}" in exports
    assert f"export MLOPS_TABLE={info.table}" in exports
    # the release and batch commands and the console find their state machines and the lock table without flags
    assert None not in (info.release_state_machine_arn, info.batch_state_machine_arn, info.retraining_table)
    assert f"export MLOPS_RELEASE_STATE_MACHINE_ARN={info.release_state_machine_arn}" in exports
    assert f"export MLOPS_BATCH_STATE_MACHINE_ARN={info.batch_state_machine_arn}" in exports
    assert f"export MLOPS_RETRAINING_TABLE={info.retraining_table}" in exports
    assert main(["local", "env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info.environment()

    assert main(["local", "tick", "diabetes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [one for one in lines if one.startswith("✓ drift check of diabetes")]
    assert "v1 insufficient_data" in line
    assert "report s3://" in line
    assert [one for one in lines if one.startswith("✓ quality check of diabetes")]  # its quality check fires too
    assert "fewer captured rows than the spec's drift.min_rows" in " ".join(part.strip() for part in lines)  # and why

    assert main(["local", "tick", "--json"]) == 0
    fired = json.loads(capsys.readouterr().out)
    assert {f["target"]["model"] for f in fired} == set(info.models)
    assert not any(f["errored"] for f in fired)

    assert main(["local", "tick", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "'no-such-model' is not deployed" in err
    assert all(m in err for m in info.models)

    sns = boto3.client("sns", endpoint_url=info.endpoint_url, region_name=info.region)
    sns.publish(TopicArn=info.alert_topic_arn, Subject="Retraining wine", Message="plain text body")
    assert main(["local", "alerts", "--wait", "5"]) == 0
    assert "Retraining wine: plain text body" in capsys.readouterr().out
    assert main(["local", "alerts"]) == 0
    assert capsys.readouterr().out.strip() == "no alerts"
    sns.publish(TopicArn=info.alert_topic_arn, Subject="as json", Message=json.dumps({"outcome": "promoted"}))
    assert main(["local", "alerts", "--wait", "5", "--json"]) == 0
    (alert,) = json.loads(capsys.readouterr().out)
    assert alert["subject"] == "as json"
    assert alert["message"] == {"outcome": "promoted"}
    assert main(["local", "alerts", "--wait", "0.5"]) == 0
    assert capsys.readouterr().out.strip() == "no alerts (waited 0.5 s)"

    assert main(["local", "up", "--api-port", "0"]) == 1
    assert "already running" in capsys.readouterr().err

    from serverless_mlops.local import environment as local_env

    failed = local_env.Fired(info.schedules[0], {}, {"errorType": "KeyError", "errorMessage": "'x'"}, errored=True, seconds=0.1)
    monkeypatch.setattr(local_env, "fire_schedules", lambda info, model: [failed])
    assert main(["local", "tick"]) == 1  # a target that failed fails the command, after its line
    assert capsys.readouterr().out.strip() == f"✗ {info.schedules[0].description}: KeyError: 'x'"


# -- stacks of their own ----------------------------------------------------------------------------------------------


def test_a_start_whose_seeding_fails_stops_its_daemon(
    template: Path, local_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through ``main`` (the module's stack covers a start that succeeds): the daemon it started is stopped, and
    afterwards every command says that nothing runs."""
    started: list[LocalInfo] = []

    def failing_seed(info: LocalInfo) -> None:
        started.append(info)
        raise MlopsError("seeding failed on purpose")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(cli_local, "_seed", failing_seed)
            assert main(["local", "up", "--aws-port", "0", "--api-port", "0", "--template", str(template)]) == 1
        assert capsys.readouterr().err.strip() == "error: seeding failed on purpose"
        (failed,) = started
        assert_nothing_left(failed, local_dir)
    finally:
        for one in started:
            force_stop(one)
    assert main(["local", "down"]) == 0
    assert capsys.readouterr().out.strip() == "no local stack is running"
    assert main(["local", "status"]) == 1
    assert capsys.readouterr().out.strip() == "no local stack is running (start one with mlops local up)"
    assert main(["local", "status", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"running": False}
    for command in (["env"], ["tick", "wine"], ["alerts"]):
        assert main(["local", *command]) == 1
        assert capsys.readouterr().err.strip() == "error: no local stack is running: start one with mlops local up"


def test_commands_when_nothing_runs_are_one_line(local_dir: Path) -> None:
    assert mlops(local_dir, "local", "down").stdout.strip() == "no local stack is running"
    for command in (["env"], ["tick"], ["alerts", "--wait", "1"]):
        assert "no local stack is running" in one_line_error(mlops(local_dir, "local", *command))
    status = mlops(local_dir, "local", "status")
    assert status.returncode == 1
    assert status.stdout.strip() == "no local stack is running (start one with mlops local up)"


def test_busy_api_port_is_refused_before_anything_starts(template: Path, local_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(mlops(local_dir, "local", "up", "--api-port", str(port), "--template", str(template)))
    assert f"--api-port {port} is busy" in line
    assert not (local_dir / local_daemon.STATE_FILE).exists()
    assert not (local_dir / local_daemon.LOG_FILE).exists()


def test_the_same_port_for_both_is_refused(local_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "up", "--aws-port", "18555", "--api-port", "18555"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --api-port and --aws-port are both 18555: the HTTP API and moto need a port each (0 picks a free one)"
    )
    assert not local_dir.exists()  # refused before anything started


def test_a_state_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.setenv(local_daemon.DIR_ENV, str(a_file))
    assert main(["local", "up", "--api-port", "0"]) == 1
    assert capsys.readouterr().err.strip() == f"error: the state folder {a_file} ($MLOPS_LOCAL_DIR) cannot be created: File exists"


def test_missing_template_file(local_dir: Path, tmp_path: Path) -> None:
    line = one_line_error(mlops(local_dir, "local", "up", "--api-port", "0", "--template", str(tmp_path / "nope.template.json")))
    assert "nope.template.json: no such file" in line


def test_a_daemon_that_fails_to_start_is_reported_in_one_line(local_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps({"Resources": {}}))
    assert main(["local", "up", "--api-port", "0", "--no-train", "--template", str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "\n" not in err
    assert "ArtifactBucketName" in err
    assert "log: " in err
    assert not (local_dir / local_daemon.STATE_FILE).exists()
    assert "Traceback" not in err


def test_a_stale_state_file_is_removed_and_reported(local_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_file = local_dir / local_daemon.STATE_FILE
    local_daemon.write_state(sample_info(dead_pid()), state_file)
    down = mlops(local_dir, "local", "down")
    assert down.returncode == 0
    assert "removed a stale state file" in down.stdout
    assert "no local stack is running" in down.stdout
    assert not state_file.exists()
    state_file.write_text("{not json")
    assert main(["local", "status"]) == 1
    assert "that was unreadable" in capsys.readouterr().out
    assert not state_file.exists()


def run_until_ready(state_file: Path, run: Callable[[], int]) -> tuple[int, dict[str, Any]]:
    """Run ``run`` (a stack in this thread) while another thread, like another shell, waits for the state file, uses
    the stack, then presses Ctrl-C: SIGINT aimed at this thread, which blocks it until its sigwait takes it (SIGINT,
    not SIGTERM: one that arrived too early would be a KeyboardInterrupt here, never the end of the test process)."""
    seen: dict[str, Any] = {}
    this_thread = threading.get_ident()

    def client() -> None:
        try:
            deadline = time.monotonic() + 120
            while (info := local_daemon.read_state(state_file)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["info"] = info
            if info is not None:
                seen["current"] = local_daemon.current(state_file, report_stale=False)
                with urllib.request.urlopen(f"{info.api_url}/openapi.json", timeout=30) as response:
                    seen["status"] = response.status
        except Exception as exc:  # reported by the test, and Ctrl-C is still pressed
            seen["error"] = repr(exc)
        finally:
            signal.pthread_kill(this_thread, signal.SIGINT)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        code = run()
    finally:
        thread.join()  # bounded by the client's own deadlines: no Ctrl-C may outlive the test
    assert "error" in seen or "info" in seen
    assert seen.get("info") is not None, f"the state file never appeared (exit {code})"
    assert "error" not in seen, seen["error"]
    return code, seen


def test_foreground_runs_in_this_process_until_ctrl_c(template: Path, local_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--json", "local", "up", "--foreground", "--no-train", "--aws-port", "0", "--api-port", "0", "--template", str(template)]
    code, seen = run_until_ready(local_dir / local_daemon.STATE_FILE, lambda: main(args))
    assert code == 0
    assert seen["status"] == 200
    assert seen["info"].pid == os.getpid()
    assert seen["current"] == seen["info"]  # other shells see it running, though its command line is not the daemon's
    ready = json.loads(capsys.readouterr().out)
    assert ready["api_url"] == seen["info"].api_url
    assert ready["example"] is None  # nothing in production: --no-train
    assert not (local_dir / local_daemon.STATE_FILE).exists()
    assert all(refused(port) for port in ports(seen["info"]))


def test_daemon_main_runs_the_stack_until_a_stop_signal(template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_file = tmp_path / "local.json"
    args = ["--template", str(template), "--assembly", str(template.parent), "--stack", "serverless-mlops-dev"]
    args += ["--state-file", str(state_file)]
    code, seen = run_until_ready(state_file, lambda: local_daemon.daemon_main(args))
    assert code == 0
    assert seen["status"] == 200
    err = capsys.readouterr().err
    assert f"up: API {seen['info'].api_url}, AWS endpoint {seen['info'].endpoint_url}" in err
    assert err.strip().endswith(f"stopped (pid {os.getpid()})")
    assert not state_file.exists()
    assert all(refused(port) for port in ports(seen["info"]))


def test_daemon_main_reports_a_failure_as_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps({"Resources": {}}))
    args = ["--template", str(broken), "--assembly", str(tmp_path), "--stack", "broken", "--state-file", str(tmp_path / "s.json")]
    assert local_daemon.daemon_main(args) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")
    missing = ["--template", str(tmp_path / "missing.json"), "--assembly", str(tmp_path), "--stack", "x", "--state-file", "s"]
    assert local_daemon.daemon_main(missing) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("error: FileNotFoundError")


# -- the pieces -------------------------------------------------------------------------------------------------------


def test_state_file_is_written_atomically_and_removed_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "local.json"
    assert local_daemon.read_state(path) is None
    local_daemon.write_state(sample_info(4242), path)
    assert local_daemon.read_state(path) == sample_info(4242)
    assert [p.name for p in path.parent.iterdir()] == ["local.json"]  # no temporary file left
    local_daemon.remove_state(path, pid=1)
    assert path.exists()
    local_daemon.remove_state(path, pid=4242)
    assert not path.exists()
    local_daemon.remove_state(path)  # nothing to remove: fine
    path.write_text('{"pid": 1}')
    assert local_daemon.read_state(path) is None  # a partial document is no state


def test_state_dir_defaults_to_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local_daemon.DIR_ENV, raising=False)
    assert local_daemon.state_path() == Path.home() / ".cache/serverless-mlops/local/local.json"
    monkeypatch.setenv(local_daemon.DIR_ENV, "/x/y")
    assert local_daemon.log_path() == Path("/x/y/local.log")


def test_is_daemon_tells_our_daemon_from_other_processes() -> None:
    assert not local_daemon.is_daemon(os.getpid())  # alive, but not a daemon
    assert not local_daemon.is_daemon(dead_pid())
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", local_daemon.MODULE], start_new_session=True)
    try:
        deadline = time.monotonic() + 30  # until the child has exec'd: before that its command line is this process's
        while not local_daemon.is_daemon(fake.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert local_daemon.is_daemon(fake.pid)
    finally:
        fake.kill()
        fake.wait()
    assert not local_daemon.is_daemon(fake.pid)


def test_is_daemon_without_proc_probes_the_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(self)

    gone = dead_pid()
    monkeypatch.setattr(Path, "read_text", no_proc)
    monkeypatch.setattr(Path, "read_bytes", no_proc)
    assert local_daemon.process_start(os.getpid()) == "alive"
    assert local_daemon.is_daemon(os.getpid())
    assert not local_daemon.is_daemon(gone)
    monkeypatch.setattr(os, "kill", lambda pid, sig: (_ for _ in ()).throw(PermissionError()))
    assert local_daemon.is_daemon(1)


def test_a_recycled_pid_is_not_the_stack(local_dir: Path) -> None:
    state_file = local_dir / local_daemon.STATE_FILE
    local_daemon.write_state(sample_info(os.getpid()), state_file)  # this process: alive, and recorded as started now
    assert local_daemon.recorded_start(state_file) == local_daemon.process_start(os.getpid())
    assert local_daemon.current(state_file) == sample_info(os.getpid())
    document = json.loads(state_file.read_text())
    state_file.write_text(json.dumps(document | {local_daemon.START_KEY: "1"}))  # the same pid, another process
    assert local_daemon.current(state_file) is None
    assert not state_file.exists()
    assert local_daemon.recorded_start(state_file) is None
    state_file.write_text(json.dumps(document | {"pid": dead_pid()}))
    assert local_daemon.current(state_file, report_stale=False) is None
    assert not state_file.exists()


def test_down_kills_a_daemon_that_ignores_sigterm(local_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    stubborn = subprocess.Popen(
        [sys.executable, "-c", code, local_daemon.MODULE], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    try:
        assert stubborn.stdout is not None
        assert stubborn.stdout.readline().strip() == "ready"
        local_daemon.write_state(sample_info(stubborn.pid), local_dir / local_daemon.STATE_FILE)
        assert local_daemon.stop_daemon(stubborn.pid, timeout=0.3) is True
        assert stubborn.wait(5) == -signal.SIGKILL
        assert local_daemon.stop_daemon(stubborn.pid) is False  # already gone
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_down_stops_a_daemon_by_sigterm(local_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", local_daemon.MODULE], start_new_session=True)
    try:
        local_daemon.write_state(sample_info(fake.pid), local_dir / local_daemon.STATE_FILE)
        reaper = threading.Thread(target=fake.wait)  # reap it as its parent would, so /proc forgets it
        reaper.start()
        assert main(["local", "down"]) == 0
        reaper.join(10)
        assert capsys.readouterr().out.strip() == f"stopped the local stack (pid {fake.pid})"
        assert fake.returncode == -signal.SIGTERM
        assert not (local_dir / local_daemon.STATE_FILE).exists()
    finally:
        if fake.poll() is None:
            fake.kill()
            fake.wait()


def test_start_daemon_gives_up_and_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_file, log = tmp_path / "local.json", tmp_path / "local.log"
    never_ready = [sys.executable, "-c", f"import time; print('starting', flush=True); time.sleep(60)  # {local_daemon.MODULE}"]
    # Wait on the event, not the clock: start_daemon's clock stands still until the child has written its line (at
    # most 30 s), then jumps past the 1 s deadline, so a slow start on a loaded machine cannot empty the log.
    readings, began = itertools.count(), time.monotonic()

    def clock() -> float:
        if next(readings) == 0:
            return 0.0  # the reading start_daemon sets its deadline from
        printed = log.exists() and log.read_text() == "starting\n"
        return 3600.0 if printed or time.monotonic() - began > 30 else 0.0

    with monkeypatch.context() as patched:
        patched.setattr(local_daemon, "time", SimpleNamespace(monotonic=clock, sleep=time.sleep))
        with pytest.raises(MlopsError, match=rf"did not start within 1 s; its log: {log}"):
            local_daemon.start_daemon(never_ready, state_file, log, timeout=1.0)
    assert log.read_text() == "starting\n"
    assert not state_file.exists()
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    monkeypatch.setattr(local_daemon, "STOP_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(MlopsError, match="did not start within 0 s"):
        local_daemon.start_daemon([sys.executable, "-c", deaf], state_file, log, timeout=0.3)
    assert time.monotonic() - started < 10  # SIGKILLed after STOP_SECONDS, not waited for


def test_last_error_picks_the_line_that_says_why(tmp_path: Path) -> None:
    log = tmp_path / "local.log"
    assert local_daemon.last_error(log) == "it wrote no log"
    log.write_text("\n\n")
    assert local_daemon.last_error(log) == "it wrote nothing to its log"
    log.write_text("Traceback (most recent call last):\n  ...\nValueError: boom\n")
    assert local_daemon.last_error(log) == "ValueError: boom"
    log.write_text("starting\nerror: --api-port 8080 is busy on 127.0.0.1\nsome later noise\n")
    assert local_daemon.last_error(log) == "--api-port 8080 is busy on 127.0.0.1"


def test_uptime() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 2, 3, 4, tzinfo=UTC)
    assert cli_local.uptime("2026-01-01T02:02:00Z", now) == "1m04s"
    assert cli_local.uptime("2026-01-01T00:00:00", now) == "2h03m04s"
    assert cli_local.uptime("2026-01-01T03:00:00Z", now) == "0m00s"
    assert cli_local.uptime("yesterday", now) == "?"


def test_export_lines_survive_the_shell(tmp_path: Path) -> None:
    environment = {"PLAIN": "http://127.0.0.1:1", "ODD": 'it\'s $HOME `x` "q" ;'}
    script = "\n".join(cli_local.export_lines(environment)) + '\nprintf "%s\\n%s" "$PLAIN" "$ODD"'
    ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10, check=True)
    assert ran.stdout.split("\n") == [environment["PLAIN"], environment["ODD"]]


def test_next_steps() -> None:
    info = sample_info(1)
    trained = cli_local.next_steps(info, "curl -s http://x/v1/models/wine/predict -d '{}'", "wine")
    assert trained[0].startswith('eval "$(mlops local env)"')
    assert trained[1].startswith("curl -s http://x/v1/models/wine")
    assert f"curl -s {info.api_url}/openapi.json    # the API's OpenAPI document" in trained
    assert "mlops list" in trained
    assert any(line.startswith("mlops ui    # the console on http://127.0.0.1:8765") for line in trained)
    assert trained[-1] == "mlops local down"
    assert any(line.startswith("mlops rollback wine --reason ") for line in trained)
    untrained = cli_local.next_steps(info, None, None)
    assert untrained[1].startswith("mlops retrain wine --wait")
    assert not any("rollback" in line for line in untrained)
    assert cli_local.next_steps(sample_info(1, models=[]), None, None)[1].startswith("mlops retrain MODEL")


def fired(result: Any, errored: bool = False) -> Any:
    return SimpleNamespace(target=SimpleNamespace(description="drift check of wine: rate(6 hours)"), result=result, errored=errored)


def test_fired_line() -> None:
    drift = {"status": "drift", "version": 3, "rows": 120, "drifted_share": 0.5, "drifted_features": ["ash", "hue"], "alerted": True}
    drift |= {"retraining_execution": "arn:aws:states:r:1:execution:m:wine-drift-1", "report": "s3://b/r/report.html"}
    assert cli_local.fired_line(fired(drift)) == (
        "✓ drift check of wine: rate(6 hours): v3 drift, 120 rows, drifted share 0.50 (ash, hue), alert sent, "
        "retraining wine-drift-1, report s3://b/r/report.html"
    )
    quiet = {"status": "no_drift", "rows": 50, "drifted_share": 0.0, "alerted": False, "alert_note": "duplicate", "report": {"html": "h"}}
    assert (
        cli_local.fired_line(fired(quiet))
        == "✓ drift check of wine: rate(6 hours): no_drift, 50 rows, drifted share 0.00, no alert: duplicate, report h"
    )
    assert cli_local.fired_line(fired({"status": "insufficient_data", "rows": 0, "drifted_share": 0.0})).endswith(
        "insufficient_data, 0 rows"
    )
    assert cli_local.fired_line(fired({"report": {"json": "j"}, "status": "s"})).endswith(": s, report j")
    assert cli_local.fired_line(fired(None)) == '✓ drift check of wine: rate(6 hours): {"result": null}'
    failed = fired({"errorType": "NotFoundError", "errorMessage": "model 'wine'\n  has no production version"}, errored=True)
    assert cli_local.fired_line(failed) == "✗ drift check of wine: rate(6 hours): NotFoundError: model 'wine' has no production version"
    assert cli_local.fired_line(fired({}, errored=True)) == "✗ drift check of wine: rate(6 hours): error"


def test_alert_line() -> None:
    assert cli_local.alert_line(SimpleNamespace(subject="S", message={"status": "drift", "rows": 3, "report": "", "x": 1})) == (
        "S: status=drift, rows=3"
    )
    assert cli_local.alert_line(SimpleNamespace(subject="", message="a\n b")) == "(no subject): a b"
    assert cli_local.alert_line(SimpleNamespace(subject="S", message={})) == "S"
    assert cli_local.alert_line(SimpleNamespace(subject="S", message="x" * 400)).endswith(" …")
