"""Messages in: a Slack event becomes a turn of a conversation (one conversation per thread).

``translate_event`` and ``thread_context`` are the pure translation (event payload -> neutral message,
thread history -> context). ``Ingress.on_message`` is the small handler around them: send the message
to the workflow before the event is acked (the message ts deduplicates), then post the placeholder and
follow the live events in the background. Submitting before the placeholder means an adapter that dies
in between loses nothing: the delivery posts the answer as a new message when it finds no placeholder.

Which messages start or continue a turn:
- ``app_mention`` in a channel starts (or continues) the conversation of its thread;
- a ``message`` in a thread continues it without a mention when the bot takes part in that thread
  (the caller checks that; see ``IncomingMessage.needs_membership``);
- a direct message always counts.
The bot's own messages, other bots' messages and edits / deletions never start a turn.

Files shared with a message (its ``files``, subtype ``file_share``) are downloaded from
``url_private_download`` with the bot token (scope ``files:read``) before the submit; the token is
only ever sent to Slack's own hosts (or the configured ``SLACK_API_URL``'s). Large files can take the
handler past Slack's 3 s: Slack then retries the event, and the retry is dropped here (``seen``) while
the first delivery goes on; an adapter that died meanwhile takes the retry as new.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from temporalio.service import RPCError

from agent_core.errors import AgentRuntimeError
from agent_core.types import ChatMessage
from bots.core.cache import BoundedCache
from bots.core.budget_gate import Hold, OverBudget, refusal_text
from bots.core.files import RemoteFile, notice
from bots.core.ingress import Submitter

from . import workspaces
from .assistant import AssistantThreads, is_assistant_thread
from .ids import ThreadRef
from .mrkdwn import escape
from .streaming import LiveStreams
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)

# Subtypes that are a person writing something new; every other subtype (edits, joins, bot messages,
# deletions...) is ignored.
_USER_SUBTYPES = {None, "", "file_share", "thread_broadcast"}
_NOT_CONTEXT = {"assistant_app_thread"}  # an AI-app thread's root ("New chat"): no one wrote it
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

CONTEXT_MESSAGES = 30  # earlier thread messages given to a new conversation, at most
CONTEXT_CHARS = 12_000  # in total
CONTEXT_MESSAGE_CHARS = 2_000  # each
CONTEXT_WAIT = 1.5  # seconds for reading a thread's earlier messages before the ack is due
SEEN = 10_000


@dataclass(frozen=True)
class IncomingMessage:
    ref: ThreadRef
    message_id: str  # the message ts: stable across Slack's retries and shared by app_mention/message
    user: str
    user_name: str | None
    text: str
    in_existing_thread: bool  # written as a reply in a thread (earlier messages may be context)
    needs_membership: bool  # only counts if the bot already takes part in the thread
    bare_mention: bool = False  # a mention with nothing to ask: answer how to ask, start no turn
    files: tuple[dict, ...] = field(default=(), repr=False)  # the message's Slack file objects


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def is_bare(text: str) -> bool:
    """Nothing to ask in it: only whitespace, punctuation or symbols."""
    return not any(ch.isalnum() for ch in text)


def mentions(text: str, user_id: str | None) -> bool:
    return bool(user_id) and any(m == user_id for m in _MENTION.findall(text or ""))


def translate_event(event: dict, team: str, bot_user_id: str | None, bot_id: str | None) -> IncomingMessage | None:
    """The neutral message for an ``app_mention`` or ``message`` event, or None when it is not for us."""
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    if event.get("subtype") not in _USER_SUBTYPES or event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)) or not user or not ts:
        return None
    if user == bot_user_id or (bot_id and event.get("bot_id") == bot_id):
        return None
    text = event.get("text") or ""
    if not isinstance(text, str):
        return None
    thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    in_thread = bool(thread_ts and thread_ts != ts)
    if kind == "message" and not is_dm:
        if mentions(text, bot_user_id):
            return None  # the app_mention event of the same message handles it
        if not in_thread:
            return None  # channel chatter outside threads is not for us
    if is_dm and not thread_ts:
        ref = ThreadRef(team, channel, "")
    else:
        ref = ThreadRef(team, channel, thread_ts or ts)
    profile = event.get("user_profile") if isinstance(event.get("user_profile"), dict) else {}
    name = profile.get("display_name") or profile.get("real_name") or None
    stripped = strip_mention(text, bot_user_id)
    bare = (kind == "app_mention" or mentions(text, bot_user_id)) and not event.get("files") and is_bare(stripped)
    files = tuple(f for f in event.get("files") or () if isinstance(f, dict))
    return IncomingMessage(
        ref=ref, message_id=ts, user=user, user_name=name, text=stripped,
        in_existing_thread=in_thread, needs_membership=(kind == "message" and not is_dm), bare_mention=bare,
        files=files,
    )


def remote_files(files: Any, token: str, api_url: str | None = None) -> list[RemoteFile]:
    """Slack file objects as downloads: ``url_private_download`` with the bot token, which goes to
    Slack's hosts (and the configured API base's) only."""
    out = []
    for f in files or ():
        if not isinstance(f, dict):
            continue
        url = f.get("url_private_download") or f.get("url_private")
        if f.get("mode") in ("tombstone", "hidden_by_limit") or not isinstance(url, str):
            url = None
        headers = {"Authorization": f"Bearer {token}"} if url and _slack_host(url, api_url) else {}
        size = f.get("size")
        out.append(RemoteFile(
            name=str(f.get("name") or f.get("title") or f.get("id") or "file"), url=url,
            size=size if isinstance(size, int) else None, media_type=f.get("mimetype") or None,
            headers=headers, html_ok=f.get("filetype") == "html",
        ))
    return out


def _slack_host(url: str, api_url: str | None) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "slack.com" or host.endswith(".slack.com"):
        return True
    return bool(api_url) and host == (urlsplit(api_url).hostname or "").lower()


def thread_context(messages: list[dict], bot_user_id: str | None, before_ts: str) -> list[ChatMessage]:
    """Earlier messages of a thread (conversations.replies order) as context, newest kept, bounded."""
    return [m for m, _files in thread_context_with_files(messages, bot_user_id, before_ts)]


def thread_context_with_files(messages: list[dict], bot_user_id: str | None,
                              before_ts: str) -> list[tuple[ChatMessage, list[dict]]]:
    """``thread_context``, each message with its Slack file objects (read later, within a budget)."""
    picked: list[tuple[ChatMessage, list[dict]]] = []
    total = 0
    earlier = [m for m in messages if isinstance(m, dict) and _ts(m.get("ts")) < _ts(before_ts)
               and m.get("subtype") not in _NOT_CONTEXT]
    for m in reversed(earlier[-CONTEXT_MESSAGES:]):
        text = (m.get("text") or "").strip()
        files = [f for f in m.get("files") or () if isinstance(f, dict)]
        if not text and not files:
            continue
        if len(text) > CONTEXT_MESSAGE_CHARS:
            text = text[:CONTEXT_MESSAGE_CHARS] + " …"
        if total + len(text) > CONTEXT_CHARS:
            break
        total += len(text)
        mine = bool(m.get("bot_id")) and (m.get("user") in (None, bot_user_id))
        if mine:
            picked.append((ChatMessage(role="assistant", content=text), files))
        else:
            picked.append((ChatMessage(role="user", content=strip_mention(text, bot_user_id),
                                       name=_safe_name(m.get("user") or m.get("username") or "user")), files))
    picked.reverse()
    return picked


def _safe_name(name: str) -> str:
    # OpenAI-style names allow letters, digits, _ and - only.
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:64] or "user"


def _ts(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


BUDGET_ACTION = "durabot:budget"


def budget_blocks(text: str, hold: Hold | None, conversation_id: str) -> list[dict]:
    """The refusal of a message past its budget, with the button that asks an admin to let it run."""
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": f":no_entry: {text}"}}]
    if hold is not None:
        blocks.append({"type": "actions", "block_id": f"durabot-budget-{hold.id}", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Ask an admin to allow it"},
             "action_id": f"{BUDGET_ACTION}:{hold.id}", "value": f"{hold.id}|{conversation_id}"}]})
    return blocks


class Ingress:
    """The handler of ``app_mention`` and ``message`` events. ``identify`` tells it who the bot is
    (learned at start-up) before the first event."""

    def __init__(self, submitter: Submitter, web: SlackWeb, streams: LiveStreams,
                 assistant: AssistantThreads | None = None) -> None:
        self.submitter = submitter
        self.assistant = assistant
        self.agent = submitter.agent
        self.web = web
        self.streams = streams
        self._bot_user_id: str | None = None
        self._bot_id: str | None = None
        self.team = ""
        self.seen: BoundedCache[tuple[str, str], None] = BoundedCache(SEEN)
        self.known_threads: BoundedCache[str, None] = BoundedCache(SEEN)

    def identify(self, bot_user_id: str | None, bot_id: str | None, team: str) -> None:
        self._bot_user_id, self._bot_id, self.team = bot_user_id, bot_id, team

    # Installed in many workspaces, the bot is another user in each: the workspace scope of the
    # event at hand (see workspaces.py) says which, else the one identified at start-up.
    @property
    def bot_user_id(self) -> str | None:
        ws = workspaces.current()
        return ws.bot_user_id if ws is not None and ws.bot_user_id else self._bot_user_id

    @property
    def bot_id(self) -> str | None:
        ws = workspaces.current()
        return ws.bot_id if ws is not None and ws.bot_id else self._bot_id

    async def on_message(self, event: dict, body: dict, retried: bool) -> None:
        """``retried``: Slack delivers this event again (an earlier delivery may have been taken)."""
        team = str(body.get("team_id") or event.get("team") or self.team)
        inc = translate_event(event, team, self.bot_user_id, self.bot_id)
        if inc is None:
            return
        seen = (inc.ref.conversation_id, inc.message_id)
        if seen in self.seen:
            return  # this process already took it (a retry, or the message/app_mention pair)
        if inc.needs_membership and not await self._takes_part(inc.ref):
            return
        if inc.bare_mention:
            self.seen.add(seen)
            await self._hint(inc)
            return
        context, new = await self._context(inc) if inc.in_existing_thread else ([], False)
        self.seen.add(seen)
        meta = {"team": team, "channel": inc.ref.channel, "thread": inc.ref.thread_ts, "user": inc.user}
        existed = self._existed(inc, new)
        assistant = self.assistant if self.assistant is not None and is_assistant_thread(inc.ref) else None
        note = assistant.context_note(inc.ref, inc.user) if assistant is not None else None
        if assistant is not None:
            # A message that is its own thread's root (the agent messaging experience) starts it too;
            # a thread whose conversation ended idle is not new (it keeps its title).
            new = existed is False
        try:
            received = await self.submitter.receive(await self._remote(inc.files))
            handle = await self.submitter.submit(inc.text, inc.ref.conversation_id, message_id=inc.message_id,
                                                 user=inc.user, user_name=inc.user_name, context=context, meta=meta,
                                                 note=note, attachments=received.refs, existed=existed)
        except OverBudget as over:
            await self.web.post(inc.ref.channel, inc.ref.thread_ts, refusal_text(over.start),
                                blocks=budget_blocks(refusal_text(over.start), over.hold, inc.ref.conversation_id))
            return
        except Exception:
            self.seen.pop(seen, None)  # answer 500: Slack retries, the retry is not dropped
            raise
        self.known_threads.add(inc.ref.conversation_id)
        if assistant is not None:
            if note:
                assistant.noted(inc.ref, inc.user)
            assistant.turn_started(inc.ref, inc.message_id, inc.text if new else None)
        said = notice(received.problems)
        if said and not (handle.last_status is not None and handle.last_status.duplicate):
            try:
                # File names are the sender's text: escaped, so a name like <!channel> mentions no one.
                await self.web.post(inc.ref.channel, inc.ref.thread_ts, escape(said), max_wait=CONTEXT_WAIT)
            except SlackCallError as exc:
                log.warning("file notice for message %s in %s not posted: %s", inc.message_id, inc.ref.channel, exc)
        if retried:
            # The submit answer of a repeated message id is the first submit's answer (Temporal dedups
            # the update by id), so ask the turn's state now: an answered turn needs no placeholder.
            try:
                status = await asyncio.wait_for(handle.status(), CONTEXT_WAIT)
            except (asyncio.TimeoutError, AgentRuntimeError, RPCError):
                status = None  # unknown: resume the live stream; the delivery completes it either way
            if status is not None and status.done:
                return
        self.streams.start(inc.ref, inc.message_id, look_first=retried, user=inc.user)

    async def _remote(self, files: Any) -> list[RemoteFile]:
        if not files:
            return []
        return remote_files(files, await self.web.file_token(), self.web.client.base_url)

    async def _takes_part(self, ref: ThreadRef) -> bool:
        """Whether the bot already has a conversation in this thread (then no mention is needed)."""
        try:
            return await self._ran(ref)
        except AgentRuntimeError:
            return False

    async def _ran(self, ref: ThreadRef) -> bool:
        """Whether a conversation ever ran in this thread (running or ended): known in this process,
        or one describe, remembered (bounded) so the thread's next messages need none."""
        cid = ref.conversation_id
        if cid in self.known_threads:
            return True
        if not await self.agent.has_run(cid):
            return False
        self.known_threads.add(cid)
        return True

    def _existed(self, inc: IncomingMessage, starts: bool) -> bool | None:
        """What this process knows of the thread's conversation, so the submit is the message's one
        call to Temporal: it ran (known here, or looked up above), it cannot have (the message opens
        its thread), or unknown (a direct message outside threads after a restart: looked up once)."""
        if inc.ref.conversation_id in self.known_threads:
            return True
        if inc.in_existing_thread:
            return not starts  # _context looked it up
        if inc.ref.thread_ts == inc.message_id:
            return False  # the message is its thread's root: no conversation can have run there
        return None

    async def _hint(self, inc: IncomingMessage) -> None:
        """A mention with nothing to ask: say how to ask instead of sending the model an empty turn."""
        text = f"Ask me something, e.g. <@{self.bot_user_id}> what can you do?"
        try:  # within the ack's 3 s: a channel out of budget gets no hint rather than a retried event
            await self.web.post(inc.ref.channel, inc.ref.thread_ts, text, max_wait=CONTEXT_WAIT)
        except SlackCallError as exc:
            log.warning("hint for message %s in channel %s not posted: %s", inc.message_id, inc.ref.channel, exc)

    async def _context(self, inc: IncomingMessage) -> tuple[list[Any], bool]:
        """Earlier messages of the thread, for a conversation that starts inside it, and whether it
        starts (no conversation runs in the thread yet)."""
        if await self._ran(inc.ref):
            return [], False  # the conversation exists (or ended and is restored): it has its own transcript
        try:
            messages = await asyncio.wait_for(
                self.web.thread_messages(inc.ref.channel, inc.ref.thread_ts, limit=100), CONTEXT_WAIT)
        except (TimeoutError, SlackCallError) as exc:
            log.info("thread context of %s not read (%s); starting without it", inc.ref.conversation_id, exc)
            return [], True
        pairs = thread_context_with_files(messages, self.bot_user_id, inc.message_id)
        return await self.submitter.context_files([(m, await self._remote(files)) for m, files in pairs]), True
