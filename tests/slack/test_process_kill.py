"""The adapter *process* killed with SIGKILL mid-stream, then started again: the final text is
delivered exactly once, by completing the placeholder the first process posted.

``durabot slack`` runs in HTTP mode as a subprocess with its embedded worker, so the kill also takes
the model activity down. Temporal notices the lost activity after its heartbeat timeout (15 s in
interactive mode), the new process runs the model round again and its delivery worker finds the
placeholder by its metadata key and edits it. The fake Slack API runs in this test process.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import FakeSlack, SlackSender
from tests.procs.harness import Proc, worker_env

from .conftest import SECRET

ANSWER = " ".join(f"word{i}" for i in range(60))
# One model round: 60 words at 50 ms, so the stream lasts about 3 s. Killed after ~2 s at most (the
# first partial edit), a retry needs: heartbeat timeout (15 s) + a fresh process + one more stream.
BUDGET = 45.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_adapter(env: dict[str, str], log: Path) -> Proc:
    proc = Proc(["slack"], env, log)
    try:
        await asyncio.to_thread(proc.wait_for, "Slack adapter listening on", 30)
    except BaseException:
        proc.stop()
        raise
    return proc


async def test_sigkill_mid_stream_then_a_new_process_completes_the_placeholder(
        temporal_server, fake_openai, task_queue, tmp_path: Path, fake_slack: FakeSlack):
    fake_openai.script = lambda body: Reply(text=ANSWER, token_delay=0.05)
    port = free_port()
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     SLACK_BOT_TOKEN=fake_slack.token, SLACK_SIGNING_SECRET=SECRET,
                     SLACK_API_URL=fake_slack.base_url, DURABOT_HTTP_PORT=str(port), DURABOT_METRICS_PORT="0",
                     DURABOT_SLACK_STREAMING="edits")
    sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SECRET, fake_slack.team)
    procs: list[Proc] = []
    started = time.monotonic()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - started, 1)

    def bot_texts(thread: str) -> list[str]:
        return [m["text"] for m in fake_slack.bot_messages("C1", thread)]

    def diagnostics(thread: str) -> str:
        calls = [(c.method, c.status, c.error, (c.params.get("text") or "")[:40]) for c in fake_slack.calls]
        logs = "\n".join(f"--- {p.log.name}\n" + p.log.read_text(errors="replace")[-3000:] for p in procs)
        return f"marks: {marks}\nthread: {fake_slack.thread('C1', thread)}\ncalls: {calls}\n{logs}"

    thread = ""
    try:
        procs.append(await start_adapter(env, tmp_path / "slack1.log"))
        mark("first up")
        event = fake_slack.add_user_message("C1", f"<@{fake_slack.bot_user}> tell me slowly", "U1")
        event["type"] = "app_mention"
        event.pop("channel_type", None)
        thread = event["ts"]
        status, body = await sender.event(event)
        assert status == 200, body

        # The placeholder, then at least one live edit with part (not all) of the answer.
        def partial_edit() -> bool:
            edits = [c for c in fake_slack.calls if c.method == "chat.update" and c.error is None
                     and c.params.get("ts") in {m["ts"] for m in fake_slack.bot_messages("C1", thread)}]
            return any("word0" in (c.params.get("text") or "") for c in edits)

        try:
            await fake_slack.wait_for(lambda: fake_slack.count("chat.postMessage", ok=True) >= 1, 15)
            await fake_slack.wait_for(partial_edit, 15)
        except TimeoutError:
            raise AssertionError("no placeholder and live edit\n" + diagnostics(thread)) from None
        mark("partial edit")
        [placeholder] = fake_slack.bot_messages("C1", thread)
        assert placeholder["text"].strip() != ANSWER, "the stream ended before the kill; nothing to test"

        assert await asyncio.to_thread(procs[0].kill) == -9
        mark("killed")
        calls_before = len(fake_slack.calls)
        at_kill = placeholder["text"]  # the fake edits this dict in place later
        assert at_kill.strip() != ANSWER

        procs.append(await start_adapter(env, tmp_path / "slack2.log"))
        mark("second up")

        def answered() -> bool:
            return any(t.strip() == ANSWER for t in bot_texts(thread))

        try:
            await fake_slack.wait_for(answered, BUDGET - (time.monotonic() - started))
        except TimeoutError:
            raise AssertionError(f"no final answer within {BUDGET} s\n" + diagnostics(thread)) from None
        mark("answered")

        msgs = fake_slack.bot_messages("C1", thread)
        assert len(msgs) == 1, diagnostics(thread)
        assert msgs[0]["ts"] == placeholder["ts"], "the placeholder was completed, not replaced"
        assert msgs[0]["text"].strip() == ANSWER
        assert msgs[0]["metadata"]["event_payload"]["key"] == f"{thread}:0"
        posts = [c for c in fake_slack.calls if c.method == "chat.postMessage"]
        assert len(posts) == 1, diagnostics(thread)  # only the first process's placeholder
        assert not any(c.method == "chat.postMessage" for c in fake_slack.calls[calls_before:])
        # The new process's delivery found the placeholder in the thread and edited it.
        assert any(c.method == "chat.update" and c.params.get("ts") == placeholder["ts"]
                   and (c.params.get("text") or "").strip() == ANSWER for c in fake_slack.calls[calls_before:])
        assert time.monotonic() - started < BUDGET
        print(f"timeline (s): {marks}; words shown at the kill: {len(at_kill.split())}; "
              f"model requests: {len(fake_openai.requests)}")
    finally:
        await sender.close()
        for p in procs:
            await asyncio.to_thread(p.stop)
