"""The drift report in a real browser (Debian's chromium, headless): the demo's drift window — 1,000 breast-cancer
rows with every feature one standard deviation high — rendered, screenshotted and read back from the browser's DOM.

Checked: every chart has labelled axes (x ticks, y ticks, the y-axis title) and a legend; the summary lists the
drifted features first, largest effect size first, under the total; tick labels do not overlap and the page fits its
width (measured by the browser's layout, on a copy of the page with a measuring script appended); the screenshot is a
rendered page, not a blank one (decoded here with zlib and numpy: no image library).
"""

from __future__ import annotations

import itertools
import json
import re
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from serverless_mlops.drift.check import check_drift
from serverless_mlops.drift.report import to_html
from serverless_mlops.drift.result import DriftResult, Histogram, Window
from serverless_mlops.local.demo import DRIFTED_ROWS, DRIFTING_MODEL, SEED, SHIFT_STDS
from serverless_mlops.model.fit import train
from serverless_mlops.model.spec import Drift
from serverless_mlops.store.capture_format import encode_records, timestamp
from tests.helpers.drift_data import WHEN, current_from, profile_of, records_for, training_frame
from tests.helpers.drift_results import categorical, feature, result
from tests.helpers.html_dom import Element, parse
from tests.helpers.specs import example_spec

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1400, 2400
REFERENCE_RGB, CURRENT_RGB, DRIFT_RGB = (0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B), (0xD9, 0x2D, 0x20)  # report.py's colours

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")]

# Lays out the page and reports what a reader would trip over: overlapping labels (those side by side; turned ones
# are spaced by construction), chart text outside its chart, a page wider than the window. Appended to a copy of the
# report (the report itself has no script).
MEASURE = """<script>
const problems = [];
const overlap = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
const charts = document.querySelectorAll('svg[role="img"]');
charts.forEach((svg, i) => {
  const name = svg.getAttribute('aria-label');
  const box = svg.getBoundingClientRect();
  const flat = [...svg.querySelectorAll('text:not([transform])')].map(t => [t.textContent, t.getBoundingClientRect()]);
  flat.forEach(([a, ra], j) => flat.slice(j + 1).forEach(([b, rb]) => {
    if (overlap(ra, rb)) problems.push(`${name}: "${a}" overlaps "${b}"`);
  }));
  svg.querySelectorAll('text').forEach(t => {
    const r = t.getBoundingClientRect();
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
      problems.push(`${name}: "${t.textContent}" leaves the chart`);
  });
});
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify({charts: charts.length, problems, scrollWidth: document.documentElement.scrollWidth, innerWidth});
document.body.appendChild(pre);
</script>"""


@dataclass(frozen=True)
class Rendered:
    result: DriftResult
    page: Path
    screenshot: Path
    dom: Element
    profile: Path


def chromium(profile: Path, *args: str) -> str:
    """Run headless chromium once (its own throwaway profile, nothing fetched from the network); its stdout."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
    ]
    done = subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def demo_drift_window() -> DriftResult:
    """What the demo's drift check sees: DRIFTED_ROWS bootstrap rows of breast-cancer, every feature SHIFT_STDS high,
    predicted by the model and captured, in a one-hour window of one capture object."""
    trained = train(example_spec(DRIFTING_MODEL))
    base = training_frame(DRIFTING_MODEL)
    names = [f.name for f in trained.record.signature.features]
    drifted = base.sample(DRIFTED_ROWS, replace=True, random_state=SEED).reset_index(drop=True)
    drifted[names] = drifted[names] + SHIFT_STDS * base[names].std()
    profile = profile_of(trained)
    current = current_from(profile, ("s3://bucket/capture/part-0.jsonl.gz", encode_records(records_for(trained, drifted))))
    window = Window(start="2026-11-25T10:30:00.000Z", end="2026-11-25T11:30:00.000Z", label="20261125T1030Z-20261125T1130Z")
    config = Drift.model_validate(trained.record.spec.get("drift", {}))
    return check_drift(profile, config, current, model=DRIFTING_MODEL, version=1, window=window, generated_at=timestamp(WHEN))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("drift-report")
    result = demo_drift_window()
    page = folder / "report.html"
    page.write_bytes(to_html(result))
    screenshot = folder / "drift-report.png"
    profile = folder / "profile"
    chromium(profile, f"--screenshot={screenshot}", page.as_uri())
    dom = parse(chromium(profile, "--dump-dom", page.as_uri()))
    return Rendered(result, page, screenshot, dom, profile)


def test_the_demo_window_drifts_in_every_feature(rendered: Rendered) -> None:
    """The premise of the checks below: a page with many drifted features and charts."""
    assert rendered.result.status == "drift"
    assert rendered.result.drifted_features == rendered.result.checked_features == 30


def test_every_chart_has_labelled_axes_and_a_legend(rendered: Rendered) -> None:
    charts = list(rendered.dom.iter("svg"))
    assert len(charts) == len(rendered.result.features) + 1  # every feature and the prediction
    for svg in charts:
        name = svg.attrs.get("aria-label", "")
        assert svg.attrs.get("role") == "img"
        assert name.endswith("reference (training) and current"), name
        x_ticks = [t.own_text() for t in svg.iter("text", "x-tick")]
        y_ticks = [t.own_text() for t in svg.iter("text", "y-tick")]
        assert len(x_ticks) >= 2, (name, x_ticks)
        assert len(y_ticks) >= 3, (name, y_ticks)
        assert y_ticks[0] == "0%"
        assert all(t.endswith("%") for t in y_ticks), (name, y_ticks)
        assert [t.own_text() for t in svg.iter("text", "y-title")] == ["share of rows"], name
        assert [t.own_text() for t in svg.iter("text", "x-title")] != [""], name
        assert [t.own_text() for t in svg.iter("text", "legend-text")] == ["reference (training)", "current"], name
    numeric = [svg for svg in charts if "per bin" in svg.attrs["aria-label"]]
    assert len(numeric) == 30
    for svg in numeric:  # the 21 bin edges, at least every other one
        edges = [t.own_text() for t in svg.iter("text", "x-tick") if "outside" not in t.classes()]
        assert len(edges) >= 11, edges
    prediction = next(svg for svg in charts if svg.attrs["aria-label"].startswith("prediction:"))
    assert rendered.result.prediction is not None
    assert [t.own_text() for t in prediction.iter("text", "x-tick")] == rendered.result.prediction.histogram.labels  # every class


def test_the_summary_lists_the_drifted_features_first_by_effect_size(rendered: Rendered) -> None:
    dom = rendered.dom
    headline = next(dom.iter("p", "headline")).text()
    assert headline == "Dataset drift: 30 of 30 features drifted (100%, threshold 50%)"
    rows = [r for r in next(dom.iter("table", "summary")).iter("tr") if "data-feature" in r.attrs]
    assert len(rows) == len(rendered.result.features)
    verdicts = [r.attrs["data-verdict"] for r in rows]
    drifted = verdicts.count("drift")
    assert verdicts[:drifted] == ["drift"] * drifted
    sizes = [float(r.attrs["data-effect"]) for r in rows[:drifted]]
    assert sizes == sorted(sizes, reverse=True)
    expected = sorted(rendered.result.drifted(), key=lambda f: -(f.effect_size or 0.0))
    assert [r.attrs["data-feature"] for r in rows[:drifted]] == [f.name for f in expected]
    first = list(rows[0].iter("td"))
    assert first[0].text().startswith(expected[0].name)
    assert first[4].text() == "< 1e−16"  # the p-value underflows: said so, never 0.0000
    p_values = [list(r.iter("td"))[4].text() for r in rows]
    assert not [p for p in p_values if re.fullmatch(r"0(\.0*)?", p)]


def awkward_labels() -> DriftResult:
    """Labels that do not fit side by side: tiny bin edges either side of zero, large ones, 20 long category names."""
    edges = np.linspace(-0.0012345, 0.0009876, 21)
    tiny = ["< min"] + [f"{a:.4g} – {b:.4g}" for a, b in itertools.pairwise(edges)] + ["> max"]
    edges = np.linspace(123_456, 9_876_543, 21)
    large = ["< min"] + [f"{a:.4g} – {b:.4g}" for a, b in itertools.pairwise(edges)] + ["> max"]
    shares = list(np.full(22, 1 / 22))
    names = [f"category-with-a-long-name-{i:02d}" for i in range(20)] + ["(other)"]
    return result(
        feature("a feature whose name is longer than any chart title should show", "drift", effect_size=0.5, p_value=1e-5),
        feature("tiny", histogram=Histogram(labels=tiny, reference=shares, current=shares)),
        feature("large", histogram=Histogram(labels=large, reference=shares, current=shares)),
        categorical("city", names),
    )


@pytest.mark.parametrize("page", ["demo", "awkward labels"])
def test_labels_do_not_overlap_or_leave_their_chart_and_the_page_fits_the_window(rendered: Rendered, page: str) -> None:
    drift = rendered.result if page == "demo" else awkward_labels()
    measured_page = rendered.page.with_name(f"measured-{page.replace(' ', '-')}.html")
    measured_page.write_text(to_html(drift).decode().replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    measured = json.loads(next(parse(chromium(rendered.profile, "--dump-dom", measured_page.as_uri())).iter("pre")).text())
    assert measured["charts"] == len(drift.features) + (drift.prediction is not None)
    assert measured["problems"] == []
    assert measured["scrollWidth"] <= measured["innerWidth"]


def decode_png(data: bytes) -> NDArray[np.uint8]:
    """The pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what chromium writes): (height, width, channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    width = height = channels = 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour in (2, 6), interlace) == (8, True, 0)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            chunks.append(body)
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    pixels = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1)
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: a running sum per channel
            row = (np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint64) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            row = line + previous
        else:  # Average and Paeth depend on the byte just decoded: byte by byte
            out, up = bytearray(line.tobytes()), previous.tobytes()
            for i in range(stride):
                left = out[i - channels] if i >= channels else 0
                if kind == 3:
                    out[i] = (out[i] + ((left + up[i]) >> 1)) & 255
                    continue
                corner = up[i - channels] if i >= channels else 0
                guess = left + up[i] - corner
                da, db, dc = abs(guess - left), abs(guess - up[i]), abs(guess - corner)
                out[i] = (out[i] + (left if da <= db and da <= dc else up[i] if db <= dc else corner)) & 255
            row = np.frombuffer(bytes(out), dtype=np.uint8)
        pixels[y] = row
        previous = row
    return pixels.reshape(height, width, channels)


def test_the_screenshot_is_a_rendered_page(rendered: Rendered) -> None:
    data = rendered.screenshot.read_bytes()
    assert 50_000 < len(data) < 5_000_000
    pixels = decode_png(data)[:, :, :3]
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    packed = (pixels[:, :, 0].astype(np.uint32) << 16) | (pixels[:, :, 1].astype(np.uint32) << 8) | pixels[:, :, 2]
    colours, counts = np.unique(packed, return_counts=True)
    assert colours.size > 200  # text antialiasing, bars, the verdict box: a blank or failed page has a handful
    assert counts.max() < 0.95 * packed.size  # not all background
    present = dict(zip(colours.tolist(), counts.tolist(), strict=True))
    for name, (r, g, b) in {"reference bars": REFERENCE_RGB, "current bars": CURRENT_RGB, "drift verdicts": DRIFT_RGB}.items():
        assert present.get((r << 16) | (g << 8) | b, 0) > 500, f"too few pixels of the {name}' colour"
