"""cdk.json carries every feature flag the installed aws-cdk-lib recommends, as `cdk init` writes them.

aws-cdk-lib ships its recommended flags as ``recommended-feature-flags.json`` in its jsii package. An upgrade that adds a
flag fails here until the flag is looked at and written into cdk.json (DESIGN.md: without
``@aws-cdk/aws-lambda:recognizeLayerVersion`` a change to a layer alone never reached the live alias).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import tarfile
from pathlib import Path
from typing import Any

from tests.helpers.specs import ROOT
from tests.helpers.template import Synth


def recommended_flags() -> dict[str, Any]:
    """The flags the installed aws-cdk-lib recommends for a new project (what `cdk init` puts in cdk.json)."""
    version = importlib.metadata.version("aws-cdk-lib")
    bundle = Path(importlib.import_module("aws_cdk._jsii").__file__ or "").parent / f"aws-cdk-lib@{version}.jsii.tgz"
    with tarfile.open(bundle) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None, f"{bundle.name} has no recommended-feature-flags.json"
        flags: dict[str, Any] = json.load(member)
    return flags


def project_flags() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return context


def test_cdk_json_holds_every_recommended_flag_of_the_installed_aws_cdk_lib() -> None:
    recommended, ours = recommended_flags(), project_flags()
    assert len(recommended) > 80  # the file was found and read: 89 flags in aws-cdk-lib 2.275
    missing = sorted(set(recommended) - set(ours))
    assert missing == [], f"cdk.json lacks {len(missing)} recommended feature flags of aws-cdk-lib: {missing}"
    differing = {flag: (ours[flag], value) for flag, value in recommended.items() if ours[flag] != value}
    assert differing == {}, "cdk.json sets these flags (ours, recommended) otherwise than aws-cdk-lib recommends"


def test_the_flags_reach_the_app_the_tests_synthesize(dev: Synth) -> None:
    """build_app reads cdk.json's context, so in-process synths (tests, local stack) get the flags `cdk synth` gets."""
    for flag, value in recommended_flags().items():
        assert dev.stack.node.try_get_context(flag) == value, flag
