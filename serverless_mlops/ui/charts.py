"""The console's charts: small inline SVG drawn here, on the server (no script, no CDN: the page works offline).

Every chart is an ``<svg role="img">`` with an ``aria-label`` and a ``<title>`` saying what it shows, axis labels in
text, and a ``<desc>`` with the values, so a screen reader (and a test) reads the numbers the bars draw. Colours come
from CSS classes (``tone-ok``, ``tone-bad`` …) so dark mode restyles them; the tone is also in each bar's title.
Values are escaped here (these strings are inserted into the template as markup).
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from serverless_mlops.ui.views import FeatureProfile, Point

WIDTH, HEIGHT = 560, 150
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 40, 8, 10, 28


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _frame(label: str, body: str, *, width: int = WIDTH, height: int = HEIGHT, desc: str = "") -> Markup:
    text = escape(label)
    return Markup(  # noqa: S704 - label, desc and every value in body are escaped where they are built
        f'<svg class="chart" role="img" aria-label="{text}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'preserveAspectRatio="xMinYMin meet"><title>{text}</title><desc>{escape(desc)}</desc>{body}</svg>'
    )


def bars(points: list[Point], *, label: str, y_title: str, top: float | None = None, threshold: float | None = None) -> Markup:
    """One bar per window (a missing value: a short grey stub, titled "no value"), a y axis from 0 to ``top``."""
    if not points:
        return Markup("")
    values = [p.value for p in points if p.value is not None]
    if top is not None:
        ceiling = top
    elif values and min(values) >= 0.0 and max(values) <= 1.0:
        ceiling = 1.0  # a share or a score: the whole scale, so a window's fall reads as a fall
    else:
        ceiling = max([*values, threshold or 0.0, 1e-9]) * 1.1
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = inner_w / len(points)
    width = min(max(2.0, step * 0.7), 28.0)
    parts = [
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP + inner_h}" x2="{WIDTH - PAD_RIGHT}" y2="{PAD_TOP + inner_h}"/>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{PAD_TOP + inner_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">{_fmt(ceiling)}</text>',
        f'<text class="axis-title" x="{PAD_LEFT}" y="{HEIGHT - 4}">{escape(y_title)} per window, oldest → newest ({len(points)})</text>',
    ]
    if threshold is not None and ceiling > 0:
        y = PAD_TOP + inner_h * (1 - min(threshold / ceiling, 1.0))
        parts.append(f'<line class="threshold" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH - PAD_RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{PAD_LEFT + 3}" y="{y - 3:.1f}">threshold {_fmt(threshold)}</text>')
    described = []
    for i, point in enumerate(points):
        x = PAD_LEFT + i * step + (step - width) / 2
        if point.value is None:
            parts.append(
                f'<rect class="bar tone-none" x="{x:.1f}" y="{PAD_TOP + inner_h - 2}" width="{width:.1f}" height="2">'
                f"<title>{escape(point.label)}: no value</title></rect>"
            )
            described.append(f"{point.label}: no value")
            continue
        height = inner_h * min(point.value / ceiling, 1.0) if ceiling > 0 else 0.0
        parts.append(
            f'<rect class="bar tone-{escape(point.tone)}" x="{x:.1f}" y="{PAD_TOP + inner_h - height:.1f}" width="{width:.1f}" '
            f'height="{max(height, 1.0):.1f}"><title>{escape(point.label)}: {_fmt(point.value)} ({escape(point.tone)})</title></rect>'
        )
        described.append(f"{point.label}: {_fmt(point.value)}")
    return _frame(label, "".join(parts), desc="; ".join(described))


def histogram(feature: FeatureProfile) -> Markup:
    """The baseline's histogram of one feature: bins (numeric) or category shares (categorical, the 12 most frequent)."""
    width, height, left, bottom = 260, 96, 6, 18
    if feature.kind == "categorical":
        labels = [name for name, _ in feature.categories]
        values = [share for _, share in feature.categories]
        first, last = (labels[0], labels[-1]) if labels else ("", "")
    else:
        values = feature.counts
        labels = [f"{_fmt(a)}–{_fmt(b)}" for a, b in zip(feature.edges, feature.edges[1:], strict=False)]
        first, last = (_fmt(feature.edges[0]), _fmt(feature.edges[-1])) if feature.edges else ("", "")
    if not values or max(values) <= 0:
        return Markup(f'<p class="muted">no histogram for {escape(feature.name)} (no values in the training data)</p>')  # noqa: S704 - the name is escaped
    top = max(values)
    inner_h = height - bottom - 4
    step = (width - 2 * left) / len(values)
    parts = [f'<line class="axis" x1="{left}" y1="{4 + inner_h}" x2="{width - left}" y2="{4 + inner_h}"/>']
    for i, (name, value) in enumerate(zip(labels, values, strict=False)):
        h = inner_h * value / top
        parts.append(
            f'<rect class="bar tone-ref" x="{left + i * step + 0.5:.1f}" y="{4 + inner_h - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{max(h, 0.5):.1f}"><title>{escape(name)}: {_fmt(value)}</title></rect>'
        )
    parts.append(f'<text class="tick" x="{left}" y="{height - 4}">{escape(first)}</text>')
    parts.append(f'<text class="tick" x="{width - left}" y="{height - 4}" text-anchor="end">{escape(last)}</text>')
    unit = "share of rows" if feature.kind == "categorical" else "rows per bin"
    return _frame(
        f"{feature.name}: training histogram ({unit})",
        "".join(parts),
        width=width,
        height=height,
        desc="; ".join(f"{n}: {_fmt(v)}" for n, v in zip(labels, values, strict=False)),
    )
