"""Identifiers: Slack thread <-> conversation id, thread links, and approval button ids.

Pure functions. A conversation is one Slack thread: ``slack:{team}:{channel}:{thread_ts}``. A direct
message written outside a thread belongs to the DM's main conversation, ``slack:{team}:{channel}:dm``,
and its replies go to the DM itself rather than a thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bots.core.feedback import Rating
from bots.core.refs import ConversationRef, split_conversation_id

PREFIX = "slack"
DM_MAIN = "dm"
ACTION_PREFIX = "durabot"
MAX_ACTION_ID = 255  # Slack's limit on a button's action_id
MAX_VALUE = 2000  # and on its value


class ThreadRef(ConversationRef):
    """A Slack thread: the team is the workspace; the thread is its ts, or "dm" for a DM's main
    conversation (whose replies are not threaded)."""

    def __init__(self, team: str, channel: str, thread_ts: str) -> None:
        super().__init__(PREFIX, team, channel, thread_ts or DM_MAIN)

    @property
    def team(self) -> str:
        return self.workspace

    @property
    def thread_ts(self) -> str:
        """The thread's ts; "" for a DM's main conversation."""
        return "" if self.thread == DM_MAIN else self.thread

    @property
    def short_id(self) -> str:
        """The id ``/durabot runs`` shows and ``status`` / ``cancel`` accept."""
        return f"{self.channel}:{self.thread}"


def parse_conversation_id(conversation_id: str) -> ThreadRef | None:
    parts = split_conversation_id(conversation_id, PREFIX)
    return None if parts is None else ThreadRef(*parts)


_LINK = re.compile(r"/archives/([A-Z0-9]+)/p(\d{10})(\d{6})(?:\?([^>|\s]*))?")
_THREAD_TS = re.compile(r"(?:^|&)thread_ts=(\d{10}\.\d{6})")
_SHORT = re.compile(r"^([A-Z0-9]+):(\d{10}\.\d{6}|dm)$")


def parse_thread_reference(team: str, text: str) -> ThreadRef | None:
    """What a user typed after ``status`` / ``cancel``: a short id, a full id or a thread link."""
    text = text.strip().strip("<>").split("|", 1)[0]
    full = parse_conversation_id(text)
    if full is not None:
        return full if full.team == team else None
    short = _SHORT.match(text)
    if short:
        return ThreadRef(team, short.group(1), short.group(2))
    link = _LINK.search(text)
    if link:
        channel, ts = link.group(1), f"{link.group(2)}.{link.group(3)}"
        query = _THREAD_TS.search(link.group(4) or "")
        return ThreadRef(team, channel, query.group(1) if query else ts)  # a reply's link names its thread
    return None


def thread_link(base_url: str, ref: ThreadRef) -> str:
    """A link to the thread (or the DM); ``base_url`` is the workspace URL from auth.test."""
    base = (base_url or "https://slack.com/").rstrip("/")
    if not ref.thread_ts:
        return f"{base}/archives/{ref.channel}"
    return f"{base}/archives/{ref.channel}/p{ref.thread_ts.replace('.', '')}"


# ---------------------------------------------------------------- approval buttons
@dataclass(frozen=True)
class ApprovalButton:
    decision: str  # approve | allow (always, in this thread) | deny | show (the whole arguments, in a modal)
    conversation_id: str
    approval_id: str
    requested_by: str


def button_ids(decision: str, conversation_id: str, approval_id: str, requested_by: str) -> tuple[str, str]:
    """(action_id, value) of a card button: everything a click needs, so buttons survive restarts.

    ``requested_by`` is only shown in a refusal: who may decide is the workflow's record, not the button's."""
    action_id = f"{ACTION_PREFIX}:{decision}:{approval_id}"
    value = f"{conversation_id}|{approval_id}|{requested_by}"
    if len(action_id) > MAX_ACTION_ID or len(value) > MAX_VALUE:
        raise ValueError(f"approval {approval_id!r} of {conversation_id!r} does not fit Slack's button limits")
    return action_id, value


ACTION_PATTERN = re.compile(rf"^{ACTION_PREFIX}:(approve|allow|deny|show):")


def parse_button(action_id: str, value: str) -> ApprovalButton | None:
    m = ACTION_PATTERN.match(action_id or "")
    parts = (value or "").split("|")
    if not m or len(parts) != 3 or parse_conversation_id(parts[0]) is None or not parts[1]:
        return None
    return ApprovalButton(m.group(1), parts[0], parts[1], parts[2])


# ---------------------------------------------------------------- feedback buttons
FEEDBACK_ACTION = f"{ACTION_PREFIX}:feedback"  # the action_id of an answer's feedback buttons


def feedback_values(conversation_id: str, turn_id: str) -> tuple[str, str]:
    """The values of an answer's thumbs up and down: the rating and the answer it is about."""
    up, down = f"up|{conversation_id}|{turn_id}", f"down|{conversation_id}|{turn_id}"
    if len(down) > MAX_VALUE:
        raise ValueError(f"turn {turn_id!r} of {conversation_id!r} does not fit Slack's button limits")
    return up, down


def parse_feedback(value: str) -> Rating | None:
    parts = (value or "").split("|")
    if len(parts) != 3 or parse_conversation_id(parts[1]) is None:
        return None
    rating = Rating(parts[1], parts[2], parts[0])
    return rating if rating.valid else None
