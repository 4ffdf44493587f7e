"""Which workspace a piece of work belongs to, and that workspace's Web API client.

Installed in many workspaces, every Web API call must carry the token of the workspace it acts in.
The workspace is known where work begins: a Slack request names its team (Bolt's authorize has found
the installation), and a delivery names its conversation, whose id starts with the team. From there
it is set once as the *workspace scope* (a context variable) and every call made under it, including
those of the background tasks a request starts (asyncio copies the context into a task), picks that
workspace's client. Threading the team through every component instead would change every signature
for a value that never varies within one piece of work.

In OAuth mode a call made outside any scope fails (``NOT_INSTALLED``) rather than guessing: no
workspace's token is ever used for another's work. With a single ``SLACK_BOT_TOKEN`` the scope
changes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy.exc
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.types import Delivery
from bots.core.cache import BoundedCache
from bots.core.delivery import Deliverer, Failure

from .ids import parse_conversation_id

__all__ = ["NOT_INSTALLED", "Workspace", "WorkspaceClients", "ScopedDeliverer", "current", "scope",
           "team_of"]

NOT_INSTALLED = "app_not_installed"  # the error of a call for a workspace without an installation
CLIENT_TTL = 60.0  # seconds a workspace's token is reused before the store is read again
WORKSPACES = 10_000


@dataclass(frozen=True)
class Workspace:
    team: str
    bot_user_id: str | None = None  # the app's bot user in this workspace (each workspace has its own)
    bot_id: str | None = None
    url: str | None = None  # https://<workspace>.slack.com/, for links to its threads


_current: ContextVar[Workspace | None] = ContextVar("durabot_slack_workspace", default=None)


def current() -> Workspace | None:
    return _current.get()


def current_team() -> str:
    ws = _current.get()
    return ws.team if ws is not None else ""


@contextlib.contextmanager
def scope(team: str, bot_user_id: str | None = None, bot_id: str | None = None) -> Iterator[Workspace]:
    """Run the block (and the tasks it starts) as work of workspace ``team``."""
    ws = Workspace(team, bot_user_id, bot_id)
    token = _current.set(ws)
    try:
        yield ws
    finally:
        _current.reset(token)


@contextlib.contextmanager
def request() -> Iterator[None]:
    """Bound to one request whatever scope ``scope_middleware`` sets inside it: on leaving, the scope
    is what it was before (a keep-alive connection serves its next request in the same task)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


async def scope_middleware(context: Any, next: Callable[[], Awaitable[Any]]) -> None:
    """Bolt middleware: the request's workspace (the one Bolt authorized, with its bot) becomes the
    scope of its listeners, and of the tasks they start. Bolt runs listeners after its middleware
    returns, in the same task, so the scope is set here and ended by ``request``."""
    if context.team_id:
        authorized = context.authorize_result
        _current.set(Workspace(str(context.team_id), context.bot_user_id, context.bot_id,
                               authorized.url if authorized is not None else None))
    await next()


def team_of(d: Delivery) -> str:
    """The workspace a delivery goes to: the team ingress recorded, else the conversation id's (refs
    written before the team was recorded carry it there)."""
    team = d.meta.get("team", "")
    if not team:
        ref = parse_conversation_id(d.conversation_id)
        team = ref.team if ref else ""
    return team


class NotInstalled(Exception):
    """No installation holds a bot token for this workspace (never installed, or uninstalled)."""


class StoreUnavailable(Exception):
    """The installations' database did not answer (a passing outage, retried like Slack's own)."""


class WorkspaceClients:
    """Each installed workspace's Web API client, from the installation store, reused a short while.

    A workspace removed on another replica is noticed within ``CLIENT_TTL`` (Slack refuses its token
    meanwhile, which a delivery treats as final); ``forget`` drops one at once."""

    def __init__(self, store: AsyncInstallationStore, make: Callable[[str], AsyncWebClient], *,
                 ttl: float = CLIENT_TTL) -> None:
        """``make`` builds a client for a token (the adapter's own kind: metered, no retries)."""
        self.store = store
        self.ttl = ttl
        self._make = make
        self._clients: BoundedCache[str, tuple[float, AsyncWebClient]] = BoundedCache(WORKSPACES)

    async def client(self, team: str) -> AsyncWebClient:
        cached = self._clients.get(team)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            bot = await self.store.async_find_bot(enterprise_id=None, team_id=team) if team else None
        except sqlalchemy.exc.DBAPIError as exc:  # the database is down or unreachable: try again later
            raise StoreUnavailable(type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__) from None
        if bot is None or not bot.bot_token:
            self._clients.pop(team, None)
            raise NotInstalled(team)
        client = self._make(bot.bot_token)
        self._clients[team] = (time.monotonic(), client)
        return client

    def forget(self, team: str) -> None:
        self._clients.pop(team, None)


class ScopedDeliverer:
    """A deliverer whose every call runs in the scope of the delivery's workspace."""

    def __init__(self, inner: Deliverer) -> None:
        self.inner = inner
        self.platform = inner.platform

    def classify(self, exc: Exception) -> Failure:
        return self.inner.classify(exc)

    async def answer(self, d: Delivery, attempt: int = 1) -> None:
        with scope(team_of(d)):
            await self.inner.answer(d, attempt)

    async def card(self, d: Delivery, attempt: int = 1) -> None:
        with scope(team_of(d)):
            await self.inner.card(d, attempt)

    async def decided_card(self, d: Delivery, attempt: int = 1) -> None:
        with scope(team_of(d)):
            await self.inner.decided_card(d, attempt)

    async def plain_answer(self, d: Delivery) -> None:
        with scope(team_of(d)):
            await self.inner.plain_answer(d)

    async def plain_card(self, d: Delivery) -> None:
        with scope(team_of(d)):
            await self.inner.plain_card(d)

    async def plain_decided_card(self, d: Delivery) -> None:
        with scope(team_of(d)):
            await self.inner.plain_decided_card(d)
