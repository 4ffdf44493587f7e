"""The model's own reading of the streamed answer: the real openai client against the fake server,
with bodies cut at odd bytes, line ends of every kind, usage, streamed errors, fields a round does
not use, a body that breaks off, and cancellation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from temporalio.exceptions import ApplicationError

from agent_core.chat_stream import ChatStreamReader
from tests.fakes.openai_server import Reply

TOKENS = ["Hel", "lo, ", "wörld ", "— ", "日本", " done"]
HI = [{"role": "user", "content": "hi"}]


class Deltas:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.first = asyncio.Event()

    async def __call__(self, delta: str) -> None:
        self.seen.append(delta)
        self.first.set()


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}".encode()


def _body(line_end: bytes) -> bytes:
    """A stream a server may send: comments, an event name, multi-line data, every line end."""
    events = [b": keep-alive", _chunk({"role": "assistant", "content": "a"}),
              b"event: message\n" + _chunk({"content": "b"}),
              b'data: {"choices": [{"index": 0, "delta":\ndata: {"content": "c"}}]}',
              _chunk({"content": "\u00e9\u65e5"}, "stop"), b"data: [DONE]"]
    return b"".join(e.replace(b"\n", line_end) + line_end * 2 for e in events)


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_events_come_out_the_same_however_the_body_is_cut(line_end):
    body = _body(line_end)
    whole = ChatStreamReader(Deltas()).feed(body, end=True)
    assert [e[:6] for e in whole] == [b'{"id":', b'{"id":', b'{"choi', b'{"id":', b"[DONE]"]
    assert json.loads(whole[2]) == {"choices": [{"index": 0, "delta": {"content": "c"}}]}
    for cut in range(1, len(body)):
        reader = ChatStreamReader(Deltas())
        assert reader.feed(body[:cut]) + reader.feed(body[cut:]) + reader.feed(b"", end=True) == whole, cut
    bytewise = ChatStreamReader(Deltas())
    events = [e for i in range(len(body)) for e in bytewise.feed(body[i:i + 1])]
    assert events + bytewise.feed(b"", end=True) == whole  # a last lone CR may yet be half a CRLF


def test_an_event_the_body_does_not_finish_is_dropped():
    reader = ChatStreamReader(Deltas())
    assert reader.feed(b'data: {"choices": []}\n\ndata: {"cho') == [b'{"choices": []}']
    assert reader.feed(b'ices": []}\n', end=True) == []


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64])
async def test_text_tool_calls_and_usage_arrive_through_odd_network_reads(model, fake_openai, chunk_bytes):
    fake_openai.script = lambda body: Reply(tokens=TOKENS, tool_calls=[("lookup", {"key": "k"}), ("other", "{}")],
                                            usage=(321, 12), chunk_bytes=chunk_bytes)
    deltas = Deltas()
    result = await model.complete(HI, None, deltas)
    assert deltas.seen == TOKENS and result.text == "".join(TOKENS)
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [("lookup", {"key": "k"}), ("other", {})]
    assert all(c.id.startswith("call_") for c in result.tool_calls)
    assert (result.finish_reason, result.prompt_tokens, result.completion_tokens) == ("tool_calls", 321, 12)
    assert fake_openai.requests[-1]["stream_options"] == {"include_usage": True}


async def test_no_usage_chunk_leaves_the_counts_at_zero(model, fake_openai):
    fake_openai.script = lambda body: Reply(text="four words of answer", usage=None)
    result = await model.complete(HI, None, Deltas())
    assert result.text == "four words of answer" and (result.prompt_tokens, result.completion_tokens) == (0, 0)


async def test_tool_call_arguments_split_over_chunks_are_joined(model, fake_openai):
    def call(index: int, args: str, **more: str) -> bytes:
        return _chunk({"tool_calls": [{"index": index, "function": {"arguments": args, **more}}]})

    raw = b"\n\n".join([
        _chunk({"tool_calls": [{"index": 0, "id": "call_A", "type": "function",
                                "function": {"name": "look", "arguments": ""}}]}),
        call(0, '{"ke', name="up"), call(1, "{}", name="second"), call(0, 'y": 1}'),
        _chunk({}, "tool_calls"), b"data: [DONE]", b""])
    fake_openai.script = lambda body: Reply(raw=raw, chunk_bytes=5)
    result = await model.complete(HI, None, Deltas())
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_A", "lookup", '{"key": 1}'), ("call_1", "second", "{}")]


async def test_reasoning_and_other_fields_never_become_text(model, fake_openai):
    raw = b"\n\n".join([
        _chunk({"role": "assistant", "content": None, "reasoning_content": "let me think"}),
        _chunk({"reasoning": "still thinking", "refusal": None}),
        _chunk({"content": "the answer"}), _chunk({}, "stop"), b"data: [DONE]", b""])
    fake_openai.script = lambda body: Reply(raw=raw)
    deltas = Deltas()
    result = await model.complete(HI, None, deltas)
    assert deltas.seen == ["the answer"] and result.text == "the answer" and result.finish_reason == "stop"


@pytest.mark.parametrize("raw", [
    b"data: {this is not json\n\n",
    b'data: ["a", "list"]\n\n',
    b'data: {"choices": [{"index": 0, "delta": {"content": ["parts"]}}]}\n\n',
    b'data: {"choices": "none"}\n\n',
    b"data: \xff\xfe\n\n",
])
async def test_a_malformed_stream_is_one_clear_error_not_retried(model, fake_openai, raw):
    fake_openai.script = lambda body: Reply(raw=raw)
    with pytest.raises(ApplicationError) as err:
        await model.complete(HI, None, Deltas())
    assert err.value.non_retryable and err.value.details[0] == {"kind": "malformed"}
    assert err.value.message.startswith("model returned a malformed response (")


async def test_an_error_the_server_streams_is_reported_as_the_client_would(model, fake_openai, caplog):
    fake_openai.script = lambda body: Reply(raw=_chunk({"content": "par"}) + b"\n\n"
                                            + b'data: {"error": {"message": "overloaded", "type": "server"}}\n\n')
    deltas = Deltas()
    with pytest.raises(ApplicationError) as err:
        await model.complete(HI, None, deltas)
    assert deltas.seen == ["par"]
    assert err.value.message.startswith("model returned a malformed response (APIError; not retried)")
    assert "overloaded" in caplog.text and "overloaded" not in err.value.message


async def test_a_body_that_breaks_off_is_retried_as_unreachable(model, fake_openai):
    fake_openai.script = lambda body: Reply(tokens=TOKENS, cut_after_writes=2)
    deltas = Deltas()
    with pytest.raises(ApplicationError) as err:
        await model.complete(HI, None, deltas)
    assert deltas.seen == TOKENS[:2]
    assert not err.value.non_retryable and err.value.details[0] == {"kind": "timeout"}
    assert err.value.message.startswith("the model server is unreachable (APIConnectionError; retried automatically)")


async def test_the_connection_is_reused_after_the_end_of_the_answer(model, fake_openai):
    fake_openai.script = lambda body: Reply(tokens=TOKENS, chunk_bytes=3)
    before = len(fake_openai.peers)
    for _ in range(3):
        assert (await model.complete(HI, None, Deltas())).text == "".join(TOKENS)
    assert len(set(fake_openai.peers[before:])) == 1


async def test_a_round_is_cancelled_within_a_second_mid_stream(model, fake_openai):
    fake_openai.script = lambda body: Reply(tokens=["tok "] * 100, token_delay=0.2)
    deltas = Deltas()
    task = asyncio.create_task(model.complete(HI, None, deltas))
    await asyncio.wait_for(deltas.first.wait(), 5)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - start < 1.0 and len(deltas.seen) < 100
    # the client is still usable: the cancelled request's connection was closed, not left half-read
    fake_openai.script = lambda body: Reply(text="after")
    assert (await model.complete(HI, None, Deltas())).text == "after"
