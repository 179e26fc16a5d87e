"""The inference API's OpenAPI document as the running app serves it (``GET /openapi.json`` through the handler's
resolver), and the committed copy in docs/openapi.json that review sees change.

    python -m tests.helpers.openapi     # rewrite docs/openapi.json from the app (make openapi)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"


def served_document() -> dict[str, Any]:
    """What ``GET /openapi.json`` answers; no endpoint is built (the document needs no model, settings or AWS)."""
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "serverless-mlops")
    from functions.inference.app import build_api
    from tests.helpers.events import LambdaContext, load_event

    def no_endpoint() -> Any:
        raise AssertionError("the OpenAPI document must not need the endpoint")

    response = build_api(no_endpoint).resolve(load_event(method="GET", path="/openapi.json"), LambdaContext())
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])  # type: ignore[no-any-return]


def text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    COMMITTED.write_text(text(served_document()), encoding="utf-8")
    print(f"wrote {COMMITTED.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
