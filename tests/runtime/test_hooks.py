"""Hooks around LLM rounds and tool calls: inspect, modify, abort with a reason."""

from __future__ import annotations

import pytest

from agent_core import AbortRun, BlockToolArguments, HookContext, Hooks, RedactSecrets, RunAborted, tool
from tests.fakes.openai_server import Reply

RAN: list[str] = []


@tool
async def read_config(name: str) -> str:
    """Reads a config file."""
    RAN.append(name)
    return f"host=db1 password=hunter22 token=sk-abcdefghijklmnopqrstuv name={name}"


def call_then_echo_tool(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "tool":
        return Reply(text=msgs[-1]["content"])
    return Reply(tool_calls=[("read_config", {"name": msgs[-1]["content"]})])


class Shout(Hooks):
    name = "shout"

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def before_llm(self, ctx: HookContext, messages: list[dict]) -> list[dict]:
        self.seen.append(len(messages))
        return [*messages[:-1], {**messages[-1], "content": messages[-1]["content"].upper()}]

    async def after_llm(self, ctx, result):
        result.text = result.text + "!"
        return result


async def test_hooks_modify_the_prompt_and_the_answer(make_agent, fake_openai):
    shout = Shout()
    agent = await make_agent(hooks=[shout])
    result = await agent.run("quiet please", conversation_id="hooks-modify")
    assert result.text == "echo: QUIET PLEASE!"
    assert shout.seen == [1]


async def test_redact_secrets_from_tool_output(make_agent, fake_openai):
    fake_openai.script = call_then_echo_tool
    agent = await make_agent(tools=[read_config], hooks=[RedactSecrets()])
    result = await agent.run("app", conversation_id="hooks-redact")
    assert result.text == "host=db1 password=[redacted] token=[redacted] name=app"
    sent = str(fake_openai.requests[-1]["messages"])
    assert "hunter22" not in sent and "sk-abcdef" not in sent  # the model never saw them


async def test_block_tool_by_argument_aborts_with_the_reason(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = call_then_echo_tool
    agent = await make_agent(tools=[read_config],
                             hooks=[BlockToolArguments("read_config", r"prod", "production configs are off limits")])
    with pytest.raises(RunAborted, match="production configs are off limits"):
        await agent.run("prod-db", conversation_id="hooks-block")
    assert RAN == []
    status = (await agent.status("hooks-block"))
    assert status is not None and status.state == "idle"  # the conversation goes on
    assert (await agent.run("staging", conversation_id="hooks-block")).text.endswith("name=staging")


async def test_abort_from_a_model_hook(make_agent, fake_openai):
    class Budget(Hooks):
        name = "budget"

        async def before_llm(self, ctx, messages):
            if len(messages) > 2:
                raise AbortRun("this conversation used its budget; start a new thread")

    agent = await make_agent(hooks=[Budget()])
    await agent.run("one", conversation_id="hooks-budget")
    with pytest.raises(RunAborted, match="used its budget"):
        await agent.run("two", conversation_id="hooks-budget")
    assert len(fake_openai.requests) == 1


async def test_hook_names_are_in_the_fingerprint(make_agent):
    plain = await make_agent(name="fp")
    hooked = await make_agent(name="fp2", hooks=[RedactSecrets()])
    assert "hooks" not in plain.manifest and hooked.manifest["hooks"] == "redact-secrets"
