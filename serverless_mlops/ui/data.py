"""What the console shows, read through the registry and artifact store the CLI uses, a page at a time.

Reads per page (no scan, nothing per version):

- models: one Query for a page of model names (25), one BatchGetItem for their production and staging aliases, one for the
  versions production serves, one S3 listing of ``reports/{model}/`` per model (in a few threads) plus the newest drift
  and quality report of each, and one ListExecutions of the retraining state machine;
- a model: a page of its versions (newest first), its aliases, its report listing and the last :data:`WINDOWS` drift
  and quality reports (for the charts), the executions of its retraining (and release) state machine that carry its
  name, and the state path of the newest :data:`TRACED` of them;
- a version: the version, its baseline profile, the report listing.

A report's JSON is read once per key and ETag (the listing gives both) and kept: listings stay fresh, reports that did
not change are not read again.

What the stack or the branch does not provide is said, not guessed: no state machine configured, no release fields on
the alias, no reports yet.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from serverless_mlops.drift.report import REPORTS_PREFIX
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import PRODUCTION, STAGING, Alias, ModelVersion
from serverless_mlops.ui.views import (
    Execution,
    FeatureProfile,
    ModelDetail,
    ModelRow,
    Overview,
    Point,
    Report,
    Verdict,
    VersionDetail,
    drift_verdict,
    key_metric,
    model_of_execution,
    quality_verdict,
    release_fields,
)

MODELS_PAGE = 25  # models per page (each costs a report listing; MLflow's registry pages 25 at a time too)
PAGE_SIZE = 50  # versions per page
WINDOWS = 30  # drift and quality windows charted on a model's page
TRACED = 5  # executions whose state path a model's page shows
EXECUTIONS = 100  # executions listed per state machine (one ListExecutions page)
THREADS = 8
CACHED_DOCUMENTS = 2000  # report JSONs kept in memory, by key and ETag
SERVICE_ERRORS = (BotoCoreError, ClientError)
T = TypeVar("T")
R = TypeVar("R")


class ConsoleData:
    """The console's reads. ``retraining_arn`` / ``release_arn``: the state machines whose executions it lists (None:
    the page says none is configured); ``api_url``: the HTTP API the curl lines call."""

    def __init__(
        self,
        backends: Backends,
        *,
        sfn: Any = None,
        retraining_arn: str | None = None,
        release_arn: str | None = None,
        api_url: str | None = None,
    ) -> None:
        self.backends = backends
        self.registry = backends.registry
        self.s3 = backends.store.s3
        self.bucket = backends.store.bucket
        self.sfn = sfn
        self.retraining_arn = retraining_arn
        self.release_arn = release_arn
        self.api_url = (api_url or "https://API_URL").rstrip("/")
        self._documents: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- helpers ------------------------------------------------------------------------------------------------
    @staticmethod
    def _parallel(function: Callable[[T], R], items: list[T]) -> list[R]:
        if len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(THREADS, len(items))) as pool:
            return list(pool.map(function, items))

    def reports(self, model: str) -> list[Report]:
        """Every drift and quality report of ``model`` (one paginated listing), oldest window first."""
        found: list[Report] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        prefix = f"{REPORTS_PREFIX}/{model}/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                parts = item["Key"].removeprefix(prefix).split("/")
                if len(parts) != 3:
                    continue
                head, window, name = parts
                etag = str(item.get("ETag", ""))
                if head == "quality" and name == "quality.json":
                    found.append(Report("quality", window, item["Key"], etag=etag))
                elif head.startswith("v") and head[1:].isdigit() and name == "report.json":
                    found.append(Report("drift", window, item["Key"], int(head[1:]), etag))
        return sorted(found, key=lambda r: (r.window, r.version or 0))

    def document(self, report: Report | None) -> dict[str, Any] | None:
        """A report's JSON, read once per (key, ETag): the listing that found it says whether it changed since."""
        if report is None:
            return None
        cached = self._documents.get((report.key, report.etag)) if report.etag else None
        if cached is not None:
            return cached
        try:
            loaded = json.loads(self.s3.get_object(Bucket=self.bucket, Key=report.key)["Body"].read())
        except (*SERVICE_ERRORS, ValueError):
            return None
        if not isinstance(loaded, dict):
            return None
        if report.etag:
            with self._lock:
                if len(self._documents) >= CACHED_DOCUMENTS:
                    self._documents.pop(next(iter(self._documents)))  # the oldest entry
                self._documents[(report.key, report.etag)] = loaded
        return loaded

    def report_body(self, key: str) -> tuple[bytes, str]:
        """A report's bytes and content type; NotFoundError for anything but a report of this bucket."""
        parts = key.split("/")
        if not key.startswith(f"{REPORTS_PREFIX}/") or ".." in parts or not key.endswith((".html", ".json")):
            raise NotFoundError(f"{key!r} is not a report (reports/…/report.html or quality.html)")
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise NotFoundError(f"no report at s3://{self.bucket}/{key}") from exc
        return body, "text/html; charset=utf-8" if key.endswith(".html") else "application/json"

    def executions(self, arn: str | None, models: Iterable[str]) -> tuple[dict[str, list[Execution]], str]:
        """The newest executions of a state machine by the model they are named after, and a note when there are none."""
        if not arn or self.sfn is None:
            return {}, "no state machine configured"
        try:
            listed = self.sfn.list_executions(stateMachineArn=arn, maxResults=EXECUTIONS).get("executions", [])
        except SERVICE_ERRORS as exc:
            return {}, f"cannot list executions of {arn}: {exc}"
        by_model: dict[str, list[Execution]] = {}
        names = list(models)
        for item in sorted(listed, key=lambda e: e["startDate"], reverse=True):
            owner = model_of_execution(item["name"], names)
            if owner is None:
                continue
            stopped = item.get("stopDate")
            by_model.setdefault(owner, []).append(
                Execution(
                    name=item["name"],
                    status=item["status"],
                    started=item["startDate"].isoformat(timespec="seconds"),
                    stopped=stopped.isoformat(timespec="seconds") if stopped else "",
                    arn=item["executionArn"],
                )
            )
        return by_model, ""

    def trace(self, execution: Execution) -> Execution:
        """The states the execution entered, in order (one GetExecutionHistory page)."""
        try:
            events = self.sfn.get_execution_history(executionArn=execution.arn, maxResults=1000).get("events", [])
        except SERVICE_ERRORS:
            return execution
        execution.path = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
        return execution

    # -- pages --------------------------------------------------------------------------------------------------
    def overview(self, next_token: str | None = None) -> Overview:
        page = self.registry.list_models(page_size=MODELS_PAGE, next_token=next_token)
        names = list(page.items)
        aliases = self.registry.aliases_of(names, (PRODUCTION, STAGING))
        serving = self.registry.describe_many([(n, aliases[(n, PRODUCTION)].version) for n in names if (n, PRODUCTION) in aliases])

        def verdicts(name: str) -> tuple[Verdict, Verdict]:
            try:
                listed = self.reports(name)
            except SERVICE_ERRORS:
                return Verdict("unreadable", "warn", "the report listing failed"), Verdict("unreadable", "warn")
            drift = max((r for r in listed if r.kind == "drift"), key=lambda r: r.window, default=None)
            quality = max((r for r in listed if r.kind == "quality"), key=lambda r: r.window, default=None)
            return drift_verdict(self.document(drift), drift), quality_verdict(self.document(quality), quality)

        found = self._parallel(verdicts, names)
        executions, note = self.executions(self.retraining_arn, names)
        rows = []
        for name, (drift, quality) in zip(names, found, strict=True):
            production = aliases.get((name, PRODUCTION))
            entry = serving.get((name, production.version)) if production else None
            canary, shadow = release_fields(production)
            rows.append(
                ModelRow(
                    name=name,
                    production=production,
                    staging=aliases.get((name, STAGING)),
                    serving=entry,
                    metric=key_metric(entry),
                    canary=canary,
                    shadow=shadow,
                    drift=drift,
                    quality=quality,
                    retraining=next(iter(executions.get(name, [])), None),
                )
            )
        supported = any(hasattr(a, "canary") for a in aliases.values()) or "canary" in Alias.model_fields
        return Overview(rows=rows, next_token=page.next_token, retraining_note=note, releases_supported=supported)

    def model(self, name: str, next_token: str | None = None) -> ModelDetail:
        page = self.registry.list_versions(name, page_size=PAGE_SIZE, next_token=next_token, newest_first=True)
        aliases = sorted(self.registry.aliases(name), key=lambda a: (a.name != PRODUCTION, a.name))
        newest = page.items[0] if page.items else None
        metric = key_metric(newest)
        listed = self.reports(name)
        drift_reports = [r for r in listed if r.kind == "drift"][-WINDOWS:]
        quality_reports = [r for r in listed if r.kind == "quality"][-WINDOWS:]
        documents = self._parallel(self.document, [*drift_reports, *quality_reports])
        drift_points = []
        for report, document in zip(drift_reports, documents[: len(drift_reports)], strict=True):
            share = document.get("drifted_share") if document else None
            tone = drift_verdict(document, report).tone
            drift_points.append(Point(f"v{report.version} {report.window}", float(share) if share is not None else None, tone))
        quality_docs = documents[len(drift_reports) :]
        quality_metric = self._quality_metric(quality_docs, metric[0] if metric else None)
        quality_points = []
        for report, document in zip(quality_reports, quality_docs, strict=True):
            value = None
            for v in (document or {}).get("versions", []):
                if v.get("labelled") and (v.get("realized") or {}).get(quality_metric) is not None:
                    value = float(v["realized"][quality_metric])
            quality_points.append(Point(report.window, value, quality_verdict(document, report).tone))
        retraining, retraining_note = self.executions(self.retraining_arn, [name])
        runs = retraining.get(name, [])
        for execution in runs[:TRACED]:
            self.trace(execution)
        releases: list[Execution] = []
        if self.release_arn:
            found, releases_note = self.executions(self.release_arn, [name])
            releases = found.get(name, [])
            for execution in releases[:TRACED]:
                self.trace(execution)
            if not releases and not releases_note:
                releases_note = "no release of this model yet"
        else:
            releases_note = "no release state machine configured (set MLOPS_RELEASE_STATE_MACHINE_ARN or pass --release-state-machine)"
        shown: list[tuple[str, str]] = []
        for alias in aliases:
            canary, shadow = release_fields(alias)
            if canary:
                shown.append((alias.name, f"canary v{canary.get('version')} at {float(canary.get('weight', 0)):.0%} of traffic"))
            if shadow:
                shown.append((alias.name, f"shadow v{shadow.get('version')} mirrors {float(shadow.get('sample', 0)):.0%}"))
        return ModelDetail(
            name=name,
            versions=list(page.items),
            next_token=page.next_token,
            aliases=aliases,
            description=newest.description if newest else "",
            key_metric=metric[0] if metric else None,
            drift=drift_points,
            quality=quality_points,
            quality_metric=quality_metric,
            retraining=runs,
            retraining_note=retraining_note or ("" if runs else "no retraining of this model yet"),
            releases=releases,
            releases_note=releases_note,
            release_fields=shown,
        )

    @staticmethod
    def _quality_metric(documents: list[dict[str, Any] | None], preferred: str | None) -> str | None:
        names: list[str] = []
        for document in documents:
            for v in (document or {}).get("versions", []):
                names += [m for m in v.get("realized") or {} if m not in names]
        if preferred in names:
            return preferred
        return names[0] if names else None

    def version(self, name: str, number: int) -> VersionDetail:
        entry = self.registry.describe(name, number)
        holders = [a.name for a in self.registry.aliases(name) if a.version == number]
        features, note = self._profile(entry)
        listed = self.reports(name)
        drift = [r for r in listed if r.kind == "drift" and r.version == number]
        quality = []
        candidates = [r for r in listed if r.kind == "quality"][-WINDOWS:]
        for report, document in zip(candidates, self._parallel(self.document, candidates), strict=True):
            if any(v.get("version") == number for v in (document or {}).get("versions", [])):
                quality.append(report)
        return VersionDetail(
            entry=entry,
            aliases=holders,
            features=features,
            profile_note=note,
            drift_reports=drift,
            quality_reports=quality,
            curl=self._curl(entry, features),
            predict=f"mlops predict {shlex.quote(name)} --version {number} --input rows.csv",
        )

    def _profile(self, entry: ModelVersion) -> tuple[list[FeatureProfile], str]:
        from serverless_mlops.model.profile import load_profile

        try:
            document = load_profile(self.backends.store.get(entry.profile, model=entry.model, version=entry.version))
        except (MlopsError, *SERVICE_ERRORS, OSError, ValueError) as exc:
            return [], f"the baseline profile cannot be read: {exc}"
        features = []
        for feature in entry.signature.features:
            summary = document.get("features", {}).get(feature.name, {})
            histogram = summary.get("histogram") or {}
            frequencies = summary.get("frequencies") or {}
            features.append(
                FeatureProfile(
                    name=feature.name,
                    kind=feature.kind,
                    edges=[float(e) for e in histogram.get("edges", [])],
                    counts=[float(c) for c in histogram.get("counts", [])],
                    categories=[(str(k), float(v)) for k, v in list(frequencies.items())[:12]],
                    summary={k: summary[k] for k in ("mean", "std", "min", "max", "missing_share") if k in summary},
                )
            )
        return features, ""

    def _curl(self, entry: ModelVersion, features: list[FeatureProfile]) -> str:
        """A curl line that predicts one typical row (each numeric feature's training mean, each categorical feature's
        most frequent category; never a real training row) with exactly this version."""
        typical = {f.name: f for f in features}
        row: dict[str, Any] = {}
        for feature in entry.signature.features:
            profile = typical.get(feature.name)
            mean = profile.summary.get("mean") if profile else None
            if feature.kind == "categorical":
                row[feature.name] = profile.categories[0][0] if profile and profile.categories else (feature.categories or ["value"])[0]
            elif isinstance(mean, int | float):
                row[feature.name] = float(f"{mean:.4g}")
            elif feature.range is not None:
                row[feature.name] = round((feature.range[0] + feature.range[1]) / 2, 3)
            else:
                row[feature.name] = 0.0
        body = json.dumps({"instances": [row], "version": entry.version})
        return f"curl -s {self.api_url}/v1/models/{entry.model}/predict -H 'content-type: application/json' -d {shlex.quote(body)}"
