"""The adapter process killed with SIGKILL in the middle of a natively streamed answer, then started
again: the open stream is finished, and the answer shows once.

As in test_process_kill.py, ``durabot slack`` runs as a subprocess with its embedded worker, so the
kill takes the model round down too; Temporal runs it again after its heartbeat timeout. The new
process's delivery finds the stream the dead one left open (a streamed message has no metadata until
it is stopped: the dead process recorded its ts in the database when it started, and the fake, as
Slack documents, shows no streaming state in conversations.replies), stops it and completes it with
the final text.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import FakeSlack, SlackSender
from tests.procs.harness import Proc, worker_env

from .conftest import SECRET
from .test_process_kill import BUDGET, free_port, start_adapter

ANSWER = " ".join(f"word{i}" for i in range(60))


async def test_sigkill_mid_stream_then_a_new_process_finishes_the_stream(
        temporal_server, fake_openai, task_queue, tmp_path: Path, fake_slack: FakeSlack):
    fake_openai.script = lambda body: Reply(text=ANSWER, token_delay=0.05)
    port = free_port()
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     SLACK_BOT_TOKEN=fake_slack.token, SLACK_SIGNING_SECRET=SECRET,
                     SLACK_API_URL=fake_slack.base_url, DURABOT_HTTP_PORT=str(port), DURABOT_METRICS_PORT="0",
                     DURABOT_DATABASE_URL=f"sqlite:///{tmp_path}/durabot.db")  # shared by both processes
    sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SECRET, fake_slack.team)
    procs: list[Proc] = []
    started = time.monotonic()

    def diagnostics(thread: str) -> str:
        calls = [(c.method, c.status, c.error) for c in fake_slack.calls]
        logs = "\n".join(f"--- {p.log.name}\n" + p.log.read_text(errors="replace")[-3000:] for p in procs)
        return f"thread: {fake_slack.thread('C1', thread)}\ncalls: {calls}\n{logs}"

    thread = ""
    try:
        procs.append(await start_adapter(env, tmp_path / "slack1.log"))
        event = fake_slack.add_user_message("C1", f"<@{fake_slack.bot_user}> tell me slowly", "U1")
        event["type"] = "app_mention"
        event.pop("channel_type", None)
        thread = event["ts"]
        status, body = await sender.event(event)
        assert status == 200, body

        def streaming() -> bool:
            msgs = fake_slack.bot_messages("C1", thread)
            return bool(msgs) and msgs[0].get("streaming_state") == "in_progress" and "word2" in msgs[0]["text"]

        try:
            await fake_slack.wait_for(streaming, 15)
        except TimeoutError:
            raise AssertionError("no stream started\n" + diagnostics(thread)) from None
        assert await asyncio.to_thread(procs[0].kill) == -9
        [stream] = fake_slack.bot_messages("C1", thread)
        assert stream["text"].strip() != ANSWER and "metadata" not in stream

        procs.append(await start_adapter(env, tmp_path / "slack2.log"))

        def finished() -> bool:
            msgs = fake_slack.bot_messages("C1", thread)
            return any(m["text"].strip() == ANSWER for m in msgs)

        try:
            await fake_slack.wait_for(finished, BUDGET - (time.monotonic() - started))
        except TimeoutError:
            raise AssertionError(f"no final answer within {BUDGET} s\n" + diagnostics(thread)) from None
        msgs = fake_slack.bot_messages("C1", thread)
        assert len(msgs) == 1, diagnostics(thread)
        assert msgs[0]["ts"] == stream["ts"], "the stream was completed, not replaced"
        assert msgs[0]["streaming_state"] == "completed"  # stopped: no stream left open
        assert msgs[0]["metadata"]["event_payload"]["key"] == f"{thread}:s0"
        assert fake_slack.count("chat.postMessage") == 0 and fake_slack.count("chat.startStream") == 1
        assert fake_slack.over_limit == 0
    finally:
        await sender.close()
        for p in procs:
            await asyncio.to_thread(p.stop)
