"""The S3 artifact store on moto, and loading a registered model through it: content addressing, encryption,
pinned versions, and sha256 verification before anything is loaded."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import boto3
import onnxruntime
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from serverless_mlops.errors import ArtifactIntegrityError, NotFoundError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.onnx_model import load_model
from serverless_mlops.settings import Settings
from serverless_mlops.store.artifacts import ArtifactRef, ArtifactStore
from serverless_mlops.store.lifecycle import Backends, register_run
from serverless_mlops.store.registry import ModelVersion

PAYLOAD = b"\x08\x07onnx-ish bytes\x00\xff" * 64


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_object(ref: ArtifactRef) -> Any:
    """moto's own record of the exact object version a ref pins (a ``FakeKey``)."""
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(ref.bucket, ref.key, version_id=ref.version_id)


def flip_one_byte(ref: ArtifactRef, *, keep_s3_checksum: bool) -> None:
    """Corrupt the pinned version in place, as bit rot would, without creating a new S3 version.

    With ``keep_s3_checksum`` the object still carries the checksum S3 computed at upload, so the SDK can notice;
    without it the checksum is rewritten to match the bad bytes, so only the registry's sha256 can notice.
    """
    fake_key = stored_object(ref)
    data = bytearray(fake_key.value)
    data[len(data) // 2] ^= 0x01
    fake_key.value = bytes(data)
    if not keep_s3_checksum:
        fake_key.checksum_value = base64.b64encode(hashlib.sha256(bytes(data)).digest()).decode()
    assert sha256_hex(stored_object(ref).value) != ref.sha256, "the stored bytes really changed"


def overwrite_key(store: ArtifactStore, ref: ArtifactRef, data: bytes) -> str:
    """Write other bytes at the ref's key (a new S3 version); returns the new VersionId."""
    response = store.s3.put_object(Bucket=ref.bucket, Key=ref.key, Body=data)
    assert response["VersionId"] != ref.version_id
    return str(response["VersionId"])


@pytest.fixture
def store(backends: Backends) -> ArtifactStore:
    return backends.store


# -- put ------------------------------------------------------------------------------------------------------


def test_put_uses_a_content_addressed_key_and_records_what_it_stored(store: ArtifactStore, settings: Settings) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")

    digest = sha256_hex(PAYLOAD)
    assert ref.sha256 == digest
    assert ref.size == len(PAYLOAD)
    assert ref.bucket == settings.bucket
    assert ref.key == f"artifacts/wine/{digest}/model.onnx"
    assert ref.uri == f"s3://{settings.bucket}/artifacts/wine/{digest}/model.onnx"

    head = store.s3.head_object(Bucket=ref.bucket, Key=ref.key, ChecksumMode="ENABLED")
    assert ref.version_id is not None
    assert ref.version_id not in ("", "null")
    assert head["VersionId"] == ref.version_id
    assert head["ContentLength"] == len(PAYLOAD)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(PAYLOAD).digest()).decode()
    assert head["Metadata"] == {"sha256": digest, "model": "wine"}


def test_put_with_a_kms_key_encrypts_with_that_key(backends: Backends, settings: Settings) -> None:
    key_id = boto3.client("kms", region_name=settings.region).create_key()["KeyMetadata"]["KeyId"]
    store = ArtifactStore(settings.bucket, backends.store.s3, kms_key_id=key_id)

    ref = store.put("wine", PAYLOAD, "model.onnx")

    head = store.s3.head_object(Bucket=ref.bucket, Key=ref.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)
    assert store.get(ref, model="wine", version=1) == PAYLOAD


def test_the_same_bytes_always_land_at_the_same_key(store: ArtifactStore) -> None:
    first = store.put("wine", PAYLOAD, "model.onnx")
    again = store.put("wine", PAYLOAD, "model.onnx")

    assert again.uri == first.uri
    assert again.sha256 == first.sha256
    assert store.get(first, model="wine", version=1) == PAYLOAD
    assert store.get(again, model="wine", version=1) == PAYLOAD


def test_different_bytes_models_or_filenames_get_different_keys(store: ArtifactStore) -> None:
    refs = [
        store.put("wine", PAYLOAD, "model.onnx"),
        store.put("wine", PAYLOAD + b"!", "model.onnx"),
        store.put("diabetes", PAYLOAD, "model.onnx"),
        store.put("wine", PAYLOAD, "profile.json.gz"),
    ]
    assert len({ref.uri for ref in refs}) == len(refs)


def test_an_empty_artifact_round_trips(store: ArtifactStore) -> None:
    ref = store.put("wine", b"", "empty.bin")
    assert ref.size == 0
    assert ref.sha256 == sha256_hex(b"")
    assert store.get(ref, model="wine", version=1) == b""


# -- get ------------------------------------------------------------------------------------------------------


def test_get_returns_the_verified_bytes(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    assert store.get(ref, model="wine", version=3) == PAYLOAD


def test_get_reads_the_pinned_version_even_after_the_key_is_overwritten(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    overwrite_key(store, ref, b"something else entirely")

    assert store.get(ref, model="wine", version=3) == PAYLOAD


def test_an_unpinned_ref_verifies_whatever_the_key_now_holds(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    overwrite_key(store, ref, b"something else entirely")
    unpinned = ref.model_copy(update={"version_id": None})

    with pytest.raises(ArtifactIntegrityError, match=r"model 'wine' version 3 failed verification"):
        store.get(unpinned, model="wine", version=3)


def test_a_ref_whose_sha256_does_not_match_is_refused(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    lying = ref.model_copy(update={"sha256": sha256_hex(b"what the registry thought it stored")})

    with pytest.raises(ArtifactIntegrityError) as refused:
        store.get(lying, model="wine", version=7)
    message = str(refused.value)
    assert "'wine'" in message
    assert "version 7" in message
    assert ref.uri in message


def test_a_corrupted_object_whose_checksum_was_rewritten_is_caught_by_the_sha256(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    flip_one_byte(ref, keep_s3_checksum=False)

    with pytest.raises(ArtifactIntegrityError, match=r"model 'wine' version 4 failed verification"):
        store.get(ref, model="wine", version=4)


def test_a_flipped_byte_in_the_stored_object_is_an_integrity_error(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    flip_one_byte(ref, keep_s3_checksum=True)

    with pytest.raises(ArtifactIntegrityError, match=r"model 'wine' version 4"):
        store.get(ref, model="wine", version=4)


def test_a_missing_object_is_not_found(store: ArtifactStore, settings: Settings) -> None:
    missing = ArtifactRef(uri=f"s3://{settings.bucket}/artifacts/wine/{sha256_hex(b'x')}/model.onnx", sha256=sha256_hex(b"x"), size=1)

    with pytest.raises(NotFoundError, match=r"model 'wine' version 2 is missing"):
        store.get(missing, model="wine", version=2)


def test_a_permanently_deleted_version_is_not_found(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    store.s3.delete_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)

    with pytest.raises(NotFoundError, match=r"model 'wine' version 2 is missing"):
        store.get(ref, model="wine", version=2)


def test_an_unknown_version_id_is_not_found(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    with pytest.raises(NotFoundError, match="is missing"):
        store.get(ref.model_copy(update={"version_id": "no-such-version"}), model="wine", version=2)


def test_a_missing_bucket_is_not_found(store: ArtifactStore) -> None:
    ref = store.put("wine", PAYLOAD, "model.onnx")
    elsewhere = ref.model_copy(update={"uri": f"s3://no-such-bucket-here/{ref.key}", "version_id": None})
    with pytest.raises(NotFoundError, match="is missing"):
        store.get(elsewhere, model="wine", version=2)


# -- load_model -----------------------------------------------------------------------------------------------


@pytest.fixture
def sessions_opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every onnxruntime session opened during the test (the bytes it was given)."""
    opened: list[object] = []
    real = onnxruntime.InferenceSession

    def counting(model: object, *args: Any, **kwargs: Any) -> Any:
        opened.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    return opened


@pytest.fixture
def wine_v1(backends: Backends, trained_models: dict[str, TrainedModel]) -> ModelVersion:
    return register_run(trained_models["wine"], backends, by="ci")


def with_artifact(backends: Backends, entry: ModelVersion, artifact: ArtifactRef) -> ModelVersion:
    """Register another version of ``entry``'s model whose artifact is ``artifact`` (and a new run id)."""
    return backends.registry.register(
        entry.model,
        signature=entry.signature,
        artifact=artifact,
        profile=entry.profile,
        metrics=entry.metrics,
        parity=entry.parity,
        lineage=entry.lineage.model_copy(update={"run_id": f"{entry.lineage.run_id}-tampered"}),
        created_by="test-suite",
    )


def test_load_model_opens_the_registered_graph(
    backends: Backends, wine_v1: ModelVersion, trained_models: dict[str, TrainedModel], sessions_opened: list[object]
) -> None:
    model = load_model(backends, wine_v1)

    assert model.signature == wine_v1.signature
    assert sessions_opened == [trained_models["wine"].onnx_bytes]
    assert {i.name for i in model.session.get_inputs()} == {f.input_name for f in wine_v1.signature.features}


def test_load_model_still_loads_the_pinned_bytes_after_the_key_is_overwritten(
    backends: Backends, wine_v1: ModelVersion, trained_models: dict[str, TrainedModel], sessions_opened: list[object]
) -> None:
    overwrite_key(backends.store, wine_v1.artifact, b"not a model")

    load_model(backends, wine_v1)

    assert sessions_opened == [trained_models["wine"].onnx_bytes]


def test_load_model_refuses_a_version_whose_recorded_sha256_does_not_match(
    backends: Backends, wine_v1: ModelVersion, sessions_opened: list[object]
) -> None:
    other = backends.store.put("wine", b"different bytes", "model.onnx")
    tampered = with_artifact(backends, wine_v1, wine_v1.artifact.model_copy(update={"sha256": other.sha256}))

    with pytest.raises(ArtifactIntegrityError, match=rf"model 'wine' version {tampered.version} failed verification"):
        load_model(backends, tampered)
    assert sessions_opened == [], "nothing is loaded"


@pytest.mark.parametrize("keep_s3_checksum", [False, True], ids=["checksum-rewritten", "s3-checksum-kept"])
def test_load_model_refuses_a_flipped_byte_in_the_stored_object(
    backends: Backends, wine_v1: ModelVersion, sessions_opened: list[object], keep_s3_checksum: bool
) -> None:
    """Caught by the registry's sha256 when S3's checksum was rewritten to match, else by the SDK's own check."""
    flip_one_byte(wine_v1.artifact, keep_s3_checksum=keep_s3_checksum)

    with pytest.raises(ArtifactIntegrityError, match=r"model 'wine' version 1 failed verification"):
        load_model(backends, wine_v1)
    assert sessions_opened == [], "nothing is loaded"


def test_load_model_of_a_version_whose_artifact_is_gone_is_not_found(
    backends: Backends, wine_v1: ModelVersion, sessions_opened: list[object]
) -> None:
    ref = wine_v1.artifact
    backends.store.s3.delete_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)

    with pytest.raises(NotFoundError, match=r"model 'wine' version 1 is missing"):
        load_model(backends, wine_v1)
    assert sessions_opened == []
