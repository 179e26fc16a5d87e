"""The training layer as the retraining workflow's Train function runs it: under the runtime's Python (3.12).

A Python 3.12 interpreter, with ``-S`` so that none of its own site-packages can stand in for what the layer lacks,
gets the repository's ``serverless_mlops`` package, then the built layer, then a folder standing in for the runtime's
boto3, in Lambda's ``sys.path`` order. It trains an example model end to end through
``serverless_mlops.model.fit.train``: fit, ONNX conversion, parity check, metrics, profile. The layer is pruned,
sourceless (a ``.pyc`` in place of each ``.py``) and its shared libraries are stripped of their symbols
(layers/README.md), so other tests load every extension module and library it has and check what it contains.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest

from infra.packaging import stage_code
from layers.build import PYTHON_VERSION, RuntimePython, build_layer, unzipped_size
from layers.rules import LAMBDA_UNZIPPED_LIMIT, SIZE_BUDGET
from serverless_mlops.model.fit import TrainedModel
from tests.helpers.runtime import FAKE_AWS, clean_environment, last_json_line, run

ROOT = Path(__file__).resolve().parents[2]
# the room kept below Lambda's limit for newer releases of the layer's packages (layers/build.py SIZE_BUDGET)
HEADROOM = 10 * 10**6
FROM_THE_LAYER = ("numpy", "scipy", "pandas", "sklearn", "skl2onnx", "onnx", "onnxruntime", "pydantic", "yaml")

TRAIN = """
import json, os, sys, time
started = time.perf_counter()
from serverless_mlops.model.spec import load_spec
from serverless_mlops.model.fit import train
trained = train(load_spec(os.environ["SPEC"]))
trained.write(os.environ["OUT"])
origins = {name: getattr(sys.modules.get(name), "__file__", None) for name in json.loads(os.environ["MODULES"])}
print(json.dumps({"python": sys.version.split()[0], "origins": origins, "metrics": trained.record.metrics,
                  "seconds": time.perf_counter() - started}))
"""

LOAD_ALL = """
import ctypes, importlib, json, os, sys
layer = sys.argv[1]
loaded, failed = 0, {}
for dirpath, _dirs, files in sorted(os.walk(layer)):
    for file in sorted(files):
        if ".so" not in file:
            continue
        path = os.path.join(dirpath, file)
        relative = os.path.relpath(path, layer)
        try:
            if ".cpython-" in file or file.endswith(".abi3.so"):  # an extension module: import it (runs its PyInit)
                importlib.import_module(relative.split(".")[0].replace(os.sep, "."))
            else:  # a library one links: load it as the loader does
                ctypes.CDLL(path)
            loaded += 1
        except ImportError as exc:
            # the loader mapped the file and its init ran: importing it before the module that imports it is a
            # circular import in an untouched package too (scipy.linalg._matfuncs_sqrtm_triu)
            if "partially initialized module" in str(exc):
                loaded += 1
            else:
                failed[relative] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            failed[relative] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"loaded": loaded, "failed": failed}))
"""


HANDLER = """
import importlib, json, os, sys
for name in json.loads(os.environ["MODULES"]):
    importlib.import_module(name)
from functions.training.app import lambda_handler

class Context:
    function_name = "training"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:training"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

try:
    lambda_handler({"step": "fit-everything"}, Context())
    error = None
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
origins = {name: getattr(sys.modules.get(name), "__file__", None) for name in ("aws_lambda_powertools", "aws_xray_sdk", "pydantic")}
print(json.dumps({"error": error, "origins": origins}))
"""


@pytest.fixture(scope="module")
def layer() -> Path:
    return build_layer("training") / "python"  # cached by hash; `make layers` builds it


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Train function's code stand-in: the repository's serverless_mlops package, alone in a folder."""
    folder = tmp_path_factory.mktemp("task")
    (folder / "serverless_mlops").symlink_to(ROOT / "serverless_mlops")
    return folder


def test_the_training_layer_trains_a_model_end_to_end_under_the_runtime_python(
    runtime_python: RuntimePython, layer: Path, code: Path, runtime_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    env = clean_environment(
        code,
        layer,
        runtime_dir,
        SPEC=str(ROOT / "models" / "wine.yaml"),  # its data path resolves against the spec's folder: models/data/wine.csv
        OUT=str(out),
        MODULES=json.dumps([*FROM_THE_LAYER, "serverless_mlops", "boto3"]),
        SERVERLESS_MLOPS_CODE_VERSION="test",
        MLOPS_USER="test",
    )
    result = run(runtime_python, TRAIN, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    report = last_json_line(result)
    assert report["python"].startswith(f"{PYTHON_VERSION}.")
    origins = report["origins"]
    for package in FROM_THE_LAYER:
        assert origins[package].startswith(str(layer)), (package, origins[package])
        assert origins[package].endswith(".pyc"), (package, origins[package])  # sourceless: no .py in the layer
    assert origins["serverless_mlops"].startswith(str(code))
    assert origins["boto3"] is None or origins["boto3"].startswith(str(runtime_dir))

    # the run folder it wrote is what `mlops register` uploads: read it here (Python 3.11, this venv's packages)
    trained = TrainedModel.read(out)
    record = trained.record
    assert (record.model, record.estimator, record.code_version) == ("wine", "sklearn.ensemble.RandomForestClassifier", "test")
    assert set(report["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert record.metrics == pytest.approx(report["metrics"])
    assert record.metrics["f1"] >= 0.85  # the spec's evaluation floor
    assert record.parity.passed
    assert record.parity.max_abs_diff <= record.parity.tolerance
    frame = pd.read_csv(ROOT / "models" / "data" / "wine.csv")
    assert (record.train_rows + record.holdout_rows, len(record.signature.features)) == (len(frame), 13)
    assert trained.profile_bytes
    # the ONNX model converted under 3.12 predicts here as it did there
    session = onnxruntime.InferenceSession(trained.onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {f.input_name: frame[[f.name]].to_numpy(np.float32) for f in record.signature.features}
    labels = session.run(None, feeds)[0].ravel()
    assert float(np.mean(labels.astype(str) == frame["target"].astype(str).to_numpy())) >= 0.9


def test_every_extension_module_and_library_of_the_training_layer_loads(runtime_python: RuntimePython, layer: Path) -> None:
    """The libraries lost their symbol tables to ``strip``: each must still load and each extension module import."""
    result = run(runtime_python, LOAD_ALL, env=clean_environment(layer), cwd=layer, args=(str(layer),))
    assert result.returncode == 0, result.stderr[-4000:]
    report = last_json_line(result)
    assert report["failed"] == {}
    assert report["loaded"] == len([p for p in layer.rglob("*.so*") if p.is_file()]) > 200


def test_the_training_layer_fits_lambda_with_room_for_its_function(runtime_python: RuntimePython, layer: Path) -> None:
    size = unzipped_size(layer)
    assert size <= SIZE_BUDGET["training"], f"{size / 1e6:.1f} MB"
    # with the Train function's own code, 10 MB stay free below Lambda's 250 MiB on the locked versions
    code = unzipped_size(stage_code("training"))
    assert code <= 10**6, f"the training function's code is {code / 1e6:.1f} MB: SIZE_BUDGET allows it 1 MB"
    assert size + code + HEADROOM <= LAMBDA_UNZIPPED_LIMIT, f"{(LAMBDA_UNZIPPED_LIMIT - size - code) / 1e6:.1f} MB free"
    manifest = json.loads((layer.parent / "layer.json").read_text(encoding="utf-8"))
    assert manifest["unzipped_bytes"] == size
    assert manifest["bytecode"]["mode"] == "sourceless"
    assert "-sourceless-" in layer.parent.name
    assert manifest["stripped"]["freed"] > 10 * 10**6
    assert manifest["pruned"]["onnxruntime/capi/libonnxruntime.so.*"] > 30 * 10**6
    assert manifest["pruned"]["onnx/backend/test"] > 10 * 10**6
    # sourceless: a legacy .pyc of the runtime's Python in place of each module, no source, no __pycache__
    assert not list(layer.rglob("*.py"))
    assert not [p for p in layer.rglob("__pycache__") if p.is_dir()]
    modules = list(layer.rglob("*.pyc"))
    assert len(modules) > 1500
    assert {p.read_bytes()[:4] for p in modules} == {bytes.fromhex(runtime_python.magic)}
    # what the pruning kept: the extension onnxruntime imports, protobuf (onnx and skl2onnx build graphs with it), and
    # both OpenBLAS builds (numpy links its 64-bit-integer one, scipy its own)
    assert list(layer.glob("onnxruntime/capi/onnxruntime_pybind11_state.*.so"))
    assert (layer / "google" / "protobuf").is_dir()
    assert list(layer.glob("numpy.libs/libscipy_openblas64_*.so"))
    assert list(layer.glob("scipy.libs/libscipy_openblas-*.so"))
    assert not [p for p in ("onnxruntime/tools", "onnx/backend/test", "onnx/reference") if (layer / p).exists()]
    assert not [p for p in layer.rglob("*") if p.suffix in (".pyx", ".c", ".cc", ".cpp", ".h", ".tp")]


def test_nothing_left_in_the_training_layer_imports_the_pruned_onnx_reference(runtime_python: RuntimePython, layer: Path) -> None:
    """onnx.reference went with its only importers (onnx's backend tests, onnxruntime's quantization). A sourceless
    module names what it imports absolutely in its bytecode, so a new importer would show here."""
    assert len(list(layer.glob("onnx/*.pyc"))) > 10  # the layer has bytecode to search (a 3.12 interpreter built it)
    importers = sorted(str(p.relative_to(layer)) for p in layer.rglob("*.pyc") if b"onnx.reference" in p.read_bytes())
    assert importers == []


def test_the_training_function_imports_and_runs_its_decorators_under_the_runtime_python(
    runtime_python: RuntimePython, layer: Path, runtime_dir: Path, tmp_path: Path
) -> None:
    """The training function's asset on the training layer: every module imports, and the handler's powertools stack
    (logger, metrics, an active X-Ray tracer) runs an invocation, which refuses an unknown step by name."""
    from infra.packaging import stage_code

    asset = stage_code("training", staging=tmp_path)
    modules = [".".join(p.relative_to(asset).with_suffix("").parts).removesuffix(".__init__") for p in sorted(asset.rglob("*.py"))]
    env = clean_environment(
        asset,
        layer,
        runtime_dir,
        **FAKE_AWS,
        MODULES=json.dumps(modules),
        POWERTOOLS_SERVICE_NAME="training",
        POWERTOOLS_METRICS_NAMESPACE="ServerlessMlops",
        # as on Lambda with active tracing: the tracer is on and imports the X-Ray SDK from the layer
        AWS_LAMBDA_FUNCTION_NAME="training",
        LAMBDA_TASK_ROOT="/var/task",
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
    )
    result = run(runtime_python, HANDLER, env=env, cwd=asset, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    report = last_json_line(result)
    assert report["error"] == "ValueError: unknown step 'fit-everything': this function runs prepare, train, evaluate"
    assert len(modules) > 20
    for package in ("aws_lambda_powertools", "aws_xray_sdk", "pydantic"):
        assert str(report["origins"][package]).startswith(str(layer)), (package, report["origins"][package])
    assert '"service":"training"' in result.stdout.replace(" ", "")  # the logger's structured line
