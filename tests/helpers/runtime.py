"""Running a built layer as Lambda does: under the runtime's Python (3.12), with nothing of this venv on the path.

Shared by the inference and training layer tests: ``-S`` keeps the interpreter's own site-packages out (nothing may
stand in for what the layer lacks), ``-B`` writes no bytecode (``/opt`` and ``/var/task`` are read-only), and
``sys.path`` is the task root, then the layers, then the runtime's own boto3 (``/var/runtime``), in Lambda's order.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from layers.build import RuntimePython

# what the Lambda runtime provides in /var/runtime (boto3 and its dependencies); pure Python, so this venv's serve
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def link_runtime_packages(folder: Path) -> Path:
    """A stand-in for the runtime's /var/runtime: boto3 and its dependencies, linked from this venv."""
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


def clean_environment(*path: Path, **extra: str) -> dict[str, str]:
    """Nothing of this venv: ``path`` in order as PYTHONPATH, plus ``extra``."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(map(str, path)), **extra}


def run(
    python: RuntimePython,
    script: str,
    *,
    env: dict[str, str],
    cwd: Path,
    args: tuple[str, ...] = (),
    verbose: bool = False,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``script`` under the runtime's interpreter, as Lambda runs it (``-S -B``; ``-v`` to see what was compiled)."""
    flags = ["-S", "-B", *(["-v"] if verbose else [])]
    return subprocess.run(
        [python.executable, *flags, "-c", script, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def last_json_line(result: subprocess.CompletedProcess[str]) -> Any:
    """The report a probe script prints last."""
    return json.loads(result.stdout.strip().splitlines()[-1])
