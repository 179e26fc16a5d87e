"""One place that makes boto3 clients, so the endpoint (AWS, moto or LocalStack) is chosen once.

Two kinds of client:

- the default one waits, as a CLI, a training job or a cold model load should: 8 adaptive retries, 5 s to connect,
  30 s to read;
- a *budgeted* one (``client(..., budget_ms=...)``) is for calls made on a request's path while a good answer is
  already in hand (the warm inference function re-checking an alias, flushing captured rows): one attempt, no
  retries, a connect timeout of a quarter of the budget and a read timeout of half. urllib3 applies the connect
  timeout to connecting and again to sending the request (a body bigger than the socket buffers waits on a server
  that does not read), so one call ends within connect + send + read = the budget whether the endpoint refuses (at
  once), drops the connection attempt, stops reading or never answers. Not bounded by it: DNS resolution, and a
  server that trickles bytes slower than the read timeout (each read waits at most the read timeout, not the whole
  response).

:func:`backoff` is the one rule for how long such a caller waits before trying a failed dependency again.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import add_expect_header

from serverless_mlops.settings import Settings

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=5, read_timeout=30)

# What a failing AWS call raises: no connection, a timeout, a throttle or any error answer.
SERVICE_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)

_sessions = threading.local()


def _session() -> boto3.session.Session:
    """One boto3 Session per thread: a new Session reloads botocore's service models (~60 ms each time), and a
    Session must not be shared across threads."""
    session: boto3.session.Session | None = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = boto3.session.Session()
    return session


def budget_config(budget_ms: float) -> Config:
    """One attempt (``total_max_attempts`` 1, standard mode: adaptive mode may sleep before a call to pace it), a
    connect (and send) timeout of a quarter of ``budget_ms`` and a read timeout of half: measured against a server
    that accepted and never read, a 400 ms flush with halves (200 + 200) took 440 ms, connecting, sending and reading."""
    if budget_ms <= 0:
        raise ValueError(f"budget_ms must be positive, got {budget_ms}")
    seconds = budget_ms / 1000
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=seconds / 4, read_timeout=seconds / 2)


def client(service: str, settings: Settings, *, budget_ms: float | None = None) -> Any:
    """A boto3 client for ``service`` in the settings' region, at the settings' endpoint if one is set; with
    ``budget_ms``, one whose every call ends within about that many milliseconds (see the module docstring)."""
    made = _session().client(
        service,  # type: ignore[call-overload]
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_RETRIES if budget_ms is None else budget_config(budget_ms),
    )
    if budget_ms is not None and service == "s3":
        # botocore sends an S3 PUT with a body as "Expect: 100-continue" and, when the server says nothing, waits a
        # fixed 1 s before sending the body anyway: measured, a black-holed PutObject took 1.2 s on a 400 ms budget.
        # Without the header the body goes at once and only the read timeout applies.
        made.meta.events.unregister("before-call.s3", add_expect_header)
    return made


def backoff(base: float, failures: int, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: ``base`` after the first, doubling after each
    further one, never more than ``cap`` (and never less than ``base``)."""
    if failures <= 0:
        return base
    return max(base, min(cap, base * 2.0 ** min(failures - 1, 62)))
