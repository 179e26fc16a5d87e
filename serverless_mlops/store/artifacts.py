"""The artifact store: content-addressed objects in S3, verified by sha256 before anything uses them.

Keys are ``artifacts/{model}/{sha256}/{filename}``: the same bytes always land at the same key, so an upload is
idempotent and a key can never name different content. Uploads send a SHA256 checksum (S3 rejects bytes corrupted
in transit) with server-side encryption; the S3 VersionId is recorded and downloads read that exact version, then
recompute the sha256 and refuse a mismatch.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from botocore.exceptions import FlexibleChecksumError
from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import ArtifactIntegrityError, NotFoundError

# S3 answers a GetObject of a missing key with 403 AccessDenied, not 404, when the caller may not list the bucket
# without a prefix: each deployed function may list only its own prefixes (infra/packaging.py), so "denied" on a key
# it may read means "missing" as often as a broken grant. What a read of such a key says in both cases:
MISSING_OR_DENIED = (
    "no such object, or this role may not read it (S3 answers 403 for a missing key to a role that may list only some prefixes)"
)
READ_MISSING_CODES = frozenset({"NoSuchKey", "404"})  # a missing bucket is a wrong setting, not a missing object: callers say which
READ_DENIED_CODES = frozenset({"AccessDenied", "403"})


def read_failure(exc: Exception) -> str | None:
    """What a failed GetObject means to a reader of its own prefixes: "no such object" (NoSuchKey, a bare 404),
    :data:`MISSING_OR_DENIED` (AccessDenied, 403), or None for anything else, NoSuchBucket included (let it through)."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    if code in READ_MISSING_CODES:
        return "no such object"
    if code in READ_DENIED_CODES:
        return MISSING_OR_DENIED
    return None


def encryption_args(kms_key_id: str | None) -> dict[str, str]:
    """``put_object``'s server-side encryption for anything written to the artifact bucket: SSE-KMS with the
    configured key, else SSE-S3."""
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": "AES256"}


class ArtifactRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    uri: str
    sha256: str
    version_id: str | None = None
    size: int

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[1]


class ArtifactStore:
    """Put and get verified artifacts in one bucket (``s3`` is a boto3 S3 client)."""

    def __init__(self, bucket: str, s3: Any, *, kms_key_id: str | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3
        self.kms_key_id = kms_key_id

    def key_for(self, model: str, sha256: str, filename: str) -> str:
        return f"artifacts/{model}/{sha256}/{filename}"

    def put(self, model: str, data: bytes, filename: str) -> ArtifactRef:
        digest = hashlib.sha256(data)
        key = self.key_for(model, digest.hexdigest(), filename)
        encryption = encryption_args(self.kms_key_id)
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
            Metadata={"sha256": digest.hexdigest(), "model": model},
            **encryption,
        )
        return ArtifactRef(uri=f"s3://{self.bucket}/{key}", sha256=digest.hexdigest(), version_id=response.get("VersionId"), size=len(data))

    def get(self, ref: ArtifactRef, *, model: str, version: int | str) -> bytes:
        """The artifact's bytes, only if their sha256 is the one recorded; names the model and version otherwise."""
        kwargs: dict[str, str] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id and ref.version_id != "null":
            kwargs["VersionId"] = ref.version_id
        try:
            body = self.s3.get_object(**kwargs)["Body"].read()
        except FlexibleChecksumError as exc:  # S3's own SHA256 of the object no longer matches its bytes
            raise ArtifactIntegrityError(
                f"artifact for model {model!r} version {version} failed verification: {ref.uri} does not match the "
                "checksum S3 stored at upload; refusing to load it"
            ) from exc
        except self.s3.exceptions.NoSuchKey as exc:
            raise NotFoundError(f"artifact for model {model!r} version {version} is missing: {ref.uri}") from exc
        except self.s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchVersion", "NoSuchBucket", "404", "InvalidArgument"):
                raise NotFoundError(f"artifact for model {model!r} version {version} is missing: {ref.uri} ({code})") from exc
            raise
        actual = hashlib.sha256(body).hexdigest()
        if actual != ref.sha256:
            raise ArtifactIntegrityError(
                f"artifact for model {model!r} version {version} failed verification: {ref.uri} has sha256 {actual[:12]}…, "
                f"the registry recorded {ref.sha256[:12]}…; refusing to load it"
            )
        return body  # type: ignore[no-any-return]
