"""``/durabot runs`` with 300 open conversations: the old namespace scan against the server-side query.

Starts its own Temporal dev server, fake model and fake Slack Web API, and the real Slack adapter over
HTTP. Opens 300 conversations in one channel of workspace T1 (299 idle, and the oldest one waiting for
an approval) and 300 idle ones in workspace T2, so the namespace holds 600.

- old scan: what ``runs`` did before: read the first 500 running workflows of the namespace, keep
  those of the workspace, ask them one after another until 20 answered (timed directly; it needs no
  adapter). Printed with whether it found the busy conversation.
- old scan, complete: the same loop asking every conversation of the workspace, which is what a correct
  answer would have cost.
- new: ``/durabot runs`` sent to the adapter as a signed slash command, timed from sending it to
  Slack's answer: as a member in the channel, and as an admin (the whole workspace).

    python bench/runs_listing.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_core import Agent, OpenAIChatModel, TemporalConfig  # noqa: E402
from workers.servers import TemporalDevServer  # noqa: E402
from workers.settings import Settings  # noqa: E402
from agent_core.types import ConversationInput, ConversationStatus  # noqa: E402
from agent_core.workflow import ConversationWorkflow  # noqa: E402
from bench.common import summary  # noqa: E402
from bots.slack import SlackAdapter  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402
from tests.fakes.slack_api import FakeSlack, SlackSender  # noqa: E402
from workers.example_tools import EXAMPLE_TOOLS  # noqa: E402

SECRET = "bench-secret"
PER_WORKSPACE = 300
QUEUE = "bench-runs"


def deploy_script(body: dict) -> Reply:
    if body["messages"][-1]["role"] == "tool":
        return Reply(text="deployed")
    return Reply(tool_calls=[("deploy", {"service": "web"})])


async def old_scan(agent: Agent, prefix: str, limit: int) -> list[ConversationStatus]:
    """The listing as it was: a namespace-wide scan filtered on the client, one query at a time."""
    query = "WorkflowType = 'DurabotConversation' AND ExecutionStatus = 'Running'"
    wid_prefix = agent.workflow_id(prefix)
    out: list[ConversationStatus] = []
    async for ex in agent.client.list_workflows(query, limit=500):
        if not ex.id.startswith(wid_prefix) or ex.task_queue != agent.task_queue:
            continue
        handle = agent.client.get_workflow_handle(ex.id)
        status = await agent.query_status(ex.id[len(agent.name) + 1:], handle)
        if status is not None:
            out.append(status)
        if len(out) >= limit:
            break
    return out


async def open_conversations(agent: Agent, team: str, channel: str, n: int) -> None:
    spec = agent.spec()
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        cid = f"slack:{team}:{channel}:{1700000000 + i}.000100"
        async with gate:
            await agent.client.start_workflow(
                ConversationWorkflow.run, ConversationInput(cid, spec, restored=True),
                id=agent.workflow_id(cid), task_queue=agent.task_queue)

    await asyncio.gather(*(one(i) for i in range(n)))


async def timed(fn, rounds: int) -> tuple[list[float], object]:
    times, last = [], None
    for _ in range(rounds):
        started = time.monotonic()
        last = await fn()
        times.append(time.monotonic() - started)
    return times, last


async def main(rounds: int) -> None:
    temporal = TemporalDevServer().start()
    model = FakeOpenAI(deploy_script).start()
    fake = await FakeSlack().start()
    host, port = temporal.address.rsplit(":", 1)
    agent = Agent("bench", model=OpenAIChatModel("fake", api_key="k", base_url=model.base_url),
                  tools=EXAMPLE_TOOLS, temporal=TemporalConfig(host=host, port=int(port), task_queue=QUEUE))
    await agent.start()
    settings = Settings.load(env={"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET,
                                  "SLACK_API_URL": fake.base_url, "DURABOT_TASK_QUEUE": QUEUE,
                                  "DURABOT_ADMINS": "UADMIN"}, dotenv=None)
    adapter = SlackAdapter(settings, agent)
    await adapter.start()
    http_port = await adapter.serve_http(port=0, host="127.0.0.1")
    sender = SlackSender(f"http://127.0.0.1:{http_port}/slack/events", SECRET)
    try:
        busy = "slack:T1:C1:1600000000.000100"  # the oldest conversation, waiting for an approval
        await agent.run_async("deploy web", busy)
        while (st := await agent.status(busy)) is None or st.state != "awaiting_approval":
            await asyncio.sleep(0.05)
        await open_conversations(agent, "T1", "C1", PER_WORKSPACE - 1)
        await open_conversations(agent, "T2", "C1", PER_WORKSPACE)
        while True:  # every one listed and past its first workflow task
            listed = await agent.list_conversations("slack:", limit=1000)
            if len(listed) == 2 * PER_WORKSPACE and all(s.state != "unknown" for s in listed):
                break
            await asyncio.sleep(0.2)
        print(f"{2 * PER_WORKSPACE} open conversations, {PER_WORKSPACE} in workspace T1 channel C1; "
              f"{rounds} rounds each")

        times, found = await timed(lambda: old_scan(agent, "slack:T1:", 20), rounds)
        print(summary("old scan (stops at 20 answers)", times),
              f" busy one found: {any(s.conversation_id == busy for s in found)}")
        times, found = await timed(lambda: old_scan(agent, "slack:T1:", 1000), rounds)
        print(summary("old scan, complete", times),
              f" {len(found)} of {PER_WORKSPACE} seen (the scan stops at 500 of the namespace)")

        async def runs(user: str) -> str:
            status, body = await sender.command("runs", user, "C1")
            assert status == 200
            return body

        for who, user in (("member", "U1"), ("admin", "UADMIN")):
            times, text = await timed(lambda: runs(user), rounds)
            print(summary(f"new /durabot runs ({who})", times),
                  f" busy one found: {busy.split(':', 2)[2] in str(text)}; "
                  f"{str(text).count('no answer in time')} listed without detail")
    finally:
        await sender.close()
        await adapter.stop()
        await agent.close()
        await fake.stop()
        model.stop()
        temporal.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 15))
