"""The payload codec every durabot client and worker uses: compression, and encryption with a key.

Payloads above ``COMPRESS_ABOVE`` bytes are compressed with zlib (transcripts compress several
times over). With ``DURABOT_SECRET_KEY`` set, every payload is then encrypted with AES-256-GCM, so
Temporal's histories hold no conversation text. Each step wraps the payload it was given, marked by
its metadata ``encoding``; a payload without one of these marks (older histories, other clients)
decodes unchanged.

``DURABOT_SECRET_KEY`` is one key or several separated by commas. A key is 32 bytes, written as 64
hex digits or as base64 (44 characters), optionally prefixed with an id and a colon (``2024b:...``);
without one, the id is derived from the key. The first key encrypts; every key decrypts, found by
the id stored in the payload's metadata. To rotate: put the new key first and keep the old ones
after it until no running conversation carries payloads encrypted with them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import zlib
from typing import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from .errors import AgentRuntimeError, UserError

COMPRESS_ABOVE = 4096  # bytes; smaller payloads gain little and cost CPU on every task
ZLIB = b"binary/zlib"
ENCRYPTED = b"binary/encrypted"
_KEY_ID = "encryption-key-id"


class CodecError(AgentRuntimeError):
    """A payload cannot be decoded: a key is missing or wrong, or the data is damaged."""


def parse_keys(setting: str | None) -> dict[str, bytes]:
    """The keys of a ``DURABOT_SECRET_KEY`` value, by id, the encrypting one first."""
    keys: dict[str, bytes] = {}
    for i, item in enumerate(p.strip() for p in (setting or "").split(",")):
        if not item:
            continue
        key_id, sep, material = item.rpartition(":")
        raw = _decode_key(material, i + 1)
        key_id = key_id.strip() if sep else hashlib.sha256(raw).hexdigest()[:8]
        if not key_id:
            raise UserError(f"DURABOT_SECRET_KEY: key {i + 1} has an empty id before ':'")
        if key_id in keys:
            raise UserError(f"DURABOT_SECRET_KEY: two keys have the id {key_id!r}")
        keys[key_id] = raw
    return keys


def _decode_key(material: str, position: int) -> bytes:
    material = material.strip()
    raw = None
    if len(material) == 64:
        try:
            raw = bytes.fromhex(material)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(material, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise UserError(
            f"DURABOT_SECRET_KEY: key {position} is not 32 bytes in hex (64 digits) or base64 (44 characters); "
            "make one with: python -c \"import os, base64; print(base64.b64encode(os.urandom(32)).decode())\""
        )
    return raw


class DurabotCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes] | None = None, compress_above: int = COMPRESS_ABOVE) -> None:
        self.keys = dict(keys or {})
        self.compress_above = compress_above
        self._ciphers: dict[str, object] = {}
        if self.keys:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._ciphers = {kid: AESGCM(key) for kid, key in self.keys.items()}
        self.key_id = next(iter(self.keys), None)

    @classmethod
    def from_setting(cls, secret_key: str | None) -> "DurabotCodec":
        return cls(parse_keys(secret_key))

    @property
    def encrypts(self) -> bool:
        return self.key_id is not None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        if payload.ByteSize() > self.compress_above:
            packed = Payload(metadata={"encoding": ZLIB}, data=zlib.compress(payload.SerializeToString(), 6))
            if packed.ByteSize() < payload.ByteSize():  # already-compressed data stays as it is
                payload = packed
        if self.key_id is not None:
            nonce = os.urandom(12)
            sealed = self._ciphers[self.key_id].encrypt(nonce, payload.SerializeToString(), self.key_id.encode())
            payload = Payload(metadata={"encoding": ENCRYPTED, _KEY_ID: self.key_id.encode()}, data=nonce + sealed)
        return payload

    def decode_one(self, payload: Payload) -> Payload:
        while True:
            encoding = payload.metadata.get("encoding", b"")
            if encoding == ENCRYPTED:
                payload = Payload.FromString(self._decrypt(payload))
            elif encoding == ZLIB:
                try:
                    payload = Payload.FromString(zlib.decompress(payload.data))
                except zlib.error as exc:
                    raise CodecError(f"a compressed payload is damaged: {exc}") from None
            else:
                return payload

    def _decrypt(self, payload: Payload) -> bytes:
        key_id = payload.metadata.get(_KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if not self._ciphers:
                raise CodecError("a payload is encrypted but DURABOT_SECRET_KEY is not set")
            raise CodecError(f"a payload is encrypted with key {key_id!r}, which DURABOT_SECRET_KEY does not hold")
        try:
            return cipher.decrypt(payload.data[:12], payload.data[12:], key_id.encode())  # type: ignore[attr-defined]
        except _invalid_tag():
            raise CodecError(f"a payload does not decrypt with key {key_id!r}: wrong key or damaged data") from None


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def data_converter(secret_key: str | None = None, codec: PayloadCodec | None = None) -> DataConverter:
    """Temporal's default converter (dataclass hints resolved once) with durabot's codec: pass it to
    ``Client.connect`` for your own client."""
    from .payload_converter import DurabotPayloadConverter

    return dataclasses.replace(DataConverter.default, payload_converter_class=DurabotPayloadConverter,
                               payload_codec=codec or DurabotCodec.from_setting(secret_key))
