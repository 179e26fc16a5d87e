"""The cloud assembly local mode deploys: the stage's template synthesized in-process (:func:`synthesized`), or a
fresh one reused from ``cdk.out`` or :data:`LOCAL_OUT` (:func:`fresh_assembly`: newer than everything in
:data:`SYNTH_INPUTS`), its template read (:func:`load_template`) and the files of an asset it names
(:func:`asset_source`, through the assembly's ``*.assets.json``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from serverless_mlops.local.template import DEFAULT_STACK, LocalStackError

ROOT = Path(__file__).resolve().parents[2]  # the repository: serverless_mlops/local/assembly.py


def asset_source(assembly_dir: Path | None, object_key: str, *, owner: str = "") -> Path:
    """The file or folder of the asset uploaded as ``object_key`` (``<hash>.zip``), from the assembly's manifests."""
    where = f"{owner}: " if owner else ""
    if assembly_dir is None:
        raise LocalStackError(f"{where}asset {object_key} needs the cloud assembly folder (cdk.out) to find its files")
    asset_hash = object_key.split(".", 1)[0].rsplit("/", 1)[-1]
    for manifest in sorted(assembly_dir.glob("*.assets.json")):
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        if asset_hash in files:
            path = Path(files[asset_hash]["source"]["path"])
            path = path if path.is_absolute() else assembly_dir / path
            if not path.exists():
                raise LocalStackError(
                    f"{where}asset {asset_hash} ({manifest.name}) points at {path}, which does not exist: synthesize again"
                )
            return path
    raise LocalStackError(f"{where}asset {asset_hash} is in no *.assets.json of {assembly_dir}")


def load_template(assembly_dir: str | Path, stack_name: str = DEFAULT_STACK) -> dict[str, Any]:
    """The synthesized template of ``stack_name`` in a cloud assembly folder."""
    path = Path(assembly_dir) / f"{stack_name}.template.json"
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LocalStackError(f"no template {path}: synthesize the app first (make synth)") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalStackError(f"{path} is not a JSON template: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources", {}), dict):
        raise LocalStackError(f"{path} is not a CloudFormation template: expected an object with Resources")
    return document


# what the template is made from: the app and its config, the specs, the layers' locks and builder, CDK's flags, and
# the library modules the app reads (spec validation; the workflow's state and step names)
SYNTH_INPUTS = (
    "infra",
    "models",
    "layers/build.py",
    "layers/rules.py",
    "layers/elf.py",
    "layers/lockfile.py",
    "locks",
    "pyproject.toml",
    "cdk.json",
    "serverless_mlops/model/spec.py",
    "serverless_mlops/retraining/contract.py",
    "serverless_mlops/retraining/specs.py",
)
# where local mode writes its own synthesis: not cdk.out, which `cdk deploy` and pipelines read (`make synth` writes it)
LOCAL_OUT = Path("build") / "local.out"


def newest_input(root: Path = ROOT) -> float:
    """The latest modification time of what the template is synthesized from (:data:`SYNTH_INPUTS`; missing ones skipped)."""
    newest = 0.0
    for name in SYNTH_INPUTS:
        path = root / name
        paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest, *(p.stat().st_mtime for p in paths)])
    return newest


def fresh_assembly(root: Path = ROOT, stage: str = "dev") -> Path | None:
    """The stage's template in ``cdk.out`` (``make synth``) or else in :data:`LOCAL_OUT` (local mode's own synthesis),
    whichever is newer than everything it is synthesized from; None when neither is."""
    newest = newest_input(root)
    for folder in (root / "cdk.out", root / LOCAL_OUT):
        cached = folder / f"serverless-mlops-{stage}.template.json"
        if cached.is_file() and cached.stat().st_mtime > newest:
            return cached
    return None


def synthesized(
    *, root: Path = ROOT, stage: str = "dev", config: str | Path | None = None, outdir: Path | None = None
) -> tuple[dict[str, Any], Path]:
    """The template and assembly folder of the stage: a fresh one (:func:`fresh_assembly`) when no other config is
    asked for, else a synthesis in-process (``build_app``, no cdk-nag). The default config's synthesis is written
    into ``root/build/local.out``, so the next local run reuses it; another config's into ``outdir`` or a temporary
    folder.

    Asset staging stays on, as in ``cdk synth``: every asset is copied into the assembly, so it deploys as it is
    (``cdk deploy --app build/local.out``). With staging off, the assembly named the files where they were, and CDK's
    own assets (the BucketDeployment's AwsCliLayer, the custom resource providers' code) lay in the jsii kernel's
    temporary folders, gone when the synthesizing process ended. The copy costs nothing measurable here (4.2 s
    with it, 4.5 s without, layers built)."""
    stack_name = f"serverless-mlops-{stage}"
    cached = fresh_assembly(root, stage) if config is None else None
    if cached is not None:
        return load_template(cached.parent, stack_name), cached.parent
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")  # a local run, not a deployment
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from infra.app import build_app

    if config is None:
        outdir = root / LOCAL_OUT
    app = build_app(config, stage=stage, nag=False, outdir=outdir)
    assembly = app.synth()
    return dict(assembly.get_stack_by_name(stack_name).template), Path(assembly.directory)
