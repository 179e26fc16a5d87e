"""The drift check on the example models: known drift is found, fresh samples of the training data are not drift.

Captured rows are built the way the inference Lambda writes them (``capture.encode_records``) with predictions from
the model's own ONNX graph, then read back by the capture reader. No AWS here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serverless_mlops.drift.check import check_drift
from serverless_mlops.drift.report import to_html, to_json
from serverless_mlops.drift.result import DriftResult
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.spec import Drift
from serverless_mlops.store.capture_format import encode_records, timestamp
from tests.helpers.drift_data import WHEN, current_from, fresh_sample, profile_of, records_for, training_frame


def run(trained: TrainedModel, frame: pd.DataFrame, config: Drift | None = None) -> DriftResult:
    profile = profile_of(trained)
    current = current_from(profile, ("mem://capture.jsonl.gz", encode_records(records_for(trained, frame))))
    return check_drift(
        profile,
        config or Drift.model_validate(trained.record.spec.get("drift", {})),
        current,
        model=trained.record.model,
        version=1,
        window=None,
        generated_at=timestamp(WHEN),
    )


def verdicts(result: DriftResult) -> dict[str, str]:
    return {f.name: f.verdict for f in result.features}


@pytest.mark.parametrize("name", ["breast-cancer", "wine", "diabetes"])
def test_fresh_samples_of_the_training_distribution_are_not_drift(trained_models: dict[str, TrainedModel], name: str) -> None:
    result = run(trained_models[name], fresh_sample(name, 400, seed=11))
    assert result.status == "no_drift"
    assert not result.dataset_drift
    assert result.method == "significant_and_large"
    assert set(verdicts(result).values()) == {"no_drift"}
    assert result.prediction is not None
    assert result.prediction.verdict == "no_drift"
    assert result.data_quality == [] or all(f.problem == "out_of_range" for f in result.data_quality)
    assert result.rows == 400


def test_a_numeric_feature_shifted_by_half_a_standard_deviation_drifts(trained_models: dict[str, TrainedModel]) -> None:
    frame = fresh_sample("diabetes", 400, seed=3)
    frame["bmi"] += 0.5 * training_frame("diabetes")["bmi"].std()
    result = run(trained_models["diabetes"], frame)
    found = verdicts(result)
    assert found["bmi"] == "drift"
    assert [n for n, v in found.items() if v == "drift"] == ["bmi"]
    bmi = next(f for f in result.features if f.name == "bmi")
    assert bmi.test == "ks"
    assert bmi.p_value is not None
    assert bmi.p_value < bmi.threshold == pytest.approx(0.05 / 10)
    assert bmi.psi is not None
    assert bmi.psi > 0.1
    assert result.status == "no_drift"  # 1 of 10 is below the 0.5 share
    assert result.drifted_share == pytest.approx(0.1)
    assert result.prediction is not None
    assert result.prediction.verdict == "drift"


def test_changed_category_frequencies_drift(trained_models: dict[str, TrainedModel]) -> None:
    frame = fresh_sample("diabetes", 400, seed=5)
    frame["sex"] = np.where(np.random.default_rng(0).random(len(frame)) < 0.85, "a", "b")  # training: about 53 / 47
    result = run(trained_models["diabetes"], frame)
    sex = next(f for f in result.features if f.name == "sex")
    assert sex.verdict == "drift"
    assert sex.test == "chi_square"
    assert sex.chi_square is not None
    assert sex.chi_square > 50
    assert [n for n, v in verdicts(result).items() if v == "drift"] == ["sex"]


def test_most_features_shifted_is_dataset_drift(trained_models: dict[str, TrainedModel]) -> None:
    frame = fresh_sample("wine", 300, seed=8)
    reference = training_frame("wine")
    for column in frame.columns[:10]:
        frame[column] += 0.5 * reference[column].std()
    result = run(trained_models["wine"], frame)
    assert result.status == "drift"
    assert result.dataset_drift
    assert result.drifted_features >= 7
    assert result.drifted_share >= 0.5


def test_too_few_rows_is_insufficient_data_never_drift(trained_models: dict[str, TrainedModel]) -> None:
    frame = fresh_sample("diabetes", 60, seed=2)
    frame["bmi"] += 3 * training_frame("diabetes")["bmi"].std()
    result = run(trained_models["diabetes"], frame)
    assert result.status == "insufficient_data"
    assert not result.dataset_drift
    assert set(verdicts(result).values()) == {"insufficient_data"}
    assert all(f.statistic is None for f in result.features)


def test_the_evidently_rule_uses_distances_for_large_references(trained_models: dict[str, TrainedModel]) -> None:
    config = Drift(rule="evidently", reference_size_cutoff=100, distance_threshold=0.1)
    frame = fresh_sample("diabetes", 500, seed=4)
    frame["s5"] += 0.5 * training_frame("diabetes")["s5"].std()
    frame["sex"] = "b"
    result = run(trained_models["diabetes"], frame, config)
    assert result.method == "distances"
    assert result.correction == "none"
    s5 = next(f for f in result.features if f.name == "s5")
    sex = next(f for f in result.features if f.name == "sex")
    assert (s5.test, s5.verdict) == ("wasserstein_norm", "drift")
    assert s5.statistic is not None
    assert 0.35 < s5.statistic < 0.65
    assert (sex.test, sex.verdict) == ("jensen_shannon", "drift")
    assert s5.p_value is None
    assert s5.ks_statistic is not None
    assert verdicts(result)["age"] == "no_drift"
    page = to_html(result).decode()
    assert "distance (Wasserstein ÷ std or Jensen-Shannon) is ≥ 0.1" in page
    assert "Wasserstein ÷ std" in page
    assert "Jensen-Shannon distance" in page


def test_benjamini_hochberg_finds_at_least_what_bonferroni_finds(trained_models: dict[str, TrainedModel]) -> None:
    frame = fresh_sample("diabetes", 250, seed=10)
    reference = training_frame("diabetes")
    for column, factor in (("bmi", 0.25), ("bp", 0.2), ("s1", 0.15)):
        frame[column] += factor * reference[column].std()
    bonferroni = run(trained_models["diabetes"], frame, Drift(correction="bonferroni"))
    bh = run(trained_models["diabetes"], frame, Drift(correction="benjamini_hochberg"))
    none = run(trained_models["diabetes"], frame, Drift(correction="none"))
    assert (bonferroni.drifted_features, bh.drifted_features, none.drifted_features) == (0, 2, 3)
    assert {f.name for f in bh.drifted()} == {"bmi", "s1"}
    for feature in bh.features:  # the reported cutoff explains each verdict
        assert feature.p_value is not None
        assert (feature.p_value <= feature.threshold) == (feature.verdict == "drift")
    assert bh.correction == "benjamini_hochberg"


def test_data_quality_findings(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["diabetes"]
    records = records_for(trained, fresh_sample("diabetes", 200, seed=6))
    for record in records[:20]:
        record["features"]["sex"] = "c"
    for record in records[20:30]:
        record["features"]["s6"] = 10_000.0
    for record in records[30:40]:
        del record["features"]["bp"]
    records[40]["features"]["s1"] = "not a number"
    profile = profile_of(trained)
    current = current_from(profile, ("mem://q.jsonl", encode_records(records)))
    result = check_drift(profile, Drift(), current, model="diabetes", version=1, window=None, generated_at="now")
    findings = {(f.feature, f.problem): f for f in result.data_quality}
    assert findings["sex", "unseen_categories"].share == pytest.approx(0.1)
    assert "c" in findings["sex", "unseen_categories"].detail
    assert findings["s6", "out_of_range"].share == pytest.approx(0.05)
    assert findings["bp", "missing_values"].share == pytest.approx(0.05)
    assert findings["s1", "missing_values"].share == pytest.approx(0.005)
    sex = next(f for f in result.features if f.name == "sex")
    assert sex.verdict == "drift"  # a category training never saw: chi-square is infinite
    assert sex.histogram.labels[:2] == ["a", "b"]
    assert "c" in sex.histogram.labels
    page = to_html(
        result.model_copy(update={"skipped_sources": [{"source": "s3://b/k.jsonl.gz", "error": "line 3: invalid JSON"}]})
    ).decode()
    assert "missing 5.0%" in page
    assert "out of range 5.0%" in page
    assert "unseen 10.0% (c)" in page
    assert "Skipped capture objects" in page
    assert "s3://b/k.jsonl.gz: line 3: invalid JSON" in page


def test_reports_show_every_feature_with_its_verdict(trained_models: dict[str, TrainedModel]) -> None:
    frame = fresh_sample("diabetes", 300, seed=12)
    frame["bmi"] += 0.5 * training_frame("diabetes")["bmi"].std()
    result = run(trained_models["diabetes"], frame)
    document = json.loads(to_json(result))
    assert document["model"] == "diabetes"
    assert {f["name"] for f in document["features"]} == set(profile_of(trained_models["diabetes"])["features"])
    assert DriftResult.model_validate(document) == result
    page = to_html(result).decode()
    assert page.startswith("<!doctype html>")
    assert "<script" not in page
    assert page.count("<svg") == len(result.features) + 1  # every feature and the prediction
    for feature in result.features:
        assert f"<b>{feature.name}</b>" in page
    assert 'class="drift">drift<' in page
    assert "KS test" in page
    assert "chi-square test" in page


def test_many_categories_are_folded_into_other_in_the_histogram() -> None:
    from serverless_mlops.model.profile import build_profile

    rng = np.random.default_rng(1)
    labels = np.array([f"c{i:02d}" for i in range(30)])
    column = labels[rng.integers(0, 30, 600)]
    profile = build_profile(
        {"city": column, "x": rng.normal(size=600)}, {"city": "categorical", "x": "numeric"}, rng.normal(size=600), "numeric"
    )
    records = [{"ts": "t", "model": "m", "version": 1, "features": {"city": str(c), "x": 0.0}, "prediction": 0.0} for c in column[:300]]
    current = current_from(profile, ("mem://c.jsonl", encode_records(records)))
    result = check_drift(profile, Drift(), current, model="m", version=1, window=None, generated_at="now")
    city = result.features[0]
    assert len(city.histogram.labels) == 21
    assert city.histogram.labels[-1] == "(other)"
    assert sum(city.histogram.current) == pytest.approx(1.0)
    assert result.features[1].verdict == "drift"  # x is all zeros now
