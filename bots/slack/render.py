"""What the bot shows in Slack: placeholder, live text, final parts, approval cards, notices. Pure."""

from __future__ import annotations

from functools import lru_cache

from agent_core.types import ApprovalInfo
from bots.core.feedback import COMMENT_CHARS
from bots.core.fit import chunks, fit, pretty_arguments
from bots.core.runlink import LINK_LABEL
from bots.core.sanitize import clean_text
from bots.core.split import split_message

from .ids import FEEDBACK_ACTION, button_ids, feedback_values
from .mrkdwn import escape, safe_url, to_mrkdwn

MAX_PART = 12_000  # characters per answer message; Slack truncates text past 40,000
LIVE_SHOWN = MAX_PART - 200  # characters of answer a live edit shows (the rest comes with the final parts)
LIVE_SOURCE = 2 * MAX_PART  # characters of model text rendered for a live edit: enough to fill it
THINKING = "_Thinking…_"
SECTION_TEXT = 2_900  # characters per section block (Slack allows 3,000)
MODAL_BLOCKS = 100  # blocks a Slack modal holds
METADATA_TYPE = "durabot_message"


def metadata(key: str, payload: dict | None = None) -> dict:
    """Message metadata that lets the bot find its own message again (idempotent posting);
    ``payload``: more facts about the message (where a streamed segment ends)."""
    return {"event_type": METADATA_TYPE, "event_payload": {**(payload or {}), "key": key}}


def metadata_payload(message: dict) -> dict:
    md = message.get("metadata") or {}
    payload = md.get("event_payload") if md.get("event_type") == METADATA_TYPE else None
    return payload if isinstance(payload, dict) else {}


def metadata_key(message: dict) -> str | None:
    md = message.get("metadata") or {}
    if md.get("event_type") != METADATA_TYPE:
        return None
    key = (md.get("event_payload") or {}).get("key")
    return key if isinstance(key, str) else None


def answer_key(turn_id: str, part: int) -> str:
    return f"{turn_id}:{part}"  # part 0 is the placeholder


def segment_key(turn_id: str, segment: int) -> str:
    """The key of a natively streamed message of a turn (an answer may take several)."""
    return f"{turn_id}:s{segment}"


def run_link_block(url: str) -> dict:
    """The small link to a run under an answer."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": f":mag: <{safe_url(url)}|{LINK_LABEL}>"}]}


def card_key(turn_id: str, approval_id: str) -> str:
    return f"{turn_id}:{approval_id}"


def tools_line(tools: list[str]) -> str:
    if not tools:
        return ""
    return "_Tools: " + ", ".join(f"`{escape(clean_text(t))}`" for t in tools) + "_"


def live_text(text: str, tools: list[str], step: str | None = None) -> str:
    """The placeholder while the agent works: text so far, a compact tools line, a working marker.

    The placeholder becomes the answer's first part, so it shows the head of the text; only as much
    of the text as can fill it is rendered, however long the answer grows.
    """
    body = _live_body(text[:LIVE_SOURCE], len(text) > LIVE_SOURCE) if text.strip() else ""
    lines = [body] if body else []
    if tools:
        lines.append(tools_line(tools))
    lines.append(f"_{escape(clean_text(step))}…_" if step else THINKING)
    return "\n\n".join(lines)


@lru_cache(maxsize=32)
def _live_body(head: str, more: bool) -> str:
    # Cached: once an answer outgrows the placeholder, every later event of the turn has the same head.
    body = to_mrkdwn(head)
    if len(body) > LIVE_SHOWN or more:
        body = _cut(body, LIVE_SHOWN) + "\n_… (continues)_"
    return body


def _cut(mrkdwn: str, limit: int) -> str:
    """``mrkdwn`` cut to ``limit`` characters, never inside a link (``<...>``) or an entity (``&amp;``)."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    head = mrkdwn[:limit]
    link = head.rfind("<")
    if link > head.rfind(">"):
        head = head[:link]
    entity = head.rfind("&", max(0, len(head) - 5))
    if entity != -1 and ";" not in head[entity:]:
        head = head[:entity]
    return head


def answer_parts(text: str, tools: list[str]) -> list[str]:
    body = to_mrkdwn(text or "").strip() or "_(no answer)_"
    if tools:
        body += "\n\n" + tools_line(tools)
    return split_message(body, MAX_PART) or ["_(no answer)_"]


def with_run_link(text: str, url: str) -> list[dict]:
    """Blocks that show ``text`` (one answer part) followed by a small link to its run."""
    return answer_blocks(text, url, None) or []


def answer_blocks(text: str, url: str | None, rated: tuple[str, str] | None) -> list[dict] | None:
    """The blocks of an answer part: ``text``, then a small link to its run (``url``) and the thumbs
    up / down of the answer ``rated`` = (conversation id, turn id); None when it needs neither.

    With blocks, Slack shows the blocks and keeps ``text`` for notifications and search, so the part is
    repeated in sections (3,000 characters each at most: a 12,000-character part takes four). Both
    paths that write an answer's last part (the delivery and a streaming replica's last word) build
    its blocks here, so whichever lands last shows the same message.
    """
    if not url and rated is None:
        return None
    sections = split_message(text, SECTION_TEXT) or [text]
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]
    return blocks + (end_blocks(url, rated) or [])


def end_blocks(url: str | None, rated: tuple[str, str] | None) -> list[dict] | None:
    """What ends an answer's last message under its text: the run link and the feedback buttons (a
    natively streamed answer adds them when its stream stops)."""
    blocks = ([run_link_block(url)] if url else []) + ([feedback_block(*rated)] if rated is not None else [])
    return blocks or None


def feedback_block(conversation_id: str, turn_id: str) -> dict:
    """Slack's feedback buttons (a ``feedback_buttons`` element in a ``context_actions`` block); the
    clicked button's value names the rating and the answer."""
    up, down = feedback_values(conversation_id, turn_id)
    return {"type": "context_actions", "elements": [{
        "type": "feedback_buttons", "action_id": FEEDBACK_ACTION,
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": up,
                            "accessibility_label": "Mark this answer as helpful"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": down,
                            "accessibility_label": "Mark this answer as not helpful"},
    }]}


def comment_modal(metadata: str) -> dict:
    """The form a thumbs down opens: an optional comment. ``metadata`` comes back with the submission."""
    return {
        "type": "modal", "callback_id": FEEDBACK_ACTION, "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Feedback"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [{
            "type": "input", "block_id": "comment", "optional": True,
            "label": {"type": "plain_text", "text": "What was wrong with the answer?"},
            "element": {"type": "plain_text_input", "action_id": "comment", "multiline": True,
                        "max_length": COMMENT_CHARS},
        }],
    }


def failed_text(error: str | None) -> str:
    reason = (clean_text(error or "").strip() or "unknown error").splitlines()[0][:300]
    return (f":warning: Sorry, I could not finish this: {escape(reason)}\n"
            "_Write again to retry; if it keeps failing, ask an admin to check the worker logs._")


def cancelled_text(partial: str | None, by: str | None) -> str:
    who = f" by <@{by}>" if by and by[:1] in "UW" else (f" by {escape(by)}" if by else "")
    notice = f":no_entry_sign: _Run cancelled{who}._"
    return f"{to_mrkdwn(partial)}\n\n{notice}" if partial and partial.strip() else notice


def ended_parts(outcome: str, text: str | None, tools: list[str], *, partial: str | None,
                by: str | None) -> list[str]:
    """The messages of an ended turn. ``outcome``: finished, failed or cancelled; ``text``: the
    answer, or the error of a failed turn; ``partial``: what a cancelled turn had shown."""
    if outcome == "finished":
        return answer_parts(text or "", tools)
    if outcome == "failed":
        return [failed_text(text)]
    return [cancelled_text(partial, by)]


def _code(text: str) -> str:
    return "```" + escape(text.replace("```", "'''")) + "```"


def _more(left: int, pending: bool = False) -> str:
    return f"_… {left:,} more characters_" + (": *Show all* shows them." if pending else "")


def _card_arguments(info: ApprovalInfo) -> tuple[str, int]:
    """The card's arguments section and how many characters it leaves out. Cut after escaping, so the
    section stays within Slack's 3,000 characters: a refused card would let the approval expire unseen."""
    pretty = pretty_arguments(info.arguments, indent=1)
    shown, left = fit(pretty, SECTION_TEXT, _code)
    if not left:
        return shown, 0
    pending = info.status == "pending"
    room = SECTION_TEXT - len(_more(len(pretty), pending)) - 1  # the note, with the largest count it can show
    shown, left = fit(pretty, room, _code)
    return f"{shown}\n{_more(left, pending)}", left


def card_blocks(conversation_id: str, info: ApprovalInfo) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of an approval card; with buttons while pending, and "Show all" (the
    whole arguments in a modal) when the card had to leave some out."""
    tool = escape(info.tool[:200])
    head = f":lock: *Approval needed:* `{tool}` requested by <@{info.requested_by}>"
    shown, left = _card_arguments(info)
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": head}},
        {"type": "section", "text": {"type": "mrkdwn", "text": shown}},
    ]
    if info.status == "pending":
        approve = button_ids("approve", conversation_id, info.id, info.requested_by)
        deny = button_ids("deny", conversation_id, info.id, info.requested_by)
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary",
             "action_id": approve[0], "value": approve[1]},
            {"type": "button", "text": {"type": "plain_text", "text": "Deny"}, "style": "danger",
             "action_id": deny[0], "value": deny[1]},
        ]
        if info.thread_scope:
            buttons[0]["text"]["text"] = "Approve once"
        if left:
            show = button_ids("show", conversation_id, info.id, info.requested_by)
            buttons.append({"type": "button", "text": {"type": "plain_text", "text": "Show all"},
                            "action_id": show[0], "value": show[1]})
        blocks.append({"type": "actions", "block_id": f"durabot-approval-{info.id}", "elements": buttons})
        if info.thread_scope:
            # A row of its own: the wider grant is not one slip away from "Approve once".
            allow = button_ids("allow", conversation_id, info.id, info.requested_by)
            blocks.append({"type": "actions", "block_id": f"durabot-allow-{info.id}", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": ALWAYS_ALLOW},
                 "action_id": allow[0], "value": allow[1]}]})
        fallback = f"Approval needed: {tool} requested by <@{info.requested_by}>"
    else:
        outcome = decision_text(info)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
        fallback = f"{tool}: {outcome}"
    return fallback, blocks


def arguments_modal(info: ApprovalInfo) -> dict:
    """A modal with a tool call's whole arguments, in as many sections as they take (a modal holds 100
    blocks); what still does not fit is counted in a last note."""
    head = f"`{escape(info.tool[:200])}` requested by <@{info.requested_by}>"
    pretty = pretty_arguments(info.arguments, indent=1)
    sections, left = chunks(pretty, SECTION_TEXT, _code, MODAL_BLOCKS - 2)
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]
    if left:
        note = f"_… {left:,} more characters: too long to show here._"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {"type": "modal", "title": {"type": "plain_text", "text": "Tool call arguments"},
            "close": {"type": "plain_text", "text": "Close"}, "blocks": blocks}


ALWAYS_ALLOW = "Always allow in this thread"


def decision_text(info: ApprovalInfo) -> str:
    by = f" by <@{info.decided_by}>" if info.decided_by else ""
    approved = f":white_check_mark: Approved{by}"
    if info.scope == "thread":
        approved += f": `{escape(info.tool[:200])}` is allowed in this thread until `/durabot revoke`"
    return {
        "approved": approved,
        "denied": f":x: Denied{by}",
        "expired": ":hourglass: Expired: nobody decided in time",
        "cancelled": ":no_entry_sign: Cancelled: the run ended before a decision",
    }.get(info.status, info.status)
