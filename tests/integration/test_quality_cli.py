"""``mlops quality check`` and ``mlops quality report`` against moto (in-process)."""

from __future__ import annotations

import dataclasses
import json
import webbrowser
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_mlops.cli import main
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.quality.labels import Label, write_labels
from serverless_mlops.store.capture_format import capture_key, encode_records
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.drift_data import fresh_sample, records_for

MADE = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
END = "2026-12-07T12:00Z"


@pytest.fixture
def registered(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    trained = trained_models["wine"]
    record = trained.record.model_copy(update={"spec": trained.record.spec | {"quality": {"floors": {"log_loss": 1e-6}}}})
    version = register_run(dataclasses.replace(trained, record=record), backends, by="cli-test")
    backends.registry.promote("wine", version.version, by="cli-test")
    frame = fresh_sample("wine", 250, seed=7)
    records = records_for(trained_models["wine"], frame, when=MADE)
    for i, record in enumerate(records):
        record["id"] = f"w-{i}"
    store = backends.store
    store.s3.put_object(Bucket=store.bucket, Key=capture_key("wine", MADE, "x"), Body=encode_records(records))
    labels = [Label(f"w-{i}", int(t), None) for i, t in enumerate(frame["target"])] + [Label("nobody", 1, None)]
    write_labels(store.s3, store.bucket, "wine", labels, now=MADE + timedelta(hours=3))
    store.s3.put_object(Bucket=store.bucket, Key="ground-truth/wine/2026/12/05/bad.csv", Body=b"id,label\nx,9\n")
    return backends


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_prints_realized_and_estimated_per_version_and_json(registered: Backends, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "quality", "check", "wine", "--window", "7d", "--end", END)
    assert code == 0, err
    assert "wine: 2026-11-30T12:00:00.000Z → 2026-12-07T12:00:00.000Z" in out
    text = " ".join(out.split())  # the console wraps at 80 columns
    assert "breach: 250 of 251 labels joined (1 unmatched, 0 late, 0 before their prediction)" in text
    assert "breach v1: log_loss" in text  # a ceiling of 1e-6: any model crosses it
    assert "crossed its floor 1e-06" in text
    assert "ground-truth/wine/2026/12/05/bad.csv: line 2, field label: not one of the model's classes" in text
    assert "accuracy" in out
    assert "roc_auc" in out

    code, out, err = run(capsys, "quality", "check", "wine", "--end", END, "--json", "--write-report")
    assert code == 0, err
    document = json.loads(out)
    (v1,) = document["result"]["versions"]
    assert v1["labelled"] == 250
    assert set(v1["realized"]) == {"accuracy", "f1", "roc_auc", "log_loss", "ece"}
    assert set(v1["estimated"]) == {"accuracy", "f1", "roc_auc"}
    assert len(v1["confusion_matrix"]) == 3
    assert document["report"]["html"].endswith("/reports/wine/quality/20261130T1200Z-20261207T1200Z/quality.html")

    code, out, err = run(capsys, "quality", "report", "wine", "--json")
    assert code == 0, err
    assert json.loads(out) == document["report"]


def test_report_prints_and_opens_the_newest_report(
    registered: Backends, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "quality", "check", "wine", "--end", END, "--write-report")
    assert code == 0, err
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    code, out, err = run(capsys, "quality", "report", "wine", "--open")
    assert code == 0, err
    assert out.splitlines()[0].endswith("/reports/wine/quality/20261130T1200Z-20261207T1200Z/quality.html")
    assert "opened" in out
    (uri,) = opened
    assert uri.startswith("file://")
    assert "Quality report: wine" in Path(uri.removeprefix("file://")).read_text(encoding="utf-8")


def test_bad_input_is_one_line_and_exit_1(registered: Backends, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "quality", "check", "wine", "--window", "a week")
    assert code == 1
    assert err.strip() == "error: --window: expected a positive duration such as '30m', '12h' or '7d', got 'a week'"
    code, _, err = run(capsys, "quality", "check", "wine", "--end", "yesterday")
    assert code == 1
    assert "--end 'yesterday': not an ISO 8601 time" in err
    code, _, err = run(capsys, "quality", "check", "wine", "--end", "2026-12-07T12:00")
    assert code == 1
    assert "give an offset or Z" in err
    code, _, err = run(capsys, "quality", "report", "wine")
    assert code == 1
    assert "no quality report for model 'wine'" in err
    code, _, err = run(capsys, "quality", "check", "nosuch")
    assert code == 1
    assert len(err.strip().splitlines()) == 1
