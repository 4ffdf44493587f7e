"""Local tools run inside the model round's activity ("inline"), and the next round made there too.

When a round asks only for local tools the workflow offered (``LLMRequest.inline``: local, offered by
the turn's profile, needing no approval now), the LLM activity runs them itself through the same body
as the tool activity (``AgentActivities.tool_call``) and goes on to the next round with the answer and
the results appended in memory. The workflow gets every such round back as an ``InlineStep`` and
records it as it would have recorded a round and its tool phase: a one-tool turn costs two workflow
tasks and one activity instead of three tasks and three activities.

Exactly once across a crash: each finished step (the model's answer, then each tool's result) is
checkpointed in the transcript store under (conversation, turn, first round) before the next action.
A retried attempt resumes from it: it never asks the model again for a round that produced tool calls,
and re-runs only a call whose result it does not have, with the same idempotency key. A store that
cannot checkpoint means no inlining (the round returns as it would without this module).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from . import limits
from .types import BlobRef, ChatMessage, InlineStep, LLMRequest, LLMResult, ToolCall, ToolRequest, ToolResult

if TYPE_CHECKING:
    from .activities import AgentActivities

log = logging.getLogger(__name__)

# How long a checkpoint is kept: far beyond every retry of one model round's activity.
CHECKPOINT_TTL = 24 * 3600
# ApplicationError types of an inline attempt that Temporal retries (resuming from the checkpoint).
TOOL_TIMEOUT_ERROR = "LocalToolTimeout"
STORE_ERROR = "RoundCheckpointUnavailable"
# The steps one activity returns, at most (with its last round's answer, far below Temporal's payload
# limit): a round whose calls could take them past it goes back to the workflow.
STEPS_BYTES = 1024 * 1024


def steps_store(store: Any) -> Any:
    """The store, if it can keep round checkpoints (``save_steps`` / ``load_steps``); else None."""
    return store if hasattr(store, "save_steps") and hasattr(store, "load_steps") else None


def step_messages(step: InlineStep) -> list[ChatMessage]:
    """The transcript messages of a step, as the workflow appends them for a round and its tools."""
    return [ChatMessage(role="assistant", content=step.text or None, tool_calls=list(step.tool_calls)),
            *(ChatMessage(role="tool", content=r.output, tool_call_id=r.call_id, name=r.name,
                          attachments=list(r.attachments)) for r in step.results)]


def encode_steps(steps: list[InlineStep]) -> str:
    return json.dumps([dataclasses.asdict(s) for s in steps], separators=(",", ":"))


def decode_steps(raw: str) -> list[InlineStep]:
    steps = []
    for data in json.loads(raw):
        results = [ToolResult(**{**r, "attachments": [BlobRef(**a) for a in r.get("attachments") or []]})
                   for r in data.pop("results")]
        calls = [ToolCall(**c) for c in data.pop("tool_calls")]
        steps.append(InlineStep(tool_calls=calls, results=results, **data))
    return steps


class InlineRounds:
    """One LLM activity that may make several rounds of a turn (see the module's docstring)."""

    def __init__(self, acts: "AgentActivities", req: LLMRequest, transcript: list[ChatMessage],
                 started: float) -> None:
        assert req.inline is not None
        self.acts = acts
        self.req = req
        self.inline = req.inline
        self.transcript = transcript
        self.started = started  # monotonic time the activity began
        self.key = f"{req.conversation_id}:{req.turn_id}:{req.round}"
        self.store = steps_store(acts.store)
        self.steps: list[InlineStep] = []
        self.lock = asyncio.Lock()  # checkpoint writes of parallel calls go one at a time
        self.bytes = 0  # of the encoded steps

    async def run(self) -> LLMResult:
        try:
            saved = await self.store.load_steps(self.key)
        except Exception as exc:
            self.acts._warn("transcript store", exc)
            if activity.info().attempt > 1:
                # An earlier attempt may have run tools: asking the model again could run them twice.
                raise ApplicationError("the round checkpoint store is unavailable; the round waits for it",
                                       type=STORE_ERROR) from None
            return await self.acts._round(self.req, self.transcript)
        messages = list(self.transcript)
        async with self.acts._heartbeating(self.acts._heartbeat_every()):
            if saved:
                self.steps, self.bytes = decode_steps(saved), len(saved)
                log.info("round %d of turn %r resumes after %d checkpointed step(s)", self.req.round,
                         self.req.turn_id, len(self.steps))
                for step in self.steps:
                    if len(step.results) < len(step.tool_calls):  # the attempt ended mid-call
                        await self._run_calls(step)
                    messages += step_messages(step)
            while True:
                rnd = self.req.round + len(self.steps)
                result = await self.acts._round(self._request(rnd, len(messages) - len(self.transcript)),
                                                self._window(messages))
                if result.transcript_missing:
                    if not self.steps:
                        return result  # the workflow resends its window, as for any round
                    raise ApplicationError("the transcript store lost the conversation's summary mid-turn",
                                           type=STORE_ERROR)
                if not self._may_inline(result):
                    result.steps = self.steps
                    return result
                step = InlineStep(text=result.text, tool_calls=result.tool_calls, results=[],
                                  prompt_tokens=result.prompt_tokens,
                                  completion_tokens=result.completion_tokens,
                                  usage_estimated=result.usage_estimated)
                self.steps.append(step)
                if not await self._save():  # without its checkpoint a crash could run a tool twice
                    self.steps.pop()
                    result.steps = self.steps
                    return result
                await self._run_calls(step)
                messages += step_messages(step)

    def _request(self, rnd: int, added: int) -> LLMRequest:
        if rnd == self.req.round:
            return self.req
        req = self.req
        spoke = any(s.text for s in self.steps)
        return dataclasses.replace(
            req, round=rnd, allow_tools=rnd < self.inline.last_round,
            transcript=dataclasses.replace(req.transcript, end_seq=req.transcript.end_seq + added),
            turn_started=None if spoke else req.turn_started,
        )

    def _window(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        if self.req.context_tokens or len(messages) == len(self.transcript):
            return list(messages)  # selected within the token budget by the round itself
        # The old selection: as many of the newest messages as the workflow sent (the round fits them).
        return list(messages[len(messages) - len(self.transcript):])

    def _may_inline(self, result: LLMResult) -> bool:
        if not result.tool_calls or result.over_budget:
            return False
        if any(c.error is None and c.name not in self.inline.tools for c in result.tool_calls):
            return False  # the workflow runs them (approvals, sub-agents, regular tools)
        size = self.bytes + limits.encoded_len(result.text) + sum(
            limits.encoded_len(c.arguments) + limits.TOOL_OUTPUT_BYTES + 1024 for c in result.tool_calls)
        if size > STEPS_BYTES:
            return False
        timeout = activity.info().start_to_close_timeout
        if timeout is not None:
            left = timeout.total_seconds() - (time.monotonic() - self.started)
            if left < self.inline.tool_timeout + self.inline.round_timeout:
                return False  # the calls and the next round might not fit: the workflow goes on
        return True

    async def _save(self) -> bool:
        async with self.lock:
            data = encode_steps(self.steps)
            self.bytes = len(data)
            try:
                await self.store.save_steps(self.key, data, CHECKPOINT_TTL)
            except Exception as exc:
                self.acts._warn("transcript store", exc)
                return False
        return True

    async def _run_calls(self, step: InlineStep) -> None:
        """Run the calls of ``step`` that have no result yet, in parallel; results in call order."""
        done = {r.call_id: r for r in step.results}

        async def one(call: ToolCall) -> None:
            if call.error:
                result = ToolResult(call_id=call.id, name=call.name, output=f"Error: {call.error}", ok=False)
            else:
                request = ToolRequest(
                    conversation_id=self.req.conversation_id, turn_id=self.req.turn_id, call=call,
                    idempotency_key=self.inline.key_prefix + call.id, stream=self.req.stream,
                    source=self.req.source,
                )
                try:
                    result = await asyncio.wait_for(self.acts.tool_call(request), self.inline.tool_timeout)
                except asyncio.TimeoutError:
                    raise ApplicationError(
                        f"the local tool {call.name!r} took longer than {self.inline.tool_timeout:g} s",
                        type=TOOL_TIMEOUT_ERROR) from None
            done[call.id] = result
            step.results.append(result)
            await self._save()  # best effort: the tool has run either way

        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the other calls
                for call in step.tool_calls:
                    if call.id not in done:
                        group.create_task(one(call))
        except BaseExceptionGroup as group_error:  # Temporal judges the error itself (retryable or not)
            raise group_error.exceptions[0] from None
        step.results = [done[c.id] for c in step.tool_calls]
