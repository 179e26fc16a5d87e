"""A throwaway Lambda handler package (``localfns``) written to a folder, and the context and moto function that run it."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from serverless_mlops.local.lambda_runtime import LocalContext

HANDLER_MODULE = """
import os
import sys
from functools import lru_cache

@lru_cache(maxsize=1)
def default_dependencies():
    return {"bucket": os.environ.get("MLOPS_BUCKET")}

def lambda_handler(event, context):
    if event.get("boom"):
        raise KeyError("no such thing")
    print("log line from", context.function_name)
    return {
        "cached_bucket": default_dependencies()["bucket"],
        "trace_disabled": os.environ.get("POWERTOOLS_TRACE_DISABLED"),
        "endpoint": os.environ.get("MLOPS_ENDPOINT_URL"),
        "stray": os.environ.get("MLOPS_STRAY"),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }

not_callable = 3
"""


def write_handler_package(root: Path) -> Path:
    """``root/localfns/app.py`` holding :data:`HANDLER_MODULE`; returns ``root`` (the code root of a LocalInvoker)."""
    package = root / "localfns"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(HANDLER_MODULE))
    return root


def forget_handler_package(root: Path) -> None:
    """Unimport ``localfns`` and take ``root`` off sys.path, so the next test's package is imported afresh."""
    for name in [m for m in sys.modules if m == "localfns" or m.startswith("localfns.")]:
        del sys.modules[name]
    if str(root) in sys.path:
        sys.path.remove(str(root))


def lambda_context(name: str = "fn") -> LocalContext:
    return LocalContext(
        function_name=name, invoked_function_arn=f"arn:aws:lambda:us-east-1:1:function:{name}", memory_limit_in_mb=128, timeout_seconds=3
    )


def moto_function(name: str = "fn", bucket: str = "b1") -> SimpleNamespace:
    """The attributes of moto's ``LambdaFunction`` the invoker reads, for the ``localfns`` handler."""
    return SimpleNamespace(
        function_name=name,
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        memory_size=256,
        timeout=30,
        handler="localfns.app.lambda_handler",
        environment_vars={"MLOPS_BUCKET": bucket},
    )
