"""Function packaging: each function's code asset, its layers, and Lambda's 250 MB unzipped limit.

A function's code asset is a staged folder holding ``functions/`` (the package's top-level modules and the
function's own folder) and exactly the ``serverless_mlops`` modules its handler can import, found by following
the import statements from the handler (module-level and inside functions; not those under ``if TYPE_CHECKING:``).
The CLI, training and local-mode modules stay out unless the handler reaches them. No docker: the folder is staged here and
``Code.from_asset`` zips it.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import ROOT, ConfigError, Deployment, Logging
from infra.storage import LogsKey
from layers.build import build_layer, find_runtime_python, precompile, unzipped_size
from layers.rules import LAMBDA_UNZIPPED_LIMIT, PLATFORMS, PYTHON_VERSION, X86_ONLY

LOCAL_PACKAGES = ("functions", "serverless_mlops")
RUNTIME = lambda_.Runtime.PYTHON_3_12  # the layers are built for this Python (layers/build.py PYTHON_VERSION)
# the deployment config's architecture → Lambda's; layers/rules.py PLATFORMS gives each its layers' platform tag
ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
STAGING = ROOT / "build" / "lambda"
RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
assert RUNTIME.name == f"python{PYTHON_VERSION}", "the runtime and the layers' Python disagree"
assert set(ARCHITECTURES) == set(PLATFORMS), "every architecture needs its layers' platform"
# POWERTOOLS_LOG_LEVEL for each of Lambda's application log levels (the logging module has no TRACE; FATAL is CRITICAL),
# so powertools' Logger and Lambda's filter agree (powertools warns when Lambda's level is the higher one)
POWERTOOLS_LEVELS = {"TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR", "FATAL": "CRITICAL"}


NAMESPACE = "ServerlessMlops"  # CloudWatch metrics (EMF) of every function; the alarms read them there


@dataclass(frozen=True)
class StackBase:
    """What every capability construct builds on: the deployment, the artifact bucket and the registry table."""

    deployment: Deployment
    bucket: s3.IBucket
    table: dynamodb.ITableV2

    @property
    def environment(self) -> dict[str, str]:
        """The environment every function of the stack gets (COMMON.md): its bucket and table, metrics and logs."""
        return {
            "MLOPS_BUCKET": self.bucket.bucket_name,
            "MLOPS_TABLE": self.table.table_name,
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": POWERTOOLS_LEVELS[self.deployment.config.logging.application_level],
        }


class PackagingError(ConfigError):
    """A function cannot be packaged (missing handler, over Lambda's size limit); the message names the function."""


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only never run)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(path: Path, module: str, root: Path) -> set[str]:
    """Local modules that ``path`` imports anywhere in its body (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {name for name in found if name.split(".")[0] in LOCAL_PACKAGES and _module_file(name, root) is not None}


def code_files(function: str, root: Path = ROOT) -> list[Path]:
    """Every file the function's code asset needs, relative to ``root``: its folder, functions/*.py, and their imports."""
    folder = root / "functions" / function
    if not (folder / "app.py").is_file():
        raise PackagingError(f"functions/{function}/app.py: the handler of function {function!r} does not exist")
    start = [p for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts]
    start += sorted((root / "functions").glob("*.py"))
    pending = [(p, ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")) for p in start]
    seen: set[Path] = set()
    while pending:
        path, module = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        parts = module.split(".")
        for depth in range(1, len(parts)):  # every parent package's __init__.py
            parent = _module_file(".".join(parts[:depth]), root)
            if parent is not None and parent not in seen:
                pending.append((parent, ".".join(parts[:depth])))
        for imported in _imports(path, module, root):
            imported_file = _module_file(imported, root)
            if imported_file is not None and imported_file not in seen:
                pending.append((imported_file, imported))
    data = [p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    return sorted(p.relative_to(root) for p in seen | set(data))


def stage_code(function: str, root: Path = ROOT, staging: Path = STAGING) -> Path:
    """A folder with exactly ``code_files(function)``, named by their content hash (reused when unchanged), and their
    bytecode for the runtime's Python when this machine has that interpreter (as the layers have theirs: /var/task is
    read-only, so without it every cold start compiles the function's modules)."""
    files = code_files(function, root)
    python = find_runtime_python(PYTHON_VERSION)
    digest = hashlib.sha256(f"{python.cache_tag}:{python.magic}".encode() if python else b"no bytecode")
    for relative in files:
        digest.update(str(relative).encode() + b"\0" + (root / relative).read_bytes() + b"\0")

    def fill(folder: Path) -> None:
        for relative in files:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, folder / relative)
        if python is not None:
            precompile(folder, python, ddir="/var/task")

    return stage(staging / f"{function}-{digest.hexdigest()[:16]}", fill)


def stage(final: Path, fill: Callable[[Path], None]) -> Path:
    """``final``, a folder named by a hash of its content: reused when it exists, else filled in a temporary sibling
    by ``fill`` and renamed into place, so a reader never sees it half-written (nor a failed fill's leftovers)."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        fill(temporary)
        os.rename(temporary, final)
    except OSError:
        if not final.is_dir():
            raise
        # another process staged the same content first
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def check_size(function: str, code: Path, layers: dict[str, int], limit: int = LAMBDA_UNZIPPED_LIMIT) -> int:
    """Fail the synth when a function with its layers (folder name → unzipped bytes) exceeds Lambda's unzipped limit;
    returns the total bytes."""
    parts = {"code": unzipped_size(code), **{f"layer {name}": size for name, size in layers.items()}}
    total = sum(parts.values())
    if total > limit:
        detail = ", ".join(f"{name} {size / 2**20:.1f} MB" for name, size in parts.items())
        raise PackagingError(
            f"function {function!r}: {total / 2**20:.1f} MB unzipped with its layers exceeds Lambda's limit of {limit / 2**20:.0f} MB"
            f" ({detail})"
        )
    return total


class Layer(Construct):
    """A layer built by layers/build.py from a pyproject dependency group; the asset hash is the build's cache key."""

    def __init__(self, scope: Construct, construct_id: str, *, group: str, architecture: str = "x86_64") -> None:
        super().__init__(scope, construct_id)
        if architecture not in ARCHITECTURES:
            raise PackagingError(f"layer {group!r}: architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
        if group in X86_ONLY and architecture != "x86_64":
            raise PackagingError(f"layer {group!r} is built for x86_64 only (layers/rules.py X86_ONLY says why), not {architecture}")
        self.architecture = architecture
        self.path = build_layer(group, platform=PLATFORMS[architecture])
        # measured once: every function that uses the layer counts it against Lambda's limit
        self.unzipped_bytes = unzipped_size(self.path / "python")
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(self.path), exclude=["layer.json"], asset_hash_type=cdk.AssetHashType.CUSTOM, asset_hash=self.path.name
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURES[architecture]],
            description=f"serverless-mlops {group}: core dependencies + [{group}] for {RUNTIME.name} on {architecture}",
        )


class PythonFunction(Construct):
    """One handler of functions/ with its layers: memory, timeout, active tracing and a log group with retention.

    It runs on its layers' architecture (they must agree), logs JSON with Lambda's advanced logging controls at the
    ``logging`` levels, and with ``snap_start`` each published version is snapshotted after its initialization."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: str,
        description: str,
        layers: list[Layer],
        memory_mb: int,
        timeout: cdk.Duration,
        environment: dict[str, str],
        log_retention_days: int,
        reserved_concurrency: int | None = None,
        logging: Logging | None = None,
        snap_start: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        architectures = sorted({layer.architecture for layer in layers}) or ["x86_64"]
        if len(architectures) > 1:
            raise PackagingError(f"function {function!r}: its layers are built for different architectures ({', '.join(architectures)})")
        logging = logging or Logging()
        code = stage_code(function)
        self.unzipped_bytes = check_size(function, code, {layer.path.name: layer.unzipped_bytes for layer in layers}, LAMBDA_UNZIPPED_LIMIT)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=RETENTION[log_retention_days], removal_policy=cdk.RemovalPolicy.DESTROY, encryption_key=LogsKey.of(self)
        )
        # an own role instead of AWSLambdaBasicExecutionRole: it may write to this function's log group only
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=f"{function} function")
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURES[architectures[0]],
            handler=f"functions.{function}.app.lambda_handler",
            code=lambda_.Code.from_asset(str(code), asset_hash_type=cdk.AssetHashType.CUSTOM, asset_hash=code.name),
            layers=[layer.layer for layer in layers],
            description=description,
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            log_group=self.log_group,
            role=self.role,
            reserved_concurrent_executions=reserved_concurrency,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel(logging.application_level),
            system_log_level_v2=lambda_.SystemLogLevel(logging.system_level),
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
        )
        self.bucket_prefixes: set[str] = set()  # what grant_objects granted: infra/nag.py acknowledges each

    def grant_objects(self, bucket: s3.IBucket, *, read: Sequence[str] = (), put: Sequence[str] = ()) -> None:
        """Read the objects under each ``read`` prefix of ``bucket`` and list only those prefixes; write under each ``put``
        prefix; and use the bucket's KMS key for exactly that: decrypt what it reads, make data keys for what it writes.

        Written out rather than ``bucket.grant_read``/``grant_put``: those also allow ``s3:List*`` on the whole bucket (every
        key of every model, captured requests included) and ``kms:ReEncrypt*``/``kms:GenerateDataKey*`` for any object, and
        cannot carry the conditions that limit a listing (``s3:prefix``) or a use of the key (the object's ARN, which S3
        sends as the encryption context when the bucket has no S3 Bucket Key). A function that writes gets
        ``MLOPS_KMS_KEY_ID``, which the code passes to put_object (``serverless_mlops.store.artifacts.encryption_args``)."""
        read, put = _prefixes(read), _prefixes(put)
        key = bucket.encryption_key
        if key is None:
            raise PackagingError(f"{self.node.path}: grant_objects: the bucket has no customer-managed KMS key (ArtifactStore creates one)")
        via_s3 = {"kms:ViaService": f"s3.{cdk.Stack.of(self).region}.amazonaws.com"}

        def objects(prefixes: list[str]) -> list[str]:
            return [bucket.arn_for_objects(f"{prefix}/*") for prefix in prefixes]

        if read:
            self.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject*"], resources=objects(read)))
            # ListObjectsV2 is allowed only with a Prefix under one of these (a listing of the whole bucket has no s3:prefix)
            self.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}/*" for prefix in read]}},
                )
            )
            self.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={"StringEquals": via_s3, "StringLike": {"kms:EncryptionContext:aws:s3:arn": objects(read)}},
                )
            )
        if put:
            self.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=objects(put)))
            # a single PutObject under SSE-KMS needs a data key only (the code makes no multipart uploads)
            self.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey"],
                    resources=[key.key_arn],
                    conditions={"StringEquals": via_s3, "StringLike": {"kms:EncryptionContext:aws:s3:arn": objects(put)}},
                )
            )
            self.function.add_environment("MLOPS_KMS_KEY_ID", key.key_arn)
        self.bucket_prefixes.update(read, put)


def _prefixes(prefixes: Sequence[str]) -> list[str]:
    """``prefixes`` as given (``capture``, ``runs``), refusing what would widen a grant: empty, a slash or a wildcard."""
    for prefix in prefixes:
        if not prefix or "/" in prefix or "*" in prefix or "?" in prefix:
            raise PackagingError(f"grant_objects: prefix {prefix!r} must be one top-level folder of the bucket (no '/', '*' or '?')")
    return sorted(set(prefixes))
