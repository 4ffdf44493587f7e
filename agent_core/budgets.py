"""Token budgets per user and per channel per day: one counter authority, exact under concurrency.

The counters live in Redis (``RedisBudgets``; ``InMemoryBudgets`` inside one process), changed only by
two atomic Lua scripts: ``start`` checks both budgets and claims the turn in one step (it counts the
turn and one token, so of two turns at the edge of a budget exactly one starts); ``charge`` adds a model round's tokens once (a retried
round finds its charge key and adds nothing). Why Redis rather than a workflow per budget scope: the
check sits on the path of every message and every model round, and a workflow per scope would add a
Temporal round trip (and history events) to each, where one script call costs well under a
millisecond; Redis's single-threaded scripts give the same no-lost-update guarantee. Temporal stays
the record of what was used: every turn's tokens are on its workflow (``TurnStatus``), so counters lost
with a Redis flush (run Redis with AOF) can be recounted from the conversations.

Keys (UTC days and months): ``durabot:usage:{scope}:{YYYY-MM-DD}`` and ``...:{YYYY-MM}`` (tokens),
``...:turns:{...}`` (turns started), ``durabot:charged:{conversation}:{turn}:{round}`` (charged once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .types import BudgetScope

__all__ = ["Budgets", "InMemoryBudgets", "RedisBudgets", "Start", "Usage", "day_and_month"]

DAY_TTL = 3 * 24 * 3600
MONTH_TTL = 62 * 24 * 3600


def day_and_month(now: datetime | None = None) -> tuple[str, str]:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


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


class RedisBudgets:
    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            import redis.asyncio as redis

            client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=5.0)
        self.redis = client
        self._start = self.redis.register_script(_START)
        self._charge = self.redis.register_script(_CHARGE)

    async def start(self, scope: BudgetScope) -> Start:
        day, month = day_and_month()
        keys = _keys(scope.user_key, day, month) + _keys(scope.channel_key, day, month)
        ok, used, limit = await self._start(keys=keys, args=[
            -1 if scope.user_limit is None else scope.user_limit,
            -1 if scope.channel_limit is None else scope.channel_limit,
            DAY_TTL, MONTH_TTL, "1" if scope.override_by else "0"])
        if ok == 1:
            return Start(True)
        return Start(False, "user" if ok == 0 else "channel", int(used), int(limit))

    async def charge(self, scope: BudgetScope, tokens: int, once: str) -> tuple[int, int]:
        day, month = day_and_month()
        u, c = _keys(scope.user_key, day, month), _keys(scope.channel_key, day, month)
        user, channel = await self._charge(keys=[f"durabot:charged:{once}", u[0], u[1], c[0], c[1]],
                                           args=[tokens, DAY_TTL, MONTH_TTL])
        return int(user), int(channel)

    async def usage(self, key: str) -> Usage:
        day, month = day_and_month()
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
