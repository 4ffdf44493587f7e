"""``/durabot runs | status <id> | cancel <id>``: answers are ephemeral text, built within 3 s.

A member sees the conversations of the channel the command was run in (Slack only lets people run
a slash command in a channel they are in, and says which); admins (DURABOT_ADMINS or Slack workspace
admins) see the whole workspace. A profile's admins are admins in that profile's channels
(``bots.core.policy``): they cancel, see and read the usage and audit trail of conversations there. A conversation outside what someone may see is answered exactly as
one that does not exist. Nobody sees another workspace's conversations: the team is part of every
conversation id and of every query.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from agent_core import Agent
from agent_core.errors import AgentRuntimeError
from agent_core.listing import UNKNOWN
from agent_core.types import ConversationStatus
from bots.core.policy import AdminCheck, Place, is_admin
from bots.core.refs import conversation_prefix
from bots.core.allowances import revoke
from bots.core.audit import Action, AuditLog, Recorder, Where, Who
from bots.core.audit_view import lines, parse_audit
from bots.core.usage_view import usage_lines
from bots.core.runs import MAX_RUNS, age, allowed, build, context, feedback, find_runs, step, tools

from . import workspaces
from .ids import PREFIX, ThreadRef, parse_conversation_id, parse_thread_reference, thread_link

log = logging.getLogger(__name__)

BUDGET = 2.5  # seconds: Slack wants the answer within 3
DETAIL_BUDGET = 1.8  # seconds for the conversations' own status answers, inside BUDGET

USAGE = ("Usage: `/durabot runs` (active runs in this channel; admins: the workspace), "
         "`/durabot status <id>`, "
         "`/durabot cancel <id>` (admins), "
         "`/durabot revoke <tool> <id>` (end an \"always allow in this thread\"), "
         "`/durabot audit [@user|#channel|tool] [since]` (admins), "
         "`/durabot usage [<id>] [@user|#channel]` (tokens; others' for admins). "
         "An id is what `runs` shows, or a thread link.")


def describe(status: ConversationStatus, base_url: str) -> str:
    ref = parse_conversation_id(status.conversation_id)
    label = ref.short_id if ref else status.conversation_id
    link = f"<{thread_link(base_url, ref)}|{label}>" if ref else label
    if status.state == UNKNOWN:
        return f"• {link} `{label}` — no answer in time · {age(status.started_at)}"
    bits = [status.state, age(status.started_at)]
    if step(status):
        bits.append(step(status))
    if status.queued:
        bits.append(f"{status.queued} queued")
    if build(status):
        bits.append(f"build `{build(status)}`")  # during a deploy: who is still on the old build
    return f"• {link} `{label}` — " + " · ".join(bits)


class Commands:
    def __init__(self, agent: Agent, admins: list[str], workspace_admin: AdminCheck, base_url: str = "",
                 audit: AuditLog | None = None) -> None:
        """``admins`` is DURABOT_ADMINS; ``workspace_admin`` asks Slack whether someone is a workspace
        admin; ``base_url`` is the workspace's address, for thread links (known after auth.test);
        ``audit`` records cancels and revocations and answers ``audit``."""
        self.agent = agent
        self.audit = audit
        self.admins = admins
        self.workspace_admin = workspace_admin
        self._base_url = base_url

    @property
    def base_url(self) -> str:
        """The address of the workspace at hand: installed in many, the request's (see workspaces.py)."""
        ws = workspaces.current()
        return ws.url if ws is not None and ws.url else self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = value

    def recorder(self, who: Who, conversation_id: str) -> Recorder | None:
        """The audit recorder of an act by ``who`` on a conversation (its thread is the place)."""
        ref = parse_conversation_id(conversation_id)
        if self.audit is None or ref is None:
            return None
        where = Where("slack", ref.team, ref.channel, ref.thread, thread_link(self.base_url, ref), conversation_id)
        return Recorder(self.audit, who, where)

    async def answer(self, text: str, team: str, user: str, channel: str = "", user_name: str | None = None) -> str:
        try:
            return await asyncio.wait_for(self._answer(text.strip(), team, Who(user, user_name), channel), BUDGET)
        except TimeoutError:
            return ":hourglass: The agent did not answer in time; try again in a moment."
        except AgentRuntimeError as exc:
            log.warning("/durabot %r failed: %s", text, exc)
            return ":warning: The agent could not be reached; try again in a minute."

    async def _answer(self, text: str, team: str, who: Who, channel: str) -> str:
        user = who.id
        verb, _, arg = text.partition(" ")
        verb = verb.lower()
        if verb in ("", "help"):
            return USAGE
        if verb == "runs":
            return await self._runs(team, user, channel)
        if verb == "audit":
            return await self._audit(arg, team, user, channel)
        if verb == "usage":
            return await self._usage(arg, team, user, channel)
        if verb not in ("status", "cancel", "revoke"):
            return f"Unknown command {verb!r}. {USAGE}"
        tool = ""
        if verb == "revoke":  # slash commands cannot run in a thread: the thread is named after the tool
            tool, _, arg = arg.strip().partition(" ")
            if not tool or not arg.strip():
                return f"Say which tool and which thread: `/durabot revoke <tool> <thread link>`. {USAGE}"
        ref = parse_thread_reference(team, arg)
        if ref is None:
            return f"{arg.strip() or 'That'!s} is not a run id or a thread link of this workspace. {USAGE}"
        if verb == "status":
            return await self._status(ref, user, channel)
        if verb == "revoke":
            return await self._revoke(ref, tool, who, channel)
        return await self._cancel(ref, who)

    async def _runs(self, team: str, user: str, channel: str) -> str:
        admin = await self.is_admin(user)
        if not admin and not channel:
            return "No active runs you can see here."
        prefix = conversation_prefix(PREFIX, team, None if admin else channel)
        where = "this workspace" if admin else "this channel"
        listing = await find_runs(self.agent, prefix, DETAIL_BUDGET, idle=False)
        if listing.empty:
            return f"No active runs in {where}."
        lines = [describe(r, self.base_url) for r in listing.runs[:MAX_RUNS]]
        more = listing.more("older open conversation(s)")
        if more:
            lines.append(more)
        return f"*Active runs in {where} ({len(listing.runs)}):*\n" + "\n".join(lines)

    async def _may_see(self, ref: ThreadRef, user: str, channel: str) -> bool:
        return ref.channel == channel or await self.is_admin(user, Place(PREFIX, ref.team, ref.channel))

    async def _status(self, ref: ThreadRef, user: str, channel: str) -> str:
        # The same answer for a conversation one may not see as for none: its existence is not told.
        st = await self.agent.status(ref.conversation_id) if await self._may_see(ref, user, channel) else None
        if st is None:
            return f"No conversation is open in `{ref.short_id}`."
        text = describe(st, self.base_url)
        if tools(st):
            text += "\nTools so far: " + ", ".join(f"`{t}`" for t in tools(st))
        if st.profile:
            text += f"\nProfile: `{st.profile}`"
        if allowed(st):
            text += "\nAllowed in this thread: " + ", ".join(f"`{t}` (by <@{by}>)" for t, by in allowed(st))
        if context(st):
            text += f"\nContext: {context(st)}"
        text += f"\n{st.turns} turn(s) done."
        rated = feedback(st)
        if rated is not None:
            text += f"\nFeedback on answers: :+1: {rated[0]} · :-1: {rated[1]}"
        return text

    async def _revoke(self, ref: ThreadRef, tool: str, who: Who, channel: str) -> str:
        user = who.id
        # Revoking only narrows what the agent may do: whoever may see the conversation may revoke.
        if not await self._may_see(ref, user, channel):
            return f"No conversation is open in `{ref.short_id}`."
        done = await revoke(self.agent, ref.conversation_id, tool, user)
        await self._record(who, ref, Action.REVOCATION, "revoked" if done.allowance else "nothing to revoke",
                           tool=tool, command=f"revoke {tool} {ref.short_id}")
        if done.allowance is None:
            left = ", ".join(f"`{t}`" for t in done.allowed) or "none"
            return f"`{tool}` is not allowed in `{ref.short_id}` (allowed there: {left}). Nothing changed."
        return f":lock: `{tool}` needs approval again in `{ref.short_id}`."

    async def _cancel(self, ref: ThreadRef, who: Who) -> str:
        user = who.id
        if not await self.is_admin(user, Place(PREFIX, ref.team, ref.channel)):
            return ":no_entry: Only admins can cancel runs. Nothing changed."
        st = await self.agent.status(ref.conversation_id)
        if st is None or st.current is None:
            return f"Nothing is running in `{ref.short_id}`."
        await self.agent.cancel(ref.conversation_id, by=user)
        await self._record(who, ref, Action.CANCEL, "cancel requested", command=f"cancel {ref.short_id}")
        return f"Cancelling the run in `{ref.short_id}`; a notice will appear in its thread."

    async def _record(self, who: Who, ref: ThreadRef, action: str, outcome: str, **what: str) -> None:
        recorder = self.recorder(who, ref.conversation_id)
        if recorder is not None:
            await recorder(action, outcome, **what)

    async def _usage(self, arg: str, team: str, user: str, channel: str) -> str:
        """Tokens and turns: the channel and the person asking (admins: any ``<@user>`` / ``<#channel>``),
        and a thread when one is named (slash commands cannot run in threads)."""
        person, place, thread = user, channel, None
        for word in arg.split():
            parsed = parse_audit(word, team)  # the same words as audit: <@U…>, <#C…>
            ref = parse_thread_reference(team, word)
            if ref is not None:
                thread = ref
            elif parsed.filter is not None and (parsed.filter.user or parsed.filter.channel):
                person, place = parsed.filter.user or person, parsed.filter.channel or place
            else:
                return f"{word!r} is not a person, a channel or a thread. {USAGE}"
        # Admin rights where each look goes: another person is looked up from here, another channel
        # or thread in its own channel.
        looks = {channel} if person != user else set()
        looks |= {c for c in (place, thread.channel if thread else channel) if c != channel}
        for where in looks:
            if not await self.is_admin(user, Place(PREFIX, team, where) if where else None):
                return ":no_entry: Only admins can see other people's or channels' usage."
        found = await usage_lines(
            self.agent, person=(f"<@{person}>", f"{PREFIX}:{team}:{person}"),
            channel=(f"<#{place}>", f"{PREFIX}:{team}:{place}") if place else None,
            thread=(f"thread `{thread.short_id}`", thread.conversation_id) if thread else None)
        return "*Token usage (UTC days):*\n" + "\n".join(found)

    async def _audit(self, arg: str, team: str, user: str, channel: str) -> str:
        parsed = parse_audit(arg, team)
        wanted = parsed.filter
        if not await self.is_admin(user):
            # A profile's admin reads the trail of one channel of that profile: the one named, else here.
            where = (wanted.channel if wanted is not None else None) or channel
            if not where or not await self.is_admin(user, Place(PREFIX, team, where)):
                return ":no_entry: Only admins can read the audit trail."
            wanted = replace(wanted, channel=where) if wanted is not None else None
        if self.audit is None:
            return "No audit trail is kept by this adapter."
        if wanted is None:
            return str(parsed.problem)
        records = await self.audit.find(wanted)
        if not records:
            return "No audit records match."
        found = lines(records, lambda u: f"<@{u}>",
                      lambda r: f"<{r.link}|#{r.channel}>" if r.link else f"<#{r.channel}>")
        return "*Audit trail, newest first:*\n" + "\n".join(found)

    async def is_admin(self, user: str, place: Place | None = None) -> bool:
        """An admin of the workspace, or (``place``) of that channel's profile."""
        return await is_admin(user, self.admins, self.workspace_admin, profiles=self.agent.profiles, place=place)
