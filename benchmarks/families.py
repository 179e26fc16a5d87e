"""Model families served (`python benchmarks/families.py`): one-row latency through the inference handler and ONNX size
per gradient-boosting family, side by side with the family's native ``predict`` on the same row.

Each family trains 100 trees of depth 6 on the same seeded ``make_classification`` data (20 numeric features, 5,000
rows) through ``serverless_mlops.model.fit.train`` (ONNX conversion and the parity gate included), is registered on a
local moto server and called in-process through the inference Lambda's handler (validation, registry, capture,
metrics: a real request). Native ``predict_proba`` runs the fitted pipeline on the same row as a one-row DataFrame
(what a pickled model serves), and the fitted estimator alone on the row as a float64 array. Every library runs on one
thread (OMP_NUM_THREADS=1), as onnxruntime does in the handler: like for like, and a busy machine's oversubscribed
OpenMP pools do not decide the figures. Medians of 2,000 warm calls; a family whose optional group is not installed
is reported as such.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ratio import ratio  # benchmarks/ is on sys.path when this runs as a script
from inference import event_for, machine, percentile, timings

warnings.filterwarnings("ignore")
os.environ["OMP_NUM_THREADS"] = "1"  # before numpy, scikit-learn, lightgbm and xgboost start their thread pools
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "bench")

FEATURES = 20
FAMILIES = {
    "hgb": ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 100, "max_depth": 6, "early_stopping": False}),
    "lightgbm": ("lightgbm.LGBMClassifier", {"n_estimators": 100, "max_depth": 6, "num_leaves": 63, "verbose": -1}),
    "xgboost": ("xgboost.XGBClassifier", {"n_estimators": 100, "max_depth": 6}),
    "forest": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100, "max_depth": 6}),
}


def make_data(folder: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=5000, n_features=FEATURES, n_informative=10, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)])
    frame["y"] = y
    path = folder / "families.csv"
    frame.to_csv(path, index=False)
    return path


def spec_for(name: str, estimator: str, params: dict[str, Any], data: Path) -> Any:
    from serverless_mlops.model.spec import parse_spec

    return parse_spec(
        {
            "name": f"bench-{name}",
            "task": "binary_classification",
            "target": "y",
            "features": [{"name": f"f{i}"} for i in range(FEATURES)],
            "estimator": {"class": estimator, "params": params},
            "data": {"uri": str(data)},
            "evaluation": {"metric": "roc_auc"},
        }
    )


def fitted_pipeline(spec: Any, data: Path) -> Any:
    """The pipeline training fits, refit here for native predict (training keeps only the ONNX model)."""
    from serverless_mlops.model.data import load_dataset
    from serverless_mlops.model.fit import build_pipeline, resolve_estimator, split_holdout

    train_frame, _ = split_holdout(spec, load_dataset(spec).frame)
    features = spec.numeric_features
    return build_pipeline(spec, resolve_estimator(spec)).fit(train_frame[features], train_frame[spec.target].to_numpy())


def main() -> None:
    import importlib.util

    import pandas as pd

    from functions.inference.app import lambda_handler
    from serverless_mlops.local.http_api import LambdaHttpApp
    from serverless_mlops.local.moto import LocalAws, ensure_resources
    from serverless_mlops.model.fit import train
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, register_run

    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-families-"))
    rows: list[tuple[str, ...]] = []
    try:
        data = make_data(workdir)
        row = pd.read_csv(data).drop(columns="y").iloc[[0]]
        record = {name: float(value) for name, value in row.iloc[0].items()}
        with LocalAws() as aws:
            settings = Settings(endpoint_url=aws.endpoint_url, bucket="bench-artifacts", table="bench-registry")
            ensure_resources(settings)
            backends = Backends.from_settings(settings)
            os.environ.update({"MLOPS_BUCKET": settings.bucket, "MLOPS_TABLE": settings.table, "MLOPS_ENDPOINT_URL": aws.endpoint_url})
            app = LambdaHttpApp(lambda_handler)
            for name, (estimator, params) in FAMILIES.items():
                if importlib.util.find_spec(estimator.split(".", 1)[0]) is None:
                    rows.append((name, estimator, "not installed", "", "", f"pip install '.[{name}]'"))
                    continue
                spec = spec_for(name, estimator, params, data)
                trained = train(spec)
                entry = register_run(trained, backends, by="bench")
                backends.registry.promote(spec.name, entry.version, by="bench", reason="benchmark")
                event = event_for(spec.name, [record])

                def call(event: dict[str, Any] = event) -> None:
                    response = lambda_handler(event, app.context())
                    if response["statusCode"] != 200:
                        raise SystemExit(f"handler answered {response['statusCode']}: {response['body']}")

                with open(os.devnull, "w") as null, redirect_stdout(null):  # one EMF line per call
                    handler = timings(call, 2000)
                pipeline = fitted_pipeline(spec, data)
                native = timings(lambda pipeline=pipeline: pipeline.predict_proba(row), 2000, warm=50)
                model, array = pipeline.named_steps["estimator"], row.to_numpy(dtype="float64")
                alone = timings(lambda model=model, array=array: model.predict_proba(array), 2000, warm=50)
                p50, p99, native50 = statistics.median(handler), percentile(handler, 0.99), statistics.median(native)
                rows.append(
                    (
                        name,
                        estimator,
                        f"p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms",
                        f"{native50 * 1e3:.3f} ms ({ratio(p50, native50)} through the handler)",
                        f"{statistics.median(alone) * 1e3:.3f} ms",
                        f"{len(trained.onnx_bytes) / 1e3:,.0f} kB, parity {trained.record.parity.max_abs_diff:.1e}",
                    )
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        "| family | estimator (100 trees, depth 6, 20 features) | handler, 1 row, warm | native pipeline predict_proba, 1 row "
        "| the estimator alone, 1 row | ONNX size |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on the machine inflates latencies)")


if __name__ == "__main__":
    main()
