"""`mlops train --register` of a model no converter handles: one line naming the estimator and what to do, exit 1,
no run folder, and nothing in the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serverless_mlops.cli import main
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.specs import MODELS


def test_an_unconvertible_estimator_fails_in_one_line_and_registers_nothing(
    backends: Backends, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load((MODELS / "diabetes.yaml").read_text(encoding="utf-8"))
    document["estimator"] = {"class": "sklearn.kernel_ridge.KernelRidge", "params": {}}
    document["data"]["uri"] = str(MODELS / document["data"]["uri"])
    spec = tmp_path / "diabetes.yaml"
    spec.write_text(yaml.safe_dump(document), encoding="utf-8")
    out = tmp_path / "run"
    code = main(["train", str(spec), "--out", str(out), "--register"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("error: diabetes: cannot convert KernelRidge to ONNX with skl2onnx (")
    assert err[0].endswith("nothing was packaged: choose an estimator skl2onnx supports (see docs/specs-and-training.md, 'Estimators')")
    assert not out.exists()
    assert backends.registry.list_models().items == []
