"""The example specs and their data: the committed CSVs are exactly scikit-learn's shipped data sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_mlops.model.examples import EXAMPLES, write_examples
from tests.helpers.specs import MODELS, example_spec


def test_committed_example_data_matches_what_scikit_learn_ships(tmp_path: Path) -> None:
    for written in write_examples(tmp_path):
        committed = MODELS / "data" / written.name
        assert committed.read_bytes() == written.read_bytes(), f"{committed} differs: run python -m serverless_mlops.model.examples"
    assert {p.stem for p in (MODELS / "data").glob("*.csv")} == set(EXAMPLES)


@pytest.mark.parametrize("name", ["breast-cancer", "wine", "diabetes"])
def test_example_specs_are_valid_and_cover_every_task(name: str) -> None:
    spec = example_spec(name)
    assert Path(spec.data.uri).is_file()
    assert spec.name == name


def test_examples_cover_each_task_and_a_categorical_feature() -> None:
    specs = [example_spec(n) for n in ("breast-cancer", "wine", "diabetes")]
    assert {s.task.value for s in specs} == {"binary_classification", "multiclass_classification", "regression"}
    assert any(s.categorical_features for s in specs)
