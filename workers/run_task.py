"""``durabot run "task"``: one autonomous run from the command line; the answer goes to stdout."""

from __future__ import annotations

import sys
import uuid

from agent_core import AgentMode, RunFailed
from agent_core.events import TextAccumulator
from agent_core.settings import Settings

from .app import build_agent


async def run_task(settings: Settings, task: str, conversation_id: str | None = None) -> None:
    agent = build_agent(settings, mode=AgentMode.AUTONOMOUS)
    conversation = conversation_id or f"run-{uuid.uuid4().hex[:8]}"
    async with agent:
        print(f"[conversation {conversation}]", file=sys.stderr)
        acc = TextAccumulator()
        printed = ""
        async for ev in agent.stream(task, conversation_id=conversation, user="cli"):
            if ev.kind == "approval_requested" and ev.approval:
                print(f"[waiting for approval of {ev.approval.tool}({ev.approval.arguments}): run "
                      f"'durabot approve {conversation} {ev.approval.id}' or 'durabot deny ...']", file=sys.stderr)
            elif ev.kind == "tool_started":
                print(f"[tool {ev.tool}]", file=sys.stderr)
            elif ev.kind in ("token", "retry", "round_finished"):
                acc.feed(ev)
            elif ev.kind == "finished":
                sys.stdout.write((ev.text or "") + "\n")
                printed = ev.text or ""
            elif ev.kind == "cancelled":
                raise RunFailed(f"the run was cancelled by {ev.data.get('by')}")
            elif ev.kind == "error":
                raise RunFailed(f"the run failed: {ev.error}")
        if not printed and acc.text:
            sys.stdout.write(acc.text + "\n")
