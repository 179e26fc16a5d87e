"""Least privilege on the artifact bucket, read from the synthesized template and checked against the code.

A function may list only the prefixes it reads (``s3:ListBucket`` with an ``s3:prefix`` condition; a listing of the
whole bucket carries no ``s3:prefix`` and is refused), and every listing the deployed code makes stays inside the
condition of the function that makes it.
"""

from __future__ import annotations

import ast
import fnmatch
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.packaging import PackagingError, code_files
from tests.helpers.specs import ROOT
from tests.helpers.template import HANDLERS, Synth, as_list, object_prefixes, policy_statements


def listable(synth: Synth, function: str) -> list[str]:
    """The ``s3:prefix`` patterns under which ``function`` may list the bucket; fails on any other list grant."""
    patterns: list[str] = []
    for statement in policy_statements(synth, function):
        actions = [a for a in as_list(statement["Action"]) if a.startswith("s3:")]
        listing = [a for a in actions if a.startswith("s3:List") or a in ("s3:*", "s3:Get*")]
        if not listing:
            continue
        assert listing == ["s3:ListBucket"], (function, statement)  # not ListBucketVersions, multipart uploads, ...
        assert set(statement["Condition"]) == {"StringLike"}, (function, statement)
        assert set(statement["Condition"]["StringLike"]) == {"s3:prefix"}, (function, statement)
        patterns += as_list(statement["Condition"]["StringLike"]["s3:prefix"])
    return patterns


def readable(synth: Synth, function: str) -> set[str]:
    return {p for s in policy_statements(synth, function) if "s3:GetObject*" in as_list(s["Action"]) for p in object_prefixes(s)}


def test_no_function_may_list_the_whole_bucket(synth: Synth) -> None:
    for function in HANDLERS:
        patterns = listable(synth, function)
        assert patterns, function
        # every pattern is one top-level folder: a listing without Prefix (the whole bucket) matches none of them
        assert all(p.count("/") == 1 and p.endswith("/*") and len(p) > 2 for p in patterns), (function, patterns)
        assert not any(fnmatch.fnmatchcase("", p) for p in patterns)


def test_each_function_lists_exactly_the_prefixes_it_reads(synth: Synth) -> None:
    assert set(listable(synth, "inference")) == {"artifacts/*"}
    assert set(listable(synth, "drift_check")) == {"artifacts/*", "capture/*"}
    assert set(listable(synth, "quality_check")) == {"artifacts/*", "capture/*", "predictions/*", "ground-truth/*", "reports/*"}
    for function in HANDLERS:
        assert set(listable(synth, function)) == readable(synth, function), function
    # the listing is no wider than the function's reads: the release function cannot list captured requests
    assert "capture/*" not in listable(synth, "release")
    assert "capture/*" not in listable(synth, "training")


class RecordingS3:
    """An S3 client stand-in that records each ListObjectsV2 Prefix and answers with an empty page."""

    def __init__(self) -> None:
        self.prefixes: list[str] = []

    def get_paginator(self, operation: str) -> RecordingS3:
        assert operation == "list_objects_v2"
        return self

    def paginate(self, *, Bucket: str, Prefix: str = "", StartAfter: str = "") -> list[dict[str, Any]]:
        self.prefixes.append(Prefix)
        return [{"Contents": []}]


def _listings() -> dict[str, tuple[str, list[str]]]:
    """Each listing function of the deployed code → (the function that runs it, the Prefixes it asks S3 for)."""
    from serverless_mlops.drift.capture_reader import capture_keys
    from serverless_mlops.quality.labels import ground_truth_keys
    from serverless_mlops.quality.report import quality_report_keys
    from serverless_mlops.quality.window import predictions_keys
    from serverless_mlops.retraining.candidate_steps import feedback_keys

    drift, training, labels, reports, predictions = RecordingS3(), RecordingS3(), RecordingS3(), RecordingS3(), RecordingS3()
    capture_keys(drift, "bucket", "wine", datetime(2026, 1, 1, 22, tzinfo=UTC), datetime(2026, 1, 2, 1, tzinfo=UTC))
    feedback_keys(training, "bucket", "wine")
    ground_truth_keys(labels, "bucket", "wine", datetime(2026, 1, 1, 22, tzinfo=UTC), datetime(2026, 1, 2, 1, tzinfo=UTC))
    quality_report_keys(reports, "bucket", "wine")
    predictions_keys(predictions, "bucket", "wine", datetime(2026, 1, 1, 22, tzinfo=UTC), datetime(2026, 1, 2, 1, tzinfo=UTC))
    return {
        "capture_keys": ("drift_check", drift.prefixes),
        "feedback_keys": ("training", training.prefixes),
        "ground_truth_keys": ("quality_check", labels.prefixes),
        "quality_report_keys": ("quality_check", reports.prefixes),
        "predictions_keys": ("quality_check", predictions.prefixes),
    }


def test_every_listing_the_code_makes_is_inside_its_functions_condition(dev: Synth) -> None:
    for name, (function, prefixes) in _listings().items():
        assert prefixes, name
        patterns = listable(dev, function)
        for prefix in prefixes:
            assert any(fnmatch.fnmatchcase(prefix, p) for p in patterns), (name, prefix, patterns)


def _listing_functions(path: Path) -> set[str]:
    """Names of the functions in ``path`` that start an S3 listing (``list_objects*`` / ``list_object_versions``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                text = inner.value if isinstance(inner, ast.Constant) and isinstance(inner.value, str) else None
                text = inner.attr if isinstance(inner, ast.Attribute) else text
                if text and text.startswith(("list_objects", "list_object_versions")):
                    found.add(node.name)
    return found


def test_the_listings_checked_are_all_the_deployed_code_makes() -> None:
    """A new listing in a function's code must be added to _listings (and to its function's grants)."""
    deployed = {path for function in HANDLERS for path in code_files(function) if path.suffix == ".py"}
    found = {name for path in deployed for name in _listing_functions(ROOT / path)}
    # latest_report (drift/report.py) lists reports/ for the CLI's `mlops drift report`; no handler calls it
    assert found - {"latest_report"} == set(_listings())
    callers = {path for path in deployed if "latest_report(" in (ROOT / path).read_text(encoding="utf-8")}
    assert callers <= {Path("serverless_mlops/drift/report.py")}


@pytest.mark.parametrize("prefix", ["", "capture/wine", "*", "cap?ure"])
def test_a_grant_that_would_widen_a_listing_is_refused(prefix: str, dev: Synth) -> None:
    with pytest.raises(PackagingError, match="must be one top-level folder"):
        dev.stack.inference.handler.grant_objects(dev.stack.artifacts.bucket, read=[prefix])
