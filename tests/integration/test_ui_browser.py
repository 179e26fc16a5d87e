"""The console in a real browser: Playwright driving Debian's chromium (``executable_path``; Playwright's own browser
download is not reachable here) against ``mlops ui``'s server on a seeded registry (moto, in-process).

Checked: each page renders with no Content-Security-Policy violation; every link on it resolves; the numbers on the
models page are the registry's; a drift report opens from the version page; the keyboard alone reaches and follows
links (skip link first, visible focus); a phone-width window does not scroll sideways; dark mode changes the colours.
Screenshots of the three pages at 1280 px go to build/ui/ (``make screenshots`` also copies them to docs/images/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from serverless_mlops.aws import client
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import PRODUCTION
from serverless_mlops.ui.app import create_app
from serverless_mlops.ui.data import ConsoleData
from serverless_mlops.ui.server import ConsoleServer, bind
from tests.helpers.console import MOTO_CONFIG, Seeded, seed

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("build/ui")
PAGES = {"models": "/", "model": "/models/wine", "version": "/models/wine/versions/1"}

playwright_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip; the dev group installs it)")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")]


@dataclass
class Running:
    url: str
    seeded: Seeded
    browser: Any
    violations: list[str]


@pytest.fixture(scope="module")
def running(trained_models: dict[str, TrainedModel]) -> Iterator[Running]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            patch.setenv(name, value)
        patch.delenv("MLOPS_ENDPOINT_URL", raising=False)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws(config=MOTO_CONFIG):
            settings = Settings()
            ensure_resources(settings)
            backends = Backends.from_settings(settings)
            seeded = seed(backends, trained_models, settings)
            data = ConsoleData(
                backends, sfn=client("stepfunctions", settings), retraining_arn=seeded.state_machine_arn, api_url="http://127.0.0.1:8080"
            )
            server = ConsoleServer(create_app(data), bind("127.0.0.1", 0)).start()
            try:
                with playwright_api.sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
                    try:
                        yield Running(server.url, seeded, browser, [])
                    finally:
                        browser.close()
            finally:
                server.stop()


def open_page(running: Running, path: str, **context: Any) -> Any:
    page = running.browser.new_page(viewport={"width": 1280, "height": 900}, **context)
    page.on("console", lambda message: running.violations.append(message.text) if "Content Security Policy" in message.text else None)
    page.goto(running.url + path)
    return page


def test_each_page_renders_and_its_links_resolve_with_screenshots(running: Running) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    copies = os.environ.get("MLOPS_UI_SCREENSHOTS")  # make screenshots: docs/images
    for name, path in PAGES.items():
        page = open_page(running, path)
        assert page.locator("h1").first.is_visible()
        shot = SHOTS / f"ui-{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
        if copies:
            shutil.copyfile(shot, Path(copies) / shot.name)
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        assert hrefs
        for href in set(hrefs):
            if href.startswith("#"):
                continue
            answer = page.request.get(running.url + href if href.startswith("/") else href)
            assert answer.status == 200, f"{path}: {href} → {answer.status}"
        page.close()
    assert running.violations == []


def test_the_numbers_on_the_models_page_are_the_registrys(running: Running) -> None:
    page = open_page(running, "/")
    registry = running.seeded.backends.registry
    for name in ("breast-cancer", "diabetes", "wine"):
        served = registry.resolve(name, PRODUCTION)
        metric = served.spec["evaluation"]["metric"]
        cell = page.locator(f'#models tr:has(th a:text-is("{name}")) [data-metric="{metric}"]')
        assert cell.inner_text() == f"{served.metrics[metric]:.4f}"
        production = page.locator(f'#models tr:has(th a:text-is("{name}")) td').first
        assert production.inner_text() == f"v{served.version}"
    page.close()


def test_a_drift_report_opens_from_the_version_page(running: Running) -> None:
    page = open_page(running, "/models/wine/versions/1")
    page.get_by_role("link", name="drift report", exact=False).first.click()
    page.wait_for_load_state()
    assert "/reports/wine/v1/" in page.url
    assert "wine" in page.locator("h1").first.inner_text()
    assert page.locator("svg").count() > 0  # the report's charts render under its sandboxed policy
    page.close()
    assert running.violations == []


def test_keyboard_alone_reaches_and_follows_links(running: Running) -> None:
    page = open_page(running, "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.evaluate("getComputedStyle(document.activeElement).left") != "-9999px"  # visible when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "/models/wine":
            break
    else:
        pytest.fail("Tab never reached the link to wine")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus is visible
    page.keyboard.press("Enter")
    page.wait_for_url("**/models/wine")
    assert page.locator("h1").inner_text() == "wine"
    page.close()


def test_phone_width_and_dark_mode(running: Running) -> None:
    for path in PAGES.values():
        page = open_page(running, path)
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        page.close()
    light = open_page(running, "/", color_scheme="light")
    dark = open_page(running, "/", color_scheme="dark")
    background = "getComputedStyle(document.body).backgroundColor"
    assert light.evaluate(background) == "rgb(255, 255, 255)"
    assert dark.evaluate(background) == "rgb(12, 17, 29)"
    light.close()
    dark.close()
