"""The drift report's histogram of one feature: reference (training) against current shares, as inline SVG.

Every chart has a labelled x-axis (bin edges for a numeric feature, categories for a categorical one; thinned or
turned when they do not fit), y ticks titled "share of rows", and a legend; ``role="img"`` with an aria-label.
"""

from __future__ import annotations

import html
import itertools
import math

from serverless_mlops.drift.result import FeatureResult

REF, CUR = "#4e79a7", "#f28e2b"  # reference (training) blue, current orange: apart for colour-blind readers too


def _tick(value: float) -> str:
    return f"{value * 100:g}%"


# -- the chart's geometry -------------------------------------------------------------------------------------------------------
_W, _LEFT, _RIGHT, _TOP, _PLOT_H = 620, 58, 12, 30, 150  # the SVG's width, its plot's margins and height (px)
_ANGLE = 40  # degrees that tick labels turn when they do not fit side by side
_CHAR = 6.4  # the width of one 10px digit or letter, about (DejaVu Sans, the widest common fallback font)
_LINE = 13  # px between turned tick labels, at least


def _width(text: str) -> float:
    """The width of 10px tick text, about: punctuation is half a digit wide, a minus sign or dash wider."""
    return sum(_CHAR / 2 if c in ".,:;' " else _CHAR * 1.3 if c in "−–-" else _CHAR for c in text)


def _y_scale(peak: float) -> tuple[float, float]:
    """(tick step, axis top) for shares up to ``peak``: at most four steps of a round size."""
    for step in (0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25):
        if 0 < peak <= 4 * step:
            return step, max(step, math.ceil(peak / step - 1e-9) * step)
    return 0.25, 1.0


def _trim(label: str, limit: int = 16) -> str:
    """A long name shortened in the middle, so names that share a prefix stay apart (the tooltip has it whole)."""
    if len(label) <= limit:
        return label
    tail = (limit - 1) // 2
    return label[: limit - 1 - tail] + "…" + label[-tail:]


def _edges(texts: list[str]) -> list[str]:
    """Bin edges as an axis shows them: one number of decimals for all, enough for two digits of the bin width
    (−0.00112, −0.00001, 0.00010 rather than 4 significant digits each, which turn 1e-05 near zero)."""
    try:
        values = [float(t) for t in texts]
    except ValueError:
        return texts
    widths = [b - a for a, b in itertools.pairwise(values) if b > a]
    if not widths or not all(math.isfinite(v) for v in values) or max(abs(v) for v in values) >= 1e9:
        return texts
    decimals = max(0, 1 - math.floor(math.log10(min(widths))))
    if decimals > 8:
        return texts
    while decimals and all(f"{v:.{decimals}f}".endswith("0") for v in values):  # 0, 1, 2 rather than 0.0, 1.0, 2.0
        decimals -= 1
    return [f"{round(v, decimals) + 0.0:,.{decimals}f}".replace("-", "−") for v in values]


def _ticks(xs: list[float], texts: list[str], tips: list[str], bottom: float, *, flat_step: int) -> tuple[list[str], float, float]:
    """Tick labels at ``xs``: side by side when they fit (every ``flat_step``-th at most), else turned 40° so each
    still has its own line. Returns the SVG, the height the labels take below the plot and the leftmost x they reach."""
    spacing = xs[1] - xs[0] if len(xs) > 1 else _W
    widths = [_width(t) for t in texts]
    widest = max(widths)
    step = max(1, math.ceil((widest + 8) / spacing))
    rotate = step > flat_step
    if rotate:
        step = max(1, math.ceil(_LINE / (spacing * math.sin(math.radians(_ANGLE)))))
    shown = list(range(0, len(xs), step))
    last = len(xs) - 1
    if shown[-1] != last:  # the last tick too, in place of its neighbour when they would touch
        if (last - shown[-1]) * spacing < (_LINE if rotate else widest + 8):
            shown[-1] = last
        else:
            shown.append(last)
    parts = [
        f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + (4 if i in shown else 2)}" stroke="#667085"/>'
        for i, x in enumerate(xs)
    ]
    for i in shown:
        x, text = xs[i], html.escape(texts[i])
        tip = f"<title>{html.escape(tips[i])}</title>" if tips[i] != texts[i] else ""
        if rotate:
            y = bottom + 12
            turn = f'transform="rotate(-{_ANGLE} {x:.1f} {y})"'
            parts.append(f'<text class="x-tick" x="{x:.1f}" y="{y}" text-anchor="end" {turn}>{tip}{text}</text>')
        else:
            parts.append(f'<text class="x-tick" x="{x:.1f}" y="{bottom + 15}" text-anchor="middle">{tip}{text}</text>')
    cos = math.cos(math.radians(_ANGLE))
    reach = min(xs[i] - (widths[i] * cos if rotate else widths[i] / 2) for i in shown)
    depth = widest * math.sin(math.radians(_ANGLE)) + 22 if rotate else 18
    return parts, depth, reach


def _x_axis(feature: FeatureResult, left: float, slot: float, bottom: float) -> tuple[list[str], float, float, str, bool]:
    """The x axis' ticks and labels, the height they take below the plot, the leftmost x they reach, the axis title,
    and whether the chart has the numeric outer bins (below the training range's min, above its max).

    Numeric: the bin edges, every one or every other side by side, else every one turned; categorical: every
    category shown, side by side or turned (a long name shortened in the middle, whole in its tooltip)."""
    h = feature.histogram
    name = _trim(feature.name, 40)
    if feature.kind == "numeric" and len(h.labels) >= 3 and h.labels[0] == "< min" and h.labels[-1] == "> max":
        raw = [h.labels[1].split(" – ")[0]] + [label.split(" – ")[-1] for label in h.labels[1:-1]]
        xs = [left + (i + 1) * slot for i in range(len(raw))]
        parts, depth, reach = _ticks(xs, _edges(raw), [e.replace("-", "−") for e in raw], bottom, flat_step=2)
        return parts, depth, reach, f"{name}: bins of the training range (grey: outside it)", True
    labels = [_trim(label) for label in h.labels]
    xs = [left + (i + 0.5) * slot for i in range(len(labels))]
    parts, depth, reach = _ticks(xs, labels, h.labels, bottom, flat_step=1)
    other = " (the rest as “(other)”)" if h.labels[-1] == "(other)" else ""
    return parts, depth, reach, f"{name}: category{other}", False


def chart(feature: FeatureResult) -> str:
    """Reference vs current shares per bin (or category) as grouped SVG bars with labelled axes and a legend."""
    h = feature.histogram
    if not h.labels:
        return '<p class="muted">no histogram: the baseline has none for this feature</p>'
    n = len(h.labels)
    bottom = _TOP + _PLOT_H
    left = float(_LEFT)
    for _ in range(2):  # a wider left margin when turned labels would reach past the chart's left edge
        slot = (_W - left - _RIGHT) / n
        axis, depth, reach, x_title, outside = _x_axis(feature, left, slot, bottom)
        if reach >= 2:
            break
        left += 2 - reach
    title_y = math.ceil(bottom + depth + 12)
    height = title_y + 6
    step, top = _y_scale(max([*h.reference, *h.current]))
    unit = "category" if feature.kind == "categorical" else "bin"
    label = f"{feature.name}: share of rows per {unit}, reference (training) and current"
    parts = [
        f'<svg width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" role="img" aria-label="{html.escape(label)}">',
        f'<rect x="{left:.1f}" y="8" width="11" height="11" fill="{REF}"/>',
        f'<text class="legend-text" x="{left + 15:.1f}" y="17">reference (training)</text>',
        f'<rect x="{left + 150:.1f}" y="8" width="11" height="11" fill="{CUR}"/>',
        f'<text class="legend-text" x="{left + 165:.1f}" y="17">current</text>',
    ]
    if outside:
        parts.extend(
            f'<rect x="{left + i * slot:.1f}" y="{_TOP}" width="{slot:.1f}" height="{_PLOT_H}" fill="#f2f4f7">'
            "<title>outside the training range</title></rect>"
            for i in (0, n - 1)
        )
    for k in range(round(top / step) + 1):
        y = bottom - _PLOT_H * k * step / top
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="{"#98a2b3" if k == 0 else "#eaecf0"}"/>')
        parts.append(f'<text class="y-tick" x="{left - 6:.1f}" y="{y + 3.5:.1f}" text-anchor="end">{_tick(k * step)}</text>')
    parts.append(f'<line x1="{left:.1f}" y1="{_TOP}" x2="{left:.1f}" y2="{bottom}" stroke="#98a2b3"/>')
    bar = slot * 0.4
    for i, (name, ref, cur) in enumerate(zip(h.labels, h.reference, h.current, strict=True)):
        x = left + i * slot + slot * 0.1
        tip = html.escape(f"{name}: reference {ref:.1%}, current {cur:.1%}")
        for offset, share, colour in ((0.0, ref, REF), (bar, cur, CUR)):
            tall = _PLOT_H * min(share / top, 1.0)
            if share > 0:
                tall = max(tall, 1.0)  # a share above zero stays visible
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{bottom - tall:.1f}" width="{bar:.1f}" height="{tall:.1f}" fill="{colour}">'
                f"<title>{tip}</title></rect>"
            )
    parts.extend(axis)
    middle, middle_y = (left + _W - _RIGHT) / 2, _TOP + _PLOT_H / 2
    parts.append(f'<text class="x-title" x="{middle:.1f}" y="{title_y}" text-anchor="middle">{html.escape(x_title)}</text>')
    if outside:  # the outer bins' names, under them at the ends of the title's line
        parts.append(f'<text class="x-tick outside" x="{left:.1f}" y="{title_y}">&lt; min</text>')
        parts.append(f'<text class="x-tick outside" x="{_W - _RIGHT}" y="{title_y}" text-anchor="end">&gt; max</text>')
    parts.append(
        f'<text class="y-title" x="14" y="{middle_y:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle_y:.1f})">'
        "share of rows</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
