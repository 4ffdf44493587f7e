"""The pure parts of the context: token estimates, windows by model name, what a round sends."""

from __future__ import annotations

import json

import pytest

from agent_core import ChatMessage
from agent_core.context import PINNED_HEADING, SUMMARY_HEADING, select, summary_cut
from agent_core.errors import UserError
from agent_core.settings import Settings
from agent_core.tokens import estimate, input_budget, message_tokens, model_window, request_tokens
from agent_core.types import ToolCall


@pytest.mark.parametrize("model, window", [
    ("openai:gpt-4o-mini", 128_000), ("gpt-4.1-nano", 128_000), ("openai:gpt-5-mini", 128_000),
    ("o3-mini", 128_000), ("claude-sonnet-4", 128_000), ("llama3.1:8b", 128_000), ("llama3:8b", 8_192),
    ("gpt-4", 8_192), ("openrouter/mistralai/mixtral-8x7b", 32_000), ("my-own-model", 8_000), ("demo", 8_000),
])
def test_windows_by_model_name(model, window):
    assert model_window(model) == window


def test_the_budget_keeps_room_for_the_answer():
    assert input_budget(8_000) == 7_000 and input_budget(128_000) == 128_000 - 8_192


@pytest.mark.parametrize("text, at_least", [
    ("hello world", 2), ("1234567890", 4), ("的" * 100, 100), ('{"a": [1, 2, 3]}', 8), ("word " * 1000, 1000),
])
def test_estimates_err_high(text, at_least):
    assert estimate(text) >= at_least


def test_a_request_is_counted_as_its_messages_are():
    msgs = [ChatMessage(role="user", content="hi there", name="ann"),
            ChatMessage(role="assistant", tool_calls=[ToolCall(id="c1", name="f", arguments='{"x": 1}')]),
            ChatMessage(role="tool", content="done", tool_call_id="c1", name="f")]
    wire = [{"role": "user", "content": "hi there", "name": "ann"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
            {"role": "tool", "content": "done", "tool_call_id": "c1", "name": "f"}]
    assert request_tokens(wire) == sum(message_tokens(m) for m in msgs)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert request_tokens(wire, tools) == request_tokens(wire) + estimate(json.dumps(tools))


def turns(n: int, size: int = 40) -> list[ChatMessage]:
    out = []
    for i in range(n):
        out += [ChatMessage(role="user", content=f"question {i} " + "w " * size),
                ChatMessage(role="assistant", content=f"answer {i} " + "w " * size)]
    return out


def test_everything_goes_when_it_fits():
    msgs = turns(5)
    chosen = select(msgs, 10_000)
    assert chosen.messages == msgs and chosen.dropped == 0 and not chosen.full(10_000)


def test_the_newest_that_fit_go_with_the_summary_and_the_pinned_first_request():
    msgs = turns(40)
    chosen = select(msgs, 1_500, fixed=100, summary="facts: A", pinned=msgs[0], pinned_index=0)
    sent = chosen.messages
    assert sent[0].content == SUMMARY_HEADING + "facts: A"
    assert "earlier message(s)" in sent[1].content
    assert sent[2].content == PINNED_HEADING + msgs[0].content
    assert sent[-1] is msgs[-1] and chosen.tokens <= 1_500 and chosen.full(1_500)
    assert chosen.dropped == len(msgs) - (len(sent) - 3) - 1


def test_a_long_old_message_shrinks_before_newer_ones_are_left_out():
    log = ChatMessage(role="tool", content="line\n" * 5_000, tool_call_id="c", name="read_log")
    msgs = [ChatMessage(role="user", content="read the log"),
            ChatMessage(role="assistant", tool_calls=[ToolCall(id="c", name="read_log", arguments="{}")]),
            log, ChatMessage(role="assistant", content="it says line"), ChatMessage(role="user", content="thanks")]
    chosen = select(msgs, 1_000)
    assert len(chosen.messages) == 5 and chosen.dropped == 0
    assert "more characters not shown" in chosen.messages[2].content


def test_the_newest_message_goes_cut_to_the_room_left():
    huge = ChatMessage(role="user", content="word " * 20_000)
    chosen = select([huge], 2_000)
    assert chosen.tokens <= 2_000 and len(chosen.messages[0].content) > 4_000


def test_a_selection_never_starts_with_a_tool_result():
    msgs = [ChatMessage(role="user", content="go"),
            ChatMessage(role="assistant", content="y " * 500, tool_calls=[ToolCall(id="c", name="f", arguments="{}")]),
            ChatMessage(role="tool", content="x", tool_call_id="c", name="f"),
            ChatMessage(role="user", content="next")]
    chosen = select(msgs, 150)
    assert [m.role for m in chosen.messages] == ["system", "user"] and chosen.dropped == 3


def test_a_summary_keeps_the_newest_turns_from_a_user_message_on():
    msgs = turns(30)
    cut = summary_cut(msgs, 2_000)
    assert 0 < cut < len(msgs) and msgs[cut].role == "user"
    assert sum(message_tokens(m) for m in msgs[cut:]) <= 2_000 * 0.4
    one_turn = [ChatMessage(role="user", content="w " * 3_000), ChatMessage(role="assistant", content="ok")]
    assert summary_cut(one_turn, 2_000) == 0  # nothing older to take in


def test_the_setting():
    assert Settings.load(env={}, dotenv=None).context_tokens is None
    assert Settings.load(env={"DURABOT_CONTEXT_TOKENS": "32000"}, dotenv=None).context_tokens == 32_000
    with pytest.raises(UserError, match="DURABOT_CONTEXT_TOKENS"):
        Settings.load(env={"DURABOT_CONTEXT_TOKENS": "lots"}, dotenv=None)


async def test_the_demo_model_summarises_what_the_user_said():
    from agent_core.context import summary_prompt
    from agent_core.model import DemoModel

    async def ignore(_: str) -> None:
        return None

    prompt = summary_prompt(None, turns(3, size=2), 7_000)
    answer = await DemoModel(token_delay=0).complete(prompt, None, ignore)
    assert answer.text.startswith("The user said: question 0") and "question 2" in answer.text


def test_a_long_first_request_goes_whole_in_its_place_and_shrunk_apart():
    first = ChatMessage(role="user", content="please read " + "word " * 900)
    chosen = select([first], 2_000, pinned=first, pinned_index=0)
    assert chosen.messages == [first]
    msgs = [first] + turns(30)
    chosen = select(msgs, 2_000, pinned=first, pinned_index=0)
    apart = next(m for m in chosen.messages if (m.content or "").startswith(PINNED_HEADING))
    assert "more characters not shown" in apart.content and chosen.tokens <= 2_000
