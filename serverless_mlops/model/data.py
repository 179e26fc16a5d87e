"""Training data: read a spec's CSV or Parquet file (local or S3), check it against the spec, fingerprint it.

Errors name the file, the column and the first offending rows (1-based data rows, header excluded), so a user can
fix the file without guessing.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serverless_mlops.errors import DataError
from serverless_mlops.model.spec import FeatureKind, ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from serverless_mlops.settings import Settings


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # feature columns in spec order, then the target
    uri: str
    sha256: str


def read_bytes(uri: str, settings: Settings | None = None) -> bytes:
    """The raw bytes behind a local path or an ``s3://bucket/key`` URI."""
    if uri.startswith("s3://"):
        from serverless_mlops.aws import client
        from serverless_mlops.settings import Settings

        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise DataError(f"{uri}: expected s3://bucket/key")
        s3 = client("s3", settings or Settings.from_env())
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
        except s3.exceptions.NoSuchKey as exc:
            raise DataError(f"{uri}: no such object") from exc
        except s3.exceptions.NoSuchBucket as exc:
            raise DataError(f"{uri}: no such bucket") from exc
    if "://" in uri:
        raise DataError(f"{uri}: unsupported scheme; use a local path or s3://bucket/key")
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: training data file not found") from exc
    except OSError as exc:
        raise DataError(f"{uri}: cannot read training data: {exc.strerror}") from exc


def _rows(mask: Any, limit: int = 5) -> str:
    import numpy as np

    idx = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(str(i) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{more}"


def parse_frame(raw: bytes, fmt: str, uri: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as exc:
                raise DataError(f"{uri}: reading Parquet needs pyarrow (pip install 'serverless-mlops[parquet]')") from exc
            return pd.read_parquet(io.BytesIO(raw))
        return pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{uri}: cannot parse as {fmt}: {first}") from exc


_MISSING = {"", "na", "nan", "null", "none"}


def coerce(frame: pd.DataFrame, spec: ModelSpec, uri: str, *, with_target: bool = True) -> pd.DataFrame:
    """Select the spec's columns, convert their types and check their values; errors name column and rows."""
    import numpy as np
    import pandas as pd

    wanted = [f.name for f in spec.features] + ([spec.target] if with_target else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        found = [str(c) for c in frame.columns]
        shown = ", ".join(repr(c) for c in found[:10]) + (" …" if len(found) > 10 else "")
        hint = ""
        if len(found) == 1 and any(sep in found[0] for sep in (";", "\t", "|")):
            hint = "; the header was read as one column: the file must be comma-separated"
        raise DataError(
            f"{uri}: missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)} "
            f"(found {len(found)}: {shown}){hint}"
        )
    out: dict[str, Any] = {}
    for feature in spec.features:
        column = frame[feature.name]
        text = column.astype(str).str.strip()
        is_missing = column.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy()
        if feature.type is FeatureKind.NUMERIC:
            values = pd.to_numeric(text.where(~is_missing), errors="coerce").to_numpy(dtype=np.float64)
            bad = np.isnan(values) & ~is_missing
            if bad.any():
                raise DataError(f"{uri}: column {feature.name!r} must be numeric; non-numeric value at {_rows(bad)}")
            infinite = np.isinf(values)
            if infinite.any():
                raise DataError(f"{uri}: column {feature.name!r} has infinite values at {_rows(infinite)}")
            if feature.range is not None:
                low, high = feature.range
                outside = ~np.isnan(values) & ((values < low) | (values > high))
                if outside.any():
                    raise DataError(f"{uri}: column {feature.name!r} is outside the spec's range [{low}, {high}] at {_rows(outside)}")
            out[feature.name] = values
        else:
            if is_missing.any():
                raise DataError(f"{uri}: categorical column {feature.name!r} has missing values at {_rows(is_missing)}")
            values = text.to_numpy(dtype=object)
            if feature.categories is not None:
                unknown = ~np.isin(values, np.asarray(feature.categories, dtype=object))
                if unknown.any():
                    first = values[np.flatnonzero(unknown)[0]]
                    raise DataError(
                        f"{uri}: column {feature.name!r} has values outside the spec's categories at {_rows(unknown)} "
                        f"(first: {first!r}; allowed: {', '.join(repr(c) for c in feature.categories[:20])})"
                    )
            out[feature.name] = values
    if with_target:
        target = frame[spec.target]
        text = target.astype(str).str.strip()
        is_missing = target.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy()
        if is_missing.any():
            raise DataError(f"{uri}: target column {spec.target!r} has missing values at {_rows(is_missing)}")
        if spec.task.is_classification:
            numeric = pd.to_numeric(text, errors="coerce")
            if numeric.notna().all() and (numeric == numeric.round()).all():
                out[spec.target] = numeric.to_numpy().astype(np.int64)
            else:
                out[spec.target] = text.to_numpy(dtype=object)
        else:
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values)
            if bad.any():
                raise DataError(f"{uri}: target column {spec.target!r} must be a finite number; bad value at {_rows(bad)}")
            out[spec.target] = values
    result = pd.DataFrame(out, columns=wanted)
    if len(result) == 0:
        raise DataError(f"{uri}: no data rows")
    return result


def load_dataset(spec: ModelSpec, settings: Settings | None = None) -> Dataset:
    """Read, check and fingerprint the spec's training data."""
    raw = read_bytes(spec.data.uri, settings)
    frame = parse_frame(raw, spec.data.resolved_format, spec.data.uri)
    return Dataset(frame=coerce(frame, spec, spec.data.uri), uri=spec.data.uri, sha256=hashlib.sha256(raw).hexdigest())
