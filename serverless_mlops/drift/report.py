"""The drift report: JSON for machines, one self-contained HTML page for people (inline CSS and SVG, no scripts).

Both live in the artifact bucket under ``reports/{model}/v{version}/{window}/report.json|report.html``.

The page reads top down, like Evidently's data drift report: the data set's verdict (N of M features drifted, the
share against its threshold) and the rule; a table of the features with the drifted ones first, largest effect size
first (effect size against its threshold, the test statistic, the p-value against the corrected threshold, PSI, the
mean before and after); the prediction; then one card per feature in the same order: its numbers, the reference
and current summaries side by side, and a histogram of both with labelled axes (bin edges or categories; the share
of rows); last the data-quality findings.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

from serverless_mlops.drift.charts import CUR, REF, chart
from serverless_mlops.drift.check import BEYOND_FLOAT
from serverless_mlops.drift.result import DriftResult, FeatureResult, Summary
from serverless_mlops.store.artifacts import encryption_args

REPORTS_PREFIX = "reports"

P_FLOOR = 1e-16  # p-values below this print as "< 1e-16" (never 0.0000): double precision cannot tell them from 0
_VERDICT_COLOUR = {"drift": "#d92d20", "no_drift": "#98a2b3", "insufficient_data": "#eaaa08"}

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;padding:1.5rem 2rem;
color:#1d2939;max-width:1340px;font-size:14px;line-height:1.4;background:#fff}
h1{font-size:1.45rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.8rem 0 .6rem}h3{font-size:1rem;margin:0}
a{color:inherit}.muted{color:#667085}.nowrap{white-space:nowrap}.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#475467;margin:0 0 1rem}
.verdict-box{border-radius:.6rem;padding:.9rem 1.2rem;border:1px solid #d0d5dd;background:#f9fafb}
.verdict-box.box-drift{border-color:#fda29b;background:#fef3f2}.verdict-box.box-no_drift{border-color:#a6f4c5;background:#f6fef9}
.verdict-box.box-insufficient_data{border-color:#fedf89;background:#fffcf5}
.headline{font-size:1.25rem;font-weight:650;margin:0 0 .35rem}.verdict-box p{margin:.25rem 0}
.drift{color:#b42318;font-weight:600}.no_drift{color:#067647}.insufficient_data{color:#93370d}
.legend{margin:.4rem 0}.legend i{display:inline-block;width:.85rem;height:.85rem;margin:0 .35rem 0 .9rem;vertical-align:-.1rem;
border-radius:2px}.legend i:first-child{margin-left:0}
table{border-collapse:collapse;font-size:13px}
th,td{padding:.28rem .55rem;text-align:left;vertical-align:top}
table.summary{width:100%}table.summary th{border-bottom:2px solid #d0d5dd;font-weight:600;color:#344054;vertical-align:bottom}
table.summary td{border-bottom:1px solid #eaecf0;vertical-align:middle}
table.summary tr.first-quiet td{border-top:2px solid #98a2b3}
.effect{display:inline-block;position:relative;width:150px;height:10px;background:#f2f4f7;border-radius:2px;
vertical-align:middle;margin-right:.4rem}
.effect b{position:absolute;left:0;top:0;bottom:0;border-radius:2px}
.effect s{position:absolute;top:-3px;bottom:-3px;width:2px;background:#1d2939;text-decoration:none}
.card{border:1px solid #eaecf0;border-radius:.6rem;padding:.8rem 1rem;margin:0 0 1rem;display:flex;gap:1.2rem;
flex-wrap:wrap;border-left:5px solid #98a2b3}
.card.card-drift{border-left-color:#d92d20}.card.card-insufficient_data{border-left-color:#eaaa08}
.facts{flex:1 1 520px;min-width:440px}.chart{flex:0 0 auto}
.card header{display:flex;gap:.7rem;align-items:baseline;margin-bottom:.5rem}
.facts table th{color:#475467;font-weight:500;white-space:nowrap}table.kv{width:100%}table.kv th{width:1%}
table.stats{margin-top:.5rem}table.stats th,table.stats td{border-bottom:1px solid #eaecf0}
table.stats thead th{text-align:right}table.stats tbody th{text-align:left}
table.findings td,table.findings th{border-bottom:1px solid #eaecf0}
svg{display:block;overflow:visible}svg text{font-size:10px;fill:#475467}
svg .x-title,svg .y-title{font-size:11px;fill:#344054}svg .legend-text{font-size:11px;fill:#344054}
"""
_TEST_NAMES = {
    "ks": "KS test",
    "chi_square": "chi-square test",
    "wasserstein_norm": "Wasserstein ÷ std",
    "jensen_shannon": "Jensen-Shannon distance",
}
_EFFECT_NAMES = {"wasserstein_norm": "Wasserstein ÷ std", "jensen_shannon": "Jensen-Shannon distance"}
_EFFECT_SHORT = {"wasserstein_norm": "W÷std", "jensen_shannon": "JS"}
_RANK = {"drift": 0, "no_drift": 1, "insufficient_data": 2}
_CORRECTIONS = {"bonferroni": "Bonferroni", "benjamini_hochberg": "Benjamini-Hochberg", "none": "no"}
_PROBLEMS = {
    "absent_column": "column absent",
    "missing_values": "missing values",
    "out_of_range": "outside the training range",
    "unseen_categories": "unseen categories",
}
_SUMMARY_FIELDS = (("mean", "mean"), ("std", "std"), ("min", "min"), ("q25", "25%"), ("median", "median"), ("q75", "75%"), ("max", "max"))


def report_prefix(model: str, version: int, window_label: str) -> str:
    return f"{REPORTS_PREFIX}/{model}/v{version}/{window_label}/"


def to_json(result: DriftResult) -> bytes:
    return json.dumps(result.model_dump(mode="json"), indent=1, allow_nan=False).encode("utf-8")


# -- numbers as text ------------------------------------------------------------------------------------------------
def _num(value: float | None) -> str:
    """A measured value in four significant digits ("—" when there is none)."""
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if 1e4 <= abs(value) < 1e15:
        return f"{value:,.0f}".replace("-", "−")
    return f"{value:.4g}".replace("-", "−")


def _p(value: float | None) -> str:
    """A p-value as HTML: three significant digits, "< 1e-16" once it underflows (never 0.0000)."""
    if value is None or math.isnan(value):
        return "—"
    if value < P_FLOOR:
        return '<span title="too small to tell from 0 in double precision">&lt; 1e−16</span>'
    return f"{value:.3g}".replace("e-", "e−")


def _share(value: float) -> str:
    """A share of rows as a percentage; a share above zero never prints as 0.0%."""
    return "&lt; 0.1%" if 0 < value < 0.0005 else f"{value:.1%}"


# -- what the page says about a feature ------------------------------------------------------------------------------
def _effect(f: FeatureResult) -> tuple[str, float | None]:
    """The effect size to sort and show: the rule's, or (rules without one) the distance the feature has anyway;
    inf when the check found it beyond the float range (null in the result, with a note, and counted as large)."""
    kind, size = (f.effect, f.effect_size) if f.effect is not None else ("wasserstein_norm", f.wasserstein_norm)
    if f.effect is None and f.kind == "categorical":
        kind, size = "jensen_shannon", f.jensen_shannon
    if size is None and BEYOND_FLOAT.format(statistic=kind, name=f.name) in f.notes:
        return kind, math.inf
    return kind, size


def _effect_threshold(f: FeatureResult, result: DriftResult) -> float | None:
    if f.effect_threshold is not None:
        return f.effect_threshold
    return result.distance_threshold if result.method == "distances" else None


def _ordered(features: list[FeatureResult]) -> list[FeatureResult]:
    """Drifted features first, then the others, then those without a verdict; largest effect size first in each."""

    def key(f: FeatureResult) -> tuple[int, float, str]:
        size = _effect(f)[1]
        return _RANK[f.verdict], -size if size is not None and not math.isnan(size) else math.inf, f.name

    return sorted(features, key=key)


def _corrected_threshold(result: DriftResult) -> float | None:
    """The p-value cutoff the tested features share (after the correction); None when no feature was tested."""
    return next((f.threshold for f in result.features if f.p_value is not None and f.verdict != "insufficient_data"), None)


def _threshold(f: FeatureResult, result: DriftResult, *, prediction: bool = False) -> float | None:
    """The cutoff a feature's statistic is held to. A feature without a verdict shows the one its peers were held
    to (the corrected threshold), not the uncorrected one it was built with; the prediction is not corrected."""
    if f.verdict != "insufficient_data" or prediction or result.method == "distances":
        return f.threshold
    return _corrected_threshold(result)


def _below(result: DriftResult) -> str:
    return "≤" if result.correction == "benjamini_hochberg" else "&lt;"


def _notes(f: FeatureResult, result: DriftResult) -> list[str]:
    notes = list(f.notes)
    if f.verdict == "insufficient_data" and not notes:
        if f.reference_rows == 0:
            notes.append("the baseline has no reference values of this feature")
        else:
            notes.append(f"{f.current_rows:,} values in the window; the check needs at least {result.min_rows:,}")
    if f.chi_square is not None and math.isinf(f.chi_square):
        notes.append("chi-square is infinite: a category has current rows but an expected count of zero")
    return notes


def _quality(f: FeatureResult) -> list[str]:
    q = f.quality
    lines = []
    if q.missing_share > 0:
        lines.append(f"missing {_share(q.missing_share)}")
    if q.out_of_range_share > 0:
        lines.append(f"out of range {_share(q.out_of_range_share)}")
    if q.unseen_share > 0:
        lines.append(f"unseen {_share(q.unseen_share)} ({html.escape(', '.join(q.unseen))})")
    return lines


def _statistic(f: FeatureResult) -> str:
    """The test statistic: KS D (numeric, also computed under the distances rule) or chi-square (categorical)."""
    if f.ks_statistic is not None:
        return f"D {_num(f.ks_statistic)}"
    if f.chi_square is not None:
        return f"χ² {_num(f.chi_square)}"
    return "—"


def _slug(index: int, name: str) -> str:
    return f"f{index}-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower() or "feature")


# -- the page's parts ------------------------------------------------------------------------------------------------
def _effect_bar(f: FeatureResult, result: DriftResult, scale: float) -> str:
    kind, size = _effect(f)
    threshold = _effect_threshold(f, result)
    if size is None or math.isnan(size):
        return '<span class="muted">—</span>'
    fill = min(size / scale, 1.0) * 100
    mark = f'<s style="left:{min(threshold / scale, 1.0) * 100:.1f}%" title="large from {_num(threshold)}"></s>' if threshold else ""
    colour = _VERDICT_COLOUR[f.verdict]
    return (
        f'<span class="effect" aria-hidden="true"><b style="width:{fill:.1f}%;background:{colour}"></b>{mark}</span>'
        f'<span class="nowrap">{_num(size)} <span class="muted">{_EFFECT_SHORT[kind]}</span></span>'
    )


def _summary_table(result: DriftResult, features: list[FeatureResult], anchors: dict[str, str]) -> str:
    sizes = [s for f in features if (s := _effect(f)[1]) is not None and math.isfinite(s)]
    # the bars' full width: the largest effect, but at most ten times the threshold (one outlier would flatten the
    # rest) and at least twice it (the threshold mark stays inside); larger effects fill the bar, their number says more
    scale = max(min(max([*sizes, 1e-9]), 10 * result.distance_threshold), 2 * result.distance_threshold)
    tests = result.method != "distances"
    cutoff = _corrected_threshold(result)
    effect_threshold = next((t for f in features if (t := _effect_threshold(f, result)) is not None), None)
    if tests:
        e_head = "effect size" + (f"<br><span class='muted nowrap'>large if ≥ {_num(effect_threshold)}</span>" if effect_threshold else "")
        p_head = "p-value" + (f"<br><span class='muted nowrap'>drift if {_below(result)} {_p(cutoff)}</span>" if cutoff is not None else "")
    else:
        e_head = f"distance<br><span class='muted nowrap'>drift if ≥ {_num(result.distance_threshold)}</span>"
        p_head = ""
    rows = []
    previous = None
    for f in features:
        first_quiet = previous == "drift" and f.verdict != "drift"
        previous = f.verdict
        size = _effect(f)[1]
        unexplained = f.verdict == "insufficient_data" or size is None or not math.isfinite(size)  # a "—" or "∞" says why
        notes = "".join(f'<br><span class="muted">{html.escape(n)}</span>' for n in _notes(f, result)) if unexplained else ""
        mean = "—"
        if f.kind == "numeric" and f.reference_summary is not None and f.current_summary is not None:
            mean = f"{_num(f.reference_summary.mean)} → {_num(f.current_summary.mean)}"
        cells = [
            f'<td><a href="#{anchors[f.name]}"><b>{html.escape(f.name)}</b></a> <span class="muted">{f.kind}</span></td>',
            f'<td><span class="{f.verdict}">{f.verdict.replace("_", " ")}</span>{notes}</td>',
            f"<td>{_effect_bar(f, result, scale)}</td>",
            f'<td class="nowrap">{_statistic(f)}</td>',
            f'<td class="nowrap">{_p(f.p_value)}</td>' if tests else "",
            f'<td class="num">{_num(f.psi)}</td>',
            f'<td class="nowrap num">{mean}</td>',
            f'<td class="num">{f.current_rows:,}</td>',
        ]
        data = f'data-feature="{html.escape(f.name)}" data-verdict="{f.verdict}" data-effect="{"" if size is None else repr(size)}"'
        rows.append(f"<tr {data}{' class=first-quiet' if first_quiet else ''}>{''.join(cells)}</tr>")
    head = [
        "<th>feature</th><th>verdict</th>",
        f"<th>{e_head}</th><th>test statistic</th>",
        f"<th>{p_head}</th>" if tests else "",
        "<th class='num'>PSI</th><th class='num'>mean<br><span class='muted'>reference → current</span></th>",
        "<th class='num'>current rows</th>",
    ]
    return f'<table class="summary"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _stats_table(f: FeatureResult) -> str:
    if f.kind != "numeric" or f.reference_summary is None or f.current_summary is None:
        return ""
    head = "".join(f"<th>{label}</th>" for _, label in _SUMMARY_FIELDS)

    def row(name: str, summary: Summary, colour: str) -> str:
        cells = "".join(f'<td class="num">{_num(getattr(summary, field))}</td>' for field, _ in _SUMMARY_FIELDS)
        return f'<tr><th><span class="legend"><i style="background:{colour}"></i></span>{name}</th>{cells}</tr>'

    return (
        f'<table class="stats"><thead><tr><th></th>{head}</tr></thead><tbody>'
        + row("reference (training)", f.reference_summary, REF)
        + row("current", f.current_summary, CUR)
        + "</tbody></table>"
    )


def _card(f: FeatureResult, result: DriftResult, anchor: str, *, prediction: bool = False) -> str:
    """One feature: its test and effect size against their thresholds, PSI, rows, quality, notes, summaries, chart."""
    facts: list[tuple[str, str]] = []
    if f.test in ("ks", "chi_square"):
        threshold = _threshold(f, result, prediction=prediction)
        rule = f"drift if p {'&lt;' if prediction else _below(result)} {_p(threshold)}"
        if threshold is not None and not prediction and result.correction != "none":
            rule += f" ({_CORRECTIONS.get(result.correction, result.correction)}-corrected)"
        measured = f'{_statistic(f)} · p-value <span class="nowrap">{_p(f.p_value)}</span>' if f.p_value is not None else "not computed"
        facts.append((_TEST_NAMES[f.test], f'{measured} <span class="muted nowrap">{rule}</span>'))
    kind, size = _effect(f)
    effect_threshold = _effect_threshold(f, result)
    if effect_threshold is not None:
        condition = f" <span class='muted'>{'and ' if f.effect else ''}drift if ≥ {_num(effect_threshold)}</span>"
        facts.append((_EFFECT_NAMES[kind], f"{_num(size) if size is not None else 'not computed'}{condition}"))
    elif size is not None:
        facts.append((_EFFECT_NAMES[kind], f"{_num(size)} <span class='muted'>(not used by the rule)</span>"))
    if f.test not in ("ks", "chi_square") and f.ks_statistic is not None:
        facts.append(("KS statistic", f"D {_num(f.ks_statistic)} <span class='muted'>(not used by the rule)</span>"))
    facts.append(("PSI", _num(f.psi)))
    facts.append(("rows", f"reference (training sample) {f.reference_rows:,} · current {f.current_rows:,}"))
    quality = _quality(f)
    if quality:
        facts.append(("data quality", " · ".join(quality)))
    facts.extend(("note", html.escape(note)) for note in _notes(f, result))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in facts)
    verdict = f'<span class="{f.verdict}">{f.verdict.replace("_", " ")}</span>'
    return (
        f'<section class="card card-{f.verdict}" id="{anchor}"><div class="facts">'
        f'<header><h3><b>{html.escape(f.name)}</b></h3><span class="muted">{f.kind}</span>{verdict}</header>'
        f'<table class="kv">{rows}</table>{_stats_table(f)}</div><div class="chart">{chart(f)}</div></section>'
    )


def _source(result: DriftResult) -> str:
    rows = f"{result.rows:,} row{'' if result.rows == 1 else 's'}"
    if result.window is None:
        if result.files:
            return f"{rows} from {html.escape(', '.join(result.files))}"
        files = "a local file" if result.sources <= 1 else f"{result.sources} local files"
        return f"{rows} from {files}"
    objects = f"{result.sources} capture object{'' if result.sources == 1 else 's'}"
    return f"window {html.escape(result.window.start)} → {html.escape(result.window.end)} · {rows} from {objects}"


def _rule(result: DriftResult) -> str:
    correction = f"{_CORRECTIONS.get(result.correction, result.correction)} correction"
    cutoff = _corrected_threshold(result)
    corrected = f" (corrected: {_below(result)} {_p(cutoff)})" if cutoff is not None and cutoff != result.p_value else ""
    if result.method == "significant_and_large":
        rule = (
            f"a feature drifts when its test is significant — p-value &lt; {result.p_value:g} with {correction}{corrected} — "
            f"and the shift is large: Wasserstein ÷ std (numeric) or Jensen-Shannon distance (categorical) ≥ {result.distance_threshold:g}"
        )
    elif result.method == "statistical_tests":
        rule = f"a feature drifts when its test's p-value &lt; {result.p_value:g} with {correction}{corrected}"
    else:
        rule = f"a feature drifts when its distance (Wasserstein ÷ std or Jensen-Shannon) is ≥ {result.distance_threshold:g}"
    return f"Rule: {rule}. The data set drifts when at least {result.drift_share:.0%} of the checked features drift."


def _headline(result: DriftResult) -> str:
    count = f"{result.drifted_features} of {result.checked_features} features drifted"
    share = f"{result.drifted_share:.0%}, threshold {result.drift_share:.0%}"
    return {
        "drift": f"Dataset drift: {count} ({share})",
        "no_drift": f"No dataset drift: {count} ({share})",
        "insufficient_data": f"Insufficient data: {result.rows:,} rows (at least {result.min_rows:,} needed)",
    }[result.status]


def _findings(result: DriftResult) -> str:
    findings = sorted((f for f in result.data_quality if f.share > 0), key=lambda f: (-f.share, f.feature))
    if not findings:
        return "<p>No findings.</p>"
    rows = "".join(
        f'<tr><td><b>{html.escape(f.feature)}</b></td><td>{_PROBLEMS.get(f.problem, f.problem)}</td><td class="num">{_share(f.share)}</td>'
        f'<td class="muted">{html.escape(f.detail)}</td></tr>'
        for f in findings
    )
    head = '<th>feature</th><th>finding</th><th class="num">share</th><th>detail</th>'
    return f'<table class="findings"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def to_html(result: DriftResult) -> bytes:
    features = _ordered(result.features)
    checked = [*result.features, *([result.prediction] if result.prediction else [])]
    tiny = any(f.p_value is not None and f.p_value < P_FLOOR for f in checked)
    underflow = " A p-value shown as “&lt; 1e−16” is too small to tell from 0 in double precision." if tiny else ""
    anchors = {f.name: _slug(i, f.name) for i, f in enumerate(features)}
    drifted = [f for f in features if f.verdict == "drift"]
    largest = ", ".join(f"{html.escape(f.name)} ({_num(_effect(f)[1])})" for f in drifted[:5])
    more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
    top = f"<p>Drifted, largest effect size first: {largest}{more}.</p>" if drifted else ""
    served = list(result.versions.items())
    versions = f"version {served[0][0]}" if len(served) == 1 else "versions " + ", ".join(f"{v} ({n:,} rows)" for v, n in served)
    skipped = "".join(f"<li>{html.escape(s['source'])}: {html.escape(s['error'])}</li>" for s in result.skipped_sources)
    legend = f'<p class="legend"><i style="background:{REF}"></i>reference (training) <i style="background:{CUR}"></i>current</p>'
    prediction = (
        _card(result.prediction, result, "prediction-output", prediction=True)
        + '<p class="muted">The prediction is checked at the uncorrected p-value and does not count towards the drifted share.</p>'
        if result.prediction
        else "<p>No prediction was checked.</p>"
    )
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift report: {html.escape(result.model)} v{result.version}</title><style>{_CSS}</style></head><body>
<h1>Drift report: {html.escape(result.model)} version {result.version}</h1>
<p class="meta">{_source(result)}{f" · served by {versions}" if served else ""} · generated {html.escape(result.generated_at)}</p>
<section class="verdict-box box-{result.status}"><p class="headline {result.status}">{html.escape(_headline(result))}</p>{top}
<p class="muted">{_rule(result)}{underflow}</p></section>
<h2>Features: drifted first, largest effect size first</h2>
{_summary_table(result, features, anchors)}
<h2>Prediction</h2>
{legend}{prediction}
<h2>Feature details</h2>
{legend}{"".join(_card(f, result, anchors[f.name]) for f in features)}
<h2>Data quality</h2>{_findings(result)}
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
