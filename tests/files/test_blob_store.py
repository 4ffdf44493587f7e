"""The contract every blob store keeps, run against the local directory and an S3-compatible server
(moto's, started here on a free port, offline)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any, Iterator

import pytest

from agent_core.blobs import BlobMissing, LocalBlobStore, S3BlobStore, blob_store_from_url, sha256_of
from agent_core.errors import UserError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The standard AWS variables, as a deployment sets them; moto accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def make_s3_store(endpoint: str) -> S3BlobStore:
    import boto3

    bucket = f"blobs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    store = blob_store_from_url(f"s3://{bucket}/durabot/files", endpoint)
    assert isinstance(store, S3BlobStore)
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    request.getfixturevalue("s3_credentials")
    return make_s3_store(request.getfixturevalue("s3_endpoint"))


async def test_put_returns_a_content_address_and_get_gives_the_bytes_back(store: Any) -> None:
    data = b"name,count\nalpha,1\n" * 100
    ref = await store.put(data, "report.csv", "text/csv")
    assert ref.sha256 == sha256_of(data)
    assert (ref.name, ref.media_type, ref.size) == ("report.csv", "text/csv", len(data))
    assert await store.exists(ref)
    assert await store.get(ref) == data
    assert await store.get(ref.sha256) == data


async def test_the_same_content_is_stored_once(store: Any) -> None:
    data = b"\x89PNG same bytes"
    first = await store.put(data, "a.png", "image/png")
    second = await store.put(data, "b.png", "image/png")
    assert first.sha256 == second.sha256
    assert first.name == "a.png" and second.name == "b.png"  # the name belongs to the reference
    if isinstance(store, LocalBlobStore):
        stored = [p for p in store.root.rglob("*") if p.is_file()]
    else:
        listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
        stored = listed.get("Contents", [])
    assert len(stored) == 1


async def test_a_missing_blob_is_a_clear_error(store: Any) -> None:
    absent = sha256_of(b"never stored")
    assert not await store.exists(absent)
    with pytest.raises(BlobMissing):
        await store.get(absent)


async def test_a_reference_that_is_no_sha256_is_refused(store: Any) -> None:
    with pytest.raises(BlobMissing):
        await store.get("../../etc/passwd")


async def test_concurrent_puts_of_one_content_leave_one_whole_copy(store: Any) -> None:
    data = bytes(range(256)) * 4096  # 1 MB
    refs = await asyncio.gather(*(store.put(data, f"f{i}.bin", "application/octet-stream") for i in range(6)))
    assert len({r.sha256 for r in refs}) == 1
    assert await store.get(refs[0]) == data


def test_urls_name_their_store(tmp_path: Any) -> None:
    assert isinstance(blob_store_from_url(None), LocalBlobStore)
    assert isinstance(blob_store_from_url(str(tmp_path)), LocalBlobStore)
    assert LocalBlobStore.__name__ in repr(blob_store_from_url(f"file://{tmp_path}"))
    s3 = blob_store_from_url("s3://bucket/some/prefix", "http://minio:9000")
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.prefix, s3.endpoint_url) == (
        "bucket", "some/prefix", "http://minio:9000")
    with pytest.raises(UserError, match="s3://bucket/prefix"):
        blob_store_from_url("s3://")
    with pytest.raises(UserError):
        blob_store_from_url("gs://bucket")
