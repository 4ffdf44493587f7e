"""One model round of a turn, as part of the conversation workflow: the LLM activity, given the
transcript by reference; sent again with the whole window once if the store lost messages.

With a token budget (``AgentSpec.context_tokens``) the round first summarises older turns when the
last request said the context is filling up (``summarise``), and a model that still refuses the
request as too long gets it once more fitted to half the budget.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from .context import READ_LIMIT
    from .contract import LLM_ACTIVITY, SUMMARY_ACTIVITY, ErrorType
    from .retries import activity_options
    from .tokens import MIN_BUDGET
    from .types import (
        AgentSpec, BudgetScope, ContextState, InlineTools, LLMRequest, LLMResult, ParentLink, ProfileRef,
        SummaryRef, SummaryRequest, SummaryResult,
    )
    from .window import TranscriptWindow

SUMMARY_PATCH = "context-summary"  # rounds may be preceded by the summary activity
RETRY_PATCH = "context-retry"  # a context-length refusal is tried once more with half the budget
_RETRY_GAP = 4  # messages to wait after a summary found nothing to take in before trying again


async def model_round(spec: AgentSpec, conv: str, parent: ParentLink | None, window: TranscriptWindow,
                      turn_id: str, rnd: int, allow_tools: bool, turn_started: float | None,
                      profile: ProfileRef | None = None, budget: BudgetScope | None = None,
                      ctx: ContextState | None = None, turns: int = 0,
                      inline: InlineTools | None = None) -> LLMResult:
    """``turn_started``: when the turn began, until its first text (the time-to-first-token metric);
    ``budget``: the token budgets the round is charged to; ``ctx``: the conversation's context state,
    None for runs without a token budget; ``inline``: the local tools the activity may run itself, then
    making the next rounds (the result's ``steps``)."""
    if ctx is not None and ctx.due and workflow.patched(SUMMARY_PATCH):
        await summarise(spec, conv, window, ctx, turns)
    resync = False
    limit = ctx.budget if ctx is not None else 0  # the context tokens a request may take
    while True:
        request = LLMRequest(
            conversation_id=conv, turn_id=turn_id, round=rnd,
            transcript=(window.ref(conv, spec.context_messages, resync) if ctx is None else
                        window.ref_from(conv, max(ctx.summary_upto, window.next_seq - READ_LIMIT), resync)),
            allow_tools=allow_tools, fingerprint=spec.fingerprint,
            stream=parent.stream if parent else None, source=parent.source if parent else None,
            context_chars=spec.context_chars, turn_started=turn_started, profile=profile,
            budget=budget, inline=inline,
        )
        if ctx is not None:
            request.context_tokens = limit
            request.summary = _summary_ref(ctx, resync)
            request.pinned_seq = ctx.pinned_seq
            request.pinned = ctx.pinned if resync else None
        # Offered inline tools, the activity may make a round, run the calls and make the next round.
        timeout = spec.timeouts.llm if inline is None else 2 * spec.timeouts.llm + inline.tool_timeout
        try:
            result = await workflow.execute_activity(
                LLM_ACTIVITY, request, result_type=LLMResult, **activity_options(spec.timeouts, timeout),
            )
        except ActivityError as err:
            if ctx is not None and limit == ctx.budget and _too_long(err) and workflow.patched(RETRY_PATCH):
                workflow.logger.warning("the model refused %s tokens as too long; trying once with half", limit)
                limit = max(MIN_BUDGET, limit // 2)
                ctx.due = True
                continue
            raise
        if result.transcript_missing and not resync:
            resync = True
            continue
        window.synced()
        if ctx is not None:
            _record(ctx, result, limit, window)
        return result


def _summary_ref(ctx: ContextState, resync: bool) -> SummaryRef | None:
    if not ctx.summary:
        return None
    return SummaryRef(upto_seq=ctx.summary_upto, text=ctx.summary if resync else None)


def _too_long(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == ErrorType.CONTEXT_TOO_LONG


def _record(ctx: ContextState, result: LLMResult, budget: int, window: TranscriptWindow) -> None:
    if not result.context_tokens:
        return  # a worker of an older version did not count
    ctx.last_tokens, ctx.last_budget = result.context_tokens, budget
    unread = window.next_seq - ctx.summary_upto > READ_LIMIT * 4 // 5  # the store keeps the newest only
    if (result.context_full or unread) and window.next_seq >= ctx.retry_after_seq:
        ctx.due = True


async def summarise(spec: AgentSpec, conv: str, window: TranscriptWindow, ctx: ContextState, turns: int) -> None:
    """Replace the summary by one that also covers the older part of the unsummarised turns."""
    resync = False
    while True:
        request = SummaryRequest(
            conversation_id=conv, transcript=window.ref_from(conv, ctx.summary_upto, resync), budget=ctx.budget,
            previous=_summary_ref(ctx, resync), fingerprint=spec.fingerprint,
        )
        try:
            result = await workflow.execute_activity(
                SUMMARY_ACTIVITY, request, result_type=SummaryResult,
                **activity_options(spec.timeouts, spec.timeouts.llm),
            )
        except ActivityError as err:  # the turn goes on: its round leaves older messages out instead
            if isinstance(err.cause, CancelledError):
                raise
            workflow.logger.warning("could not summarise older turns: %s", err.cause or err)
            ctx.due, ctx.retry_after_seq = False, window.next_seq + _RETRY_GAP
            return
        if result.transcript_missing and not resync:
            resync = True
            continue
        break
    window.synced()
    ctx.due = False
    if result.upto_seq <= ctx.summary_upto:
        ctx.retry_after_seq = window.next_seq + _RETRY_GAP  # one long turn: nothing older to take in yet
        return
    ctx.summary, ctx.summary_upto = result.text, result.upto_seq
    ctx.summaries += 1
    ctx.summarised_turn, ctx.summarised_at = turns, workflow.now().isoformat()
