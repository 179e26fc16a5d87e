"""What the console's pages show, as plain values: the rows and details :class:`serverless_mlops.ui.data.ConsoleData`
reads a page at a time, and the small decisions on them (a version's key metric, the release fields of an alias, a
report's verdict badge) that need no AWS call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from serverless_mlops.store.registry import Alias, ModelVersion


@dataclass(frozen=True)
class Report:
    """One report in the bucket: a drift report (``version`` set) or a quality report (``version`` None)."""

    kind: str  # "drift" or "quality"
    window: str
    key: str  # the JSON's key; the HTML sits beside it
    version: int | None = None
    etag: str = ""  # as listed: a rewritten report (a window checked again) has another

    @property
    def html_key(self) -> str:
        return self.key.removesuffix(".json") + ".html"


@dataclass
class Verdict:
    """A drift or quality verdict as a badge: its word, its tone (ok, warn, bad, none) and where it comes from."""

    word: str
    tone: str
    detail: str = ""
    report: Report | None = None
    document: dict[str, Any] = field(default_factory=dict)


@dataclass
class Execution:
    name: str
    status: str
    started: str
    stopped: str
    path: list[str] = field(default_factory=list)
    arn: str = ""


@dataclass
class ModelRow:
    name: str
    production: Alias | None
    staging: Alias | None
    serving: ModelVersion | None
    metric: tuple[str, float] | None
    canary: dict[str, Any] | None
    shadow: dict[str, Any] | None
    drift: Verdict
    quality: Verdict
    retraining: Execution | None


@dataclass
class Overview:
    rows: list[ModelRow]
    next_token: str | None
    retraining_note: str
    releases_supported: bool


@dataclass
class Point:
    label: str
    value: float | None
    tone: str


@dataclass
class ModelDetail:
    name: str
    versions: list[ModelVersion]
    next_token: str | None
    aliases: list[Alias]
    description: str
    key_metric: str | None
    drift: list[Point]
    quality: list[Point]
    quality_metric: str | None
    retraining: list[Execution]
    retraining_note: str
    releases: list[Execution]
    releases_note: str
    release_fields: list[tuple[str, str]]


@dataclass
class FeatureProfile:
    name: str
    kind: str
    edges: list[float]
    counts: list[float]
    categories: list[tuple[str, float]]
    summary: dict[str, Any]


@dataclass
class VersionDetail:
    entry: ModelVersion
    aliases: list[str]
    features: list[FeatureProfile]
    profile_note: str
    drift_reports: list[Report]
    quality_reports: list[Report]
    curl: str
    predict: str


def key_metric(entry: ModelVersion | None) -> tuple[str, float] | None:
    """The version's evaluation metric (its spec's) and value, else its first metric."""
    if entry is None or not entry.metrics:
        return None
    evaluation = entry.spec.get("evaluation") if isinstance(entry.spec, dict) else None
    name = evaluation.get("metric") if isinstance(evaluation, dict) else None
    if isinstance(name, str) and name in entry.metrics:
        return name, entry.metrics[name]
    first = next(iter(entry.metrics))
    return first, entry.metrics[first]


def release_fields(alias: Alias | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The alias's canary and shadow (the release workflow's fields), when this registry has them and they are set."""

    def as_dict(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        dumped = value.model_dump() if hasattr(value, "model_dump") else value
        return dict(dumped) if isinstance(dumped, dict) else {"value": dumped}

    canary = as_dict(getattr(alias, "canary", None))
    if canary is not None and "weight" in canary:
        canary["weight"] = float(canary["weight"]) / 100  # the registry's weight is a percent; the pages show shares
    return canary, as_dict(getattr(alias, "shadow", None))


def drift_verdict(document: dict[str, Any] | None, report: Report | None) -> Verdict:
    if document is None:
        return Verdict("no check yet", "none") if report is None else Verdict("unreadable", "warn", "the report cannot be read", report)
    status = str(document.get("status", "unknown"))
    tone = {"drift": "bad", "no_drift": "ok", "insufficient_data": "warn"}.get(status, "none")
    detail = f"{document.get('drifted_features', '?')} of {document.get('checked_features', '?')} features, v{document.get('version', '?')}"
    return Verdict(status.replace("_", " "), tone, detail, report, document)


def quality_verdict(document: dict[str, Any] | None, report: Report | None) -> Verdict:
    if document is None:
        return Verdict("no check yet", "none") if report is None else Verdict("unreadable", "warn", "the report cannot be read", report)
    status = str(document.get("status", "unknown"))
    tone = {"breach": "bad", "ok": "ok", "insufficient_labels": "warn", "no_predictions": "warn"}.get(status, "none")
    labelled = sum(int(v.get("labelled", 0)) for v in document.get("versions", []))
    return Verdict(status.replace("_", " "), tone, f"{labelled:,} labelled rows", report, document)


def model_of_execution(name: str, models: Iterable[str]) -> str | None:
    """The model an execution is named after (``{model}-{trigger}-…``): the longest model name it starts with."""
    matches = [m for m in models if name.startswith(f"{m}-")]
    return max(matches, key=len) if matches else None
