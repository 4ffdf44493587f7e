"""The terminal chat of ``durabot dev``: ``/attach PATH`` sends a file with the next message, and the
files an answer brings are saved and their paths printed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from agent_core import LocalBlobStore
from bots.local.chat import TerminalChat
from tests.fakes.openai_server import Reply, content_text
from workers.example_tools import EXAMPLE_TOOLS


async def test_attach_a_file_and_receive_one(make_agent: Any, fake_openai: Any, tmp_path: Path) -> None:
    def script(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text="here it is")
        return Reply(tool_calls=[("make_csv", {"rows": [["x"], ["1"]], "name": "back.csv"})])

    fake_openai.script = script
    agent = await make_agent(tools=EXAMPLE_TOOLS, blobs=LocalBlobStore(tmp_path / "blobs"))
    notes = tmp_path / "notes.md"
    notes.write_text("# Plan\nship on friday\n")
    stdin = io.StringIO(f"/attach {notes}\n/attach {tmp_path / 'absent.txt'}\nturn my notes into a csv\n")
    out = io.StringIO()
    received = tmp_path / "received"
    await TerminalChat(agent, stdin=stdin, stdout=out, received_dir=str(received)).run()
    text = out.getvalue()
    assert "[attached notes.md (text/markdown, 22 bytes): it goes with your next message]" in text
    assert f"[no file at {tmp_path / 'absent.txt'}]" in text
    first = [m for m in fake_openai.requests[0]["messages"] if m["role"] == "user"][-1]
    assert "ship on friday" in content_text(first["content"])
    [saved] = list(received.iterdir())
    assert saved.read_bytes() == b"x\r\n1\r\n" and saved.name.endswith("-back.csv")
    assert f"[file received: {saved}]" in text
