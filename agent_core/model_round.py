"""One model round of a turn, as part of the conversation workflow: the LLM activity, given the
transcript by reference; sent again with the whole window once if the store lost messages."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from .contract import LLM_ACTIVITY
    from .retries import activity_options
    from .types import AgentSpec, BudgetScope, LLMRequest, LLMResult, ParentLink, ProfileRef
    from .window import TranscriptWindow


async def model_round(spec: AgentSpec, conv: str, parent: ParentLink | None, window: TranscriptWindow,
                      turn_id: str, rnd: int, allow_tools: bool, turn_started: float | None,
                      profile: ProfileRef | None = None, budget: BudgetScope | None = None) -> LLMResult:
    """``turn_started``: when the turn began, until its first text (the time-to-first-token metric)."""
    resync = False
    while True:
        request = LLMRequest(
            conversation_id=conv, turn_id=turn_id, round=rnd,
            transcript=window.ref(conv, spec.context_messages, resync),
            allow_tools=allow_tools, fingerprint=spec.fingerprint,
            stream=parent.stream if parent else None, source=parent.source if parent else None,
            context_chars=spec.context_chars, turn_started=turn_started, profile=profile,
            budget=budget,
        )
        result = await workflow.execute_activity(
            LLM_ACTIVITY, request, result_type=LLMResult, **activity_options(spec.timeouts, spec.timeouts.llm),
        )
        if result.transcript_missing and not resync:
            resync = True
            continue
        window.synced()
        return result
