"""The inference API's OpenAPI document is a committed contract: docs/openapi.json must be what the running app serves,
so a change to a route, a parameter or a model shows in review as a change to that file (``make openapi`` rewrites it)."""

from __future__ import annotations

import json

from tests.helpers.openapi import COMMITTED, served_document, text


def test_the_committed_document_is_what_the_app_serves() -> None:
    served = served_document()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    changed = sorted(set(served["paths"]) ^ set(committed["paths"]))
    assert served == committed, f"the API changed (paths added or removed: {changed}); run `make openapi` and review docs/openapi.json"
    assert COMMITTED.read_text(encoding="utf-8") == text(served), "docs/openapi.json is not as `make openapi` writes it"


def test_the_document_declares_the_documented_routes() -> None:
    paths = served_document()["paths"]
    assert "/v1/models/{name}/predict" in paths
    assert "post" in paths["/v1/models/{name}/predict"]
