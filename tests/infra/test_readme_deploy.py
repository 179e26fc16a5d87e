"""The deploy page (docs/deploying.md) works as written where it can without AWS: output names, the request body, SigV4."""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from serverless_mlops.model.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    return (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")


def test_the_outputs_it_reads_are_the_stacks_and_the_body_fits_the_wine_spec() -> None:
    text = section()
    read = set(re.findall(r"\.\[\"serverless-mlops-dev\"\]\.(\w+)", text))
    assert read == {"ArtifactBucketName", "RegistryTableName", "ApiUrl"}  # stable output names (test_template checks them)
    bodies = {json.dumps(json.loads(b)) for b in re.findall(r"'(\{\"inputs\".*?\})'", text)}
    bodies |= {json.dumps(json.loads(b)) for b in re.findall(r"json\.dumps\((\{\"inputs\".*?\})\)", text)}
    assert len(bodies) == 1  # the shell and the Python example send the same row
    (row,) = json.loads(bodies.pop())["inputs"]
    assert len(row) == len(load_spec(ROOT / "models/wine.yaml").features)


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        payload = b'{"predictions": [0]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_the_python_example_sends_a_sigv4_signed_request(monkeypatch: pytest.MonkeyPatch) -> None:
    (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", section(), re.DOTALL) if "SigV4Auth" in s]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(snippet, {"API": f"http://127.0.0.1:{server.server_port}/"})
    finally:
        server.shutdown()
    assert out.getvalue().strip() == '{"predictions": [0]}'
    path, headers, body = _Recorder.seen[-1]
    assert path == "/v1/models/wine/predict"
    assert headers["content-type"] == "application/json"
    assert re.match(r"AWS4-HMAC-SHA256 Credential=testing/\d{8}/us-east-1/execute-api/aws4_request", headers["authorization"])
    assert json.loads(body)["inputs"]
