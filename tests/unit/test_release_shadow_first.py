"""The spec's ``release.shadow.first`` (serverless_mlops/model/release_spec.py): a shadow phase before every release of the
model, the default of ``mlops release start --shadow-first`` and of the retraining workflow's hand-over. Pure, no I/O."""

from __future__ import annotations

import pytest

from serverless_mlops.model.release_spec import ReleaseSpec, ShadowPhase, shadow_first_seconds
from serverless_mlops.model.spec import SpecError, parse_spec
from tests.helpers.specs import example_spec


def _document(release: object) -> dict[str, object]:
    document = example_spec("breast-cancer").model_dump(mode="json", by_alias=True)
    document["release"] = release
    return document


def test_no_shadow_phase_unless_the_spec_asks_for_one() -> None:
    assert ReleaseSpec().shadow.first is None
    assert shadow_first_seconds({}) is None
    assert shadow_first_seconds({"release": None}) is None
    assert shadow_first_seconds({"release": {"shadow": {"sample": 0.5}}}) is None
    spec = parse_spec(_document({"shadow": {"first": "30m", "min_agreement": 0.95}}), source="models/breast-cancer.yaml")
    assert spec.release.shadow == ShadowPhase(first="30m", sample=1.0, min_agreement=0.95)
    # what the CLI and the hand-over read: the spec as the registry stores it
    assert shadow_first_seconds(spec.model_dump(mode="json", by_alias=True)) == 1800
    assert shadow_first_seconds({"release": {"shadow": {"first": "24h"}}}) == 24 * 3600
    assert shadow_first_seconds({"release": {"shadow": {"first": "0s"}}}) == 0


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        ("25h", "release.shadow.first: at most 24h, got '25h'"),
        ("30 minutes", "release.shadow.first: expected a duration like 30s, 10m or 1h, got '30 minutes'"),
        ("none", "release.shadow.first: expected a duration like 30s, 10m or 1h, got 'none'"),
        (30, "release.shadow.first: Input should be a valid string"),
    ],
)
def test_a_bad_shadow_first_names_the_field_in_one_line(first: object, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_document({"shadow": {"first": first}}), source="models/breast-cancer.yaml")
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message
    with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(").replace(")", r"\)")):
        shadow_first_seconds({"release": {"shadow": {"first": first}}})


def test_a_stored_spec_with_an_invalid_release_section_names_each_field() -> None:
    expected = (
        "release.low_traffic: Input should be 'rollback' or 'promote'; release.shadow.sample: Input should be less than or equal to 1"
    )
    with pytest.raises(ValueError) as caught:
        shadow_first_seconds({"release": {"shadow": {"first": "1m", "sample": 2}, "low_traffic": "pray"}})
    assert str(caught.value) == expected
