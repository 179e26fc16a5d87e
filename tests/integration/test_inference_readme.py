"""The inference API examples (docs/serving.md) are sent to the handler as written, and answer what the page says."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import Clock, call, endpoint, handler_for, register
from tests.helpers.specs import ROOT

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def examples() -> list[tuple[list[str], str]]:
    """(curl arguments, the answer written in the comments after it) for each curl in the section."""
    page = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    section = page.split("\n## Inference API (HTTP)\n", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[list[str], str]] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        pending = ""
        for line in block.splitlines():
            if pending or line.startswith("curl"):
                pending += line.removesuffix("\\") + "\n"
                if line.endswith("\\") or not _complete(pending):  # continued, or a quoted body goes on
                    continue
                command, _, inline = pending.partition("  #")
                found.append((shlex.split(command), inline.strip()))
                pending = ""
            elif line.startswith("#") and found:
                found[-1] = (found[-1][0], found[-1][1] + line.lstrip("#").strip())
    return found


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:
        return False
    return True


def _request(args: list[str]) -> tuple[str, str, dict[str, str], Any]:
    url = next(a for a in args if "localhost:8080" in a)
    parts = urlsplit("http://" + url)
    body = json.loads(args[args.index("-d") + 1]) if "-d" in args else None
    return ("POST" if body is not None else "GET"), parts.path, dict(parse_qsl(parts.query)), body


def test_the_readme_has_the_examples() -> None:
    assert len(examples()) >= 5


def test_readme_examples_answer_as_written(backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    register(backends, trained_models["wine"], "wine-1", promote=True)
    handler = handler_for(endpoint(backends, Clock()))
    previous: Any = None
    for args, expected in examples():
        method, path, query, body = _request(args)
        status, answer, _ = call(handler, method, path, body, query=query)
        assert status < 500, (args, answer)
        if expected == "the same answer":
            assert answer == previous
        elif expected.endswith("..."):
            assert json.dumps(answer, separators=(",", ":")).startswith(expected.removesuffix("...")), (args, answer)
        else:
            assert answer == json.loads(expected), (args, answer)
        previous = answer
