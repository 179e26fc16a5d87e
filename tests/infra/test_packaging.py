"""Function code assets and layers: what goes in, what stays out, the size limit, the layer cache."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import infra.packaging as packaging
import layers.build as build
from infra.app import build_app
from infra.packaging import PackagingError, check_size, code_files, stage_code
from layers import lockfile
from layers.build import LayerBuildError, build_layer, pip_platforms, requirements, unzipped_size
from tests.helpers.template import NO_STAGING

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("function", ["inference", "drift_check"])
def test_the_code_asset_holds_the_handler_and_what_it_imports_only(function: str, tmp_path: Path) -> None:
    files = {str(p) for p in code_files(function)}
    assert f"functions/{function}/app.py" in files
    assert {"functions/__init__.py", "functions/observability.py", "serverless_mlops/__init__.py"} <= files
    assert not [f for f in files if f.startswith("serverless_mlops/cli/") or "__pycache__" in f or f.endswith(".pyc")]
    assert "serverless_mlops/model/fit.py" not in files  # scikit-learn's side of the library never ships to Lambda
    other = {"inference": "drift_check", "drift_check": "inference"}[function]
    assert not [f for f in files if f.startswith(f"functions/{other}/")]
    asset = stage_code(function, staging=tmp_path)
    assert stage_code(function, staging=tmp_path) == asset  # same content, same folder
    # the handler imports from the asset alone (the layer's packages come from this venv)
    probe = (
        "import functions.{f}.app as h, serverless_mlops; "
        "assert h.__file__.startswith({a!r}) and serverless_mlops.__file__.startswith({a!r}), (h.__file__, serverless_mlops.__file__)"
    ).format(f=function, a=str(asset))
    env = {"PATH": "/usr/bin:/bin", "POWERTOOLS_METRICS_NAMESPACE": "ServerlessMlops", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=asset, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_code_asset_has_bytecode_only_with_a_runtime_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = packaging.find_runtime_python(packaging.PYTHON_VERSION)
    if runtime is None:
        pytest.skip("no Python 3.12 interpreter on this machine (set MLOPS_LAYER_PYTHON)")
    compiled = stage_code("inference", staging=tmp_path)
    sources = list(compiled.rglob("*.py"))
    assert len(sources) > 10
    assert all((p.parent / "__pycache__" / f"{p.stem}.{runtime.cache_tag}.pyc").is_file() for p in sources)
    monkeypatch.setattr(packaging, "find_runtime_python", lambda version: None)
    bare = stage_code("inference", staging=tmp_path)
    assert bare != compiled  # the folder's name tells the two apart, so neither is reused for the other
    assert not list(bare.rglob("*.pyc"))
    assert sorted(p.relative_to(bare) for p in bare.rglob("*.py")) == sorted(p.relative_to(compiled) for p in sources)


def test_a_missing_handler_is_named(tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    with pytest.raises(PackagingError, match=r"functions/retraining/app.py: the handler of function 'retraining' does not exist"):
        code_files("retraining", root=tmp_path)


def test_relative_and_function_level_imports_are_followed(tmp_path: Path) -> None:
    (tmp_path / "functions" / "job").mkdir(parents=True)
    (tmp_path / "serverless_mlops" / "sub").mkdir(parents=True)
    for init in ("functions/__init__.py", "functions/job/__init__.py", "serverless_mlops/__init__.py", "serverless_mlops/sub/__init__.py"):
        (tmp_path / init).write_text("", encoding="utf-8")
    (tmp_path / "functions/job/app.py").write_text(
        "from . import helper\n\ndef lambda_handler(e, c):\n    from serverless_mlops import lazy\n", encoding="utf-8"
    )
    (tmp_path / "functions/job/helper.py").write_text(
        "from typing import TYPE_CHECKING\nimport serverless_mlops.sub.deep\nif TYPE_CHECKING:\n    import serverless_mlops.unused\n",
        encoding="utf-8",
    )
    (tmp_path / "functions/job/schema.json").write_text("{}", encoding="utf-8")
    (tmp_path / "serverless_mlops/lazy.py").write_text("from .sub import leaf\n", encoding="utf-8")
    (tmp_path / "serverless_mlops/sub/deep.py").write_text("import numpy\n", encoding="utf-8")
    (tmp_path / "serverless_mlops/sub/leaf.py").write_text("", encoding="utf-8")
    (tmp_path / "serverless_mlops/unused.py").write_text("", encoding="utf-8")
    files = {str(p) for p in code_files("job", root=tmp_path)}
    assert files == {
        "functions/__init__.py", "functions/job/__init__.py", "functions/job/app.py", "functions/job/helper.py",
        "functions/job/schema.json",
        "serverless_mlops/__init__.py", "serverless_mlops/lazy.py", "serverless_mlops/sub/__init__.py", "serverless_mlops/sub/deep.py",
        "serverless_mlops/sub/leaf.py",
    }  # fmt: skip


def test_a_function_over_the_limit_names_its_parts(tmp_path: Path) -> None:
    code, layer = tmp_path / "code", tmp_path / "layer-x"
    (code).mkdir()
    (layer / "python").mkdir(parents=True)
    (code / "app.py").write_bytes(b"x" * 1000)
    (layer / "python" / "big.so").write_bytes(b"x" * 3 * 2**20)
    layers = {layer.name: unzipped_size(layer / "python")}
    assert check_size("f", code, layers, limit=4 * 2**20) == 1000 + 3 * 2**20
    with pytest.raises(
        PackagingError,
        match=r"function 'f': 3.0 MB unzipped with its layers exceeds Lambda's limit of 2 MB \(code 0.0 MB, layer layer-x 3.0 MB\)",
    ):
        check_size("f", code, layers, limit=2 * 2**20)


def test_the_synth_fails_when_a_function_and_its_layers_are_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaging, "LAMBDA_UNZIPPED_LIMIT", 10 * 2**20)
    with pytest.raises(PackagingError, match=r"function 'inference': \d+\.\d MB unzipped with its layers exceeds Lambda's limit of 10 MB"):
        build_app(nag=False, context=NO_STAGING)


def test_layer_requirements_are_the_core_plus_the_group_without_the_runtimes_boto3() -> None:
    reqs = requirements("inference")
    names = {r.split(">")[0].split("<")[0].split("[")[0].split("=")[0] for r in reqs}
    assert {"numpy", "pydantic", "onnxruntime", "aws-lambda-powertools"} <= names
    assert "boto3" not in names
    assert "scikit-learn" not in names
    assert "scikit-learn" in {r.split(">")[0] for r in requirements("training")}
    with pytest.raises(LayerBuildError, match=r"no dependency group \[gpu\] for layer 'gpu'"):
        requirements("gpu")


def test_platform_tags_cover_every_older_glibc() -> None:
    tags = pip_platforms("manylinux_2_34_x86_64")
    assert tags[0] == "manylinux_2_34_x86_64"
    assert "manylinux_2_28_x86_64" in tags
    assert tags[-1] == "manylinux2014_x86_64"
    assert pip_platforms("manylinux2014_aarch64") == ["manylinux2014_aarch64"]


def test_the_inference_layer_is_lambda_ready() -> None:
    path = build_layer("inference")  # built by `make layers` (or the first synth) and cached
    manifest = json.loads((path / "layer.json").read_text(encoding="utf-8"))
    content = path / "python"
    assert manifest["unzipped_bytes"] == unzipped_size(content) < 150 * 2**20
    installed = {entry.split("==")[0].lower() for entry in manifest["installed"]}
    assert {"numpy", "onnxruntime", "pydantic", "pydantic_core", "aws_lambda_powertools"} <= installed
    assert not {"boto3", "botocore", "s3transfer"} & installed
    assert not (content / "botocore").exists()
    assert not list(content.rglob("*.cpython-311.pyc"))  # bytecode only of the runtime's Python (test_layer_runtime.py)
    assert not [p for p in content.rglob("tests") if p.is_dir()]
    assert not (content / "bin").exists()
    assert not list(content.glob("*.dist-info/RECORD"))
    # compiled for the runtime's Python and glibc, not this machine's
    assert list(content.glob("onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-x86_64-linux-gnu.so"))


def test_concurrent_builders_build_once_and_share_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "CACHE", tmp_path)
    calls = []

    def slow_build(staging: Path, name: str, *args: object) -> dict[str, object]:
        calls.append(name)
        (staging / "python").mkdir()
        (staging / "python" / "module.py").write_text("x = 1\n", encoding="utf-8")
        threading.Event().wait(0.2)
        return {"layer": name}

    monkeypatch.setattr(build, "_build_into", slow_build)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(build_layer("inference"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["inference"]
    assert len(set(results)) == 1
    assert len(results) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([results[0].name, results[0].name + ".lock"])  # no half-built folders


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock that matches pyproject but pins releases that do not exist: pip fails, and no half-built layer stays."""
    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(lockfile, "LOCKS", tmp_path / "locks")
    inputs = build.lock_inputs("inference")
    fake = {"numpy": "2.99.0", "msgspec": "0.99.0", "pydantic": "2.99.0", "onnxruntime": "1.99.0", "aws-lambda-powertools": "3.99.0"}
    body = "".join(f"{name}=={version} \\\n    --hash=sha256:{'0' * 64}\n" for name, version in fake.items())
    inputs.path.parent.mkdir()
    inputs.path.write_text(inputs.header("test") + body, encoding="utf-8")
    with pytest.raises(LayerBuildError, match=r"layer 'inference' \(manylinux_2_34_x86_64, Python 3.12\): pip install failed: ERROR: "):
        build_layer("inference")
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]


def test_another_platform_needs_a_lock_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "CACHE", tmp_path)
    with pytest.raises(
        LayerBuildError, match=r"layer 'inference': .*/layer-inference-py312-manylinux_2_28_aarch64.txt: no lock .*make lock"
    ):
        build_layer("inference", platform="manylinux_2_28_aarch64")  # arm64's is manylinux_2_34_aarch64, which has one
    assert list(tmp_path.iterdir()) == []


def _module_level_imports(path: Path) -> set[str]:
    """Top-level package names a module imports when it is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return names


@pytest.mark.parametrize("function", ["inference", "drift_check"])
def test_every_package_the_asset_imports_is_in_its_layer_or_the_runtime(function: str) -> None:
    """The Lambda has the asset, the layer and the runtime's boto3: each module-level import must resolve there."""
    layer = build_layer("inference") / "python"
    provided = {p.name.removesuffix(".py") for p in layer.iterdir()} | {"boto3", "botocore", "s3transfer"}
    needed = set().union(*(_module_level_imports(ROOT / f) for f in code_files(function) if f.suffix == ".py"))
    missing = needed - provided - set(sys.stdlib_module_names) - {"functions", "serverless_mlops"}
    assert missing == set()


def test_a_change_to_a_layer_alone_reaches_the_function_version_the_api_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cdk.json's @aws-cdk/aws-lambda:recognizeLayerVersion: without it, a new lock (new layer content, same code) kept
    the `live` alias on the old function version, whose logical id did not change, so the API served the old layer."""
    real = build.build_layer

    def version_id(layer_name: str) -> str:
        def fake(group: str, **options: Any) -> Path:
            if group != "inference":
                return real(group, **options)
            folder = tmp_path / f"inference-{layer_name}"
            (folder / "python").mkdir(parents=True, exist_ok=True)
            (folder / "python" / "marker.py").write_text(f"LAYER = {layer_name!r}\n")
            return folder

        monkeypatch.setattr(packaging, "build_layer", fake)
        app = build_app(nag=False, context=NO_STAGING)
        template = app.synth().get_stack_by_name("serverless-mlops-dev").template
        alias = next(r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Alias" and r["Properties"]["Name"] == "live")
        return str(alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0])

    first, second = version_id("a1"), version_id("b2")
    assert first.startswith("InferenceHandlerFunctionCurrentVersion")
    assert first != second
