"""History growth per turn: durabot (transcript by reference) against a naive design that sends the
whole transcript into every model activity, measured in the same run against the same fake model.

Prints history events and bytes added by turns 1, 10, 100 and 300 of one conversation.
Target: durabot's bytes per turn at turn 300 at most 1.2 times those at turn 10.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import timedelta

from common import FakeOpenAI, Reply

from agent_core import Agent, OpenAIChatModel, TemporalConfig
from workers.servers import TemporalDevServer
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

MEASURED = (1, 10, 100, 300)
ANSWER = "This is a typical answer of a few sentences, about as long as a chat reply tends to be. " * 3


def script(body: dict) -> Reply:
    return Reply(text=ANSWER)


@activity.defn
async def naive_llm(messages: list[dict]) -> str:
    return await _MODEL.complete_text(messages)


class _Model:
    def __init__(self) -> None:
        self.model: OpenAIChatModel | None = None

    async def complete_text(self, messages: list[dict]) -> str:
        async def ignore(_: str) -> None:
            pass

        return (await self.model.complete(messages, None, ignore)).text  # type: ignore[union-attr]


_MODEL = _Model()


@workflow.defn
class NaiveConversation:
    """What many agent frameworks do: the whole transcript goes into every model activity."""

    def __init__(self) -> None:
        self.transcript: list[dict] = []
        self.pending: list[str] = []
        self.answers = 0

    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.pending))
            self.transcript.append({"role": "user", "content": self.pending.pop(0)})
            text = await workflow.execute_activity(naive_llm, self.transcript,
                                                   start_to_close_timeout=timedelta(seconds=60))
            self.transcript.append({"role": "assistant", "content": text})
            self.answers += 1

    @workflow.update
    async def send(self, text: str) -> int:
        self.pending.append(text)
        target = self.answers + len(self.pending)
        await workflow.wait_condition(lambda: self.answers >= target)
        return self.answers


async def history_size(client: Client, workflow_id: str) -> tuple[int, int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events), sum(e.ByteSize() for e in history.events)


async def measure(send, client: Client, workflow_id: str, turns: int) -> dict[int, tuple[int, int]]:
    out = {}
    for turn in range(1, turns + 1):
        if turn in MEASURED:
            before = await history_size(client, workflow_id) if turn > 1 else (0, 0)
        await send(f"message number {turn}")
        if turn in MEASURED:
            after = await history_size(client, workflow_id)
            out[turn] = (after[0] - before[0], after[1] - before[1])
    return out


async def main(turns: int) -> None:
    server = TemporalDevServer().start()
    fake = FakeOpenAI(script).start()
    try:
        model = OpenAIChatModel("bench", api_key="x", base_url=fake.base_url)
        _MODEL.model = model
        host, port = server.address.rsplit(":", 1)
        config = TemporalConfig(host=host, port=int(port), task_queue="bench-history")
        agent = Agent("bench", model=model, temporal=config, max_history_events=10**6, context_messages=10**6)
        async with agent:
            durable = await measure(lambda text: agent.run(text, conversation_id="history"), agent.client,
                                    agent.workflow_id("history"), turns)
            wid = f"naive-{uuid.uuid4().hex[:6]}"
            async with Worker(agent.client, task_queue="bench-naive", workflows=[NaiveConversation],
                              activities=[naive_llm], workflow_runner=UnsandboxedWorkflowRunner()):
                handle = await agent.client.start_workflow(NaiveConversation.run, id=wid, task_queue="bench-naive")
                naive = await measure(lambda text: handle.execute_update(NaiveConversation.send, text),
                                      agent.client, wid, turns)
        print(f"history added by one turn (answer of {len(ANSWER)} characters, no tools)")
        print(f"{'turn':>6} | {'durabot events':>14} {'bytes':>9} | {'naive events':>12} {'bytes':>9}")
        for turn in MEASURED:
            if turn in durable:
                d, n = durable[turn], naive[turn]
                print(f"{turn:>6} | {d[0]:>14} {d[1]:>9} | {n[0]:>12} {n[1]:>9}")
        last = max(t for t in MEASURED if t in durable)
        if 10 in durable:
            ratio = durable[last][1] / durable[10][1]
            naive_ratio = naive[last][1] / naive[10][1]
            print(f"bytes per turn, turn {last} / turn 10: durabot {ratio:.2f} (target <= 1.2), naive {naive_ratio:.2f}")
    finally:
        fake.stop()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=300)
    asyncio.run(main(parser.parse_args().turns))
