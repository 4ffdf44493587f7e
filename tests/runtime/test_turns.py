"""The durable agent loop against a real Temporal server and a fake model server."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_core import ToolContext, tool
from agent_core.errors import RunFailed, UserError
from tests.fakes.openai_server import Reply, last_user_text


@tool
async def get_time(tz: str = "UTC") -> str:
    """Current time in a time zone."""
    return f"12:00 in {tz}"


@tool
async def explode(reason: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"boom: {reason}")


def tool_then_answer(name: str, args: dict) -> object:
    def script(body: dict) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply(text=f"answer from {last['content']}")
        return Reply(tool_calls=[(name, args)])

    return script


async def test_multi_turn_keeps_context(make_agent, fake_openai):
    agent = await make_agent()
    first = await agent.run("my name is Ada", conversation_id="ctx")
    assert first.text == "echo: my name is Ada"
    second = await agent.run("what is my name?", conversation_id="ctx")
    assert second.text == "echo: what is my name?"
    sent = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "my name is Ada" and sent[1]["content"] == "echo: my name is Ada"


async def test_system_prompt_and_tool_schema_reach_the_model(make_agent, fake_openai):
    agent = await make_agent(system_prompt="Be brief.", tools=[get_time])
    await agent.run("hi", conversation_id="schema")
    body = fake_openai.requests[-1]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    fn = body["tools"][0]["function"]
    assert fn["name"] == "get_time" and fn["description"] == "Current time in a time zone."
    assert fn["parameters"]["properties"]["tz"] == {"type": "string", "default": "UTC"}


async def test_tool_call_round_trip(make_agent, fake_openai):
    fake_openai.script = tool_then_answer("get_time", {"tz": "CET"})
    agent = await make_agent(tools=[get_time])
    result = await agent.run("what time is it?", conversation_id="tool")
    assert result.text == "answer from 12:00 in CET"
    assert result.tool_calls == ["get_time"]


async def test_parallel_tool_calls_run_concurrently(make_agent, fake_openai):
    both_started = asyncio.Event()
    started: list[str] = []

    @tool
    async def slow(label: str) -> str:
        """Waits until both calls are running."""
        started.append(label)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 10)  # would time out if run one after the other
        return f"done {label}"

    def script(body: dict) -> Reply:
        msgs = body["messages"]
        if msgs[-1]["role"] == "tool":
            outs = sorted(m["content"] for m in msgs if m["role"] == "tool")
            return Reply(text=" + ".join(outs))
        return Reply(tool_calls=[("slow", {"label": "a"}), ("slow", {"label": "b"})])

    fake_openai.script = script
    agent = await make_agent(tools=[slow])
    result = await agent.run("go", conversation_id="parallel")
    assert result.text == "done a + done b"
    assert sorted(started) == ["a", "b"]


async def test_malformed_arguments_and_unknown_tool_are_reported_to_the_model(make_agent, fake_openai):
    def script(body: dict) -> Reply:
        msgs = body["messages"]
        if msgs[-1]["role"] == "tool":
            return Reply(text=" | ".join(m["content"] for m in msgs if m["role"] == "tool"))
        return Reply(tool_calls=[("get_time", '{"tz": '), ("launch_rockets", {}), ("get_time", {"zone": 1})])

    fake_openai.script = script
    agent = await make_agent(tools=[get_time])
    result = await agent.run("break things", conversation_id="malformed")
    parts = result.text.split(" | ")
    assert "not valid JSON" in parts[0]
    assert "unknown tool 'launch_rockets'" in parts[1] and "get_time" in parts[1]
    assert "unknown argument(s) zone" in parts[2]
    assert result.tool_calls == []  # none of them ran


async def test_tool_exception_is_reported_to_the_model(make_agent, fake_openai):
    fake_openai.script = tool_then_answer("explode", {"reason": "disk full"})
    agent = await make_agent(tools=[explode])
    result = await agent.run("try it", conversation_id="explode")
    assert result.text == "answer from Error: the tool 'explode' failed: RuntimeError: boom: disk full"


async def test_iteration_limit_ends_with_a_round_without_tools(make_agent, fake_openai):
    def script(body: dict) -> Reply:
        if "tools" not in body:
            return Reply(text="giving up on tools")
        return Reply(tool_calls=[("get_time", {})])

    fake_openai.script = script
    agent = await make_agent(tools=[get_time], max_iterations=3)
    result = await agent.run("loop forever", conversation_id="limit")
    assert result.text == "giving up on tools"
    assert result.tool_calls == ["get_time"] * 3
    assert len(fake_openai.requests) == 4 and "tools" not in fake_openai.requests[-1]


async def test_rate_limited_model_is_retried_by_temporal(make_agent, fake_openai):
    calls = []

    def script(body: dict) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            return Reply(status=429, headers={"Retry-After": "0.2"}, error="slow down")
        return Reply(text="made it")

    fake_openai.script = script
    agent = await make_agent()
    events = [ev async for ev in agent.stream("hello", conversation_id="429")]
    assert events[-1].kind == "finished" and events[-1].text == "made it"
    assert len(calls) == 2  # one retry, by Temporal: the client itself never retries
    assert any(ev.kind == "retry" and ev.attempt == 2 for ev in events)


async def test_model_client_error_fails_the_run_without_retrying(make_agent, fake_openai):
    fake_openai.script = lambda body: Reply(status=400, error="context too long")
    agent = await make_agent()
    with pytest.raises(RunFailed, match=r"HTTP 400 \(bad request.*not retried") as failed:
        await agent.run("hello", conversation_id="400")
    assert "context too long" not in str(failed.value)  # the server's text goes to the log, not to chat
    assert len(fake_openai.requests) == 1
    # the conversation survives the failed turn
    fake_openai.script = lambda body: Reply(text="back")
    assert (await agent.run("again", conversation_id="400")).text == "back"


async def test_garbage_from_the_model_is_a_clear_error(make_agent, fake_openai):
    fake_openai.script = lambda body: Reply(garbage=True)
    agent = await make_agent()
    with pytest.raises(RunFailed, match="malformed response"):
        await agent.run("hello", conversation_id="garbage")


async def test_two_messages_at_once_are_queued_in_order(make_agent, fake_openai):
    fake_openai.script = lambda body: Reply(text=f"re: {last_user_text(body)}", ttft=0.1)
    agent = await make_agent()
    h1, h2 = await asyncio.gather(
        agent.run_async("first", conversation_id="queue", message_id="m1"),
        agent.run_async("second", conversation_id="queue", message_id="m2"),
    )
    r1, r2 = await asyncio.gather(h1.result(30), h2.result(30))
    assert {r1.text, r2.text} == {"re: first", "re: second"}
    assert len(fake_openai.requests) == 2
    order = [last_user_text(b) for b in fake_openai.requests]
    later = fake_openai.requests[1]["messages"]
    assert [m["content"] for m in later if m["role"] == "user"] == order  # second saw the first turn


async def test_duplicate_message_id_runs_once(make_agent, fake_openai):
    agent = await make_agent()
    h1 = await agent.run_async("only once", conversation_id="dup", message_id="same")
    r1 = await h1.result(30)
    h2 = await agent.run_async("only once", conversation_id="dup", message_id="same")
    assert h2.last_status.duplicate and not h1.last_status.duplicate
    r2 = await h2.result(30)
    assert r1.text == r2.text == "echo: only once"
    assert len(fake_openai.requests) == 1


async def test_oversized_tool_output_is_truncated_with_a_note(make_agent, fake_openai):
    @tool
    async def dump() -> str:
        """Returns a lot."""
        return "x" * 3_000_000

    fake_openai.script = tool_then_answer("dump", {})
    agent = await make_agent(tools=[dump])
    result = await agent.run("dump it", conversation_id="big")
    assert "[output truncated: 3000000 characters in all]" in result.text
    assert len(result.text) < 40_000


async def test_both_temporal_and_client_is_a_usage_error(temporal_config, model):
    from agent_core import Agent

    with pytest.raises(UserError, match="not both"):
        Agent("a", model=model, temporal=temporal_config, temporal_client=(object(), "q"))


async def test_given_client_is_not_closed(temporal_config, model):
    from agent_core import Agent

    client = await temporal_config.connect()
    agent = Agent("owned", model=model, temporal_client=(client, temporal_config.task_queue))
    async with agent:
        assert (await agent.run("hi", conversation_id="owned")).text == "echo: hi"
    # the caller's client still works after the agent closed
    assert await client.count_workflows() is not None


def test_tool_schema_from_hints():
    @tool
    def f(a: int, b: list[str], c: float | None = None, ctx: ToolContext | None = None) -> str:
        """Doc."""
        return ""

    assert f.parameters["required"] == ["a", "b"]
    assert f.parameters["properties"]["b"] == {"type": "array", "items": {"type": "string"}}
    assert f.parameters["properties"]["c"]["type"] == ["number", "null"]
    with pytest.raises(ValueError, match="must be of type integer"):
        f.parse_arguments(json.dumps({"a": "x", "b": []}))


async def test_oversized_answer_and_message_are_truncated_with_a_note(make_agent, fake_openai):
    fake_openai.script = lambda body: Reply(tokens=["y" * 100_000] * 3)
    agent = await make_agent(context_tokens=128_000)  # a model with room for the whole message
    result = await agent.run("z" * 150_000, conversation_id="huge")
    assert result.text.endswith("[answer truncated: 300000 characters in all]")
    sent = fake_openai.requests[-1]["messages"][-1]["content"]
    assert sent.endswith("[message truncated: 150000 characters in all]") and len(sent) < 101_000
