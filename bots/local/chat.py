"""A terminal chat for ``durabot dev``: stream answers, approve or deny tools with a key, cancel,
attach files to a message (``/attach PATH``) and keep the files an answer brings (saved, their paths
printed)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import TextIO

from agent_core import Agent, AgentEvent
from agent_core.attachments import describe
from agent_core.blobs import BlobMissing
from agent_core.errors import DurabotError
from agent_core.events import TextAccumulator
from agent_core.types import BlobRef
from bots.core.runs import context

HELP = """Type a message and press Enter. While a tool waits for approval: 'a' approves, 'd' denies.
Commands: /attach PATH (a file for your next message), /cancel (stop the running answer),
/new (new conversation), /status, /help, /quit"""


class TerminalChat:
    def __init__(self, agent: Agent, ui_url: str | None = None, stdin: TextIO = sys.stdin,
                 stdout: TextIO = sys.stdout, state_file: str | None = None,
                 received_dir: str = ".durabot/received") -> None:
        self.agent = agent
        self.ui_url = ui_url
        self.stdin = stdin
        self.out = stdout
        self.conversation_id = f"local-{uuid.uuid4().hex[:8]}"
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.turn: asyncio.Task | None = None
        self.pending_approval: str | None = None
        self.state_file = Path(state_file) if state_file else None
        self.attached: list[BlobRef] = []  # files that go with the next message
        self.received_dir = Path(received_dir)

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    async def run(self) -> None:
        self.say(HELP)
        await self._resume()
        self._banner()
        loop = asyncio.get_running_loop()
        reader = loop.run_in_executor(None, self._read_lines, loop)
        try:
            while True:
                line = await self.lines.get()
                if line is None and self.turn is not None:  # input ended: let the last answer finish
                    await asyncio.wait({self.turn}, timeout=120)
                if line is None or line.strip() == "/quit":
                    break
                await self._handle(line.strip())
        finally:
            if self.turn:
                self.turn.cancel()
            reader.cancel()

    def _read_lines(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in self.stdin:
            loop.call_soon_threadsafe(self.lines.put_nowait, line)
        loop.call_soon_threadsafe(self.lines.put_nowait, None)

    async def _resume(self) -> None:
        """Pick up the conversation of the last session if its workflow is still running."""
        if self.state_file is None or not self.state_file.exists():
            return
        previous = self.state_file.read_text().strip()
        status = await self.agent.status(previous) if previous else None
        if status is None:
            return
        self.conversation_id = previous
        self.say(f"[resuming conversation {previous}: {status.turns} turns so far, {status.state}]")
        if status.current is not None:
            self.turn = asyncio.create_task(self._follow(self.agent.get_run(previous, status.current.turn_id)))

    def _banner(self) -> None:
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(self.conversation_id)
        wid = self.agent.workflow_id(self.conversation_id)
        link = f"  {self.ui_url}/namespaces/{self.agent.client.namespace}/workflows/{wid}" if self.ui_url else ""
        self.say(f"[conversation {self.conversation_id} = workflow {wid}]{link}")

    async def _handle(self, line: str) -> None:
        if not line:
            return
        busy = self.turn is not None and not self.turn.done()
        try:
            if self.pending_approval and line.lower() in ("a", "d", "approve", "deny"):
                approved = line.lower().startswith("a")
                info = await self.agent.decide(self.conversation_id, self.pending_approval, approved, by="you")
                self.pending_approval = None
                self.say(f"[{info.tool}: {info.status}]")
            elif line == "/help":
                self.say(HELP)
            elif line == "/cancel":
                if busy:
                    await self.agent.cancel(self.conversation_id, by="you")
                else:
                    self.say("[nothing is running]")
            elif line == "/new":
                self.conversation_id = f"local-{uuid.uuid4().hex[:8]}"
                self._banner()
            elif line == "/status":
                st = await self.agent.status(self.conversation_id)
                room = f"; context {context(st)}" if st and context(st) else ""
                self.say(f"[{st.state}, {st.turns} turns, {st.queued} queued, history {st.history_length} events{room}]"
                         if st else "[no running conversation]")
            elif line.startswith("/attach"):
                await self._attach(line[len("/attach"):].strip())
            elif line.startswith("/"):
                self.say(f"[unknown command {line.split()[0]}; /help lists them]")
            else:
                if busy:
                    self.say("[queued: it runs after the current answer]")
                files, self.attached = self.attached, []
                handle = await self.agent.run_async(line, self.conversation_id, user="you", attachments=files)
                if not busy:
                    self.turn = asyncio.create_task(self._follow(handle))
                else:
                    prev = self.turn

                    async def after() -> None:
                        await asyncio.gather(prev, return_exceptions=True)
                        await self._follow(handle)

                    self.turn = asyncio.create_task(after())
        except DurabotError as exc:
            self.say(f"[{exc}]")

    async def _attach(self, raw: str) -> None:
        path = Path(raw.strip("'\"")).expanduser()
        limits = self.agent.file_limits
        if not raw:
            self.say("[usage: /attach PATH]")
        elif not path.is_file():
            self.say(f"[no file at {path}]")
        elif path.stat().st_size > limits.max_bytes:
            self.say(f"[{path.name} is over the {limits.max_bytes // (1024 * 1024)} MB limit]")
        elif len(self.attached) >= limits.max_files:
            self.say(f"[at most {limits.max_files} files per message]")
        else:
            ref = await self.agent.attach(await asyncio.to_thread(path.read_bytes), path.name)
            self.attached.append(ref)
            self.say(f"[attached {describe(ref)}: it goes with your next message]")

    async def _follow(self, handle) -> None:
        acc = TextAccumulator()
        shown = ""
        self.say(f"bot [{handle.turn_id[:8]}]: ", end="")
        async for ev in handle.events():
            shown = self._render(ev, acc, shown)
        self.say()
        try:
            result = await handle.result(timeout=30)
        except DurabotError:
            return  # a failed or cancelled turn brings no files; its events said why
        for ref in result.files:
            await self._save(ref)

    async def _save(self, ref: BlobRef) -> None:
        """A file an answer brought, saved under ``received_dir`` (named by content, never overwritten)."""
        try:
            data = await self.agent.blobs.get(ref)
        except BlobMissing:
            self.say(f"[file {ref.name} is not in the blob store]")
            return
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(ref.name).name) or "file"
        target = self.received_dir / f"{ref.sha256[:8]}-{safe}"
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_bytes, data)
        self.say(f"[file received: {target}]")

    def _render(self, ev: AgentEvent, acc: TextAccumulator, shown: str) -> str:
        if ev.kind in ("token", "retry", "round_finished"):
            acc.feed(ev)
            text = acc.text
            if text.startswith(shown):
                self.say(text[len(shown):], end="")
            else:
                self.say("\n[retrying]\n" + text, end="")
            return text
        if ev.kind == "tool_started":
            self.say(f"\n  \u2699 {ev.tool} \u2026", end="")
        elif ev.kind == "tool_finished":
            self.say(" done" if ev.data.get("ok", True) else " failed")
            return ""
        elif ev.kind == "approval_requested" and ev.approval:
            self.pending_approval = ev.approval.id
            self.say(f"\n  ? {ev.approval.tool}({ev.approval.arguments}) needs approval: [a]pprove / [d]eny")
        elif ev.kind == "approval_decided" and ev.approval and ev.approval.status == "expired":
            self.pending_approval = None
            self.say(f"\n  [{ev.approval.tool}: approval expired]")
        elif ev.kind == "finished":
            if not shown:
                self.say(ev.text or "", end="")
        elif ev.kind == "cancelled":
            self.say(f"\n[cancelled by {ev.data.get('by')}]", end="")
        elif ev.kind == "error":
            self.say(f"\n[error: {ev.error}]", end="")
        return shown
