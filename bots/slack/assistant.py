"""Slack's AI-app threads: suggested prompts, a working status, a title, and what the user looks at.

Slack has two experiences for AI apps, chosen in the app manifest, and both are handled:
- ``agent_view`` (every new app): each message typed in the app's Messages tab is the root of its
  own thread. Prompts are offered when the tab opens (``app_home_opened``), and what the user looks
  at comes per person (``app_context_changed``).
- ``assistant_view`` (older apps): a thread opens with ``assistant_thread_started`` (prompts are
  offered then, for that thread) and ``assistant_thread_context_changed`` follows the user around.
Messages in these threads (``message.im`` with a ``thread_ts``) become turns like any other message
(ingress.py); this module adds, around them:

- a status while the agent works (``assistant.threads.setStatus``): "is thinking…" as soon as the
  message is taken, "is running <tool>…" when a tool starts, and an empty status (cleared) by the
  delivery once the answer is in the thread. The status follows the turn's live events with its own
  small follower, so the streaming sink stays as it is; Slack drops a status by itself after two
  minutes without a message, so a lost clear never leaves it for good.
- a title from the thread's first message (``assistant.threads.setTitle``), without markup, cut short.
- the channel the user is looking at: remembered per thread (per person in the agent experience), in
  this process, and passed to the model as one line of context text after the text of the next
  message once it changed (not with every message: the transcript keeps it). A restart forgets a
  change not yet passed on; the next change brings it again.

Bolt's ``AsyncAssistant`` middleware is not used: it routes a thread's user messages to listeners of
its own (ours go through the Submitter like every other message) and keeps the context in the metadata
of a bot message it has to find by reading the thread at every message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from typing import Any

from agent_core import Agent
from agent_core.types import TurnStatus
from bots.core.cache import BoundedCache
from bots.core.follow import Follower
from bots.core.sanitize import clean_text

from .ids import ThreadRef
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)

THINKING = "is thinking…"
CLEARED = ""
TITLE_CHARS = 60
PROMPTS_TITLE = "Try asking"
PROMPTS_AGAIN = 600.0  # seconds before the prompts are offered again in the same DM (agent view)
STATUS_IDLE = 120.0  # a status follow with no event for this long stops (Slack drops the status then)
THREADS = 10_000

_USER = re.compile(r"<[@!][^>]*>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_LINK = re.compile(r"<([^>|]+)\|([^>]*)>")
_BARE_LINK = re.compile(r"<([^>|]+)>")
_SPACE = re.compile(r"\s+")
_CHANNEL_ID = re.compile(r"[A-Z0-9]{2,30}")


def _user_key(team: str, user: str) -> str:
    return f"user:{team}:{user}"


def _context_channel(event: dict) -> object:
    context = (event.get("assistant_thread") or {}).get("context")
    return context.get("channel_id") if isinstance(context, dict) else None


def is_assistant_thread(ref: ThreadRef) -> bool:
    """A thread in the app's DM: where Slack's AI-app surface (status, title, prompts) lives."""
    return ref.channel.startswith("D") and bool(ref.thread_ts)


def thread_title(text: str, limit: int = TITLE_CHARS) -> str:
    """A thread's title from its first message: plain words, no mentions or link markup, one line,
    at most ``limit`` characters (cut at a word, with an ellipsis)."""
    text = _CHANNEL.sub(lambda m: "#" + m.group(1), clean_text(text))
    text = _USER.sub("", text)
    text = _LINK.sub(lambda m: m.group(2), text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = _SPACE.sub(" ", text.replace("*", "").replace("`", "")).strip()
    if len(text) <= limit:
        return text or "New chat"
    head = text[: limit - 1]
    if " " in head[limit // 2:]:
        head = head[: head.rindex(" ")]
    return head.rstrip(" ,.;:") + "…"


def viewing_note(channel: str) -> str:
    """The context line a message carries when the user looks at ``channel``."""
    return f"[Context from Slack: while writing this, the user is looking at channel <#{channel}>.]"


class AssistantThreads:
    def __init__(self, agent: Agent, web: SlackWeb, prompts: list[tuple[str, str]]) -> None:
        self.agent = agent
        self.web = web
        self.prompts = prompts
        # conversation id -> (channel the user looks at, whether the model was told already)
        self._viewing: BoundedCache[str, tuple[str, bool]] = BoundedCache(THREADS)
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}  # running status follows; each removes itself
        self._offered: BoundedCache[tuple[str, str], None] = BoundedCache(THREADS, ttl=PROMPTS_AGAIN)
        self._later: set[asyncio.Task] = set()

    # ---------------------------------------------------------------- events
    async def on_thread_started(self, event: dict, team: str) -> None:
        ref = self._ref(event, team)
        if ref is None:
            return
        self._remember(ref.conversation_id, _context_channel(event), ref.channel)
        if self.prompts:
            self._background(self._offer(ref.channel, ref.thread_ts))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """After the event's ack: a slow Slack must not hold the ack back past 3 s (Slack would send
        the event again)."""
        task = asyncio.create_task(work)
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _offer(self, channel: str, thread_ts: str | None, done: tuple[str, str] | None = None) -> None:
        prompts = [{"title": t, "message": m} for t, m in self.prompts]
        where = {"thread_ts": thread_ts} if thread_ts else {}  # an agent app's call has none
        try:
            await self.web.call("assistant.threads.setSuggestedPrompts", channel_id=channel, prompts=prompts,
                                title=PROMPTS_TITLE, **where)
        except SlackCallError as exc:
            if done is not None:
                self._offered.pop(done, None)  # offer again at the next opening
            log.info("suggested prompts for %s/%s not set: %s", channel, thread_ts or "-", exc)

    async def on_context_changed(self, event: dict, team: str) -> None:
        ref = self._ref(event, team)
        if ref is not None:
            self._remember(ref.conversation_id, _context_channel(event), ref.channel)

    # The agent messaging experience (manifest ``agent_view``) has no thread-started event: each
    # message typed in the app's Messages tab starts its own thread. The prompts are offered when the
    # tab opens (``app_home_opened``, tab "messages", without thread_ts: Slack ignores the call with
    # one), and what the user looks at comes per person (``app_context_changed``), for their next
    # message in any thread with the app.
    async def on_home_opened(self, event: dict, team: str) -> None:
        channel = event.get("channel")
        if event.get("tab") != "messages" or not isinstance(channel, str) or not channel or not self.prompts:
            return
        if (team, channel) in self._offered:
            return  # offered lately: every opening of the tab would be one call more
        self._offered.add((team, channel))
        self._background(self._offer(channel, None, done=(team, channel)))

    async def on_app_context_changed(self, event: dict, team: str) -> None:
        user = event.get("user")
        if not isinstance(user, str) or not user:
            return
        context = event.get("context")
        entities = context.get("entities") if isinstance(context, dict) else None
        channel = next((e.get("value") for e in entities or [] if isinstance(e, dict)
                        and e.get("type") == "slack#/types/channel_id"), None)  # ordered by relevance
        self._remember(_user_key(team, user), channel, None)

    @staticmethod
    def _ref(event: dict, team: str) -> ThreadRef | None:
        thread = event.get("assistant_thread") if isinstance(event.get("assistant_thread"), dict) else {}
        channel, ts = thread.get("channel_id"), thread.get("thread_ts")
        if not (isinstance(channel, str) and isinstance(ts, str) and channel and ts):
            return None
        return ThreadRef(team, channel, ts)

    def _remember(self, key: str, channel: object, own_channel: str | None) -> None:
        if not isinstance(channel, str) or not _CHANNEL_ID.fullmatch(channel):
            return
        if channel == own_channel or channel.startswith("D"):  # a DM (the app's or another): nothing to use
            return
        known = self._viewing.get(key)
        if known is None or known[0] != channel:
            self._viewing[key] = (channel, False)

    # ---------------------------------------------------------------- messages
    def context_note(self, ref: ThreadRef, user: str) -> str | None:
        """The line to pass with this thread's next message, if what the user looks at changed."""
        for key in (ref.conversation_id, _user_key(ref.team, user)):
            known = self._viewing.get(key)
            if known is not None:
                return viewing_note(known[0]) if not known[1] else None
        return None

    def noted(self, ref: ThreadRef, user: str) -> None:
        """The context line went with a message that was taken: not again until it changes."""
        for key in (ref.conversation_id, _user_key(ref.team, user)):
            known = self._viewing.get(key)
            if known is not None:
                self._viewing[key] = (known[0], True)
                return

    def turn_started(self, ref: ThreadRef, turn_id: str, first_text: str | None) -> None:
        """A message of an AI-app thread was taken: show the status, title a new thread (``first_text``:
        its first message), and follow the turn for tool statuses, in the background."""
        key = (ref.conversation_id, turn_id)
        if key in self._tasks:
            return
        task = asyncio.create_task(self._follow(ref, turn_id, first_text), name=f"slack-status-{turn_id}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t, k=key: self._tasks.pop(k, None))

    async def _follow(self, ref: ThreadRef, turn_id: str, first_text: str | None) -> None:
        sink = _StatusSink(self, ref)
        await sink.show(THINKING)
        if first_text is not None:
            try:
                await self.web.call("assistant.threads.setTitle", channel_id=ref.channel,
                                    thread_ts=ref.thread_ts, title=thread_title(first_text))
            except SlackCallError as exc:
                log.info("title of %s not set: %s", ref.conversation_id, exc)
        await Follower(self.agent, ref.conversation_id, turn_id, sink, idle=STATUS_IDLE).run()

    async def set_status(self, ref: ThreadRef, status: str) -> None:
        try:
            await self.web.call("assistant.threads.setStatus", channel_id=ref.channel, thread_ts=ref.thread_ts,
                                status=status)
        except SlackCallError as exc:  # best effort: the answer itself does not depend on it
            log.info("status of %s not set to %r: %s", ref.conversation_id, status, exc)

    async def answered(self, ref: ThreadRef, turn_id: str) -> None:
        """The turn's answer (or notice) is in the thread: stop its status follow and clear the status."""
        task = self._tasks.pop((ref.conversation_id, turn_id), None)
        if task is not None:
            task.cancel()
        if is_assistant_thread(ref):
            await self.set_status(ref, CLEARED)

    async def aclose(self) -> None:
        tasks = [*self._tasks.values(), *self._later]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _StatusSink:
    """The status of one turn: "is running <tool>…" while a tool runs, "is thinking…" while the model
    works without text yet; unchanged once the answer's text shows (the answer clears it)."""

    def __init__(self, threads: AssistantThreads, ref: ThreadRef) -> None:
        self.threads = threads
        self.ref = ref
        self.shown: str | None = None

    def update(self, text: str, tools: list[str]) -> None:
        pass

    def render(self, text: str, tools: list[str], step: str | None) -> str | None:
        if step:
            return f"is {clean_text(step)[:80]}…"
        return THINKING if not text.strip() else None

    async def show(self, rendered: str | None) -> None:
        if rendered is None or rendered == self.shown:
            return
        self.shown = rendered
        await self.threads.set_status(self.ref, rendered)

    async def finish(self, ended: TurnStatus | None) -> None:
        pass
