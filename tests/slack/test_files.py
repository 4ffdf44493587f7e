"""Files in Slack threads: downloaded with the bot token into the blob store and read by the model;
bad files named in a notice while the message goes through; a tool's file uploaded after the answer,
once. Real adapter and Temporal, fake Slack Web API and model."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agent_core import FileLimits, LocalBlobStore
from tests.fakes.openai_server import Reply, content_text, image_parts, last_user_text
from tests.files.samples import pdf, png
from workers.example_tools import EXAMPLE_TOOLS

MB = 1024 * 1024


@pytest.fixture
def blobs(tmp_path: Any) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
async def files_slack(start_slack: Any, make_agent: Any, blobs: LocalBlobStore) -> Any:
    async def start(limits: FileLimits | None = None, tools: list | None = None) -> Any:
        agent = await make_agent(tools=tools if tools is not None else EXAMPLE_TOOLS, blobs=blobs,
                                 file_limits=limits or FileLimits())
        return await start_slack(agent=agent)
    return start


def mention_with_files(h: Any, text: str, files: list[dict], channel: str = "C1",
                       thread_ts: str | None = None) -> dict:
    event = h.fake.add_user_message_with_files(channel, f"<@{h.fake.bot_user}> {text}", files,
                                               thread_ts=thread_ts)
    event["type"] = "app_mention"
    event.pop("channel_type", None)
    return event


def last_user(fake_openai: Any) -> Any:
    return [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]


def stored(blobs: LocalBlobStore) -> list[Any]:
    return [p for p in blobs.root.rglob("*") if p.is_file()] if blobs.root.exists() else []


async def test_an_image_and_a_csv_reach_the_model(files_slack: Any, fake_openai: Any, blobs: Any) -> None:
    h = await files_slack()
    image = png()
    files = [h.fake.add_file(image, "screen.png", "image/png"),
             h.fake.add_file(b"host,errors\nweb-1,3\n", "errors.csv", "text/csv")]
    event = mention_with_files(h, "what do you see?", files)
    assert (await h.sender.event(event))[0] == 200
    await h.final_reply("C1", event["ts"], "echo: what do you see?")
    assert image_parts(fake_openai.requests[-1]) == [f"data:image/png;base64,{base64.b64encode(image).decode()}"]
    assert "host,errors\nweb-1,3" in content_text(last_user(fake_openai))
    assert sorted(h.fake.downloads) == sorted((f["id"], True) for f in files)  # with the bot token
    assert len(stored(blobs)) == 2


async def test_a_25_mb_file_is_refused_with_a_notice_and_the_text_goes_through(
        files_slack: Any, fake_openai: Any, blobs: Any) -> None:
    h = await files_slack()
    big = h.fake.add_file(b"x" * (25 * MB), "report.pdf", "application/pdf")
    # A size announced wrong is caught while the bytes stream in.
    sly = h.fake.add_file(b"y" * (21 * MB), "dump.log", "text/plain", size=1000)
    h.fake.file_chunked.add(sly["id"])
    ok = h.fake.add_file(pdf("Revenue grew 7 percent"), "summary.pdf", "application/pdf")
    event = mention_with_files(h, "read the reports", [big, sly, ok])
    assert (await h.sender.event(event))[0] == 200
    await h.final_reply("C1", event["ts"], "echo: read the reports")
    notice = await h.fake.wait_for(lambda: next(
        (m for m in h.fake.bot_messages("C1", event["ts"]) if "limit" in m["text"]), None))
    assert "report.pdf is 25.0 MB, over the 20 MB limit" in notice["text"]
    assert "dump.log is over the 20 MB limit" in notice["text"]
    assert "the rest of your message went through" in notice["text"].lower()
    assert big["id"] not in [f for f, _ in h.fake.downloads]  # refused by its announced size
    text = content_text(last_user(fake_openai))
    assert "Revenue grew 7 percent" in text and "report.pdf" not in text
    assert len(stored(blobs)) == 1


async def test_failed_downloads_are_named_and_the_rest_goes_through(files_slack: Any, fake_openai: Any) -> None:
    h = await files_slack(FileLimits(download_seconds=1.0))
    files = {status: h.fake.add_file(b"secret", f"f{status}.txt", "text/plain") for status in (401, 403, 404)}
    for status, f in files.items():
        h.fake.file_status[f["id"]] = status
    slow = h.fake.add_file(b"slow", "slow.txt", "text/plain")
    h.fake.file_stall.add(slow["id"])
    # A link to another host gets no token: Slack then answers its HTML sign-in page.
    elsewhere = h.fake.add_file(b"hidden", "elsewhere.txt", "text/plain")
    for key in ("url_private", "url_private_download"):
        elsewhere[key] = elsewhere[key].replace("127.0.0.1", "localhost")
    good = h.fake.add_file(b"all good", "good.txt", "text/plain")
    event = mention_with_files(h, "check these", [*files.values(), slow, elsewhere, good])
    assert (await h.sender.event(event))[0] == 200
    await h.final_reply("C1", event["ts"], "echo: check these")
    notice = await h.fake.wait_for(lambda: next(
        (m for m in h.fake.bot_messages("C1", event["ts"]) if "could not download" in m["text"]), None))
    for status in (401, 403, 404):
        assert f"could not download f{status}.txt ({status})" in notice["text"]
    assert "could not download slow.txt (timed out)" in notice["text"]
    assert "could not download elsewhere.txt (a sign-in page came instead of the file)" in notice["text"]
    assert (elsewhere["id"], False) in h.fake.downloads  # the token never left for another host
    text = content_text(last_user(fake_openai))
    assert "all good" in text and "secret" not in text


async def test_too_many_files_the_first_ones_are_read(files_slack: Any, fake_openai: Any) -> None:
    h = await files_slack(FileLimits(max_files=3))
    files = [h.fake.add_file(f"file number {i}".encode(), f"n{i}.txt", "text/plain") for i in range(5)]
    event = mention_with_files(h, "five files", files)
    assert (await h.sender.event(event))[0] == 200
    await h.final_reply("C1", event["ts"], "echo: five files")
    notice = await h.fake.wait_for(lambda: next(
        (m for m in h.fake.bot_messages("C1", event["ts"]) if "too many files" in m["text"]), None))
    assert "too many files: 5, the first 3 were read" in notice["text"]
    text = content_text(last_user(fake_openai))
    assert all(f"file number {i}" in text for i in range(3)) and "file number 3" not in text


async def test_an_unsupported_type_and_a_corrupt_image_are_named_to_the_model(
        files_slack: Any, fake_openai: Any) -> None:
    h = await files_slack()
    files = [h.fake.add_file(b"PK\x03\x04", "backup.zip", "application/zip"),
             h.fake.add_file(b"\x89PNG\r\n\x1a\ntruncated", "broken.png", "image/png")]
    event = mention_with_files(h, "and these?", files)
    assert (await h.sender.event(event))[0] == 200
    await h.final_reply("C1", event["ts"], "echo: and these?")
    text = content_text(last_user(fake_openai))
    assert "attachment backup.zip (application/zip, 4 bytes) that cannot be read" in text
    assert "broken.png (image/png, 17 bytes): an image that cannot be read" in text
    assert image_parts(fake_openai.requests[-1]) == []


async def test_the_same_file_posted_twice_is_stored_once(files_slack: Any, fake_openai: Any, blobs: Any) -> None:
    h = await files_slack()
    first = mention_with_files(h, "one", [h.fake.add_file(b"same bytes", "a.txt", "text/plain")])
    assert (await h.sender.event(first))[0] == 200
    await h.final_reply("C1", first["ts"], "echo: one")
    second = mention_with_files(h, "two", [h.fake.add_file(b"same bytes", "b.txt", "text/plain")],
                                thread_ts=first["ts"])
    assert (await h.sender.event(second))[0] == 200
    await h.final_reply("C1", first["ts"], "echo: two")
    assert len(stored(blobs)) == 1
    assert "b.txt" in content_text(last_user(fake_openai))


async def test_a_conversation_started_in_a_thread_reads_its_earlier_files(
        files_slack: Any, fake_openai: Any) -> None:
    h = await files_slack()
    root = h.fake.add_user_message_with_files(
        "C3", "here is the incident log", [h.fake.add_file(b"ERROR disk full on db-2", "incident.log", "text/plain")],
        user="U7")
    event = h.mention_event("what broke?", channel="C3", thread_ts=root["ts"])
    assert (await h.sender.event(event))[0] == 200
    await h.final_reply("C3", root["ts"], "echo: what broke?")
    users = [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert "ERROR disk full on db-2" in content_text(users[0]["content"])
    assert content_text(users[-1]["content"]) == "what broke?"


def csv_script(body: dict) -> Reply:
    if body["messages"][-1]["role"] == "tool":
        return Reply(text="Here is your table.")
    return Reply(tool_calls=[("make_csv", {"rows": [["a", "b"], ["1", "2"]], "name": "out.csv"})])


async def test_a_tools_file_is_uploaded_after_the_answer(files_slack: Any, fake_openai: Any) -> None:
    fake_openai.script = csv_script
    h = await files_slack()
    event = await h.mention("make a table")
    await h.final_reply("C1", event["ts"], "Here is your table.")
    shared = await h.fake.wait_for(lambda: [m for m in h.fake.bot_messages("C1", event["ts"]) if m.get("files")])
    assert [f["name"] for m in shared for f in m["files"]] == ["out.csv"]
    assert list(h.fake.uploads.values()) == [b"a,b\r\n1,2\r\n"]
    thread = h.fake.bot_messages("C1", event["ts"])
    answer = next(i for i, m in enumerate(thread) if "Here is your table." in m["text"])
    assert thread.index(shared[0]) > answer  # after the text it belongs to


async def test_an_upload_whose_answer_was_lost_is_not_made_twice(files_slack: Any, fake_openai: Any) -> None:
    fake_openai.script = lambda body: (Reply(text="next answer") if "and after" in last_user_text(body)
                                       else csv_script(body))
    h = await files_slack()
    h.fake.lose_response["files.completeUploadExternal"] = 1  # shared, but the adapter sees a 500
    event = await h.mention("make a table")
    await h.final_reply("C1", event["ts"], "Here is your table.")
    await h.mention("and after", thread_ts=event["ts"])
    # Deliveries go out in order: once the next answer is there, the retried one was settled.
    await h.final_reply("C1", event["ts"], "next answer")
    shared = [m for m in h.fake.bot_messages("C1", event["ts"]) if m.get("files")]
    assert len(shared) == 1 and len(h.fake.uploads) == 1
    assert [c.status for c in h.fake.calls if c.method == "files.completeUploadExternal"] == [500]
    assert h.fake.count("files.getUploadURLExternal") == 1
