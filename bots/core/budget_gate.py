"""Budgets at the door: a message whose requester or channel used up the day's tokens does not start
a turn. It is held (table ``durabot_budget_holds`` of the deployment's database, so it outlasts an
adapter restart) and answered in the thread with an "ask an admin" button; an admin's click submits
the held message past the budget and is recorded in the audit trail.

The counters are ``agent_core.budgets`` (one authority, atomic); when they cannot be reached the
message goes through (chat keeps working; the round's charge is then skipped and logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from sqlalchemy import Column, DateTime, Engine, String, Table, Text, inspect, insert, select, update
from sqlalchemy import text as sql

from agent_core.budgets import Start
from agent_core.types import BlobRef, BudgetScope, ChatMessage, ToolCall

from .audit import Action, Recorder
from .database import engine_for, metadata

__all__ = ["Hold", "Holds", "OverBudget", "Overridden", "override", "refusal_text", "scope_for"]

log = logging.getLogger(__name__)

holds_table = Table(
    "durabot_budget_holds", metadata,
    Column("id", String(32), primary_key=True),
    Column("conversation_id", String(300), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(200), nullable=True),
    Column("text", Text, nullable=False),
    Column("meta", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("attachments", Text, nullable=True),  # JSON list of BlobRef fields; NULL: held before files were kept
    Column("context", Text, nullable=True),  # JSON list of ChatMessage fields; NULL: none, or held before it was kept
)


def scope_for(conversation_id: str, user: str, user_limit: int | None, channel_limit: int | None,
              override_by: str | None = None) -> BudgetScope:
    """The budgets a message of ``user`` in a conversation counts against (its channel's and its own)."""
    platform, workspace, channel = (conversation_id.split(":") + ["", "", ""])[:3]
    return BudgetScope(f"{platform}:{workspace}:{user}", f"{platform}:{workspace}:{channel}",
                       user_limit, channel_limit, override_by)


@dataclass(frozen=True)
class Hold:
    id: str
    conversation_id: str
    message_id: str
    user_id: str
    user_name: str | None
    text: str
    meta: dict[str, str]
    attachments: list[BlobRef] = field(default_factory=list)  # the message's files, by reference
    context: list[ChatMessage] = field(default_factory=list)  # the thread's earlier messages it came with


class OverBudget(Exception):
    """The message was not submitted: its budget is used up. ``hold`` waits for an admin (None when
    no database keeps holds)."""

    def __init__(self, start: Start, hold: Hold | None) -> None:
        super().__init__(f"{start.over} budget used up ({start.used} of {start.limit} tokens today)")
        self.start, self.hold = start, hold


def refusal_text(start: Start) -> str:
    whose = "your" if start.over == "user" else "this channel's"
    return (f"I can't start this one: {whose} token budget for today is used up "
            f"({start.used:,} of {start.limit:,} tokens). An admin can let it run.")


class Holds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        holds_table.create(engine, checkfirst=True)
        _add_columns(engine)

    @classmethod
    def open(cls, url: str) -> "Holds":
        return cls(engine_for(url))

    async def put(self, conversation_id: str, message_id: str, user: str, user_name: str | None, text: str,
                  meta: dict[str, str], attachments: list[BlobRef] | None = None,
                  context: list[ChatMessage] | None = None) -> Hold:
        files, earlier = list(attachments or []), list(context or [])
        hold = Hold(uuid.uuid4().hex, conversation_id, message_id, user, user_name, text, dict(meta), files, earlier)

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(insert(holds_table), {
                    "id": hold.id, "conversation_id": conversation_id, "message_id": message_id, "user_id": user,
                    "user_name": user_name, "text": text, "meta": json.dumps(meta), "created": datetime.now(UTC),
                    "attachments": json.dumps([asdict(f) for f in files]) if files else None,
                    "context": json.dumps([asdict(m) for m in earlier]) if earlier else None})

        await asyncio.to_thread(write)
        return hold

    async def conversation_of(self, hold_id: str) -> str | None:
        """The conversation of a hold still waiting (None: let through already, or unknown)."""

        def read() -> str | None:
            with self.engine.connect() as conn:
                return conn.execute(select(holds_table.c.conversation_id).where(
                    holds_table.c.id == hold_id, holds_table.c.decided_by.is_(None))).scalar_one_or_none()

        return await asyncio.to_thread(read)

    async def take(self, hold_id: str, by: str) -> Hold | None:
        """Claim a hold for ``by`` (once: a second click, here or in another process, gets None)."""

        def claim() -> Hold | None:
            with self.engine.begin() as conn:
                done = conn.execute(update(holds_table).where(holds_table.c.id == hold_id,
                                                              holds_table.c.decided_by.is_(None))
                                    .values(decided_by=by, decided_at=datetime.now(UTC)))
                if done.rowcount != 1:
                    return None
                row = conn.execute(select(holds_table).where(holds_table.c.id == hold_id)).mappings().one()
            return Hold(row["id"], row["conversation_id"], row["message_id"], row["user_id"], row["user_name"],
                        row["text"], json.loads(row["meta"]),
                        [BlobRef(**f) for f in json.loads(row["attachments"] or "[]")],
                        [_message(m) for m in json.loads(row["context"] or "[]")])

        return await asyncio.to_thread(claim)


def _message(fields: dict[str, Any]) -> ChatMessage:
    return ChatMessage(**{**fields, "tool_calls": [ToolCall(**c) for c in fields.get("tool_calls") or []],
                          "attachments": [BlobRef(**f) for f in fields.get("attachments") or []]})


def _add_columns(engine: Engine) -> None:
    """Databases whose holds table predates the ``attachments`` or ``context`` column get it
    (nullable: old rows kept neither). ``create(checkfirst=True)`` leaves an existing table as it is."""
    have = {c["name"] for c in inspect(engine).get_columns(holds_table.name)}
    for column in ("attachments", "context"):
        if column not in have:
            with engine.begin() as conn:
                conn.execute(sql(f"ALTER TABLE {holds_table.name} ADD COLUMN {column} TEXT"))


class Overridden(Enum):
    DONE = "done"
    NOT_ADMIN = "not_admin"
    GONE = "gone"  # already let through (or never held)


AdminOf = Callable[[str], Awaitable[bool]]  # a conversation id -> whether the clicker is an admin there


async def override(submitter: "Any", holds: Holds, hold_id: str, admin: str, is_admin: bool | AdminOf,
                   audit: Recorder | None) -> tuple[Overridden, Hold | None]:
    """An admin lets a held message run past its budget; recorded (refusals too). ``is_admin``: asked
    of the held message's own conversation (a profile's admins are admins in its places only)."""
    if not isinstance(is_admin, bool):
        held = await holds.conversation_of(hold_id)
        if held is None:
            return Overridden.GONE, None
        is_admin = await is_admin(held)
    if not is_admin:
        if audit is not None:
            await audit(Action.BUDGET_OVERRIDE, "refused: not an admin", command=f"override {hold_id}")
        return Overridden.NOT_ADMIN, None
    hold = await holds.take(hold_id, admin)
    if hold is None:
        return Overridden.GONE, None
    await submitter.submit(hold.text, hold.conversation_id, message_id=hold.message_id, user=hold.user_id,
                           user_name=hold.user_name, context=hold.context, meta=hold.meta, attachments=hold.attachments,
                           override_by=admin)
    if audit is not None:
        await audit(Action.BUDGET_OVERRIDE, "allowed past the budget",
                    command=f"override for {hold.user_id}: message {hold.message_id}")
    return Overridden.DONE, hold
