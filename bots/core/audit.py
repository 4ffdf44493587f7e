"""The audit trail: who decided, allowed, revoked, cancelled or overrode what, where and when.

One row per act in table ``durabot_audit`` of the deployment's database (``DURABOT_DATABASE_URL``),
written where the act happens: the click flow (approval_click.py) and the command handlers, which know
the person (id and display name) and the place. The workflow knows the decision too, but not the
display name nor the workspace's link, and an activity per decision would add commands to every
running conversation's history. Rows are only inserted, never updated; they live outside Temporal and
Redis, so they outlast runs, redeploys and a Redis flush.

Writes never fail the act they record: a database error is logged (the act already happened) and
counted in ``durabot_audit_write_errors``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    literal_column,
    select,
)

from .database import engine_for, metadata

__all__ = ["Action", "AuditFilter", "AuditLog", "AuditRecord", "Recorder", "Where", "Who", "digest"]

log = logging.getLogger(__name__)

table = Table(
    "durabot_audit", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(32), nullable=False),
    Column("outcome", String(200), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(200), nullable=True),
    Column("platform", String(16), nullable=False),
    Column("workspace", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("thread", String(64), nullable=True),
    Column("link", String(500), nullable=True),
    Column("conversation_id", String(300), nullable=True),
    Column("tool", String(200), nullable=True),
    Column("arguments_digest", String(64), nullable=True),
    Column("command", Text, nullable=True),
    Index("ix_durabot_audit_at", "workspace", "at"),
    Index("ix_durabot_audit_user", "workspace", "user_id", "at"),
    Index("ix_durabot_audit_channel", "workspace", "channel", "at"),
    Index("ix_durabot_audit_tool", "workspace", "tool", "at"),
)


class Action:
    """What a record is about (the ``action`` column)."""

    APPROVAL = "approval"  # an approval decided once: approved or denied (or refused to the clicker)
    ALLOWANCE = "allowance"  # "always allow in this thread"
    REVOCATION = "revocation"
    CANCEL = "cancel"
    BUDGET_OVERRIDE = "budget_override"
    PROFILE_CHANGE = "profile_change"


def digest(arguments: str) -> str:
    """A short digest of a tool call's arguments: the record proves which call without keeping it."""
    return hashlib.sha256(arguments.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Who:
    id: str
    name: str | None = None  # the platform's display name when the act happened


@dataclass(frozen=True)
class Where:
    platform: str
    workspace: str  # Slack team or Discord guild ("@me" for a DM)
    channel: str
    thread: str | None = None
    link: str | None = None  # to the thread, for people reading the record later
    conversation_id: str | None = None


@dataclass
class AuditRecord:
    action: str
    outcome: str
    user_id: str
    platform: str
    workspace: str
    channel: str
    user_name: str | None = None
    thread: str | None = None
    link: str | None = None
    conversation_id: str | None = None
    tool: str | None = None
    arguments_digest: str | None = None
    command: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None

    @classmethod
    def of(cls, action: str, outcome: str, who: Who, where: Where, **what: Any) -> "AuditRecord":
        return cls(action=action, outcome=outcome, user_id=who.id, user_name=who.name,
                   platform=where.platform, workspace=where.workspace, channel=where.channel,
                   thread=where.thread, link=where.link, conversation_id=where.conversation_id, **what)

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _COLUMNS}
        out["at"] = self.at.isoformat()
        return out


@dataclass(frozen=True)
class AuditFilter:
    workspace: str | None = None  # None: every workspace (the command line only)
    user: str | None = None
    channel: str | None = None
    tool: str | None = None
    since: datetime | None = None
    limit: int | None = 50  # newest first; None: all


_COLUMNS = [f.name for f in fields(AuditRecord)]
COLUMNS = tuple(_COLUMNS)  # the order of ``AuditLog.rows_sync``


class AuditLog:
    """Append and query audit records. ``write`` and ``find`` run the statement on a thread."""

    def __init__(self, engine: Engine, metrics: bool = True) -> None:
        self.engine = engine
        table.create(engine, checkfirst=True)
        # A reader (the export) writes nothing: it spares itself the metrics library's import.
        self._errors = _error_counter() if metrics else None

    @classmethod
    def open(cls, url: str, metrics: bool = True) -> "AuditLog":
        return cls(engine_for(url), metrics)

    async def write(self, record: AuditRecord) -> bool:
        """Insert ``record``; False (logged) when the database refused: the act itself stands."""
        try:
            await asyncio.to_thread(self.write_sync, record)
            return True
        except Exception:  # any driver's error: the record is lost, the act is not undone
            log.exception("audit record of %s by %s not written", record.action, record.user_id)
            if self._errors is not None:
                self._errors.inc()
            return False

    def write_sync(self, record: AuditRecord) -> None:
        values = {k: v for k, v in asdict(record).items() if k != "id"}
        with self.engine.begin() as conn:
            conn.execute(insert(table), values)

    async def find(self, f: AuditFilter) -> list[AuditRecord]:
        return await asyncio.to_thread(self.find_sync, f)

    def find_sync(self, f: AuditFilter) -> list[AuditRecord]:
        return list(self.iter_sync(f))

    def iter_sync(self, f: AuditFilter) -> Any:
        """The matching records, newest first, streamed from the database."""
        for row in self.rows_sync(f):
            rec = AuditRecord(*row)
            if rec.at.tzinfo is None:  # SQLite keeps no zone: every row was written in UTC
                rec.at = rec.at.replace(tzinfo=UTC)
            yield rec

    def json_rows_sync(self, f: AuditFilter, oldest_first: bool = False) -> Any:
        """The matching records as JSON object texts (``to_json``'s fields), streamed. SQLite and
        PostgreSQL build them themselves (their JSON functions, in C): an export of 100,000 records is
        then mostly disk reads. Another database's rows are encoded here."""
        name = self.engine.dialect.name
        if name == "sqlite":  # kept as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: made ISO 8601 with its zone
            at = func.replace(table.c.at, " ", "T").concat("+00:00")
            build = func.json_object
        elif name == "postgresql":
            at, build = table.c.at, func.json_build_object
        else:
            return self._encoded_rows(f, oldest_first)
        pairs: list[Any] = []
        for column in _COLUMNS:
            pairs += [literal_column(f"'{column}'"), at if column == "at" else table.c[column]]
        q = self._filtered(select(build(*pairs)), f, oldest_first)

        def rows() -> Any:
            with self.engine.connect() as conn:
                for text in conn.execution_options(yield_per=5000).execute(q).scalars():
                    yield text if isinstance(text, str) else json.dumps(text)

        return rows()

    def _encoded_rows(self, f: AuditFilter, oldest_first: bool) -> Any:
        encode = json.JSONEncoder(ensure_ascii=False).encode
        at = _COLUMNS.index("at")
        for row in self.rows_sync(f, oldest_first):
            item = dict(zip(_COLUMNS, row))
            when = row[at]
            item["at"] = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
            yield encode(item)

    def _filtered(self, q: Any, f: AuditFilter, oldest_first: bool) -> Any:
        if f.workspace is not None:  # "*": records of every workspace (profile changes)
            q = q.where(table.c.workspace.in_([f.workspace, "*"]))
        for column, value in (("user_id", f.user), ("channel", f.channel), ("tool", f.tool)):
            if value is not None:
                q = q.where(table.c[column] == value)
        if f.since is not None:
            q = q.where(table.c.at >= f.since)
        q = q.order_by(table.c.id) if oldest_first else q.order_by(table.c.at.desc(), table.c.id.desc())
        return q.limit(f.limit) if f.limit is not None else q

    def rows_sync(self, f: AuditFilter, oldest_first: bool = False) -> Any:
        """The matching rows as tuples in ``COLUMNS`` order, newest first, or ``oldest_first`` in the
        order they were written (an export: the primary key's order, no sort)."""
        q = self._filtered(select(*(table.c[name] for name in _COLUMNS)), f, oldest_first)
        with self.engine.connect() as conn:
            yield from conn.execution_options(yield_per=5000).execute(q)


def _error_counter() -> Any:
    try:
        from prometheus_client import REGISTRY, Counter
    except ImportError:  # metrics are optional for SDK users
        return None
    existing = REGISTRY._names_to_collectors.get("durabot_audit_write_errors_total")  # one per process
    return existing or Counter("durabot_audit_write_errors", "Audit records the database refused")


@dataclass(frozen=True)
class Recorder:
    """An audit log with the person and place of one act: ``await recorder(action, outcome, tool=...)``."""

    log: AuditLog
    who: Who
    where: Where

    async def __call__(self, action: str, outcome: str, **what: Any) -> bool:
        return await self.log.write(AuditRecord.of(action, outcome, self.who, self.where, **what))
