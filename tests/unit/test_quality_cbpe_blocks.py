"""CBPE a block of rows at a time (serverless_mlops.quality.metrics): the weighted ROC-AUC ranked once and summed per
block, with tie groups that straddle blocks and groups longer than a block, equals scikit-learn's weighted ROC-AUC
(each row a positive of weight p and a negative of weight 1 - p); CBPE calibrating block by block equals CBPE of
the whole calibrated array; over a window's rows it holds a fraction of the memory it used to (tracemalloc); and a
capture object read in small blocks and pieces joins as read whole."""

from __future__ import annotations

import functools
import gzip
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn import metrics as m

from serverless_mlops.model.calibration import calibrate, fit_calibration
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.quality import join, metrics
from serverless_mlops.quality.check import check_version
from serverless_mlops.quality.join import Joiner
from serverless_mlops.quality.joined import Joined, VersionRows
from serverless_mlops.quality.labels import GroundTruth, Label
from serverless_mlops.store.capture_format import timestamp

TOL = 1e-9


def _expected_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The same quantity the way scikit-learn computes it: every row once as a positive, once as a negative."""
    doubled = np.concatenate([scores, scores]).astype(np.float64)
    truth = np.concatenate([np.ones(scores.size), np.zeros(scores.size)])
    weights = np.concatenate([positive, 1.0 - positive.astype(np.float64)])
    return float(m.roc_auc_score(truth, doubled, sample_weight=weights))


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_auc_in_blocks_equals_scikit_learn_with_ties_across_blocks(
    monkeypatch: pytest.MonkeyPatch, block: int, dtype: type
) -> None:
    monkeypatch.setattr(metrics, "CHUNK", block)
    rng = np.random.default_rng(block)
    # 3,000 rows on 41 distinct scores (groups of about 70 rows: longer than blocks of 1, 7 and 64 rows) and a run of
    # 500 rows on one score
    scores = np.concatenate([np.round(rng.random(3_000), 1) / 4 + np.round(rng.random(3_000), 1), np.full(500, 0.5)]).astype(dtype)
    positive = np.clip(scores + rng.normal(0, 0.2, scores.size), 0, 1).astype(dtype)
    found = metrics.weighted_auc(scores, positive)
    assert found == pytest.approx(_expected_auc(scores, positive), abs=TOL)
    assert metrics.weighted_auc(scores, positive, (1.0 - positive).astype(dtype)) == pytest.approx(found, abs=TOL)
    hard = (rng.random(scores.size) < scores).astype(np.float64)
    assert metrics.weighted_auc(scores, hard) == pytest.approx(m.roc_auc_score(hard, scores), abs=TOL)


def test_weighted_auc_of_one_score_is_a_half_and_of_nothing_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "CHUNK", 3)
    assert metrics.weighted_auc(np.full(10, 0.3), np.linspace(0, 1, 10)) == pytest.approx(0.5, abs=TOL)
    assert metrics.weighted_auc(np.zeros(0), np.zeros(0)) is None
    assert metrics.weighted_auc(np.arange(4.0), np.zeros(4)) is None


@pytest.mark.parametrize("classes", [2, 3])
def test_cbpe_calibrating_block_by_block_equals_cbpe_of_the_calibrated_array(monkeypatch: pytest.MonkeyPatch, classes: int) -> None:
    rng = np.random.default_rng(classes)
    logits = rng.normal(size=(5_000, classes)) * 2
    raw = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(classes, p=row) for row in raw**1.5 / (raw**1.5).sum(axis=1, keepdims=True)])
    calibration = fit_calibration(truth[:2_000], raw[:2_000], list(range(classes)))
    stored, codes = raw[2_000:].astype(np.float32), raw[2_000:].argmax(axis=1).astype(np.int8)
    whole = metrics.estimate(stored.astype(np.float64), calibrate(calibration, stored), codes.astype(np.int64))
    monkeypatch.setattr(metrics, "CHUNK", 256)
    cuts = [1, 2, 100, 101, 700, 1_900, 1_950]  # blocks of 1, 98, 1 and 599 rows (joined) and of 1,050 and more (cut)
    blocks = metrics.estimate_calibrating(np.split(stored, cuts), np.split(codes, cuts), functools.partial(calibrate, calibration))
    assert blocks.rows == whole.rows == 3_000
    assert blocks.accuracy == pytest.approx(whole.accuracy, abs=TOL)
    assert blocks.f1 == pytest.approx(whole.f1, abs=TOL)
    assert blocks.roc_auc == pytest.approx(whole.roc_auc, abs=1e-6)  # weights kept as float32
    assert metrics.estimate(stored, calibrate(calibration, stored), codes).accuracy == pytest.approx(whole.accuracy, abs=TOL)


def test_cbpe_over_a_window_holds_under_28_bytes_a_row_beside_what_the_join_keeps() -> None:
    """500,000 binary predictions kept as the join keeps them (blocks of 1,000 rows: float32 probabilities, int8
    codes, 4.5 MB): CBPE used to widen them to float64 in one array, calibrate all of them at once and rank through
    ``np.unique`` (97 bytes a row at its peak); now the ranking (8 bytes a row), the positive column and its ranked
    copy (4 each) and the calibrated weights (4) are what stands, beside a block's temporaries."""
    rng = np.random.default_rng(7)
    rows = 500_000
    positive = np.round(rng.random(rows), 7).astype(np.float32)
    version = VersionRows(version=1, predictions=rows)
    version.probabilities = np.split(np.stack([1 - positive, positive], axis=1), rows // 1_000)  # as the join keeps them
    version.codes = np.split((positive >= 0.5).astype(np.int8), rows // 1_000)
    curve = np.linspace(0, 1, 50)
    fitted = {"x": curve.tolist(), "y": (curve**1.1).tolist()}
    calibration = {"method": "isotonic_ovr", "classes": ["0", "1"], "rows": 1_000, "curves": [fitted, fitted]}
    tracemalloc.start()
    try:
        found = check_version(version, classes=[0, 1], calibration=calibration, holdout={}, config=Quality(min_labels=1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    calibrated = np.interp(positive.astype(np.float64), curve, curve**1.1)
    assert found.estimated["accuracy"] == pytest.approx(np.mean(np.where(positive >= 0.5, calibrated, 1 - calibrated)), abs=TOL)
    assert peak / rows < 28, f"{peak / rows:.1f} bytes a row"


def test_a_capture_object_read_in_small_blocks_and_pieces_joins_as_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The join inflates a capture object a quarter-megabyte at a time and decodes it a piece of lines at a time: read
    in blocks of 97 compressed bytes and pieces of 150 bytes (rows cut anywhere), it joins what it joins read whole."""
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rng = np.random.default_rng(3)
    lines = []
    for i in range(400):
        p = round(float(rng.random()), 6)
        found = {"ts": timestamp(start + timedelta(minutes=i)), "model": "m", "version": 1 + i % 2, "id": f"r-{i}"}
        lines.append(json.dumps(found | {"features": {"x": i}, "prediction": int(p >= 0.5), "probabilities": [1 - p, p]}))
    data = gzip.compress(("\n".join(lines[:200]) + "\n").encode()) + gzip.compress(("\n".join(lines[200:]) + "\n").encode())
    truth = GroundTruth()
    truth.add([Label(f"r-{i}", i % 3 % 2) for i in range(0, 400, 3)] + [Label("unknown", 1)], "test")

    def joined() -> Joined:
        joiner = Joiner(truth.labels, start=start, end=start + timedelta(days=1), label_delay=timedelta(days=1), classes=[0, 1])
        joiner.add_stream(io.BytesIO(data), "capture.jsonl.gz")
        return joiner.result()

    whole = joined()
    monkeypatch.setattr(join, "READ_BYTES", 97)
    monkeypatch.setattr(join, "PIECE_BYTES", 150)
    pieces = joined()
    assert pieces.counts == whole.counts
    assert whole.counts.joined == 134
    for version in (1, 2):
        a, b = pieces.versions[version], whole.versions[version]
        assert len(a.codes) > len(b.codes)  # read as more blocks
        assert (a.predictions, a.all_codes().tolist(), a.labelled.ids, a.labelled.truth) == (
            b.predictions,
            b.all_codes().tolist(),
            b.labelled.ids,
            b.labelled.truth,
        )
        assert np.array_equal(a.all_probabilities(2), b.all_probabilities(2))


def test_cbpe_of_no_rows_estimates_nothing() -> None:
    found = metrics.estimate_calibrating([], [], lambda block: np.asarray(block, dtype=np.float64))
    assert (found.rows, found.accuracy, found.f1, found.roc_auc) == (0, 0.0, 0.0, None)
    one_class = metrics.estimate_calibrating(
        [np.ones((3, 2), dtype=np.float32) / 2], [np.zeros(3, dtype=np.int8)], lambda b: np.eye(2)[[0, 0, 0]]
    )
    assert (one_class.accuracy, one_class.roc_auc) == (1.0, None)  # every row surely class 0: no positive weighs anything
    assert VersionRows(1).all_probabilities(2).shape == (0, 2)  # a version read without probabilities
