"""The S3 reads and writes of a batch job: small JSON documents, ranged reads of a shard's whole lines, and uploads
that stream (multipart once a part is full, so a shard's output never has to fit in memory)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from serverless_mlops.batch.contract import Shard
from serverless_mlops.store.artifacts import READ_MISSING_CODES, encryption_args

PART_BYTES = 8 << 20  # S3 wants parts of at least 5 MiB (all but the last)
CONTINUATION_BYTES = 64 << 10  # how much more is read at a time to finish a shard's last line


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class Objects:
    """A boto3 S3 client plus the artifact bucket (writes there carry its server-side encryption)."""

    def __init__(self, s3: Any, bucket: str, *, kms_key_id: str | None = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.kms_key_id = kms_key_id

    def _encryption(self, bucket: str) -> dict[str, str]:
        return encryption_args(self.kms_key_id) if bucket == self.bucket else {}

    def read_json(self, bucket: str, key: str) -> Any | None:
        """The JSON document at ``key``, or None when there is none."""
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.ClientError as exc:
            if _code(exc) in READ_MISSING_CODES:
                return None
            raise
        return json.loads(body)

    def write_json(self, bucket: str, key: str, document: Any) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **self._encryption(bucket))

    def delete(self, bucket: str, key: str) -> None:
        self.s3.delete_object(Bucket=bucket, Key=key)

    def read_range(self, bucket: str, key: str, first: int, last: int) -> bytes:
        """Bytes ``first``..``last`` (inclusive) of the object."""
        return self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"].read()  # type: ignore[no-any-return]

    def blocks(self, shard: Shard, block_bytes: int) -> Iterator[tuple[int, bytes]]:
        """The shard's lines in blocks of whole lines: (byte offset of the block in the object, its bytes).

        A shard owns every line whose first byte lies in [start, end): the line that began before ``start`` belongs to
        the previous shard, and the last line is read on past ``end`` until its newline (or the object's end)."""
        if shard.end <= shard.start:
            return
        first = max(shard.start - 1, 0)
        body = self.s3.get_object(Bucket=shard.bucket, Key=shard.key, Range=f"bytes={first}-{shard.end - 1}")["Body"]
        position, buffer = first, b""
        skipping = shard.start > 0  # until the newline that ends the previous shard's line
        while chunk := body.read(block_bytes):
            buffer += chunk
            if skipping:
                newline = buffer.find(b"\n")
                if newline < 0:
                    position, buffer = position + len(buffer), b""
                    continue
                position, buffer, skipping = position + newline + 1, buffer[newline + 1 :], False
            cut = buffer.rfind(b"\n")
            if cut >= 0:
                yield position, buffer[: cut + 1]
                position, buffer = position + cut + 1, buffer[cut + 1 :]
        if skipping or not buffer:
            return
        offset = shard.end
        while offset < shard.size:
            more = self.read_range(shard.bucket, shard.key, offset, min(offset + CONTINUATION_BYTES, shard.size) - 1)
            newline = more.find(b"\n")
            if newline >= 0:
                buffer += more[: newline + 1]
                break
            buffer += more
            offset += len(more)
        yield position, buffer


class Upload:
    """An object written as it is produced: one PutObject when it stays under :data:`PART_BYTES`, else a multipart
    upload of parts that size (``close`` completes it; ``abort`` leaves nothing behind)."""

    def __init__(self, objects: Objects, bucket: str, key: str, content_type: str, *, part_bytes: int = PART_BYTES) -> None:
        self.objects, self.bucket, self.key, self.content_type = objects, bucket, key, content_type
        self.part_bytes = part_bytes
        self._buffer: list[bytes] = []
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.written = 0

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._size += len(data)
        self.written += len(data)
        if self._size >= self.part_bytes:
            self._send_part()

    def _send_part(self) -> None:
        s3 = self.objects.s3
        if self._upload_id is None:
            created = s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type, **self.objects._encryption(self.bucket)
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        sent = s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=b"".join(self._buffer))
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})
        self._buffer, self._size = [], 0

    def close(self) -> None:
        if self._upload_id is None:
            self.objects.s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=b"".join(self._buffer),
                ContentType=self.content_type,
                **self.objects._encryption(self.bucket),
            )
            return
        if self._buffer:
            self._send_part()
        self.objects.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self.objects.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
