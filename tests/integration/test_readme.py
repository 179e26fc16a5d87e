"""The CLI walkthrough (docs/registry-and-artifacts.md) is run as written (on a free port, in a scratch folder), so it cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serverless_mlops.local.moto import free_port
from tests.helpers.specs import ROOT


def walkthrough() -> str:
    page = (ROOT / "docs" / "registry-and-artifacts.md").read_text(encoding="utf-8")
    after = page.split("A walkthrough on a local moto server", 1)[1]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match, "docs/registry-and-artifacts.md lost its walkthrough block"
    return match.group(1)


@pytest.mark.slow
def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    venv = Path(sys.prefix)  # the venv running the tests: .venv (make install), or make check-latest's throwaway one
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the walkthrough activates .venv, which make install creates")
    port = free_port()
    script = walkthrough().replace("5055", str(port)).replace("/tmp/rows.csv", str(tmp_path / "rows.csv"))
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "models").symlink_to(ROOT / "models")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AWS_"))}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "registered wine version 1" in out
    assert out.count("registered wine version 2") == 2  # the same run registered twice is one version
    assert "wine: production → version 2 (revision 2)" in out
    assert "wine: production rolled back from version 2 to version 1 (revision 3)" in out
    assert "wine version 2 archived" in out
    assert "Traceback" not in result.stderr
