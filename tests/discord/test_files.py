"""Files in Discord threads: attachments downloaded at once from their CDN URLs into the blob store
and read by the model, bad ones named in a notice; a tool's file attached after the answer, once,
even when the adapter dies in the middle of the upload. Real adapter and Temporal, fake Discord."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agent_core import Attachment, FileLimits, LocalBlobStore, ToolOutput, tool
from tests.fakes.openai_server import Reply, content_text, image_parts, last_user_text
from tests.files.samples import png
from workers.example_tools import EXAMPLE_TOOLS

MB = 1024 * 1024


@pytest.fixture
def blobs(tmp_path: Any) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def last_user(fake_openai: Any) -> Any:
    return [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]


async def test_attachments_reach_the_model_and_bad_ones_get_a_notice(
        make_agent: Any, fake_openai: Any, fake_discord: Any, adapter: Any, blobs: Any) -> None:
    fake = fake_discord
    agent = await make_agent(blobs=blobs, file_limits=FileLimits(download_seconds=1.0))
    await adapter(agent)
    image = png()
    good = [fake.add_attachment(image, "chart.png", "image/png"),
            fake.add_attachment(b"level=error msg=boom", "app.log", "text/plain")]
    big = fake.add_attachment(b"z" * (25 * MB), "video.mp4", "video/mp4")
    gone = fake.add_attachment(b"expired", "old.txt", "text/plain")
    fake.cdn_status[gone["id"]] = 404
    slow = fake.add_attachment(b"slow", "slow.txt", "text/plain")
    fake.cdn_stall.add(slow["id"])
    question = await fake.user_message("look at these", attachments=[*good, big, gone, slow])
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(m["content"].startswith("echo: look at these") for m in fake.bot_messages(thread_id)),
                        what="the answer")
    notice = next(m["content"] for m in fake.bot_messages(thread_id) if "Not every file" in m["content"])
    assert "video.mp4 is 25.0 MB, over the 20 MB limit" in notice
    assert "could not download old.txt (404)" in notice
    assert "could not download slow.txt (timed out)" in notice
    assert image_parts(fake_openai.requests[-1]) == [f"data:image/png;base64,{base64.b64encode(image).decode()}"]
    assert "level=error msg=boom" in content_text(last_user(fake_openai))
    assert big["id"] not in fake.cdn_downloads


async def test_a_message_with_only_a_file_starts_a_turn(make_agent: Any, fake_openai: Any, fake_discord: Any,
                                                       adapter: Any, blobs: Any) -> None:
    fake = fake_discord
    agent = await make_agent(blobs=blobs)
    await adapter(agent)
    first = await fake.user_message("hello")
    thread_id = int(first["id"])
    await fake.wait_for(lambda: any(m["content"] == "echo: hello" for m in fake.bot_messages(thread_id)))
    await fake.user_message("", channel_id=thread_id, mention=False,
                            attachments=[fake.add_attachment(b"just a file", "note.txt", "text/plain")])
    await fake.wait_for(lambda: len(fake_openai.requests) == 2, what="a second model request")
    assert "just a file" in content_text(last_user(fake_openai))


async def test_a_conversation_started_in_a_thread_reads_its_earlier_files(
        make_agent: Any, fake_openai: Any, fake_discord: Any, adapter: Any, blobs: Any) -> None:
    fake = fake_discord
    agent = await make_agent(blobs=blobs)
    await adapter(agent)
    thread_id = await fake.user_thread("incident", fake.bob)
    await fake.user_message("the log", channel_id=thread_id, mention=False, author=fake.bob,
                            attachments=[fake.add_attachment(b"OOM killed pid 42", "kern.log", "text/plain")])
    await fake.user_message("what happened?", channel_id=thread_id)
    await fake.wait_for(lambda: any(m["content"].startswith("echo: what happened?") for m in fake.bot_messages(thread_id)),
                        what="the answer")
    users = [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert any("OOM killed pid 42" in content_text(m["content"]) for m in users[:-1])


def csv_script(body: dict) -> Reply:
    if body["messages"][-1]["role"] == "tool":
        return Reply(text="Here is your table.")
    if "after" in last_user_text(body):
        return Reply(text="next answer")
    return Reply(tool_calls=[("make_csv", {"rows": [["a", "b"], ["1", "2"]], "name": "my table.csv"})])


async def test_a_tools_file_is_attached_once_across_an_adapter_restart(
        make_agent: Any, fake_openai: Any, fake_discord: Any, adapter: Any, blobs: Any) -> None:
    fake = fake_discord
    fake_openai.script = csv_script
    agent = await make_agent(tools=EXAMPLE_TOOLS, blobs=blobs)
    first = await adapter(agent)
    fake.stall_uploads = 1  # the file is posted, but the adapter dies before it hears so
    question = await fake.user_message("make a table")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: fake.uploads, what="the upload")
    await first.kill()
    assert "Here is your table." in fake.bot_messages(thread_id)[0]["content"]
    await adapter(agent)  # a new adapter: the delivery is retried there and finds the file
    await fake.user_message("and after", channel_id=thread_id, mention=False)
    # Deliveries go out in order: once the next answer is there, the retried one was settled.
    await fake.wait_for(lambda: any(m["content"] == "next answer" for m in fake.bot_messages(thread_id)),
                        timeout=60, what="the next answer")
    attached = [a for m in fake.bot_messages(thread_id) for a in m["attachments"]]
    assert [a["filename"] for a in attached] == ["my_table.csv"]
    assert fake.uploads == [("my_table.csv", b"a,b\r\n1,2\r\n")]


async def test_a_file_too_large_for_discord_gets_a_notice(make_agent: Any, fake_openai: Any, fake_discord: Any,
                                                         adapter: Any, blobs: Any) -> None:
    @tool
    async def dump() -> ToolOutput:
        """A large file."""
        return ToolOutput("dumped", [Attachment("dump.bin", data=b"\0" * (11 * MB)),
                                     Attachment("small.txt", data=b"small")])

    fake_openai.script = lambda body: (Reply(text="done") if body["messages"][-1]["role"] == "tool"
                                       else Reply(tool_calls=[("dump", {})]))
    fake = fake_discord
    agent = await make_agent(tools=[dump], blobs=blobs)
    await adapter(agent)
    question = await fake.user_message("dump it")
    thread_id = int(question["id"])
    note = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id)
                                             if "too large to attach" in m["content"]), None), what="the notice")
    assert "dump.bin (11.0 MB) is too large to attach here (Discord takes up to 10.0 MB)" in note["content"]
    assert [name for name, _ in fake.uploads] == ["small.txt"]
