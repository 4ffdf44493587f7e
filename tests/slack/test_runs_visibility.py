"""/durabot runs and status show a member only the conversations of the channel they are in; admins see
the workspace; nobody sees another workspace's. With hundreds of conversations, runs still answers in
Slack's 3 s."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from dataclasses import replace

from agent_core import Agent
from agent_core.types import ConversationInput
from agent_core.workflow import ConversationWorkflow
from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import SlackSender
from tests.slack.conftest import SECRET


def deploy_script(body):
    if body["messages"][-1]["role"] == "tool":
        return Reply(text="deployed")
    return Reply(tool_calls=[("deploy", {"service": "web", "version": "v1"})])


async def command(sender: SlackSender, text: str, user: str, channel: str) -> str:
    status, body = await sender.command(text, user, channel)
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    return answer["text"]


async def until_listed(sender: SlackSender, user: str, channel: str, *needles: str) -> str:
    """The visibility store lags a little behind a new workflow: ask again until all are listed."""
    deadline = time.monotonic() + 20
    while True:
        text = await command(sender, "runs", user, channel)
        if all(n in text for n in needles):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{needles} not all listed after 20 s: {text}")
        await asyncio.sleep(0.1)  # poll interval


async def test_member_sees_only_this_channel_admin_the_workspace_nobody_another_workspace(
        start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack(DURABOT_ADMINS="UADMIN")
    h.fake.users["UWSADMIN"] = {"id": "UWSADMIN", "is_admin": True}
    mine = await h.mention("deploy web", channel="C1", user="U1")
    private = await h.mention("deploy web", channel="CPRIV", user="U2")  # a private channel U1 is not in
    # A DM of U2 with the bot, and a conversation of another workspace in a channel with the same id.
    dm_channel = "D" + uuid.uuid4().hex[:8].upper()
    await h.agent.run_async("deploy web", f"slack:T1:{dm_channel}:dm", user="U2")
    await h.agent.run_async("deploy web", f"slack:T2:C1:{mine['ts']}", user="U9")
    ours, theirs, dm = f"C1:{mine['ts']}", f"CPRIV:{private['ts']}", f"{dm_channel}:dm"

    admin_view = await until_listed(h.sender, "UADMIN", "C1", ours, theirs, dm)
    member_view = await command(h.sender, "runs", "U1", "C1")
    assert ours in member_view
    assert theirs not in member_view and dm not in member_view and "CPRIV" not in member_view
    assert "in this channel" in member_view

    assert "awaiting_approval" in admin_view and "in this workspace" in admin_view
    assert "T2" not in admin_view and admin_view.count(ours) == 2  # link label + id: one line, not two
    ws_admin_view = await command(h.sender, "runs", "UWSADMIN", "C1")  # a Slack workspace admin
    assert ours in ws_admin_view and theirs in ws_admin_view and dm in ws_admin_view
    assert "No active runs in this channel." == await command(h.sender, "runs", "U1", "CEMPTY")

    # status of what one may not see answers exactly as for a conversation that does not exist
    nothing = await command(h.sender, "status CPRIV:1111111111.000001", "U1", "C1")
    assert nothing == "No conversation is open in `CPRIV:1111111111.000001`."
    hidden = f"No conversation is open in `{theirs}`."
    assert await command(h.sender, f"status {theirs}", "U1", "C1") == hidden
    link = f"https://fake.slack.test/archives/CPRIV/p{private['ts'].replace('.', '')}"
    assert await command(h.sender, f"status <{link}>", "U1", "C1") == hidden
    assert await command(h.sender, f"status {dm}", "U1", "C1") == f"No conversation is open in `{dm}`."
    assert "waiting for approval of deploy" in await command(h.sender, f"status {ours}", "U1", "C1")
    assert "waiting for approval of deploy" in await command(h.sender, f"status {theirs}", "U2", "CPRIV")
    assert "waiting for approval of deploy" in await command(h.sender, f"status {theirs}", "UADMIN", "C1")
    assert "waiting for approval of deploy" in await command(h.sender, f"status {dm}", "U2", dm_channel)
    assert dm in await command(h.sender, "runs", "U2", dm_channel)  # one's own DM

    # The other workspace: its member sees its conversation, and never ours, even as an admin.
    other = SlackSender(h.sender.url, SECRET, "T2")
    try:
        t2_view = await command(other, "runs", "UADMIN", "C1")
        assert ours in t2_view  # same channel and thread ids, but T2's conversation
        assert theirs not in t2_view and dm not in t2_view and t2_view.count(ours) == 2
        assert await command(other, f"status {theirs}", "UADMIN", "C1") == hidden
        full = await command(h.sender, f"status slack:T2:C1:{mine['ts']}", "UADMIN", "C1")
        assert "not a run id or a thread link of this workspace" in full
    finally:
        await other.close()


async def test_runs_answers_within_three_seconds_with_hundreds_of_conversations(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack()
    agent = h.agent
    spec = agent.spec()
    gate = asyncio.Semaphore(32)

    base = random.randrange(1_000_000_000, 1_600_000_000)  # ids unique on the session's server
    opened: list[str] = []

    async def open_conversation(i: int, channel: str) -> None:
        cid = f"slack:T1:{channel}:{base + i}.000100"
        async with gate:  # started through the client: no Slack event, no model call; they wait idle
            await agent.client.start_workflow(
                ConversationWorkflow.run, ConversationInput(cid, spec, restored=True),
                id=agent.workflow_id(cid), task_queue=agent.task_queue)
        opened.append(cid)

    # The one busy conversation is the oldest: newer idle ones must not hide it.
    busy = await h.mention("deploy web", channel="C1", user="U1")
    busy_id = f"C1:{busy['ts']}"
    await h.fake.wait_for(lambda: any(b.get("type") == "actions"  # its approval card is up
                                      for m in h.fake.bot_messages("C1", busy["ts"])
                                      for b in m.get("blocks") or []))
    try:
        await asyncio.gather(*(open_conversation(i, "C1") for i in range(300)),
                             *(open_conversation(i, "C2") for i in range(20)))
        await runs_answer_in_time(h, busy_id)
    finally:
        await terminate(agent, opened, gate)


async def terminate(agent, conversation_ids: list[str], gate: asyncio.Semaphore) -> None:
    """Leave the session's server as light as we found it."""
    async def one(cid: str) -> None:
        async with gate:
            await agent.client.get_workflow_handle(agent.workflow_id(cid)).terminate("test over")

    await asyncio.gather(*(one(cid) for cid in conversation_ids), return_exceptions=True)


async def runs_answer_in_time(h, busy_id: str) -> None:
    agent = h.agent

    deadline = time.monotonic() + 60
    while True:  # until the visibility store lists them all and every one has run its first task
        found = await agent.list_conversations("slack:T1:C1:", limit=400)
        if len(found) == 301 and all(s.state in ("idle", "awaiting_approval") for s in found):
            break
        assert time.monotonic() < deadline, f"{len(found)} listed"
        await asyncio.sleep(0.1)  # poll interval

    for _ in range(3):
        started = time.monotonic()
        text = await command(h.sender, "runs", "U1", "C1")
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"runs took {elapsed:.2f} s"
        assert "C2:" not in text
        lines = text.splitlines()
        header = re.fullmatch(r"\*Active runs in this channel \((\d+)\):\*", lines[0])
        assert header, text
        listed = int(header.group(1))  # the busy one, and any that missed the deadline: not the idle ones
        shown = lines[1:21]
        assert len(shown) == min(20, listed) and 1 <= listed <= 301
        if listed > 20:
            assert lines[21:] == [f"… and {listed - 20} more"], text
        else:
            assert len(lines) == listed + 1, text
        # what answered in time comes first, with its state; the rest say they did not answer
        assert all("no answer in time" in line or (busy_id in line and "awaiting_approval" in line)
                   for line in shown), text
        assert busy_id in text or listed > 20, text  # it is shown, or one of the "more"
        if listed == 1:
            assert busy_id in shown[0] and "awaiting_approval" in shown[0]


async def test_conversations_that_do_not_answer_are_listed_not_dropped(start_slack, temporal_config, model):
    # No worker polls this agent's task queue: no conversation can answer its status query.
    idle_queue = f"{temporal_config.task_queue}-nobody"
    agent = Agent("assistant", model=model, temporal=replace(temporal_config, task_queue=idle_queue),
                  local_worker=False)
    await agent.start()
    opened: list[str] = []
    try:
        h = await start_slack(agent=agent)
        spec = agent.spec()
        base = random.randrange(1_000_000_000, 1_600_000_000)  # ids unique on the session's server
        for i in range(25):
            cid = f"slack:T1:C1:{base + i}.000100"
            await agent.client.start_workflow(
                ConversationWorkflow.run, ConversationInput(cid, spec, restored=True),
                id=agent.workflow_id(cid), task_queue=idle_queue)
            opened.append(cid)
        deadline = time.monotonic() + 20
        started_here = f"TaskQueue = '{idle_queue}'"
        while (await agent.client.count_workflows(started_here)).count < 25:  # visible to listings
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)  # poll interval

        started = time.monotonic()
        text = await command(h.sender, "runs", "U1", "C1")
        assert time.monotonic() - started < 3.0
        lines = text.splitlines()
        assert lines[0] == "*Active runs in this channel (25):*"
        assert len(lines) == 22 and all("no answer in time" in line for line in lines[1:21])
        assert lines[21] == "… and 5 more"
        assert f"C1:{base + 24}.000100" in lines[1]  # newest first
    finally:
        await terminate(agent, opened, asyncio.Semaphore(32))
        await agent.close()
