"""The file settings: read once, checked, and turned into the blob store and limits."""

from __future__ import annotations

import pytest

from agent_core.blobs import LocalBlobStore, S3BlobStore
from agent_core.errors import UserError
from agent_core.settings import Settings


def test_defaults_and_values() -> None:
    default = Settings.load(env={}, dotenv=None)
    limits = default.file_limits()
    assert (limits.max_bytes, limits.max_files, limits.text_chars) == (20 * 1024 * 1024, 10, 50_000)
    assert isinstance(default.blob_store(), LocalBlobStore)
    custom = Settings.load(env={"DURABOT_MAX_FILE_MB": "2.5", "DURABOT_MAX_FILES": "3",
                                "DURABOT_FILE_TEXT_CHARS": "1000", "DURABOT_BLOB_URL": "s3://team-files/durabot",
                                "DURABOT_BLOB_ENDPOINT": "http://minio:9000"}, dotenv=None)
    limits = custom.file_limits()
    assert (limits.max_bytes, limits.max_files, limits.text_chars) == (int(2.5 * 1024 * 1024), 3, 1000)
    store = custom.blob_store()
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == ("team-files", "durabot", "http://minio:9000")


@pytest.mark.parametrize("name,value", [("DURABOT_MAX_FILE_MB", "lots"), ("DURABOT_MAX_FILES", "0"),
                                        ("DURABOT_FILE_TEXT_CHARS", "-5")])
def test_bad_values_say_which_variable(name: str, value: str) -> None:
    with pytest.raises(UserError, match=f"{name}={value!r} is not a positive number"):
        Settings.load(env={name: value}, dotenv=None)
