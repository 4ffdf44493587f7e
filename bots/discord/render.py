"""What the bot writes in Discord: pure functions from neutral values to message text."""

from __future__ import annotations

import re

from bots.core.sanitize import clean_text
from bots.core.fit import fit, pretty_arguments
from bots.core.split import split_message
from bots.core.tables import tables_to_code_blocks

MESSAGE_LIMIT = 2000
THINKING = "\N{HOURGLASS WITH FLOWING SAND} Thinking\N{HORIZONTAL ELLIPSIS}"
THREAD_NAME_LIMIT = 100

_ICONS = {"approved": "\N{WHITE HEAVY CHECK MARK}", "denied": "\N{CROSS MARK}", "expired": "\N{ALARM CLOCK}",
          "cancelled": "\N{BLACK SQUARE FOR STOP}"}


def tools_line(tools: list[str]) -> str:
    """A compact line naming the tools a turn used (small grey text in Discord)."""
    if not tools:
        return ""
    runs: list[list] = []  # keep order, collapse repeats: `get_time` ×3
    for t in tools:
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    shown = [f"`{name}`" + (f" \N{MULTIPLICATION SIGN}{n}" if n > 1 else "") for name, n in runs]
    return "-# \N{HAMMER AND WRENCH} " + ", ".join(shown)


def reply_parts(text: str, tools: list[str] | None = None, note: str = "", *, partial: bool = False) -> list[str]:
    """The messages that show an answer: tables made readable, split under the 2,000-char limit.

    The tools line comes first so it does not move while text streams in below it. A ``partial``
    (still streaming) text may stop inside a code block: it is closed so the edit renders cleanly.
    Control characters and lone surrogates are dropped (Discord refuses some, UTF-8 cannot carry the
    others); mentions in the text stay text, because every message is sent with no allowed mentions.
    """
    body = tables_to_code_blocks(clean_text(text).strip())
    note = clean_text(note)
    if partial and _open_fence(body):
        body += "\n```"
    main = "\n\n".join(p for p in (body, note) if p)
    full = "\n".join(p for p in (clean_text(tools_line(tools or [])), main) if p)
    return split_message(full, MESSAGE_LIMIT) or [THINKING]


def _open_fence(text: str) -> bool:
    fences = [ln for ln in text.split("\n") if ln.strip().startswith("```") and "```" not in ln.strip()[3:]]
    return len(fences) % 2 == 1


def cancelled_note(by: str | None) -> str:
    who = f" by {mention(by)}" if by else ""
    return f"-# {_ICONS['cancelled']} Run cancelled{who}."


def failed_note(error: str | None) -> str:
    reason = _one_line(error or "unknown error", 300)
    return (f"\N{WARNING SIGN} Sorry, I could not finish this: {reason}\n"
            "-# Try again in a moment; if it keeps failing, an admin can check the worker logs.")


def mention(user_id: str) -> str:
    return f"<@{user_id}>" if user_id.isdigit() else user_id


def approval_card(tool: str, arguments: str, requested_by: str) -> str:
    return pending_card(tool, arguments, requested_by)[0]


def pending_card(tool: str, arguments: str, requested_by: str) -> tuple[str, bool]:
    """(content of a pending approval card, whether its arguments were cut: then the card offers "Show all")."""
    head = f"\N{LOCK} **Approval needed**: {mention(requested_by)}'s request wants to run `{_tool(tool)}`"
    return _card(head, arguments, pending=True)


def approval_decided(tool: str, arguments: str, status: str, decided_by: str | None,
                     scope: str | None = None) -> str:
    icon = _ICONS.get(status, "\N{INFORMATION SOURCE}")
    who = f" by {mention(decided_by)}" if decided_by and status in ("approved", "denied") else ""
    label = {"expired": "Expired: nobody decided in time", "cancelled": "Cancelled: the run ended"}.get(
        status, status.capitalize())
    if status == "approved" and scope == "thread":
        label = "Allowed in this thread until /durabot revoke"
    return _card(f"{icon} **{label}**{who}: `{_tool(tool)}`", arguments, pending=False)[0]


def _tool(name: str) -> str:
    return name[:100].replace("`", "'")


def _card(head: str, arguments: str, *, pending: bool) -> tuple[str, bool]:
    """``head`` and the arguments in a code block, cut after rendering so the whole stays within
    Discord's 2,000 characters (a longer card is refused, and its approval would expire unseen)."""
    pretty = pretty_arguments(arguments)
    budget = MESSAGE_LIMIT - len(head) - 1
    block, left = fit(pretty, budget, _arguments_block)
    if left:
        room = budget - len(_more(len(pretty), pending)) - 1  # the note, with the largest count it can show
        block, left = fit(pretty, room, _arguments_block)
        block += "\n" + _more(left, pending)
    return f"{head}\n{block}", bool(left)


def _more(left: int, pending: bool) -> str:
    return f"-# \N{HORIZONTAL ELLIPSIS} {left:,} more characters" + (": **Show all** shows them." if pending else ".")


def _arguments_block(pretty: str) -> str:
    return "```json\n" + pretty.replace("```", "`\u200b``") + "\n```"


def strip_mentions(content: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", "", content).strip()


def thread_name(question: str) -> str:
    """A thread name from the question's first line, cut at a word near Discord's 100-char limit."""
    line = _one_line(re.sub(r"<[@#][!&]?\d+>", "", question), 1000) or "durabot"
    if len(line) <= 90:
        return line
    cut = line[:90].rsplit(" ", 1)[0]
    return (cut if len(cut) > 40 else line[:90]) + "\N{HORIZONTAL ELLIPSIS}"


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
