"""Token budgets per user and per channel per day: one counter authority, exact under concurrency.

The counters live in Redis (``RedisBudgets``; ``InMemoryBudgets`` inside one process), changed only by
two atomic Lua scripts: ``start`` checks both budgets and claims the turn in one step (it counts the
turn and one token, so of two turns at the edge of a budget exactly one starts); ``charge`` adds a model round's tokens once (a retried
round finds its charge key and adds nothing). Why Redis rather than a workflow per budget scope: the
check sits on the path of every message and every model round, and a workflow per scope would add a
Temporal round trip (and history events) to each, where one script call costs well under a
millisecond; Redis's single-threaded scripts give the same no-lost-update guarantee. Temporal stays
the record of what was used: every model round's tokens are in its conversation's history (the LLM
activity's request and result), so counters lost with a Redis flush, or a new Redis, are recounted
from the conversations (``recount``, see ``budget_recount.py``).

The recount is per workspace (``platform:workspace``: every user and channel scope of it at once) and
guarded by two markers, ``durabot:usage:counted:{workspace}:{day}`` and ``...:{month}``, set by the
same atomic script that adds the recounted figures: of two processes recounting at once, the second
finds the markers and adds nothing. Rounds are added under their charge keys (``SET NX``), so a round
that a worker charged after the flush is not counted twice, and a later retry of a recounted round
adds nothing. With a recount configured, ``start`` claims no turn before its workspace's markers
exist (the script answers "recount first"), so a turn is counted either by the recount (it is in the
history) or by its claim, never by both. A new day finds no day marker: its recount reads only the
conversations active since midnight.

Keys (UTC days and months): ``durabot:usage:{scope}:{YYYY-MM-DD}`` and ``...:{YYYY-MM}`` (tokens),
``...:turns:{...}`` (turns started), ``durabot:charged:{conversation}:{turn}:{round}`` (charged once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .types import BudgetScope

__all__ = ["Budgets", "InMemoryBudgets", "RedisBudgets", "Recount", "Start", "Tally", "Usage", "day_and_month",
           "workspace_of"]

log = logging.getLogger(__name__)

DAY_TTL = 3 * 24 * 3600
MONTH_TTL = 62 * 24 * 3600


def day_and_month(now: datetime | None = None) -> tuple[str, str]:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


def workspace_of(key: str) -> str:
    """The workspace of a scope key: ``slack:T1`` of ``slack:T1:U1`` (users and channels share it)."""
    return key.rsplit(":", 1)[0]


@dataclass
class Tally:
    """What the conversations of a workspace used since a time, as the recount read it from Temporal.

    ``rounds``: (charge key, tokens, user key, channel key, UTC day) of every model round charged to a
    budget; ``turns``: (user key, channel key, UTC day) of every message submitted with one.
    """

    rounds: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    turns: list[tuple[str, str, str]] = field(default_factory=list)


Recount = Callable[[str, datetime], Awaitable[Tally]]  # (workspace, since) -> what was used since then


@dataclass(frozen=True)
class Start:
    ok: bool
    over: str | None = None  # "user" or "channel": which budget is used up
    used: int = 0  # tokens of that scope today
    limit: int = 0


@dataclass
class Usage:
    """Tokens and turns of one scope (a user or a channel) today and this month."""

    tokens_today: int = 0
    turns_today: int = 0
    tokens_month: int = 0
    turns_month: int = 0


class Budgets(Protocol):
    async def start(self, scope: BudgetScope) -> Start:
        """Claim a turn: refused when the user's or the channel's tokens today reached their budget."""

    async def charge(self, scope: BudgetScope, tokens: int, once: str) -> tuple[int, int]:
        """Add a round's tokens (once per ``once``); the user's and channel's tokens today after it."""

    async def usage(self, key: str) -> Usage:
        """Tokens and turns of scope ``key`` today and this month."""


def _keys(key: str, day: str, month: str) -> list[str]:
    return [f"durabot:usage:{key}:{day}", f"durabot:usage:{key}:{month}",
            f"durabot:usage:turns:{key}:{day}", f"durabot:usage:turns:{key}:{month}"]


_START = """
if ARGV[6] == '1' and (redis.call('EXISTS', KEYS[9]) == 0 or redis.call('EXISTS', KEYS[10]) == 0) then
  return {2, 0, 0}
end
local user_limit, channel_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local u = tonumber(redis.call('GET', KEYS[1]) or '0')
local c = tonumber(redis.call('GET', KEYS[5]) or '0')
if ARGV[5] ~= '1' then
  if user_limit >= 0 and u >= user_limit then return {0, u, user_limit} end
  if channel_limit >= 0 and c >= channel_limit then return {-1, c, channel_limit} end
end
for i = 1, 8 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], (i % 2 == 1) and ARGV[3] or ARGV[4])
end
return {1, u, 0}
"""

_CHARGE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  for i = 2, 5 do
    redis.call('INCRBY', KEYS[i], ARGV[1])
    redis.call('EXPIRE', KEYS[i], (i % 2 == 0) and ARGV[2] or ARGV[3])
  end
end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(redis.call('GET', KEYS[4]) or '0')}
"""


# Add a workspace's recounted use (see the module's notes). KEYS: the day's and the month's markers.
# ARGV: day, month, day TTL, month TTL, "1" if the tally reaches back to the month's start, the number
# of rounds, then 5 values a round (charge key, tokens, user, channel, day) and 3 a turn (user,
# channel, day). Answers 1 (added), 0 (another recount did it) or -1 (the month needs a longer tally).
_RECOUNT = """
local day_missing = redis.call('EXISTS', KEYS[1]) == 0
local month_missing = redis.call('EXISTS', KEYS[2]) == 0
if not day_missing and not month_missing then return 0 end
if month_missing and ARGV[5] ~= '1' then return -1 end
local day, month = ARGV[1], ARGV[2]
local function add(prefix, scope, amount, d)
  if month_missing then
    redis.call('INCRBY', prefix .. scope .. ':' .. month, amount)
    redis.call('EXPIRE', prefix .. scope .. ':' .. month, ARGV[4])
  end
  if day_missing and d == day then
    redis.call('INCRBY', prefix .. scope .. ':' .. day, amount)
    redis.call('EXPIRE', prefix .. scope .. ':' .. day, ARGV[3])
  end
end
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  local once, tokens, u, c, d = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  if (month_missing or d == day) and redis.call('SET', 'durabot:charged:' .. once, '1', 'NX', 'EX', ARGV[3]) then
    add('durabot:usage:', u, tokens, d)
    add('durabot:usage:', c, tokens, d)
  end
end
while i <= #ARGV do
  local u, c, d = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  for _, scope in ipairs({u, c}) do  -- the turn, and the token its claim took
    add('durabot:usage:turns:', scope, 1, d)
    add('durabot:usage:', scope, 1, d)
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
return 1
"""


def _markers(workspace: str, day: str, month: str) -> list[str]:
    return [f"durabot:usage:counted:{workspace}:{day}", f"durabot:usage:counted:{workspace}:{month}"]


class RedisBudgets:
    """The counters in Redis. ``recount``: what a workspace's conversations used since a time, read
    from Temporal (``budget_recount.TemporalRecount``); without it (the usage command without Temporal,
    tests) counters missing from Redis read as zero."""

    def __init__(self, url: str, client: Any = None, recount: Recount | None = None) -> None:
        if client is None:
            import redis.asyncio as redis

            client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=5.0)
        self.redis = client
        self.recount = recount
        self._start = self.redis.register_script(_START)
        self._charge = self.redis.register_script(_CHARGE)
        self._recount = self.redis.register_script(_RECOUNT)

    async def start(self, scope: BudgetScope) -> Start:
        workspace = workspace_of(scope.channel_key)
        for attempt in range(4):  # the script answers 2 while the workspace is not counted: recount first
            day, month = day_and_month()
            if attempt:
                await self.ensure_counted(workspace, day, month)
            keys = (_keys(scope.user_key, day, month) + _keys(scope.channel_key, day, month)
                    + _markers(workspace, day, month))
            ok, used, limit = await self._start(keys=keys, args=[
                -1 if scope.user_limit is None else scope.user_limit,
                -1 if scope.channel_limit is None else scope.channel_limit,
                DAY_TTL, MONTH_TTL, "1" if scope.override_by else "0", "1" if self.recount else "0"])
            if ok != 2:
                break
        else:
            raise RuntimeError(f"the budget counters of {workspace} were lost again while being recounted")
        if ok == 1:
            return Start(True)
        return Start(False, "user" if ok == 0 else "channel", int(used), int(limit))

    async def ensure_counted(self, workspace: str, day: str | None = None, month: str | None = None) -> bool:
        """Recount ``workspace``'s use today and this month from Temporal if Redis lacks it (flushed, new,
        or a new day); whether this call added it. Needs ``recount``."""
        if day is None or month is None:
            day, month = day_and_month()
        markers = _markers(workspace, day, month)
        have_day, have_month = await self.redis.exists(markers[0]), await self.redis.exists(markers[1])
        if have_day and have_month:
            return False
        if self.recount is None:
            raise RuntimeError("no recount configured: the counters cannot be rebuilt from Temporal")
        since = datetime.strptime(day if have_month else month + "-01", "%Y-%m-%d").replace(tzinfo=UTC)
        tally = await self.recount(workspace, since)
        args: list[Any] = [day, month, DAY_TTL, MONTH_TTL, "0" if have_month else "1", len(tally.rounds)]
        for row in tally.rounds:
            args.extend(row)
        for turn in tally.turns:
            args.extend(turn)
        added = await self._recount(keys=markers, args=args)
        if added == -1:  # the month's marker went meanwhile: count from the month's start
            return await self.ensure_counted(workspace, day, month)
        if added == 1:
            log.info("budget counters of %s recounted from Temporal since %s: %d round(s), %d turn(s)",
                     workspace, since.date(), len(tally.rounds), len(tally.turns))
        return added == 1

    async def charge(self, scope: BudgetScope, tokens: int, once: str) -> tuple[int, int]:
        day, month = day_and_month()
        u, c = _keys(scope.user_key, day, month), _keys(scope.channel_key, day, month)
        user, channel = await self._charge(keys=[f"durabot:charged:{once}", u[0], u[1], c[0], c[1]],
                                           args=[tokens, DAY_TTL, MONTH_TTL])
        return int(user), int(channel)

    async def usage(self, key: str) -> Usage:
        day, month = day_and_month()
        if self.recount is not None:
            await self.ensure_counted(workspace_of(key), day, month)
        return _usage([int(v or 0) for v in await self.redis.mget(_keys(key, day, month))])

    async def aclose(self) -> None:
        await self.redis.aclose()


@dataclass
class InMemoryBudgets:
    """The same counters in one process (tests, ``durabot dev`` without Redis)."""

    counts: dict[str, int] = field(default_factory=dict)
    charged: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self, scope: BudgetScope) -> Start:
        day, month = day_and_month()
        u, c = _keys(scope.user_key, day, month), _keys(scope.channel_key, day, month)
        async with self.lock:
            used_u, used_c = self.counts.get(u[0], 0), self.counts.get(c[0], 0)
            if not scope.override_by:
                if scope.user_limit is not None and used_u >= scope.user_limit:
                    return Start(False, "user", used_u, scope.user_limit)
                if scope.channel_limit is not None and used_c >= scope.channel_limit:
                    return Start(False, "channel", used_c, scope.channel_limit)
            for key in (*u, *c):  # the turn, and the token it claims
                self.counts[key] = self.counts.get(key, 0) + 1
            return Start(True)

    async def charge(self, scope: BudgetScope, tokens: int, once: str) -> tuple[int, int]:
        day, month = day_and_month()
        u, c = _keys(scope.user_key, day, month), _keys(scope.channel_key, day, month)
        async with self.lock:
            if once not in self.charged:
                self.charged.add(once)
                for key in (u[0], u[1], c[0], c[1]):
                    self.counts[key] = self.counts.get(key, 0) + tokens
            return self.counts.get(u[0], 0), self.counts.get(c[0], 0)

    async def usage(self, key: str) -> Usage:
        day, month = day_and_month()
        return _usage([self.counts.get(k, 0) for k in _keys(key, day, month)])


def _usage(values: list[int]) -> Usage:
    """A Usage from the counts of ``_keys``' keys, in their order."""
    tokens_day, tokens_month, turns_day, turns_month = values
    return Usage(tokens_day, turns_day, tokens_month, turns_month)
