"""Where the workspaces that installed the app are kept: slack_sdk's SQLAlchemy stores, tokens encrypted.

Bolt's OAuth flow saves an installation when a workspace adds the app and looks it up for every
request; the adapter looks it up for every Web API call it makes outside a request (deliveries,
live edits). The rows live in a real database through SQLAlchemy: SQLite under ``.durabot/`` by
default, PostgreSQL (or any SQLAlchemy URL) with ``DURABOT_DATABASE_URL``.

slack_sdk's SQLAlchemy stores are synchronous, so each call runs on a worker thread behind the async
interfaces Bolt expects. Before a row reaches the database its tokens are sealed with AES-256-GCM
under the first key of ``DURABOT_SECRET_KEY`` (the key that encrypts Temporal payloads; any of its
keys opens them, so keys rotate the same way). The additional data binds each sealed token to its
field and workspace, so a token copied into another workspace's row does not open. A database dump
therefore holds no usable token.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import os
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from agent_core.codec import parse_keys
from agent_core.errors import AgentRuntimeError, UserError

from bots.core.settings import DEFAULT_DATABASE_URL

__all__ = ["EncryptedInstallationStore", "OAuthStateStore", "Stores", "TokenBox", "TokenError"]

log = logging.getLogger(__name__)

SEALED = "durabot-aesgcm:"  # a sealed value starts with this, then "<key id>:<base64 nonce+ciphertext>"
TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
STATE_SECONDS = 600  # an install link works this long
T = TypeVar("T", Installation, Bot)


class TokenError(AgentRuntimeError):
    """A stored token does not open: its key is no longer in DURABOT_SECRET_KEY, or the row was altered."""


class TokenBox:
    """Seals and opens tokens with DURABOT_SECRET_KEY's keys (the first one seals)."""

    def __init__(self, secret_key: str | None) -> None:
        keys = parse_keys(secret_key)
        if not keys:
            raise UserError("DURABOT_SECRET_KEY is not set: tokens are never stored in plain text")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._key_id = next(iter(keys))

    def seal(self, value: str | None, field: str, team: str | None) -> str | None:
        if not value:
            return value
        nonce = os.urandom(12)
        sealed = self._ciphers[self._key_id].encrypt(nonce, value.encode(), self._aad(self._key_id, field, team))
        return f"{SEALED}{self._key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str | None, field: str, team: str | None) -> str | None:
        if not value:
            return value
        if not value.startswith(SEALED):
            raise TokenError(f"the stored {field} of workspace {team!r} is not sealed; install the app again")
        key_id, _, data = value.removeprefix(SEALED).rpartition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise TokenError(f"the stored {field} of workspace {team!r} is sealed with key {key_id!r}, which "
                             "DURABOT_SECRET_KEY does not hold")
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(data, validate=True)
            return cipher.decrypt(raw[:12], raw[12:], self._aad(key_id, field, team)).decode()  # type: ignore[attr-defined]
        except (InvalidTag, ValueError):  # the message names the field, never the value
            raise TokenError(f"the stored {field} of workspace {team!r} does not open: wrong key or an "
                             "altered row") from None

    @staticmethod
    def _aad(key_id: str, field: str, team: str | None) -> bytes:
        return f"{key_id}|{field}|{team or ''}".encode()

    def sealed(self, entity: T) -> T:
        out = copy.copy(entity)
        for field in TOKEN_FIELDS:
            if hasattr(out, field):
                setattr(out, field, self.seal(getattr(out, field), field, out.team_id))
        return out

    def opened(self, entity: T | None) -> T | None:
        if entity is None:
            return None
        for field in TOKEN_FIELDS:
            if hasattr(entity, field):
                setattr(entity, field, self.open(getattr(entity, field), field, entity.team_id))
        return entity


class _WideTokens(SQLAlchemyInstallationStore):
    """slack_sdk's tables with the token columns as TEXT: a sealed token is longer than the 200
    characters they allow (PostgreSQL would refuse it; SQLite does not check)."""

    @classmethod
    def build_installations_table(cls, metadata: sqlalchemy.MetaData, table_name: str) -> sqlalchemy.Table:
        return _widened(super().build_installations_table(metadata, table_name))

    @classmethod
    def build_bots_table(cls, metadata: sqlalchemy.MetaData, table_name: str) -> sqlalchemy.Table:
        return _widened(super().build_bots_table(metadata, table_name))


def _widened(table: sqlalchemy.Table) -> sqlalchemy.Table:
    for field in TOKEN_FIELDS:
        if field in table.c:
            table.c[field].type = sqlalchemy.Text()
    return table


class EncryptedInstallationStore(AsyncInstallationStore):
    """Bolt's installation store: slack_sdk's SQLAlchemy store on a thread, tokens sealed at rest."""

    def __init__(self, store: SQLAlchemyInstallationStore, box: TokenBox) -> None:
        self.store = store
        self.box = box

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        await asyncio.to_thread(self.store.save, self.box.sealed(installation))
        log.info("installed in workspace %s (%s)", installation.team_id, installation.team_name)

    async def async_save_bot(self, bot: Bot) -> None:
        await asyncio.to_thread(self.store.save_bot, self.box.sealed(bot))

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        found = await asyncio.to_thread(self.store.find_bot, enterprise_id=enterprise_id, team_id=team_id,
                                        is_enterprise_install=is_enterprise_install)
        return self.box.opened(found)

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        found = await asyncio.to_thread(self.store.find_installation, enterprise_id=enterprise_id,
                                        team_id=team_id, user_id=user_id,
                                        is_enterprise_install=is_enterprise_install)
        return self.box.opened(found)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self.store.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        await asyncio.to_thread(self.store.delete_installation, enterprise_id=enterprise_id, team_id=team_id,
                                user_id=user_id)


class OAuthStateStore(AsyncOAuthStateStore):
    """Bolt's state store: slack_sdk's SQLAlchemy one on a thread. A state is issued with each install
    link and consumed once by the redirect, so any replica can finish an install another one began."""

    def __init__(self, store: SQLAlchemyOAuthStateStore) -> None:
        self.store = store

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.store.issue)

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self.store.consume, state)


def engine_for(url: str | None) -> sqlalchemy.Engine:
    """The database engine (no connection yet); a SQLite file's folder is created here."""
    url = url or DEFAULT_DATABASE_URL
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"DURABOT_DATABASE_URL is not a database URL (e.g. {DEFAULT_DATABASE_URL} or "
                        "postgresql+psycopg://user:password@host/durabot)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        return sqlalchemy.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise UserError(f"DURABOT_DATABASE_URL needs a database driver that is not installed ({exc}); "
                        "install it, e.g. pip install 'psycopg[binary]' for postgresql+psycopg://") from None


class Stores:
    """The installation and state stores over one database (nothing is opened until ``prepare``)."""

    def __init__(self, client_id: str, database_url: str | None, secret_key: str | None) -> None:
        box = TokenBox(secret_key)
        self.engine = engine_for(database_url)
        self._installations = _WideTokens(client_id=client_id, engine=self.engine, logger=log)
        self._states = SQLAlchemyOAuthStateStore(expiration_seconds=STATE_SECONDS, engine=self.engine, logger=log)
        self.installations = EncryptedInstallationStore(self._installations, box)
        self.states = OAuthStateStore(self._states)

    async def prepare(self) -> None:
        """Create the tables if missing (slack_sdk's own layout; ``create_all`` leaves existing ones)."""
        await asyncio.to_thread(self._installations.create_tables)
        await asyncio.to_thread(self._states.create_tables)

    def close(self) -> None:
        self.engine.dispose()
