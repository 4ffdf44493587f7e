"""The blob store: file bytes by content address, readable by every worker and adapter.

Workflows hold ``BlobRef`` (sha256, name, media type, size) and never the bytes: Temporal refuses
payloads past 2 MB and every byte in a workflow's input stays in its history. The store keeps each
content once, under its sha256, so the same file posted twice costs one copy.

- ``LocalBlobStore``: a directory (``.durabot/blobs`` by default), for processes on one machine.
  Files are written to a temporary name and renamed, so a reader never sees half a file.
- ``S3BlobStore``: an S3-compatible bucket (``DURABOT_BLOB_URL=s3://bucket/prefix``; the endpoint of
  MinIO and the like in ``DURABOT_BLOB_ENDPOINT`` or ``AWS_ENDPOINT_URL``), for several machines.
  boto3 is synchronous: its calls run in a thread. Credentials come from boto3's usual sources
  (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from .errors import AgentRuntimeError, UserError
from .types import BlobRef

log = logging.getLogger(__name__)

DEFAULT_DIRECTORY = ".durabot/blobs"
_SHA = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(AgentRuntimeError):
    """The store has no content under this sha256 (deleted, or a store other workers cannot read)."""


class BlobStore(Protocol):
    async def put(self, data: bytes, name: str, media_type: str) -> BlobRef:
        """Store ``data`` (once per content) and return its reference."""

    async def get(self, ref: BlobRef | str) -> bytes:
        """The bytes of a reference (or a sha256); raises ``BlobMissing``."""

    async def exists(self, ref: BlobRef | str) -> bool: ...


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha(ref: BlobRef | str) -> str:
    sha = ref.sha256 if isinstance(ref, BlobRef) else ref
    if not _SHA.match(sha):  # a reference is also a path or a key: nothing else may pass
        raise BlobMissing(f"{sha!r} is not a sha256 content address")
    return sha


def _ref(data: bytes, name: str, media_type: str) -> BlobRef:
    return BlobRef(sha256=sha256_of(data), name=name or "file", media_type=media_type or "application/octet-stream",
                   size=len(data))


class LocalBlobStore:
    """Blobs in a directory: ``<root>/<sha[:2]>/<sha>``."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_DIRECTORY) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    async def put(self, data: bytes, name: str, media_type: str) -> BlobRef:
        ref = _ref(data, name, media_type)
        await asyncio.to_thread(self._write, ref.sha256, data)
        return ref

    def _write(self, sha: str, data: bytes) -> None:
        path = self._path(sha)
        if path.exists():
            return  # content-addressed: the same bytes are already there
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def get(self, ref: BlobRef | str) -> bytes:
        path = self._path(_sha(ref))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise BlobMissing(f"blob {path.name} is not in {self.root}; is DURABOT_BLOB_URL the same on every "
                              "process?") from None

    async def exists(self, ref: BlobRef | str) -> bool:
        return await asyncio.to_thread(self._path(_sha(ref)).is_file)

    async def close(self) -> None:
        return None


class S3BlobStore:
    """Blobs in an S3-compatible bucket: ``s3://<bucket>/<prefix>/<sha>``."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client = client

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    def _key(self, sha: str) -> str:
        return f"{self.prefix}/{sha}" if self.prefix else sha

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Temporal owns retries of whole activities; a few quick ones here ride over a dropped connection.
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url,
                                        config=Config(retries={"max_attempts": 3, "mode": "standard"}))
        return self._client

    async def put(self, data: bytes, name: str, media_type: str) -> BlobRef:
        ref = _ref(data, name, media_type)
        if not await self.exists(ref):
            await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=self._key(ref.sha256),
                                    Body=data, ContentType=ref.media_type)
        return ref

    async def get(self, ref: BlobRef | str) -> bytes:
        from botocore.exceptions import ClientError

        key = self._key(_sha(ref))

        def read() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        try:
            return await asyncio.to_thread(read)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise BlobMissing(f"blob {key!r} is not in bucket {self.bucket!r}") from None
            raise

    async def exists(self, ref: BlobRef | str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(_sha(ref)))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def close(self) -> None:
        return None


def _code(exc: Any) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def blob_store_from_url(url: str | None, endpoint_url: str | None = None) -> BlobStore:
    """The store ``DURABOT_BLOB_URL`` names: unset or a path: a local directory; ``s3://bucket/prefix``."""
    if not url:
        return LocalBlobStore(DEFAULT_DIRECTORY)
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if len(bucket) < 3:
            raise UserError(f"DURABOT_BLOB_URL={url!r} names no bucket; use s3://bucket/prefix")
        return S3BlobStore(bucket, prefix, endpoint_url=endpoint_url)
    if url.startswith("file://"):
        return LocalBlobStore(url[len("file://"):])
    if "://" in url:
        raise UserError(f"DURABOT_BLOB_URL={url!r}: use a directory path, file:///path or s3://bucket/prefix")
    return LocalBlobStore(url)
