"""The example data sets behind models/*.yaml, written from the copies scikit-learn and statsmodels ship (no download).

``python -m serverless_mlops.model.examples models/data`` rewrites them; a test checks the committed files still match.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = ("breast_cancer", "wine", "diabetes", "affairs")
# statsmodels' occupation codes (its fair data set's NOTE), as the categories the affairs example names
OCCUPATIONS = {1: "student", 2: "unskilled", 3: "white-collar", 4: "skilled", 5: "managerial", 6: "professional"}


def example_frame(name: str):  # type: ignore[no-untyped-def]
    """The data set as a DataFrame with a ``target`` column; diabetes keeps ``sex`` as a categorical code."""
    from sklearn import datasets

    if name == "breast_cancer":
        frame = datasets.load_breast_cancer(as_frame=True).frame
    elif name == "wine":
        frame = datasets.load_wine(as_frame=True).frame
    elif name == "diabetes":
        frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
        frame["sex"] = frame["sex"].astype(int).map({1: "a", 2: "b"})
    elif name == "affairs":
        # statsmodels' fair data (Fair 1978, 6,366 women): did she have an affair (time spent > 0), with the two
        # occupations as named categories; statsmodels is a development dependency, read only to write this file
        from statsmodels.datasets import fair

        frame = fair.load_pandas().data
        for column in ("occupation", "occupation_husb"):
            frame[column] = frame[column].astype(int).map(OCCUPATIONS)
        frame["affair"] = (frame.pop("affairs") > 0).astype(int)
    else:
        raise ValueError(f"unknown example {name!r}; expected one of {', '.join(EXAMPLES)}")
    return frame


def write_examples(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXAMPLES:
        path = directory / f"{name}.csv"
        example_frame(name).to_csv(path, index=False, float_format="%.10g", lineterminator="\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "models/data")):
        print(written_path)
