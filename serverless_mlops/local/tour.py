"""What the ``make demo`` tour (:mod:`serverless_mlops.local.demo`) needs from the CLI and what it reports: the
:class:`TourCli` the CLI passes in, the :class:`TourResult` each step fills (the end-to-end test asserts on it), and
:class:`TourError` when a step does not see what it should."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from serverless_mlops.errors import MlopsError
from serverless_mlops.local.environment import Alert, LocalEnvironment, LocalInfo, Seeded

if TYPE_CHECKING:
    from serverless_mlops.store.lifecycle import Backends

__all__ = ["FollowedExecution", "Served", "StepOutcome", "Tour", "TourCli", "TourError", "TourResult"]


class TourError(MlopsError):
    """A step of the tour did not see what it should (the message says which step and what it saw)."""


class FollowedExecution(Protocol):
    """What the tour reads of a followed retraining execution (the CLI's ``Followed`` is one)."""

    status: str
    output: dict[str, Any]
    steps: list[Any]  # each with the .name of a state the execution passed, in order

    @property
    def terminal(self) -> str: ...

    @property
    def outcome(self) -> str: ...


@dataclass(frozen=True)
class TourCli:
    """What the tour does through the ``mlops`` CLI, as a user would: run a command (the rollback) and follow a
    retraining execution as ``mlops retrain`` shows it."""

    run: Callable[[list[str]], int]  # ``mlops ARGS`` in this process: its exit code (it prints to stdout and stderr)
    follow: Callable[[Any, str, Callable[[str], None]], FollowedExecution]  # Step Functions client, execution ARN, show
    outcome_line: Callable[[Any], str]  # one sentence for people on what a followed execution did


@dataclass(frozen=True)
class Served:
    """One prediction request: the version that answered and what it predicted."""

    model: str
    version: int
    predictions: list[Any]
    actual: list[Any] = field(default_factory=list)
    probabilities: list[list[float]] | None = None


@dataclass(frozen=True)
class StepOutcome:
    number: int
    title: str
    outcome: str
    seconds: float


@dataclass
class TourResult:
    """What each step of the tour observed."""

    seeded: list[Seeded] = field(default_factory=list)
    served: dict[str, list[Served]] = field(default_factory=dict)  # by phase: initial, drifted, retrained, rolled_back
    drift: dict[str, Any] = field(default_factory=dict)  # the drift function's result
    quality: dict[str, Any] = field(default_factory=dict)  # the quality function's result
    alerts: list[Alert] = field(default_factory=list)
    report_html: Path | None = None
    workflow_states: list[str] = field(default_factory=list)
    workflow_terminal: str = ""
    workflow_output: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # the production alias's history of DRIFTING_MODEL
    refresh_waits: dict[str, float] = field(default_factory=dict)  # seconds until the endpoint served the new alias
    # the release workflow's outputs by step ("canary", "broken"), with the versions that answered the traffic meanwhile
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    release_traffic: dict[str, dict[int, int]] = field(default_factory=dict)
    steps: list[StepOutcome] = field(default_factory=list)
    endpoint_url: str = ""  # the moto server's, and the HTTP API's, while the tour ran
    api_url: str = ""


class Tour(Protocol):
    """What a step of the tour uses of it (the tour in :mod:`serverless_mlops.local.demo` is one; the release steps in
    :mod:`serverless_mlops.local.demo_release` take it)."""

    env: LocalEnvironment
    info: LocalInfo
    result: TourResult
    backends: Backends

    def say(self, text: str) -> None: ...

    def step(self, number: int, title: str) -> AbstractContextManager[list[str]]: ...

    def spec(self, model: str) -> Any: ...

    def frame(self, model: str) -> Any: ...

    def rows(self, frame: Any, spec: Any) -> list[dict[str, Any]]: ...

    def predict(self, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]: ...
