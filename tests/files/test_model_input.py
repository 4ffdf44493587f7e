"""A message's files reach the model through the LLM activity: images as image parts, text and PDFs
as text, the rest named; only references cross the workflow (real Temporal, fake model server)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from agent_core import Attachment, FileLimits, LocalBlobStore, ToolOutput, tool
from agent_core.types import BlobRef, ConversationInput
from tests.fakes.openai_server import FakeOpenAI, Reply, content_text, image_parts
from tests.files.samples import pdf, png


@pytest.fixture
def blobs(tmp_path: Any) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def user_messages(body: dict) -> list[dict]:
    return [m for m in body["messages"] if m["role"] == "user"]


async def test_an_image_reaches_the_model_as_an_image_part(make_agent: Any, blobs: Any,
                                                           fake_openai: FakeOpenAI) -> None:
    agent = await make_agent(blobs=blobs)
    image = png()
    ref = await agent.attach(image, "screenshot.png", "image/png")
    result = await agent.run("what is in this picture?", "img-1", attachments=[ref])
    assert result.status.state == "finished"
    body = fake_openai.requests[-1]
    assert image_parts(body) == [f"data:image/png;base64,{base64.b64encode(image).decode()}"]
    text = content_text(user_messages(body)[-1]["content"])
    assert "what is in this picture?" in text and "screenshot.png" in text


async def test_text_files_and_pdfs_reach_the_model_as_text_cut_past_the_limit(
        make_agent: Any, blobs: Any, fake_openai: FakeOpenAI) -> None:
    agent = await make_agent(blobs=blobs, file_limits=FileLimits(text_chars=200))
    csv = await agent.attach(b"region,revenue\n" + b"north,10\n" * 100, "sales.csv")
    report = await agent.attach(pdf("Quarterly revenue was 42 million"), "q3.pdf")
    await agent.run("summarise these", "text-1", attachments=[csv, report])
    text = content_text(user_messages(fake_openai.requests[-1])[-1]["content"])
    assert "region,revenue\nnorth,10" in text
    assert "[sales.csv cut here: the model reads 200 of its 915 characters]" in text
    assert "Quarterly revenue was 42 million" in text
    assert image_parts(fake_openai.requests[-1]) == []


@pytest.mark.parametrize("name,media,data,expected", [
    ("broken.png", "image/png", b"\x89PNG\r\n\x1a\nnot really", "broken.png (image/png, 18 bytes): an image that cannot be read"),
    ("fake.jpg", "image/jpeg", b"\x00\x01 not an image", "fake.jpg (image/jpeg, 15 bytes): an image that cannot be read"),
    ("broken.pdf", "application/pdf", b"%PDF-1.4 then nothing", "broken.pdf (application/pdf, 21 bytes): a PDF that cannot be read"),
    ("archive.zip", "application/zip", b"PK\x03\x04zip", "attachment archive.zip (application/zip, 7 bytes) that cannot be read"),
])
async def test_files_the_model_cannot_read_are_named_and_the_turn_goes_on(
        make_agent: Any, blobs: Any, fake_openai: FakeOpenAI, name: str, media: str, data: bytes,
        expected: str) -> None:
    agent = await make_agent(blobs=blobs)
    ref = await agent.attach(data, name, media)
    result = await agent.run("look at this", f"bad-{name}", attachments=[ref])
    assert result.status.state == "finished"
    text = content_text(user_messages(fake_openai.requests[-1])[-1]["content"])
    assert expected in text and "look at this" in text
    assert image_parts(fake_openai.requests[-1]) == []


async def test_a_file_missing_from_the_store_is_named_not_fatal(make_agent: Any, blobs: Any,
                                                                fake_openai: FakeOpenAI) -> None:
    agent = await make_agent(blobs=blobs)
    gone = BlobRef(sha256="0" * 64, name="lost.txt", media_type="text/plain", size=10)
    result = await agent.run("read it", "gone-1", attachments=[gone])
    assert result.status.state == "finished"
    assert "lost.txt (text/plain, 10 bytes) is no longer available" in content_text(
        user_messages(fake_openai.requests[-1])[-1]["content"])


async def test_only_references_enter_the_history_and_they_survive_continue_as_new(
        make_agent: Any, blobs: Any, fake_openai: FakeOpenAI) -> None:
    agent = await make_agent(blobs=blobs, max_history_events=10)
    big = bytes(range(256)) * 4096 * 2  # 2 MB: past Temporal's payload limit if it were carried
    ref = await agent.attach(big + b"end", "dump.log", "text/plain")
    await agent.run("here is the log", "refs-1", attachments=[ref])
    for i in range(3):  # each turn's history passes the limit: the conversation continues as new
        await agent.run(f"and then {i}", "refs-1")
    runs = [e async for e in agent.client.list_workflows(f"WorkflowId = '{agent.workflow_id('refs-1')}'")]
    assert len(runs) >= 2
    carried = await agent.handle("refs-1").describe()
    assert carried.history_length < 200
    history = await agent.handle("refs-1").fetch_history()
    assert len(json.dumps(history.to_json_dict())) < 200_000
    started = history.events[0].workflow_execution_started_event_attributes
    [run_input] = await agent.client.data_converter.decode(started.input.payloads, [ConversationInput])
    assert run_input.carry is not None  # this run began from a carry: its window holds the reference
    assert [m.attachments for m in run_input.carry.window if m.attachments] == [[ref]]
    user = [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert "dump.log" in content_text(user[0]["content"])  # the first message still has its file


async def test_a_tool_returns_a_file_the_turn_hands_it_on_by_reference(
        make_agent: Any, blobs: Any, fake_openai: FakeOpenAI) -> None:
    @tool
    async def export(rows: int) -> ToolOutput:
        """Rows as a CSV file."""
        data = "n\n" + "".join(f"{i}\n" for i in range(rows))
        return ToolOutput(f"made a CSV of {rows} rows", [Attachment("rows.csv", data=data.encode())])

    def script(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text="attached")
        return Reply(tool_calls=[("export", {"rows": 3})])

    fake_openai.script = script
    agent = await make_agent(blobs=blobs, tools=[export])
    result = await agent.run("export please", "out-1")
    assert result.text == "attached"
    assert [(f.name, f.media_type, f.size) for f in result.files] == [("rows.csv", "text/csv", 8)]
    assert await blobs.get(result.files[0]) == b"n\n0\n1\n2\n"
    tool_message = fake_openai.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == "made a CSV of 3 rows\n[attached rows.csv (text/csv, 8 bytes)]"
