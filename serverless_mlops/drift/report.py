"""The drift report: JSON for machines, one self-contained HTML page for people (inline CSS and SVG, no scripts).

Both live in the artifact bucket under ``reports/{model}/v{version}/{window}/report.json|report.html``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from serverless_mlops.artifacts import encryption_args
from serverless_mlops.drift.check import DriftResult, FeatureResult

REPORTS_PREFIX = "reports"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2430;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #dde3ea;padding:.35rem .5rem;text-align:left;vertical-align:top}
.drift{color:#b42318;font-weight:600}.no_drift{color:#067647}.insufficient_data{color:#8a6d00}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;background:#eef2f6}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
svg{display:block}.muted{color:#667085}
"""
_REF, _CUR = "#7a9cc6", "#e8954a"


def report_prefix(model: str, version: int, window_label: str) -> str:
    return f"{REPORTS_PREFIX}/{model}/v{version}/{window_label}/"


def to_json(result: DriftResult) -> bytes:
    return json.dumps(result.model_dump(mode="json"), indent=1, allow_nan=False).encode("utf-8")


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _chart(feature: FeatureResult) -> str:
    """Reference vs current shares per bin as grouped SVG bars."""
    h = feature.histogram
    if not h.labels:
        return '<p class="muted">no histogram</p>'
    width, height, pad = 520, 120, 4
    peak = max([*h.reference, *h.current, 1e-9])
    slot = (width - 2 * pad) / len(h.labels)
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg width="{width}" height="{height + 14}" role="img" aria-label="{html.escape(feature.name)} histogram">']
    for i, (label, ref, cur) in enumerate(zip(h.labels, h.reference, h.current, strict=True)):
        x = pad + i * slot
        for offset, share, colour in ((0.0, ref, _REF), (bar, cur, _CUR)):
            top = height * (1 - share / peak)
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{height - top:.1f}" fill="{colour}">'
                f"<title>{html.escape(label)}: {'reference' if colour == _REF else 'current'} {share:.1%}</title></rect>"
            )
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#98a2b3"/>')
    first, last = html.escape(h.labels[0]), html.escape(h.labels[-1])
    parts.append(f'<text x="{pad}" y="{height + 12}" font-size="10" fill="#667085">{first}</text>')
    parts.append(f'<text x="{width - pad}" y="{height + 12}" font-size="10" fill="#667085" text-anchor="end">{last}</text>')
    parts.append("</svg>")
    return "".join(parts)


_TESTS = {"ks": "KS p-value", "chi_square": "chi-square p-value", "wasserstein_norm": "Wasserstein / std", "jensen_shannon": "JS distance"}


def _feature_rows(features: list[FeatureResult]) -> str:
    rows = []
    for f in features:
        comparison = "&lt;" if f.test in ("ks", "chi_square") else "≥"
        q = f.quality
        quality = []
        if q.missing_share:
            quality.append(f"missing {q.missing_share:.1%}")
        if q.out_of_range_share:
            quality.append(f"out of range {q.out_of_range_share:.1%}")
        if q.unseen_share:
            quality.append(f"unseen {q.unseen_share:.1%} ({html.escape(', '.join(q.unseen))})")
        rows.append(
            f'<tr><td><b>{html.escape(f.name)}</b><br><span class="muted">{f.kind}</span></td>'
            f'<td class="{f.verdict}">{f.verdict.replace("_", " ")}</td>'
            f"<td>{_TESTS[f.test]}: {_fmt(f.statistic)}<br><span class='muted'>drift if {comparison} {_fmt(f.threshold)}</span>"
            + (
                f"<br>{_TESTS[f.effect]}: {_fmt(f.effect_size)}<br><span class='muted'>and if ≥ {_fmt(f.effect_threshold)}</span>"
                if f.effect is not None
                else ""
            )
            + "</td>"
            f"<td>PSI {_fmt(f.psi, 3)}<br><span class='muted'>rows {f.current_rows:,} vs {f.reference_rows:,}</span></td>"
            f"<td>{'<br>'.join(quality) or '–'}</td><td>{_chart(f)}</td></tr>"
        )
    return "".join(rows)


def to_html(result: DriftResult) -> bytes:
    window = f"Window {result.window.start} → {result.window.end}" if result.window else "Rows from a local capture file"
    headline = {
        "drift": f"Dataset drift: {result.drifted_features} of {result.checked_features} features drifted",
        "no_drift": f"No dataset drift: {result.drifted_features} of {result.checked_features} features drifted",
        "insufficient_data": f"Insufficient data: {result.rows:,} rows (at least {result.min_rows:,} needed)",
    }[result.status]
    if result.method == "significant_and_large":
        rule = (
            f"a feature drifts when significant (p &lt; {result.p_value}, {result.correction} correction) and large "
            f"(Wasserstein / std or JS distance ≥ {result.distance_threshold})"
        )
    elif result.method == "statistical_tests":
        rule = f"statistical tests at p &lt; {result.p_value} ({result.correction} correction)"
    else:
        rule = f"distances ≥ {result.distance_threshold}"
    skipped = "".join(f"<li>{html.escape(s['source'])}: {html.escape(s['error'])}</li>" for s in result.skipped_sources)
    findings = "".join(f"<li><b>{html.escape(f.feature)}</b>: {html.escape(f.detail)}</li>" for f in result.data_quality)
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Drift report: {html.escape(result.model)} v{result.version}</title><style>{_CSS}</style></head><body>
<h1>Drift report: {html.escape(result.model)} version {result.version}</h1>
<p><span class="badge {result.status}">{html.escape(headline)}</span></p>
<p>{html.escape(window)} · {result.rows:,} rows checked from {result.sources} capture object{"" if result.sources == 1 else "s"} · {rule} ·
dataset drift when the drifted share ≥ {result.drift_share} (now {result.drifted_share:.2f}) ·
generated {html.escape(result.generated_at)}</p>
<p class="legend">bars: <span style="background:{_REF}"></span>reference (training) <span style="background:{_CUR}"></span>current</p>
<h2>Features</h2>
<table><tr><th>feature</th><th>verdict</th><th>statistic</th><th>PSI</th><th>data quality</th><th>distribution</th></tr>
{_feature_rows(result.features)}</table>
<h2>Prediction</h2>
<table><tr><th>output</th><th>verdict</th><th>statistic</th><th>PSI</th><th>data quality</th><th>distribution</th></tr>
{_feature_rows([result.prediction] if result.prediction else [])}</table>
<h2>Data quality</h2>{f"<ul>{findings}</ul>" if findings else "<p>No findings.</p>"}
{f"<h2>Skipped capture objects</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""
    return body.encode("utf-8")


def write_report(s3: Any, bucket: str, result: DriftResult, *, kms_key_id: str | None = None) -> dict[str, str]:
    """Put report.json and report.html; returns their S3 URIs."""
    label = result.window.label if result.window else "local"
    prefix = report_prefix(result.model, result.version, label)
    encryption = encryption_args(kms_key_id)
    uris = {}
    for name, body, content_type in (
        ("report.json", to_json(result), "application/json"),
        ("report.html", to_html(result), "text/html; charset=utf-8"),
    ):
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType=content_type, **encryption)
        uris[name.split(".")[1]] = f"s3://{bucket}/{prefix}{name}"
    return uris


def latest_report(s3: Any, bucket: str, model: str) -> dict[str, Any] | None:
    """The most recent report.json of ``model`` (any version): its URIs and when it was written; None if there is none."""
    latest: dict[str, Any] | None = None
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{REPORTS_PREFIX}/{model}/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/report.json") and (latest is None or item["LastModified"] > latest["LastModified"]):
                latest = item
    if latest is None:
        return None
    key = latest["Key"]
    return {
        "json": f"s3://{bucket}/{key}",
        "html": f"s3://{bucket}/{key.removesuffix('report.json')}report.html",
        "written_at": latest["LastModified"].isoformat(),
    }
