"""The quality report: JSON for machines and one self-contained HTML page (inline CSS and SVG, no scripts).

Both live next to the drift reports, under ``reports/{model}/quality/{window}/quality.json|quality.html`` (named
``quality.*`` so the drift report's ``report.json`` lookups never pick them up). The page shows the verdict, one row
per version (predictions, labelled rows, label coverage, each realized metric beside its CBPE estimate, the estimation
error and the training holdout's value), the breaches, the time series of realized and estimated metrics per version
over the last :data:`HISTORY` reports, each version's confusion matrix and calibration curve, the join's counts, and
the assumption the estimates rest on.
"""

from __future__ import annotations

import html
import json
from typing import Any

from serverless_mlops.drift.report import REPORTS_PREFIX
from serverless_mlops.quality.result import QualityResult, VersionQuality
from serverless_mlops.store.artifacts import encryption_args

HISTORY = 30  # earlier reports read for the time series
JSON_NAME, HTML_NAME = "quality.json", "quality.html"
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1")
_CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#101828;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #d0d5dd;padding:.3rem .55rem;text-align:right}
th{background:#f2f4f7}td.l,th.l{text-align:left}.breach{color:#d92d20;font-weight:600}.ok{color:#067647;font-weight:600}
.insufficient_labels,.no_predictions{color:#b54708;font-weight:600}.muted{color:#667085}.box{border:1px solid #d0d5dd;
border-radius:8px;padding:.6rem 1rem;margin:1rem 0}svg text{font-size:10px;fill:#475467}"""


def quality_prefix(model: str, window_label: str) -> str:
    return f"{REPORTS_PREFIX}/{model}/quality/{window_label}/"


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _version_rows(result: QualityResult) -> str:
    rows = []
    for v in result.versions:
        for index, (metric, realized) in enumerate(v.realized.items()):
            head = (
                f'<td class="l" rowspan="{len(v.realized)}">v{v.version}</td><td class="l {v.status}" rowspan="{len(v.realized)}">'
                f"{html.escape(v.status)}</td><td rowspan='{len(v.realized)}'>{v.predictions:,}</td>"
                f"<td rowspan='{len(v.realized)}'>{v.labelled:,}</td><td rowspan='{len(v.realized)}'>{v.coverage:.1%}</td>"
                if index == 0
                else ""
            )
            crossed = any(b.metric == metric for b in v.breaches)
            rows.append(
                f"<tr>{head}<td class='l'>{html.escape(metric)}</td><td class='{'breach' if crossed else ''}'>{_num(realized)}</td>"
                f"<td>{_num(v.estimated.get(metric))}</td><td>{_num(v.estimation_error.get(metric))}</td>"
                f"<td>{_num(v.holdout.get(metric))}</td></tr>"
            )
        if not v.realized:
            rows.append(
                f"<tr><td class='l'>v{v.version}</td><td class='l {v.status}'>{html.escape(v.status)}</td><td>{v.predictions:,}</td>"
                f"<td>{v.labelled:,}</td><td>{v.coverage:.1%}</td><td class='l' colspan='5'>no labelled rows; estimated: "
                f"{html.escape(', '.join(f'{k} {_num(x)}' for k, x in v.estimated.items()) or 'none')}</td></tr>"
            )
    return (
        "<table><tr><th class='l'>version</th><th class='l'>verdict</th><th>predictions</th><th>labelled</th><th>coverage</th>"
        "<th class='l'>metric</th><th>realized</th><th>estimated (CBPE)</th><th>estimation error</th><th>training holdout</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _confusion(v: VersionQuality) -> str:
    if not v.confusion_matrix:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in v.classes)
    body = "".join(
        f"<tr><th class='l'>{html.escape(c)}</th>" + "".join(f"<td>{n:,}</td>" for n in row) + "</tr>"
        for c, row in zip(v.classes, v.confusion_matrix, strict=True)
    )
    return f"<table><tr><th class='l'>true ↓ / predicted →</th>{head}</tr>{body}</table>"


def _calibration_svg(v: VersionQuality) -> str:
    points = [(p.confidence, p.accuracy, p.rows) for p in v.calibration if p.confidence is not None and p.accuracy is not None]
    if not points:
        return ""
    size, pad = 220, 30

    def xy(x: float, y: float) -> str:
        return f"{pad + x * size:.1f},{pad + (1 - y) * size:.1f}"

    line = " ".join(xy(x, y) for x, y, _ in points)
    dots = "".join(
        f'<circle cx="{xy(x, y).split(",")[0]}" cy="{xy(x, y).split(",")[1]}" r="3" fill="#4e79a7"><title>{n:,} rows: '
        f"confidence {x:.3f}, accuracy {y:.3f}</title></circle>"
        for x, y, n in points
    )
    return (
        f'<svg role="img" aria-label="calibration curve of version {v.version}" width="{size + 2 * pad}" height="{size + 2 * pad}">'
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#d0d5dd"/>'
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#98a2b3" stroke-dasharray="4"/>'
        f'<polyline points="{line}" fill="none" stroke="#4e79a7" stroke-width="2"/>{dots}'
        f'<text x="{pad}" y="{pad + size + 20}">confidence (top class) →</text>'
        f'<text x="4" y="{pad - 8}">accuracy ↑ (diagonal: calibrated)</text></svg>'
    )


def _series(history: list[dict[str, Any]]) -> str:
    """Lines of each version's realized (solid) and estimated (dashed) headline metric over the reports."""
    if not history:
        return ""
    metric = next((m for doc in history for v in doc.get("versions", []) for m in v.get("realized", {})), "accuracy")
    width, height, pad = 640, 180, 40
    points: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for i, doc in enumerate(history):
        for v in doc.get("versions", []):
            for kind in ("realized", "estimated"):
                value = v.get(kind, {}).get(metric)
                if value is not None:
                    points.setdefault((int(v["version"]), kind), []).append((i, float(value)))
    values = [y for line in points.values() for _, y in line]
    if not values:
        return ""
    low, high = min(values), max(values)
    low, high = (low - 0.05, high + 0.05) if high - low < 0.1 else (low, high)
    step = width / max(len(history) - 1, 1)

    def xy(i: int, y: float) -> str:
        return f"{pad + i * step:.1f},{pad / 2 + (high - y) / (high - low) * height:.1f}"

    lines = []
    for n, ((version, kind), line) in enumerate(sorted(points.items())):
        colour = _COLOURS[(version - 1) % len(_COLOURS)]
        dash = ' stroke-dasharray="5 3"' if kind == "estimated" else ""
        lines.append(
            f'<polyline points="{" ".join(xy(i, y) for i, y in line)}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
            f"<title>v{version} {kind}</title></polyline>"
            f'<text x="{pad + width + 6}" y="{pad / 2 + 12 * (n + 1)}" fill="{colour}">v{version} {kind}</text>'
        )
    first, last = html.escape(history[0]["window"]["end"]), html.escape(history[-1]["window"]["end"])
    return (
        f"<p>{html.escape(metric)} per window end, {len(history)} report(s) ({first} … {last}); solid: realized, dashed: estimated.</p>"
        f'<svg role="img" aria-label="{html.escape(metric)} over time" width="{width + pad + 120}" height="{height + pad}">'
        f'<text x="2" y="{pad / 2 + 4}">{high:.3f}</text><text x="2" y="{pad / 2 + height}">{low:.3f}</text>'
        f'<line x1="{pad}" y1="{pad / 2 + height}" x2="{pad + width}" y2="{pad / 2 + height}" stroke="#d0d5dd"/>'
        + "".join(lines)
        + "</svg>"
    )


def to_html(result: QualityResult, history: list[dict[str, Any]] | None = None) -> bytes:
    breaches = "".join(
        f"<li class='breach'>v{v}: {html.escape(b.metric)} {b.value:.4f} crossed its {b.rule.replace('_', ' ')} {b.threshold:.4f}"
        + (f" (training holdout {b.holdout:.4f})" if b.holdout is not None else "")
        + "</li>"
        for v, b in result.breaches()
    )
    details = "".join(
        f"<h3>Version {v.version}</h3>"
        + "".join(f"<p class='muted'>{html.escape(note)}</p>" for note in v.notes)
        + _confusion(v)
        + _calibration_svg(v)
        for v in result.versions
    )
    join = "".join(f"<tr><td class='l'>{html.escape(k.replace('_', ' '))}</td><td>{n:,}</td></tr>" for k, n in result.join.items())
    skipped = "".join(
        f"<li>{html.escape(s['source'])}: {html.escape(s['error'])}</li>" for s in [*result.skipped_sources, *result.skipped_label_objects]
    )
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Quality report: {html.escape(result.model)}</title><style>{_CSS}</style></head><body>
<h1>Quality report: {html.escape(result.model)}</h1>
<p class="muted">window {html.escape(result.window.start)} … {html.escape(result.window.end)} · labels up to
{html.escape(result.label_delay)} after the prediction · at least {result.min_labels} labelled rows per version for a
verdict · generated {html.escape(result.generated_at)}</p>
<section class="box"><p class="{result.status}">{html.escape(result.status.replace("_", " "))}</p>
{f"<ul>{breaches}</ul>" if breaches else ""}<p class="muted">{html.escape(result.assumption)}</p></section>
<h2>Per version: realized and estimated</h2>{_version_rows(result)}
<h2>Over time</h2>{_series(history or []) or "<p class='muted'>No earlier reports.</p>"}
<h2>Details</h2>{details or "<p>No predictions in the window.</p>"}
<h2>Join</h2><table>{join}</table><p class="muted">probabilities: {html.escape(result.probabilities)} ·
{result.sources} capture object(s) · {result.label_objects} ground-truth object(s)</p>
{f"<h2>Skipped objects</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""
    return body.encode("utf-8")


def quality_report_keys(s3: Any, bucket: str, model: str) -> list[str]:
    """The keys of every quality.json of ``model``, oldest window first (window labels start with their start time)."""
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{REPORTS_PREFIX}/{model}/quality/"):
        keys.extend(item["Key"] for item in page.get("Contents", []) if item["Key"].endswith("/" + JSON_NAME))
    return sorted(keys)


def _history(s3: Any, bucket: str, model: str, current: dict[str, Any]) -> list[dict[str, Any]]:
    """The last :data:`HISTORY` earlier reports and the current one."""
    own = quality_prefix(model, current["window"]["label"]) + JSON_NAME
    documents = []
    for key in [k for k in quality_report_keys(s3, bucket, model) if k != own][-HISTORY:]:
        try:
            documents.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        except (ValueError, KeyError):
            continue  # an unreadable old report leaves a gap, not a failed check
    return [*documents, current]


def write_quality_report(s3: Any, bucket: str, result: QualityResult, *, kms_key_id: str | None = None) -> dict[str, str]:
    """Put quality.json and quality.html; returns their S3 URIs."""
    prefix = quality_prefix(result.model, result.window.label)
    document = result.model_dump(mode="json")
    history = _history(s3, bucket, result.model, document)
    encryption = encryption_args(kms_key_id)
    uris = {}
    for name, body, content_type in (
        (JSON_NAME, json.dumps(document, allow_nan=False).encode(), "application/json"),
        (HTML_NAME, to_html(result, history), "text/html; charset=utf-8"),
    ):
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType=content_type, **encryption)
        uris[name.split(".")[1]] = f"s3://{bucket}/{prefix}{name}"
    return uris


def latest_quality_report(s3: Any, bucket: str, model: str) -> dict[str, str] | None:
    """The URIs of the newest quality report of ``model`` (by window label), or None."""
    keys = quality_report_keys(s3, bucket, model)
    if not keys:
        return None
    return {"json": f"s3://{bucket}/{keys[-1]}", "html": f"s3://{bucket}/{keys[-1].removesuffix(JSON_NAME)}{HTML_NAME}"}
