"""The training layer plus an estimator family's optional group (layers/rules.py EXTENDS), for deployments whose specs
name LightGBM or XGBoost: what each weighs against Lambda's 250 MiB, LightGBM training in its layer under the runtime's
Python, and the synth-time refusal of a family that does not fit (infra/families.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra.config import ConfigError, load_deployment
from infra.families import FUNCTION_CODE_BYTES, training_layer_group
from infra.packaging import stage_code
from layers.build import RuntimePython, build_layer, unzipped_size
from layers.rules import LAMBDA_UNZIPPED_LIMIT
from tests.helpers.runtime import clean_environment, last_json_line, run

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"

TRAIN = """
import json, os, sys
from serverless_mlops.model.spec import load_spec
from serverless_mlops.model.fit import train
record = train(load_spec(os.environ["SPEC"])).record
import lightgbm
print(json.dumps({"parity": record.parity.passed, "metrics": record.metrics, "lightgbm": lightgbm.__file__}))
"""


def _config(tmp_path: Path, *specs: Path) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump({"stage": "dev", "models": [str(s) for s in specs]}), encoding="utf-8")
    return path


def _variant(tmp_path: Path, base: str, estimator: str) -> Path:
    """models/<base>.yaml with another estimator, its data path made absolute."""
    document = yaml.safe_load((MODELS / f"{base}.yaml").read_text(encoding="utf-8"))
    document["name"] = f"{base}-{estimator.split('.', 1)[0]}"
    document["estimator"] = {"class": estimator, "params": {}}
    document["data"]["uri"] = str(MODELS / document["data"]["uri"])
    path = tmp_path / f"{document['name']}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lightgbm_layer() -> Path:
    return build_layer("training-lightgbm")


def test_the_lightgbm_training_layer_fits_lambda_with_its_function(lightgbm_layer: Path) -> None:
    manifest = json.loads((lightgbm_layer / "layer.json").read_text(encoding="utf-8"))
    assert {"lightgbm", "onnxmltools", "scikit_learn"} <= {name.split("==")[0] for name in manifest["installed"]}
    # lightgbm's library names the system's libgomp.so.1, which the runtime lacks: the layer's lib/ (/opt/lib) has it
    assert manifest["provided"] == {"libgomp.so.1": next(iter(manifest["provided"].values()))}
    assert (lightgbm_layer / "lib" / "libgomp.so.1").is_file()
    size = unzipped_size(lightgbm_layer / "python") + unzipped_size(lightgbm_layer / "lib")
    assert manifest["unzipped_bytes"] == size
    code = unzipped_size(stage_code("training"))
    assert code <= FUNCTION_CODE_BYTES
    assert size + code <= LAMBDA_UNZIPPED_LIMIT, f"{(size + code) / 1e6:.1f} MB"


def test_lightgbm_trains_in_its_layer_under_the_runtime_python(
    runtime_python: RuntimePython, lightgbm_layer: Path, runtime_dir: Path, tmp_path: Path
) -> None:
    code = tmp_path / "task"
    code.mkdir()
    (code / "serverless_mlops").symlink_to(ROOT / "serverless_mlops")
    env = clean_environment(
        code,
        lightgbm_layer / "python",
        runtime_dir,
        SPEC=str(MODELS / "breast-cancer-lightgbm.yaml"),
        LD_LIBRARY_PATH=str(lightgbm_layer / "lib"),
    )
    result = run(runtime_python, TRAIN, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    report = last_json_line(result)
    assert report["parity"] is True
    assert report["lightgbm"].startswith(str(lightgbm_layer))
    assert report["metrics"]["roc_auc"] > 0.97


def test_a_lightgbm_deployment_gets_the_lightgbm_training_layer(tmp_path: Path) -> None:
    deployment = load_deployment(_config(tmp_path, MODELS / "wine.yaml", MODELS / "breast-cancer-lightgbm.yaml"))
    assert training_layer_group(deployment) == "training-lightgbm"
    assert training_layer_group(load_deployment(_config(tmp_path, MODELS / "wine.yaml"))) == "training"


def test_an_xgboost_deployment_is_refused_at_synth_with_the_way_out(tmp_path: Path) -> None:
    """xgboost-cpu's 23 MB do not fit beside the training layer's 248 MB: one line, the model, the size, the Train step."""
    spec = _variant(tmp_path, "wine", "xgboost.XGBClassifier")
    deployment = load_deployment(_config(tmp_path, MODELS / "diabetes.yaml", spec))
    with pytest.raises(ConfigError) as caught:
        training_layer_group(deployment)
    message = str(caught.value)
    assert "\n" not in message
    assert "models[1] (wine-xgboost): xgboost.XGBClassifier needs the training layer plus [xgboost], " in message
    assert "more than Lambda's 262.1 MB (250 MiB): train it through a Train step of its own" in message
    assert "(docs/deploying.md, 'Swapping the Train step')" in message
    size = float(message.split("[xgboost], ")[1].split(" MB", maxsplit=1)[0])
    assert size * 10**6 > LAMBDA_UNZIPPED_LIMIT
    # with a Train step of its own, the training function keeps the plain training layer (it evaluates ONNX only)
    assert training_layer_group(deployment, custom_train_step=True) == "training"


def test_two_families_in_one_deployment_are_refused(tmp_path: Path) -> None:
    deployment = load_deployment(
        _config(tmp_path, MODELS / "breast-cancer-lightgbm.yaml", _variant(tmp_path, "wine", "xgboost.XGBClassifier"))
    )
    with pytest.raises(
        ConfigError, match=r"models\[0\] \(breast-cancer-lightgbm: lightgbm.LGBMClassifier\), models\[1\] .* two estimator families"
    ):
        training_layer_group(deployment)


def test_cdk_synth_of_an_xgboost_deployment_stops_with_the_one_line(tmp_path: Path) -> None:
    """The refusal is the app's: build_app (what `cdk synth` runs) raises it while composing the stack."""
    from infra.app import build_app

    config = _config(tmp_path, _variant(tmp_path, "diabetes", "xgboost.XGBRegressor"))
    expected = r"models\[0\] \(diabetes-xgboost\): xgboost.XGBRegressor needs the training layer plus \[xgboost\]"
    with pytest.raises(ConfigError, match=expected):
        build_app(config, nag=False, outdir=tmp_path / "cdk.out")
