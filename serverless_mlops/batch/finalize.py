"""Finalize: the job's outcome from the shards' recorded counts, written as ``_SUCCESS`` (or ``_FAILED``).

It relies on nothing the Distributed Map returns (moto's ResultWriter writes nothing, and a real Map's result array
is bounded by the 256 KiB state payload): each shard's counts are read from ``batch/jobs/{job}/done/``, and a shard without
them failed, its last error read from ``batch/jobs/{job}/errors/``. When failed shards exceed the job's tolerated share,
``_FAILED`` is written and :class:`BatchJobFailed` names them (Step Functions' own tolerated-failure settings are not
used: moto ignores them, and the job must fail the same way in both).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from serverless_mlops.batch.contract import FAILED, SUCCESS, BatchJobFailed, Job, Shard, done_key, error_key, parse_s3_uri
from serverless_mlops.batch.objects import Objects

READERS = 16  # concurrent GetObject calls while collecting the shards' counts
NAMED = 10  # failed shards named in the error message (all of them are in _FAILED)


def _seconds(started: str, finished: datetime) -> float:
    return round((finished - datetime.fromisoformat(started)).total_seconds(), 3)


def finalize(job: Job, objects: Objects) -> dict[str, Any]:
    """The job's manifest (rows in, scored, refused, version, duration, shards), written to ``{output}_SUCCESS``; raises
    :class:`BatchJobFailed` after writing ``{output}_FAILED`` when too many shards failed."""
    shards = [Shard.model_validate(item) for item in objects.read_json(job.manifest_bucket, job.manifest_key) or []]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        counts = list(pool.map(lambda s: objects.read_json(objects.bucket, done_key(job.job_id, s.index)), shards))
        failed_shards = [shard for shard, done in zip(shards, counts, strict=True) if done is None]
        errors = list(pool.map(lambda s: objects.read_json(objects.bucket, error_key(job.job_id, s.index)), failed_shards))
    finished = datetime.now(UTC)
    done = [c for c in counts if c is not None]
    failed = [
        {"index": shard.index, "source": shard.source, "error": (error or {}).get("error", "no output (timed out or stopped?)")}
        for shard, error in zip(failed_shards, errors, strict=True)
    ]
    share = 100.0 * len(failed) / len(shards) if shards else 0.0
    document: dict[str, Any] = {
        "job_id": job.job_id,
        "model": job.model,
        "version": job.version,
        "input": job.request.input,
        "output": job.request.output_prefix,
        "rows_in": sum(int(c["rows"]) for c in done),
        "rows_scored": sum(int(c["scored"]) for c in done),
        "rows_refused": sum(int(c["refused"]) for c in done),
        "shards": len(shards),
        "shards_failed": len(failed),
        "tolerated_failure_percent": job.tolerated_failure_percent,
        "created": job.created,
        "started": job.started,
        "finished": finished.isoformat(timespec="milliseconds"),
        "duration_seconds": _seconds(job.started, finished),
        "failed": failed,
        "parts": [{"output": c["output"], "rows": c["rows"], "scored": c["scored"], "refused": c["refused"]} for c in done],
    }
    bucket, prefix = parse_s3_uri(job.request.output_prefix, "output")
    if failed and share > job.tolerated_failure_percent:
        objects.write_json(bucket, prefix + FAILED, document)
        named = "; ".join(f"shard {f['index']} ({f['source']}): {f['error']}" for f in failed[:NAMED])
        more = f"; and {len(failed) - NAMED} more (see {job.request.output_prefix}{FAILED})" if len(failed) > NAMED else ""
        raise BatchJobFailed(
            f"job {job.job_id}: {len(failed)} of {len(shards)} shard(s) failed ({share:.1f}% > tolerated "
            f"{job.tolerated_failure_percent:g}%): {named}{more}"
        )
    objects.write_json(bucket, prefix + SUCCESS, document)
    objects.delete(bucket, prefix + FAILED)
    return document
