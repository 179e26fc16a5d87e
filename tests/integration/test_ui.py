"""``mlops ui``'s pages through Starlette's TestClient on moto (in-process): what each page shows equals what the
registry, the reports and the executions hold; values are escaped; only GET; the headers; the errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from moto import mock_aws
from starlette.testclient import TestClient

from serverless_mlops.aws import client
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import PRODUCTION, STAGING
from serverless_mlops.ui import data as data_module
from serverless_mlops.ui.app import PAGE_POLICY, REPORT_POLICY, create_app
from serverless_mlops.ui.data import ConsoleData
from tests.helpers.console import MOTO_CONFIG, Seeded, seed

EVIL = "<script>alert('pwned')</script> & \"quotes\""


@pytest.fixture
def backends(settings: Settings) -> Iterator[Backends]:
    """The shared fixture's backends, with moto running the state machines (so executions have a path and an outcome)."""
    with mock_aws(config=MOTO_CONFIG):
        ensure_resources(settings)
        yield Backends.from_settings(settings)


@pytest.fixture
def seeded(backends: Backends, trained_models: dict[str, TrainedModel], settings: Settings) -> Seeded:
    return seed(backends, trained_models, settings, description=EVIL)


def console(seeded: Seeded, settings: Settings, **overrides: Any) -> TestClient:
    options: dict[str, Any] = {
        "sfn": client("stepfunctions", settings),
        "retraining_arn": seeded.state_machine_arn,
        "api_url": "http://127.0.0.1:8080",
    } | overrides
    return TestClient(create_app(ConsoleData(seeded.backends, **options)))


@pytest.fixture
def ui(seeded: Seeded, settings: Settings) -> Iterator[TestClient]:
    with console(seeded, settings) as test_client:
        yield test_client


def text(html: str) -> str:
    """The page's words: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def row(html: str, table_id: str, head: str) -> str:
    """The text of the row of table ``table_id`` whose header cell holds ``head``."""
    table = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    (found,) = [r for r in table.split("<tr>")[1:] if re.search(rf"<th scope=\"row\">\s*(<a [^>]*>)?{re.escape(head)}<", r)]
    return text(found)


def test_the_models_page_shows_each_model_as_the_registry_holds_it(ui: TestClient, seeded: Seeded) -> None:
    page = ui.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in page.text.replace("&lt;script", "")
    registry = seeded.backends.registry
    for name in ("breast-cancer", "diabetes", "wine"):
        served = registry.resolve(name, PRODUCTION)
        metric = served.spec["evaluation"]["metric"]
        line = row(page.text, "models", name)
        assert f"v{served.version}" in line
        assert f"{metric} {served.metrics[metric]:.4f}" in line
    wine = row(page.text, "models", "wine")
    assert wine.startswith(f"wine {EVIL} v1 v2 none")  # production v1 (rolled back), staging v2, no canary or shadow
    store = seeded.backends.store
    listed = store.s3.list_objects_v2(Bucket=store.bucket, Prefix="reports/wine/v1/")["Contents"]
    newest = max(item["Key"] for item in listed if item["Key"].endswith("/report.html"))
    assert f'href="/reports/{newest}"' in page.text  # the badge links to the newest drift report
    assert "20261207T0800Z-20261207T1000Z" in newest  # the drifted day
    assert re.search(r" drift report (ok|breach|insufficient labels) report", wine), wine
    assert "failed" in wine  # the newest retraining execution of wine: its gate refused the candidate
    breast = row(page.text, "models", "breast-cancer")
    assert "no check yet no check yet none" in breast  # no report, no retraining: said in words


def test_the_model_page_lists_versions_history_charts_and_executions(ui: TestClient, seeded: Seeded) -> None:
    page = ui.get("/models/wine")
    assert page.status_code == 200
    registry = seeded.backends.registry
    for entry in registry.list_versions("wine").items:
        line = row(page.text, "versions", f"v{entry.version}")
        assert all(f"{name} {value:.4f}" in line for name, value in entry.metrics.items())
        assert entry.lineage.trigger in line
        assert "passed" in line
    words = text(page.text)
    history = registry.get_alias("wine", PRODUCTION).history
    assert [c.action for c in history] == ["promote", "promote", "rollback"]
    assert "rollback v2 → v1 rev 3 by seed — back to the previous version" in words
    assert f"staging → v{registry.get_alias('wine', STAGING).version}" in words
    assert 'aria-label="share of drifted features per drift-check window"' in page.text
    assert re.search(r'aria-label="realized (f1|accuracy) per quality-check window"', page.text)
    assert "wine-drift-20261205T1000Z succeeded" in words
    assert "Prepare → Train → Gate → Promote" in words
    assert "wine-manual-20261206T0800Z failed" in words
    assert "Prepare → Train → Gate → Rejected" in words
    assert "diabetes-manual" not in words  # another model's execution
    assert "no release state machine configured" in words


def test_the_version_page_shows_lineage_profile_reports_and_the_commands(ui: TestClient, seeded: Seeded) -> None:
    entry = seeded.backends.registry.describe("wine", 1)
    page = ui.get("/models/wine/versions/1")
    assert page.status_code == 200
    words = text(page.text)
    assert entry.lineage.data_sha256 in words
    assert entry.lineage.data_uri in words
    assert entry.lineage.estimator in words
    assert "v1 registered production" in words
    assert words.count("training histogram") == len(entry.signature.features)
    assert "curl -s http://127.0.0.1:8080/v1/models/wine/predict" in words
    assert '"version": 1' in words
    assert "mlops predict wine --version 1 --input rows.csv" in words
    links = re.findall(r'href="(/reports/[^"]+)"', page.text)
    drift_key = seeded.drift_report["html"].split("/", 3)[3]
    quality_key = seeded.quality_report["html"].split("/", 3)[3]
    assert f"/reports/{drift_key}" in links
    assert f"/reports/{quality_key}" in links
    for link in links:
        report = ui.get(link)
        assert report.status_code == 200, link
        assert report.headers["content-security-policy"] == REPORT_POLICY
    assert "Drift report" in ui.get(f"/reports/{drift_key}").text or "drift" in ui.get(f"/reports/{drift_key}").text.lower()
    other = ui.get("/models/wine/versions/2")
    assert f"/reports/{drift_key}" not in other.text  # v1's baseline, not v2's


def test_every_value_is_escaped(ui: TestClient) -> None:
    for path in ("/", "/models/wine", "/models/wine/versions/1"):
        page = ui.get(path)
        assert EVIL not in page.text, path
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; &#34;quotes&#34;" in page.text, path
    assert "&lt;img" in ui.get("/models/%3Cimg%20src%3Dx%3E").text  # the name echoed in the error page


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_only_get(ui: TestClient, method: str) -> None:
    assert ui.head("/models/wine").status_code == 200
    answer = ui.request(method, "/models/wine")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD"
    assert answer.headers["content-security-policy"] == PAGE_POLICY


def test_what_is_not_there_is_a_404_page_naming_it(ui: TestClient) -> None:
    assert "model &#39;nope&#39; is not registered" in ui.get("/models/nope").text
    assert ui.get("/models/nope").status_code == 404
    assert "has no version 9" in ui.get("/models/wine/versions/9").text
    assert ui.get("/models/wine/versions/x").status_code == 404
    assert ui.get("/nowhere").status_code == 404
    for key in ("reports/../models/wine.yaml", "models/wine.yaml", "reports/wine/nothing.html", "reports/wine/v1/x/report.txt"):
        assert ui.get(f"/reports/{key}").status_code == 404, key
    assert ui.get("/console.css").headers["content-type"].startswith("text/css")
    assert "invalid page token" in ui.get("/?next=garbage").text


def test_pages_of_versions_and_models(seeded: Seeded, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "PAGE_SIZE", 1)
    monkeypatch.setattr(data_module, "MODELS_PAGE", 1)
    with console(seeded, settings) as ui:
        first = ui.get("/models/wine")
        assert "v2" in row(first.text, "versions", "v2")
        (older,) = re.findall(r'href="(/models/wine\?next=[^"]+)" rel="next"', first.text)
        second = ui.get(unescape(older))
        assert "v1" in row(second.text, "versions", "v1")
        models = ui.get("/")
        assert len(re.findall(r'<th scope="row">', models.text)) == 1
        assert 'rel="next"' in models.text


def test_canary_shadow_and_releases_when_the_stack_has_them(seeded: Seeded, settings: Settings) -> None:
    registry = seeded.backends.registry
    # what the release workflow and mlops shadow write: a canary at 10 percent of traffic, a shadow on a quarter
    registry.set_canary("wine", 2, 10.0, release_id="wine-release-r1", by="test")
    registry.set_shadow("wine", 2, 0.25, by="test")
    backends = seeded.backends
    sfn = client("stepfunctions", settings)
    machine = sfn.create_state_machine(
        name="release",
        definition='{"StartAt":"Canary","States":{"Canary":{"Type":"Pass","End":true}}}',
        roleArn="arn:aws:iam::123456789012:role/r",
    )
    sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="wine-release-r1", input="{}")
    data = ConsoleData(backends, sfn=sfn, retraining_arn=seeded.state_machine_arn, release_arn=machine["stateMachineArn"])
    with TestClient(create_app(data)) as ui:
        wine = row(ui.get("/").text, "models", "wine")
        assert "canary v2 at 10% shadow v2, 25% mirrored" in wine
        words = text(ui.get("/models/wine").text)
        assert "production canary v2 at 10% of traffic" in words
        assert "production shadow v2 mirrors 25%" in words
        assert "wine-release-r1" in words
        assert "no release of this model yet" in text(ui.get("/models/diabetes").text)


def test_an_unreachable_aws_is_a_502_page(seeded: Seeded, settings: Settings) -> None:
    unreachable = Settings(endpoint_url="http://127.0.0.1:9", bucket=settings.bucket, table=settings.table)
    data = ConsoleData(Backends.from_settings(unreachable))
    data.registry = type(data.registry)(settings.table, client("dynamodb", unreachable, budget_ms=400))  # type: ignore[call-arg]
    with TestClient(create_app(data)) as ui:
        page = ui.get("/")
        assert page.status_code == 502
        assert "AWS did not answer" in page.text


def test_a_report_is_read_once_per_etag_and_again_when_rewritten(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "CACHED_DOCUMENTS", 2)  # then the oldest entry makes room
    store = seeded.backends.store
    reads: list[str] = []
    store.s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
    data = ConsoleData(seeded.backends)
    wine = next(r for r in data.overview().rows if r.name == "wine")
    assert wine.drift.report is not None
    assert wine.drift.word == "drift"
    assert len(reads) == 2  # the newest drift report and the newest quality report
    reads.clear()
    data.overview()
    assert reads == []  # neither changed: their ETags are the ones read
    rewritten = {**wine.drift.document, "status": "no_drift"}
    store.s3.put_object(Bucket=store.bucket, Key=wine.drift.report.key, Body=json.dumps(rewritten).encode())
    again = next(r for r in data.overview().rows if r.name == "wine")
    assert reads == [wine.drift.report.key]
    assert again.drift.word == "no drift"


def test_the_version_page_shows_a_hyperparameter_search(ui: TestClient, seeded: Seeded, trained_models: dict[str, TrainedModel]) -> None:
    from serverless_mlops.store.lifecycle import lineage_of, register_record

    wine = trained_models["wine"]
    search = {
        "best_params": {"C": 0.5},
        "best_score": 0.9712,
        "scoring": "f1",
        "cv": 3,
        "candidates": [
            {"params": {"C": 0.1}, "mean_score": 0.9101, "std_score": 0.02},
            {"params": {"C": 0.5}, "mean_score": 0.9712, "std_score": 0.01},
        ],
        "probe_seconds": 0.1,
        "seconds": 1.2,
    }
    lineage = lineage_of(wine.record, run_id="searched", trigger="manual").model_copy(update={"search": search})
    store = seeded.backends.store
    artifact, profile = store.put("wine", wine.onnx_bytes, "model.onnx"), store.put("wine", wine.profile_bytes, "profile.json.gz")
    entry = register_record(seeded.backends, wine.record, artifact, profile, by="test", lineage=lineage)
    page = ui.get(f"/models/wine/versions/{entry.version}")
    assert page.status_code == 200
    (cell,) = re.findall(r'<td id="search">(.*?)</details>', page.text, re.S)
    words = text(cell)
    assert words.startswith("best f1 0.9712 (3-fold cv) with C = 0.5")
    assert "2 candidates" in words
    assert words.index("0.9712") < words.index("0.9101")  # best first
    assert "none: the spec's params as given" in text(ui.get("/models/wine/versions/1").text)
