"""Run by benchmarks/inference.py inside the optional benchmark venv (.venv-bench, which has mlflow).

``python benchmarks/_mlflow_model.py SPEC.json OUT_DIR`` fits the same scikit-learn pipeline that
``serverless_mlops.model.fit`` fits for that spec (same data, same split, same seed, same preprocessing) and saves it
with ``mlflow.sklearn.save_model`` for ``mlflow models serve``. Nothing crosses between the two virtual
environments but the spec and the data file, so neither venv's pins disturb the other.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.model_selection import train_test_split

    from serverless_mlops.model.data import load_dataset
    from serverless_mlops.model.fit import build_pipeline, resolve_estimator
    from serverless_mlops.model.spec import ModelSpec

    spec = ModelSpec.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    frame = load_dataset(spec).frame
    features = spec.numeric_features
    train, _ = train_test_split(frame, test_size=spec.split.test_size, random_state=spec.split.seed, stratify=frame[spec.target])
    pipeline = build_pipeline(spec, resolve_estimator(spec)).fit(train[features], train[spec.target].to_numpy())
    sample = train[features].head(5)
    options = {}
    if "skops_trusted_types" in inspect.signature(mlflow.sklearn.save_model).parameters:  # mlflow 3 saves with skops
        import skops.io

        options["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    mlflow.sklearn.save_model(pipeline, sys.argv[2], signature=infer_signature(sample, pipeline.predict(sample)), **options)
    print(json.dumps({"saved": sys.argv[2]}))


if __name__ == "__main__":
    if len(sys.argv) == 1:  # run by hand (make bench skips _*.py): this one runs inside .venv-bench for inference.py
        print("benchmarks/_mlflow_model.py: run by benchmarks/inference.py inside .venv-bench; nothing to measure on its own")
    else:
        main()
