"""A real ``durabot discord`` process killed with SIGKILL mid-stream: a new process delivers the final
text exactly once, in the placeholder the first process posted.

The fake Discord runs in the test's event loop; the adapters (each with its embedded worker) are
subprocesses on the same task queue. The killed process takes its worker with it, so Temporal
notices the interrupted LLM round only when its heartbeat times out (15 s by default), and then
retries it on the new process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.discord.conftest import stop_ids
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import Reply
from tests.procs.harness import Proc, worker_env

WORDS = 60
TOKEN_DELAY = 0.05


async def until(fake: FakeDiscord, cond: Callable[[], Any], timeout: float, what: str, proc: Proc) -> Any:
    """Wait for ``cond`` on the fake's state (re-checked at each of its changes); fail early, with the
    process's log, if the process exits."""

    def check() -> Any:
        return cond() or proc.proc.poll() is not None

    try:
        await fake.wait_for(check, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {proc.log.name} ---\n{proc.log.read_text(errors='replace')[-3000:]}")
    if proc.proc.poll() is not None and not cond():
        raise AssertionError(f"process exited ({proc.proc.returncode}) before {what}:\n"
                             + proc.log.read_text(errors="replace")[-3000:])
    return cond()


async def start_adapter(fake: FakeDiscord, env: dict[str, str], log: Path) -> Proc:
    before = (len(fake.identified), len(fake.calls_to("PUT", "/commands")))
    proc = Proc(["discord"], env, log)
    await until(fake, lambda: len(fake.identified) > before[0] and fake.connected
                and len(fake.calls_to("PUT", "/commands")) > before[1],
                timeout=30, what=f"{log.stem} to connect and sync its commands", proc=proc)
    return proc


async def test_sigkill_mid_stream_then_restart_delivers_once(temporal_server, fake_openai, task_queue,
                                                              tmp_path: Path):
    text = " ".join(f"word{i}" for i in range(WORDS))
    fake_openai.script = lambda body: Reply(text=text, token_delay=TOKEN_DELAY)
    fake = await FakeDiscord().start()
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_METRICS_PORT="0", **fake.env())
    procs: list[Proc] = []
    try:
        first = await start_adapter(fake, env, tmp_path / "adapter1.log")
        procs.append(first)

        question = await fake.user_message("count slowly")
        thread_id = int(question["id"])

        def partial_edits() -> list[str]:
            return [c.body["content"] for c in fake.calls_to("PATCH", "/messages/", channel=thread_id)
                    if c.status == 200 and isinstance(c.body, dict)
                    and (c.body.get("content") or "").startswith("word0")]

        await until(fake, lambda: thread_id in fake.channels and fake.bot_messages(thread_id) and partial_edits(),
                    timeout=30, what="the thread, the placeholder and a partial edit", proc=first)
        killed_at = time.monotonic()
        assert await asyncio.to_thread(first.kill) == -9
        placeholder = fake.bot_messages(thread_id)[0]
        assert stop_ids(placeholder), "the placeholder names its turn (the new process finds it by that)"
        shown_at_kill = placeholder["content"]
        assert shown_at_kill != text, "the answer finished before the kill: make the stream slower"
        assert [m["content"] for m in fake.bot_messages(thread_id)] == [shown_at_kill]

        second = await start_adapter(fake, env, tmp_path / "adapter2.log")
        procs.append(second)
        await until(fake, lambda: fake.bot_messages(thread_id) and fake.bot_messages(thread_id)[0]["content"] == text,
                    timeout=60, what="the final text in the placeholder", proc=second)
        recovered_in = time.monotonic() - killed_at

        # Exactly one answer message: the placeholder, completed with the whole text.
        answers = fake.bot_messages(thread_id)
        assert [m["content"] for m in answers] == [text]
        assert answers[0]["id"] == placeholder["id"]
        assert answers[0]["components"] == []  # the Stop button went with the final text
        # Nothing posted twice: one thread, one placeholder, nothing from the bot in the channel.
        created = [c for c in fake.calls_to("POST", "/threads") if c.status == 200]
        assert len(created) == 1
        posted = [c for c in fake.calls_to("POST", f"/channels/{thread_id}/messages") if c.status == 200]
        assert len(posted) == 1, [c.body for c in posted]
        assert fake.bot_messages(fake.channel_id) == []
        assert all(m["author"]["id"] != fake.bot["id"] or int(m["channel_id"]) == thread_id
                   for msgs in fake.messages.values() for m in msgs)
        assert len(fake_openai.requests) == 2  # the interrupted LLM round, retried on the new process
        print(f"final text delivered {recovered_in:.1f} s after the kill")
    finally:
        for p in procs:
            p.stop()
        await fake.stop()
