"""``durabot status [CONVERSATION]`` and ``durabot deploy status | promote BUILD_ID [--ramp PCT]``.

Both speak to the task queue's worker deployment (agent_core.deployments); this module only words
the answers for a terminal.
"""

from __future__ import annotations

from typing import Any

from agent_core.deployments import describe, promote
from agent_core.settings import Settings

from .app import build_agent


def status_lines(settings: Settings, state: Any, conversation: Any | None, conversation_id: str | None) -> list[str]:
    """What ``durabot status`` prints: this configuration's build, the deployment, a conversation."""
    build = settings.build()
    lines = [f"task queue {settings.task_queue!r}: {build.describe()}"]
    if build.versioned:
        lines += state.lines() if state is not None else [
            f"deployment {build.deployment}: no versioned worker has polled it yet"]
    if conversation_id is not None:
        if conversation is None:
            lines.append(f"conversation {conversation_id!r}: none open")
        else:
            lines.append(f"conversation {conversation_id!r}: {conversation.state}, {conversation.turns} turn(s), "
                         f"on {'build ' + conversation.build_id if conversation.build_id else 'an unversioned worker'}")
    return lines


async def run_status(settings: Settings, conversation_id: str | None) -> None:
    agent = build_agent(settings, local_worker=False)
    await agent.start()
    try:
        build = settings.build()
        state = await describe(agent.client, build.deployment) if build.versioned else None
        conversation = await agent.status(conversation_id) if conversation_id else None
        print("\n".join(status_lines(settings, state, conversation, conversation_id)))
    finally:
        await agent.close()


async def run_deploy(settings: Settings, action: str, build_id: str | None, ramp: float | None) -> None:
    agent = build_agent(settings, local_worker=False)
    await agent.start()
    try:
        deployment = settings.build().deployment
        if action == "promote":
            assert build_id is not None
            state = await promote(agent.client, deployment, build_id, ramp)
            done = f"ramping {build_id} at {ramp:g}%" if ramp is not None and ramp < 100 else f"{build_id} is current"
            print(f"{done}: new conversations go to it, running ones move at their next turn")
        else:
            state = await describe(agent.client, deployment)
            if state is None:
                print(f"deployment {deployment}: no versioned worker has polled it yet "
                      "(workers run versioned when DURABOT_BUILD_ID is set)")
                return
        print("\n".join(state.lines()))
    finally:
        await agent.close()
