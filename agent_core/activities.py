"""Activities of the conversation workflow: an LLM round, a tool call, restoring a conversation.

Each is thin: it checks the configuration fingerprint, does its one piece of I/O, publishes live
events on the bus (best effort) and decides what is retryable. Temporal owns the retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any, AsyncIterator

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from . import context, limits, metrics
from .events import EventBus, stream_key
from .hooks import AbortRun, HookContext, Hooks
from .inline import InlineRounds, steps_store
from .budgets import Budgets
from .model import ChatModel, failure_kind
from .store import TranscriptStore, write_then_read
from .attachments import FileLimits, media_type_of, names_only, user_content
from .blobs import BlobStore, LocalBlobStore
from .tokens import estimate, request_tokens
from .tools import Attachment, Tool, ToolContext, ToolOutput
from .types import (
    AgentEvent, BlobRef, Carry, ChatMessage, LLMRequest, LLMResult, ProfileRef, SummaryRequest, SummaryResult,
    ToolRequest, ToolResult, TranscriptRef, summary_key,
)
from .contract import LLM_ACTIVITY, RESTORE_ACTIVITY, SUMMARY_ACTIVITY, TOOL_ACTIVITY, ErrorType

log = logging.getLogger(__name__)

TOOL_PREVIEW = 200  # characters of a tool's output on its live tool_finished event (a task card's output)

MAX_TOOL_OUTPUT = 32_000  # characters of a tool's output the model sees; the rest is cut with a note
MAX_MODEL_TEXT = 200_000  # characters of one model answer kept in the workflow


class AgentActivities:
    def __init__(
        self, *, system_prompt: str, model: ChatModel, tools: list[Tool], bus: EventBus,
        store: TranscriptStore, fingerprint: str, manifest: dict[str, str], hooks: list[Hooks] | None = None,
        budgets: Budgets | None = None,
        blobs: BlobStore | None = None, file_limits: FileLimits | None = None,
    ) -> None:
        self.budgets = budgets
        self.blobs: BlobStore = blobs if blobs is not None else LocalBlobStore()
        self.file_limits = file_limits or FileLimits()
        self.hooks = list(hooks or [])
        self.token_interval = 0.03  # live tokens are sent at most this often (the first one at once)
        self.system_prompt = system_prompt
        self.model = model
        self.tools = {t.name: t for t in tools}
        self.bus = bus
        self.store = store
        self.fingerprint = fingerprint
        self.manifest = manifest
        self._warned_at: dict[str, float] = {}
        self._models: dict[str, ChatModel] = {}  # a profile's model name -> the model

    def definitions(self) -> list[Any]:
        return [self.llm_round, self.run_tool, self.restore, self.summarise]

    # ------------------------------------------------------------------ checks and helpers
    def _check(self, fingerprint: str | None) -> None:
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise ApplicationError(
                "configuration mismatch between client and worker", self.manifest,
                type=ErrorType.FINGERPRINT.value, non_retryable=True,
            )

    async def _publish(self, stream: str, event: AgentEvent) -> None:
        try:
            await self.bus.publish(stream, event)
        except Exception as exc:  # the bus is best effort: the answer never depends on it
            self._warn("event bus", exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        # One line a minute, not a flood, while Redis is away.
        now = time.monotonic()
        if now - self._warned_at.get(what, -1e9) > 60:
            self._warned_at[what] = now
            log.warning("%s unavailable, continuing without it (%s: %s)", what, type(exc).__name__, exc)

    @contextlib.asynccontextmanager
    async def _heartbeating(self, every: float) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                activity.heartbeat()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()

    def _heartbeat_every(self) -> float:
        timeout = activity.info().heartbeat_timeout
        return max(0.2, timeout.total_seconds() / 3) if timeout else 5.0

    async def _transcript(self, ref: TranscriptRef) -> list[ChatMessage] | None:
        """Messages ``[start_seq, end_seq)``; None when the store lost some (the workflow resends)."""
        first_unsynced = ref.end_seq - len(ref.unsynced)
        if ref.resync:
            # The workflow sent its whole window: use it, and refill the store if it answers.
            messages = list(ref.unsynced[max(0, ref.start_seq - first_unsynced):])
            older: list[ChatMessage] | None = []
            try:  # the window is a byte-bounded tail: what comes before it is read from the store
                older = await write_then_read(self.store, ref.conversation_id, first_unsynced, ref.unsynced,
                                              ref.start_seq, first_unsynced)
            except Exception as exc:
                self._warn("transcript store", exc)
                older = None if first_unsynced > ref.start_seq else []
            if older is None:
                while messages and messages[0].role == "tool":  # their call is among the lost ones
                    messages.pop(0)
                missing = ref.end_seq - ref.start_seq - len(messages)
                older = [ChatMessage(role="system", content=(
                    f"[{missing} earlier message(s) of this conversation are no longer available]"))]
            messages = older + messages
        else:
            try:
                found = await write_then_read(self.store, ref.conversation_id, first_unsynced, ref.unsynced,
                                              ref.start_seq, ref.end_seq)
            except Exception as exc:
                self._warn("transcript store", exc)
                found = None
            if found is None:
                return None  # the workflow resends its window: an expected path, not a failure
            messages = found
        return messages

    async def _stored(self, key: str, seq: int) -> ChatMessage | None:
        try:
            found = await self.store.read(key, seq, seq + 1)
        except Exception as exc:
            self._warn("transcript store", exc)
            return None
        return found[0] if found else None

    def _prompt(self, profile: ProfileRef | None) -> str:
        return profile.system_prompt if profile is not None and profile.system_prompt else self.system_prompt

    def _fixed_tokens(self, tools: list[dict[str, Any]] | None, profile: ProfileRef | None = None) -> int:
        prompt = self._prompt(profile)
        system = [{"role": "system", "content": prompt}] if prompt else []
        return request_tokens(system, tools)

    async def _select(self, req: LLMRequest, transcript: list[ChatMessage],
                      tools: list[dict[str, Any]] | None) -> context.Selection | None:
        """What of the transcript fits the request's token budget, with the summary and the first
        request; None when the store lost the summary or the first request (the workflow resends)."""
        ref = req.transcript
        summary = None
        if req.summary is not None:
            summary = req.summary.text
            if summary is None:
                found = await self._stored(summary_key(ref.conversation_id), req.summary.upto_seq)
                if found is None:
                    return None
                summary = found.content
            else:  # a resync: the store lost it
                await self._write(summary_key(ref.conversation_id), req.summary.upto_seq,
                                  ChatMessage(role="system", content=summary))
        pinned, index = None, None
        if req.pinned_seq is not None:
            index = len(transcript) - (ref.end_seq - req.pinned_seq)
            if 0 <= index < len(transcript):
                pinned = transcript[index]
            else:
                index = None
                pinned = req.pinned if ref.resync else await self._stored(ref.conversation_id, req.pinned_seq)
                if pinned is None and not ref.resync:
                    return None
        return context.select(transcript, req.context_tokens, fixed=self._fixed_tokens(tools, req.profile), summary=summary,
                              pinned=pinned, pinned_index=index, char_cap=req.context_chars)

    async def _write(self, key: str, seq: int, msg: ChatMessage) -> None:
        try:
            await self.store.write(key, seq, [msg])
        except Exception as exc:
            self._warn("transcript store", exc)

    async def _openai_messages(self, messages: list[ChatMessage],
                               profile: ProfileRef | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        readable = _readable_files(messages, self.file_limits)
        prompt = self._prompt(profile)
        if prompt:
            out.append({"role": "system", "content": prompt})
        for m in messages:
            d: dict[str, Any] = {"role": m.role, "content": m.content or ""}
            if m.role == "assistant" and m.tool_calls:
                d["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
                d["content"] = m.content
            if m.role == "tool":
                d["tool_call_id"] = m.tool_call_id
            if m.role == "user" and m.name:
                d["name"] = _safe_name(m.name)
            if m.attachments:
                d["content"] = await self._with_files(m, readable)
            out.append(d)
        return out

    async def _with_files(self, m: ChatMessage, readable: set[int]) -> Any:
        """A message's content with its files: read for a person's message within the request's
        budget, named otherwise (a tool message cannot carry images; its files went to the thread)."""
        if m.role == "user" and id(m) in readable:
            return await user_content(m.content or "", m.attachments, self.blobs, self.file_limits)
        names = names_only(m.attachments)
        if m.role == "user":
            names += " [earlier file contents left out to fit the request]"
        return f"{m.content}\n{names}" if m.content else names

    # ------------------------------------------------------------------ activities
    @activity.defn(name=LLM_ACTIVITY)
    async def llm_round(self, req: LLMRequest) -> LLMResult:
        started = time.monotonic()
        self._check(req.fingerprint)
        info = activity.info()
        stream = req.stream or stream_key(req.conversation_id, req.turn_id)
        src = req.source
        if info.attempt > 1:
            await self._publish(stream, AgentEvent(kind="retry", turn_id=req.turn_id, round=req.round,
                                                   attempt=info.attempt, source=src))
        transcript = await self._transcript(req.transcript)
        if transcript is None:
            return LLMResult(text="", tool_calls=[], transcript_missing=True)
        if req.inline is not None and req.allow_tools and steps_store(self.store) is not None:
            return await InlineRounds(self, req, transcript, started).run()
        return await self._round(req, transcript)

    async def _round(self, req: LLMRequest, transcript: list[ChatMessage]) -> LLMResult:
        """One request to the model over ``transcript`` (the messages of ``req.transcript``): its answer
        streamed live, charged to the budgets, checked and bounded for the workflow."""
        info = activity.info()
        stream = req.stream or stream_key(req.conversation_id, req.turn_id)
        src = req.source
        offered = [t for t in self.tools.values() if _offered(t.name, req.profile)]
        tools = [t.openai_schema() for t in offered] if req.allow_tools and offered else None
        model = self._model_for(req.profile)
        chosen = None
        if req.context_tokens:
            chosen = await self._select(req, transcript, tools)
            if chosen is None:
                return LLMResult(text="", tool_calls=[], transcript_missing=True)
            transcript = chosen.messages
        else:  # a run from before token budgets: the last messages within a number of characters
            transcript = _fit(transcript, req.context_chars)
        messages = await self._openai_messages(transcript, req.profile)
        hook_ctx = HookContext(req.conversation_id, req.turn_id, info.attempt)
        for hook in self.hooks:
            messages = await _run_hook(hook.before_llm(hook_ctx, messages)) or messages

        first: list[float] = []
        deltas = [0]

        async def on_delta(delta: str) -> None:
            deltas[0] += 1
            if not first:
                first.append(time.time())
                if req.turn_started is not None:
                    metrics.first_token_seconds.observe(max(0.0, first[0] - req.turn_started))
            batcher.add(delta)

        async def send(text: str) -> None:
            await self._publish(stream, AgentEvent(kind="token", turn_id=req.turn_id, delta=text,
                                                   round=req.round, attempt=info.attempt, source=src))

        batcher = _TokenBatcher(send, self.token_interval)
        try:
            async with self._heartbeating(self._heartbeat_every()):
                result = await model.complete(messages, tools, on_delta)
        except ApplicationError as exc:
            metrics.llm_errors_total.labels(kind=failure_kind(exc)).inc()
            raise
        finally:
            await batcher.close()
        if not result.prompt_tokens and not result.completion_tokens:  # the server reported no usage
            result.prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4 + 1
            result.completion_tokens = (len(result.text) + sum(len(c.arguments) for c in result.tool_calls)) // 4 + 1
            result.usage_estimated = True
        metrics.llm_tokens_total.labels(kind="prompt").inc(result.prompt_tokens)
        metrics.llm_tokens_total.labels(kind="completion").inc(result.completion_tokens or deltas[0])
        if req.budget is not None and self.budgets is not None:
            result.over_budget = await self._charge(req, result.prompt_tokens + result.completion_tokens)
        source = "estimated" if result.usage_estimated else "reported"
        name = req.profile.name if req.profile else ""
        metrics.profile_tokens_total.labels(profile=name, kind="prompt", source=source).inc(result.prompt_tokens)
        metrics.profile_tokens_total.labels(profile=name, kind="completion", source=source).inc(result.completion_tokens)
        for hook in self.hooks:
            result = await _run_hook(hook.after_llm(hook_ctx, result)) or result
        if chosen is not None:
            result.context_tokens = max(request_tokens(messages, tools), result.prompt_tokens)
            result.context_full = chosen.full(req.context_tokens)
        if len(result.text) > MAX_MODEL_TEXT:  # keep the workflow's payloads far below Temporal's limits
            result.text = result.text[:MAX_MODEL_TEXT] + f"\n[answer truncated: {len(result.text)} characters in all]"
        result.text = limits.clip(result.text, limits.ANSWER_BYTES, "answer")
        room = limits.ROUND_ARGUMENTS_BYTES
        for call in result.tool_calls:
            call.id, call.name = call.id[:limits.NAME_CHARS], call.name[:limits.NAME_CHARS]
            size = limits.encoded_len(call.arguments)
            if len(call.arguments) > MAX_TOOL_OUTPUT or size > limits.TOOL_ARGUMENTS_BYTES:
                call.error = f"arguments too long ({len(call.arguments)} characters)"
                call.arguments = "{}"
            elif size > room:
                call.error = "too many tool calls with long arguments in one round; make fewer at a time"
                call.arguments = "{}"
            room -= limits.encoded_len(call.arguments)
            call.error = call.error or self._call_error(call, req.profile)
        if not req.allow_tools:
            result.tool_calls = []
        await self._publish(stream, AgentEvent(
            kind="round_finished", turn_id=req.turn_id, round=req.round, attempt=info.attempt,
            text=result.text, data={"final": not result.tool_calls or not req.allow_tools}, source=src,
        ))
        return result

    async def _charge(self, req: LLMRequest, tokens: int) -> bool:
        """Count the round's tokens against its budgets (once, however often it is retried); whether
        that took the user or the channel past the day's budget."""
        scope = req.budget
        assert scope is not None and self.budgets is not None
        try:
            user, channel = await self.budgets.charge(
                scope, tokens, f"{req.conversation_id}:{req.turn_id}:{req.round}")
        except Exception as exc:  # the counters are down: the round's answer still counts
            self._warn("budget counters", exc)
            return False
        return ((scope.user_limit is not None and user >= scope.user_limit)
                or (scope.channel_limit is not None and channel >= scope.channel_limit))

    def _model_for(self, profile: ProfileRef | None) -> ChatModel:
        """The turn's model: the profile's model name on the same server, else the agent's model."""
        if profile is None or not profile.model or not hasattr(self.model, "renamed"):
            return self.model
        found = self._models.get(profile.model)
        if found is None:
            found = self._models[profile.model] = self.model.renamed(profile.model)  # type: ignore[attr-defined]
        return found

    def _call_error(self, call: Any, profile: ProfileRef | None = None) -> str | None:
        tool = self.tools.get(call.name) if _offered(call.name, profile) else None
        if tool is None:
            known = ", ".join(sorted(n for n in self.tools if _offered(n, profile))) or "none"
            return f"unknown tool {call.name!r}; available tools: {known}"
        try:
            tool.parse_arguments(call.arguments)
        except ValueError as exc:
            return f"invalid arguments for {call.name!r}: {exc}"
        return None

    @activity.defn(name=TOOL_ACTIVITY)
    async def run_tool(self, req: ToolRequest) -> ToolResult:
        self._check(req.fingerprint)
        return await self.tool_call(req)

    async def tool_call(self, req: ToolRequest) -> ToolResult:
        """One tool call, in the tool activity or inside a model round's activity (inline.py): hooks,
        live events, the idempotency key, output limits, files to the blob store, metrics."""
        info = activity.info()
        call = req.call
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolResult(call_id=call.id, name=call.name, ok=False, output=f"Error: unknown tool {call.name!r}")
        try:
            args = tool.parse_arguments(call.arguments)
        except ValueError as exc:
            return ToolResult(call_id=call.id, name=call.name, ok=False, output=f"Error: {exc}")
        hook_ctx = HookContext(req.conversation_id, req.turn_id, info.attempt)
        for hook in self.hooks:
            args = await _run_hook(hook.before_tool(hook_ctx, call.name, args)) or args
        stream = req.stream or stream_key(req.conversation_id, req.turn_id)
        await self._publish(stream, AgentEvent(kind="tool_started", turn_id=req.turn_id, tool=call.name,
                                               call_id=call.id, attempt=info.attempt, source=req.source))
        ctx = ToolContext(
            conversation_id=req.conversation_id, turn_id=req.turn_id, call_id=call.id,
            idempotency_key=req.idempotency_key, attempt=info.attempt,
        )
        ok = True
        try:
            async with self._heartbeating(self._heartbeat_every()):
                output = await tool.invoke(args, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported to the model, which decides what to do next
            log.info("tool %r raised %s", call.name, type(exc).__name__)
            output, ok = f"Error: the tool {call.name!r} failed: {type(exc).__name__}: {exc}", False
        files: list[BlobRef] = []
        if isinstance(output, ToolOutput):
            output, files = output.text, await self._store_files(output.attachments, call.name)
        text = output if isinstance(output, str) else _to_text(output)
        for hook in self.hooks:
            text = await _run_hook(hook.after_tool(hook_ctx, call.name, text)) or text
        if len(text) > MAX_TOOL_OUTPUT:
            text = text[:MAX_TOOL_OUTPUT] + f"\n[output truncated: {len(text)} characters in all]"
        text = limits.clip(text, limits.TOOL_OUTPUT_BYTES, "output")
        metrics.tool_calls_total.labels(tool=call.name, outcome="ok" if ok else "error").inc()
        await self._publish(stream, AgentEvent(kind="tool_finished", turn_id=req.turn_id, tool=call.name,
                                               call_id=call.id, data={"ok": ok, "preview": text[:TOOL_PREVIEW]},
                                               source=req.source))
        return ToolResult(call_id=call.id, name=call.name, output=text, ok=ok, attachments=files)

    async def _store_files(self, attachments: list[Attachment], tool: str) -> list[BlobRef]:
        """A tool's files into the blob store: only their references go back to the workflow."""
        refs = []
        for a in attachments[:limits.TURN_FILES]:
            if a.ref is not None:
                refs.append(dataclasses.replace(a.ref, name=a.name or a.ref.name))
            elif a.data is not None:
                refs.append(await self.blobs.put(a.data, a.name, media_type_of(a.name, a.media_type)))
        if len(attachments) > limits.TURN_FILES:
            log.warning("tool %r returned %d files; the first %d are kept", tool, len(attachments), limits.TURN_FILES)
        return limits.bound_refs(refs, limits.TURN_FILES)

    @activity.defn(name=SUMMARY_ACTIVITY)
    async def summarise(self, req: SummaryRequest) -> SummaryResult:
        """A summary of the older unsummarised turns, merged with the previous one. Not streamed: the
        thread never sees it; the workflow records it once and later rounds read it from the store."""
        self._check(req.fingerprint)
        ref = req.transcript
        transcript = await self._transcript(ref)
        previous = None
        if req.previous is not None:
            previous = req.previous.text
            if previous is None:
                found = await self._stored(summary_key(ref.conversation_id), req.previous.upto_seq)
                previous = found.content if found is not None else None
        if transcript is None or (req.previous is not None and previous is None):
            return SummaryResult(text="", upto_seq=ref.start_seq, transcript_missing=True)
        room = req.budget - self._fixed_tokens(None) - context.summary_tokens(req.budget)
        cut = context.summary_cut(transcript, room)
        upto = ref.end_seq - (len(transcript) - cut)  # counted from the end: a resync may add a note first
        if cut == 0 or upto <= ref.start_seq:
            return SummaryResult(text=previous or "", upto_seq=ref.start_seq, tokens=estimate(previous))
        prompt = context.summary_prompt(previous, transcript[:cut], req.budget)

        async def ignore(_: str) -> None:
            return None

        async with self._heartbeating(self._heartbeat_every()):
            answer = await self.model.complete(prompt, None, ignore)
        limit = context.summary_tokens(req.budget)
        text = answer.text.strip()
        if estimate(text) > limit:  # a model that ignored the length asked for
            text = text[: limit * 3] + " [summary cut]"
        text = limits.clip(text, limits.SUMMARY_BYTES, "summary")
        await self._write(summary_key(ref.conversation_id), upto, ChatMessage(role="system", content=text))
        log.info("conversation %r: summarised messages up to %d (%d tokens)", ref.conversation_id, upto,
                 estimate(text))
        return SummaryResult(text=text, upto_seq=upto, tokens=estimate(text))

    @activity.defn(name=RESTORE_ACTIVITY)
    async def restore(self, conversation_id: str, previous_run_id: str | None = None) -> Carry | None:
        """The carry of this conversation's last completed run, read from Temporal's own record."""
        client = activity.client()
        wid = activity.info().workflow_id
        if previous_run_id:  # the client saw it: no visibility query needed
            return await client.get_workflow_handle(wid, run_id=previous_run_id, result_type=Carry).result(
                follow_runs=False)
        latest = None
        try:
            async for execution in client.list_workflows(
                f"WorkflowId = '{_quote(wid)}' AND ExecutionStatus = 'Completed'", limit=20,
            ):
                if latest is None or (execution.close_time and execution.close_time > latest.close_time):
                    latest = execution
        except RPCError as exc:
            if exc.status != RPCStatusCode.UNIMPLEMENTED:
                raise
            log.warning("this Temporal server cannot list workflows; conversation %r starts afresh", conversation_id)
            return None
        if latest is None:
            return None
        handle = client.get_workflow_handle(wid, run_id=latest.run_id, result_type=Carry)
        return await handle.result(follow_runs=False)


class _TokenBatcher:
    """Publishes the first token at once, then what arrives within ``interval`` as one event.

    One bus write per batch instead of per token: most of a worker's publishing cost goes away, and
    a chat platform could not show more updates per second anyway. Order is kept: one writer task.
    Closing flushes at once, so the end of a round is never held back by the interval.
    """

    def __init__(self, send: Any, interval: float) -> None:
        self.send = send
        self.interval = interval
        self.buffer: list[str] = []
        self.task: asyncio.Task | None = None
        self.sent_first = False
        self.closing = asyncio.Event()

    def add(self, delta: str) -> None:
        self.buffer.append(delta)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._flush(delay=self.sent_first))
        self.sent_first = True

    async def _flush(self, delay: bool) -> None:
        if delay and not self.closing.is_set():
            try:
                await asyncio.wait_for(self.closing.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
        while self.buffer:
            text, self.buffer = "".join(self.buffer), []
            await self.send(text)

    async def close(self) -> None:
        self.closing.set()
        if self.task is not None:
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.buffer:
            await self._flush(delay=False)


def _readable_files(messages: list[ChatMessage], file_limits: FileLimits) -> set[int]:
    """The person's messages whose files the model reads in full: the newest, within a byte budget
    (a conversation with many files would otherwise resend all of them in every request)."""
    readable: set[int] = set()
    left = file_limits.request_bytes
    for m in reversed(messages):
        if m.role != "user" or not m.attachments:
            continue
        size = sum(r.size for r in m.attachments)
        if size > left and readable:
            break
        readable.add(id(m))
        left -= size
    return readable


def _fit(messages: list[ChatMessage], budget: int) -> list[ChatMessage]:
    """Drop the oldest whole messages until the rest fits the budget; say so to the model."""
    size = sum(len(m.content or "") + sum(len(c.arguments) for c in m.tool_calls) for m in messages)
    dropped = 0
    while messages and (size > budget or messages[0].role == "tool") and len(messages) > 1:
        first = messages.pop(0)
        size -= len(first.content or "") + sum(len(c.arguments) for c in first.tool_calls)
        dropped += 1
    while messages and messages[0].role == "tool":  # never start inside a tool exchange
        messages.pop(0)
        dropped += 1
    if dropped:
        note = f"[{dropped} earlier message(s) of this conversation are omitted to fit the context budget]"
        messages.insert(0, ChatMessage(role="system", content=note))
    return messages


async def _run_hook(awaitable: Any) -> Any:
    try:
        return await awaitable
    except AbortRun as exc:
        raise ApplicationError(exc.reason, type=ErrorType.ABORTED.value, non_retryable=True) from None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "user"


def _to_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _offered(name: str, profile: ProfileRef | None) -> bool:
    """Whether the turn's profile offers tool ``name`` (every tool without a profile or a tool list)."""
    return profile is None or profile.tools is None or name in profile.tools
