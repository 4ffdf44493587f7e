"""Small, explicit dataclasses that cross the workflow / activity / client boundaries.

Nothing here does I/O, so the workflow sandbox can import this module freely. Large or live state
(the transcript, clients, the event bus) never crosses a boundary: it is reached by reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .contract import DeliveryKind


class AgentMode(str, Enum):
    """How a run behaves when things are slow or absent.

    INTERACTIVE: a person is waiting. Bounded runs, short timeouts, fail fast when no worker polls.
    AUTONOMOUS: a background job. Long timeouts; a run waits for a worker to appear.
    """

    INTERACTIVE = "interactive"
    AUTONOMOUS = "autonomous"


class ApprovalPolicy(str, Enum):
    MARKED = "marked"  # tools declared requires_approval=True
    ALL = "all"
    NONE = "none"


@dataclass
class Timeouts:
    """Timeouts of one mode, in seconds. See ``timeouts_for``."""

    run: float  # a whole turn, from the message to the answer (client side wait)
    llm: float  # one LLM round (start to close of the activity)
    tool: float  # one tool call (start to close of the activity)
    approval: float  # how long an approval waits for a decision before it counts as denied
    idle: float  # a conversation with no new message ends after this long
    schedule_to_start: float | None  # None: wait for a worker as long as it takes
    heartbeat: float = 15.0  # a worker that dies mid-activity is noticed after this long


def timeouts_for(mode: AgentMode) -> Timeouts:
    if mode is AgentMode.INTERACTIVE:
        return Timeouts(run=600, llm=120, tool=300, approval=3600, idle=3600, schedule_to_start=60)
    return Timeouts(
        run=24 * 3600, llm=600, tool=3600, approval=24 * 3600, idle=7 * 24 * 3600, schedule_to_start=None
    )


@dataclass(frozen=True)
class BlobRef:
    """A file by reference: the bytes live in the blob store under their sha256, never in a workflow."""

    sha256: str
    name: str
    media_type: str
    size: int


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model produced it
    error: str | None = None  # set by the LLM round when the call cannot run (unknown tool, bad arguments)


@dataclass
class ChatMessage:
    """One transcript entry, OpenAI chat format minus provider details."""

    role: str  # system | user | assistant | tool
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # author name for user messages, tool name for tool results
    attachments: list[BlobRef] = field(default_factory=list)  # files, by reference (agent_core.blobs)


@dataclass
class ToolSpec:
    """What the workflow needs to know of a tool; the schema stays with the worker."""

    name: str
    requires_approval: bool = False
    subagent: str | None = None  # this "tool" delegates to the named sub-agent (a child workflow)
    admin_only: bool = False  # its approvals are never allowed for a whole thread at once
    local: bool = False  # runs as a local activity (ToolOptions.local_tools)


@dataclass
class AgentSpec:
    """The agent's configuration as the client sees it; carried in the workflow input."""

    name: str
    mode: AgentMode
    approval: ApprovalPolicy
    tools: list[ToolSpec]
    max_iterations: int
    timeouts: Timeouts
    context_messages: int  # transcript messages the workflow's own copy keeps (and, without a token
    # budget, the most a model round sees)
    context_chars: int = 100_000  # at most this many characters per round; 0: no limit but the tokens'
    max_history_events: int = 10_000  # continue-as-new once a run's history is this long
    max_history_bytes: int = 20 * 1024 * 1024
    fingerprint: str | None = None  # None: the check was switched off on the client side
    manifest: dict[str, str] = field(default_factory=dict)
    task_queue: str = ""
    depth: int = 0  # 0 for a top-level agent; sub-agents one more than their parent
    subagents: list["AgentSpec"] = field(default_factory=list)
    # Tokens a model round may send (the model's context minus room for the answer). 0: runs started
    # before token budgets, whose rounds see the last ``context_messages`` within ``context_chars``.
    context_tokens: int = 0

    def for_turn(self, profile: "ProfileRef | None") -> "AgentSpec":
        """This spec as a turn under ``profile`` runs it: with the timeouts of the profile's mode when it
        names another mode than the agent's (the agent's own timeouts, perhaps tuned, otherwise)."""
        if profile is None or not profile.mode or profile.mode == AgentMode(self.mode).value:
            return self
        mode = AgentMode(profile.mode)
        return dataclasses.replace(self, mode=mode, timeouts=timeouts_for(mode))

    def subagent(self, name: str) -> "AgentSpec | None":
        return next((s for s in self.subagents if s.name == name), None)

    def tool(self, name: str) -> ToolSpec | None:
        for spec in self.tools:
            if spec.name == name:
                return spec
        return None

    def needs_approval(self, name: str, profile: "ProfileRef | None" = None) -> bool:
        spec = self.tool(name)
        approval = ApprovalPolicy(profile.approval) if profile is not None and profile.approval else self.approval
        if approval is ApprovalPolicy.NONE or (spec is not None and spec.subagent):
            return False  # a delegation is not gated itself: the sub-agent's own tools are
        if approval is ApprovalPolicy.ALL:
            return True
        spec = self.tool(name)
        return bool(spec and spec.requires_approval)


@dataclass
class DeliveryTarget:
    """Where durable notices of a turn go: an activity on another task queue (a platform adapter).

    ``meta`` is opaque to the core (channel, thread, placeholder message id...).
    """

    task_queue: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class ProfileRef:
    """The profile a message is under: name and version (the worker holds its prompt and model), and
    the little the workflow itself applies. None fields: the agent's own configuration."""

    name: str
    version: str
    system_prompt: str | None = None  # the turn runs with these even if the file changes meanwhile
    model: str | None = None
    approval: str | None = None  # marked | all | none
    tools: list[str] | None = None  # the tools offered; None: all
    admin_only: list[str] = field(default_factory=list)
    max_iterations: int | None = None
    mode: str | None = None  # interactive | autonomous: the turn's timeouts (AgentSpec.for_turn)


@dataclass
class BudgetScope:
    """Whose token budgets a turn counts against: its requester's and its channel's, per day."""

    user_key: str  # e.g. "slack:T1:U1"
    channel_key: str  # e.g. "slack:T1:C1"
    user_limit: int | None = None  # tokens per day; None: no budget
    channel_limit: int | None = None
    override_by: str | None = None  # an admin let this turn start past its budget


@dataclass
class UserMessage:
    id: str  # deduplicates: the same id is accepted once per conversation
    text: str
    user: str = "user"
    user_name: str | None = None
    context: list[ChatMessage] = field(default_factory=list)  # earlier thread messages, first turn only
    deliver_to: DeliveryTarget | None = None
    # Who may decide this turn's approvals, recorded with each approval when it is asked. None: anyone
    # (an SDK caller that gives no policy). Else "requester", "anyone" and/or user ids.
    approvers: list[str] | None = None
    admins: list[str] = field(default_factory=list)  # may always decide
    profile: ProfileRef | None = None  # the channel's profile when the message was sent
    budget: BudgetScope | None = None  # the budgets the turn's tokens count against
    attachments: list[BlobRef] = field(default_factory=list)  # the message's files, by reference


@dataclass
class Carry:
    """What a conversation carries across continue-as-new and across an idle end.

    ``window`` is a bounded copy of the transcript tail, so Temporal stays the source of truth even
    when the transcript store loses data.
    """

    window: list[ChatMessage] = field(default_factory=list)
    next_seq: int = 0  # sequence number the next transcript message gets
    turns: int = 0
    approvals: int = 0  # approval ids are numbered per conversation
    seen_message_ids: list[str] = field(default_factory=list)
    recent: list["TurnStatus"] = field(default_factory=list)  # last few turns, for late result readers
    allowances: list["Allowance"] = field(default_factory=list)  # tools allowed for the whole thread
    profile: "ProfileRef | None" = None  # the profile of the last turn
    tokens: int = 0  # model tokens of the conversation's turns so far
    feedback: list["Feedback"] = field(default_factory=list)  # ratings of answers, oldest first
    context: "ContextState | None" = None  # the summary of older turns and the last request's size


RATINGS = ("up", "down")


@dataclass
class Feedback:
    """One person's rating of one answer (a turn). The conversation keeps one per (turn, person): a
    second rating by the same person replaces the first."""

    turn_id: str
    by: str
    rating: str  # "up" | "down"
    comment: str | None = None
    at: str | None = None  # ISO time the workflow recorded it (set by the workflow)


@dataclass
class FeedbackCounts:
    """The ratings a conversation holds now (each person's latest per answer)."""

    up: int = 0
    down: int = 0


@dataclass
class ContextState:
    """What a conversation knows of its model context: carried across continue-as-new and idle ends.

    The summary covers transcript messages ``[0, summary_upto)``; the store keeps a copy of its text
    under ``summary_key`` so model rounds read it by reference. ``pinned`` is a copy of the first
    user request (sent in full, or shrunk if huge, in every round).
    """

    budget: int = 0  # tokens a round may send
    summary: str = ""
    summary_upto: int = 0
    pinned_seq: int | None = None
    pinned: ChatMessage | None = None
    last_tokens: int = 0  # estimated tokens of the last request
    last_budget: int = 0  # the budget it was fitted to (smaller after a context-length refusal)
    summaries: int = 0  # how many summaries were made
    summarised_turn: int | None = None  # the turn (1-based count) after which the last one was made
    summarised_at: str | None = None  # ISO time it was made
    due: bool = False  # the next round summarises first
    retry_after_seq: int = 0  # after a summary that found nothing to take in, not before this message


@dataclass
class SummaryRef:
    """The summary a round sends: its text is read from the store, or given here on a resync."""

    upto_seq: int
    text: str | None = None


def summary_key(conversation_id: str) -> str:
    """Where a conversation's summary lives in the transcript store (at sequence number ``upto_seq``)."""
    return f"{conversation_id}#summary"


@dataclass
class ConversationInput:
    conversation_id: str
    spec: AgentSpec
    carry: Carry | None = None
    pending: list[UserMessage] = field(default_factory=list)
    restored: bool = False  # True once a previous run's carry was looked for (or there is none)
    previous_run_id: str | None = None  # the client saw this completed run: restore from it directly
    resume: "TurnCheckpoint | None" = None  # a turn that was waiting for approval when the run continued
    cancel: "CancelRequest | None" = None  # a cancel that arrived while the run was continuing
    parent: "ParentLink | None" = None  # set when this conversation is a sub-agent's one task


@dataclass
class ParentLink:
    workflow_id: str
    stream: str  # the parent turn's event stream
    source: str  # this sub-agent's name, marking its events


@dataclass
class ChildApproval:
    """A sub-agent's approval, raised to (and decided through) its parent conversation."""

    child_workflow_id: str
    approval: "ApprovalInfo"


@dataclass
class TurnCheckpoint:
    """A turn paused while only approval waits remained, carried across continue-as-new."""

    message: UserMessage
    status: "TurnStatus"
    round: int  # the round whose tool calls are in flight
    calls: list[ToolCall]
    results: list["ToolResult"]  # calls already finished


@dataclass
class TranscriptRef:
    """How an activity finds the transcript: the store holds messages by sequence number."""

    conversation_id: str
    start_seq: int  # first message of the window the model sees
    end_seq: int  # one past the last message
    unsynced: list[ChatMessage] = field(default_factory=list)  # messages [end_seq - len, end_seq) to write
    resync: bool = False  # the workflow sends its whole window because the store lost data


@dataclass
class LLMRequest:
    conversation_id: str
    turn_id: str
    round: int
    transcript: TranscriptRef
    system_prompt_override: str | None = None
    allow_tools: bool = True
    fingerprint: str | None = None
    stream: str | None = None  # publish live events here instead of this turn's own stream
    source: str | None = None  # marks those events (a sub-agent's name)
    context_chars: int = 100_000
    turn_started: float | None = None  # epoch seconds the turn began, for the time-to-first-token metric
    profile: ProfileRef | None = None  # the turn's profile: its prompt, model and tools
    budget: BudgetScope | None = None  # the round's tokens are charged to these budgets
    context_tokens: int = 0  # the token budget; 0: the old selection (messages, then characters)
    summary: SummaryRef | None = None
    pinned_seq: int | None = None  # the first user request, sent beside the recent messages
    pinned: ChatMessage | None = None  # its copy, sent only on a resync
    inline: "InlineTools | None" = None  # the local tools this activity may run itself (inline-tools patch)


@dataclass
class InlineTools:
    """What a model round's activity may do itself: run these local tools when a round asks for them
    alone, then make the next round, up to the turn's last one (which offers no tools)."""

    tools: list[str]  # local, offered by the profile, not a sub-agent, needing no approval now
    last_round: int  # the turn's last round number (max_iterations): it allows no tools
    key_prefix: str  # a call's idempotency key is this plus its id, as for a tool activity
    tool_timeout: float  # seconds one call may take
    round_timeout: float  # seconds one model round may take: the activity starts no round it cannot fit


@dataclass
class InlineStep:
    """A model round whose tool calls the activity ran itself: what the workflow records of it."""

    text: str
    tool_calls: list[ToolCall]
    results: list["ToolResult"]  # in call order
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_estimated: bool = False


@dataclass
class SummaryRequest:
    """Summarise the unsummarised part ``transcript`` (from ``previous.upto_seq``) into a new summary."""

    conversation_id: str
    transcript: TranscriptRef
    budget: int
    previous: SummaryRef | None = None
    fingerprint: str | None = None


@dataclass
class SummaryResult:
    text: str
    upto_seq: int  # the new summary covers messages [0, upto_seq)
    tokens: int = 0
    transcript_missing: bool = False  # the store lost messages: send the window again


@dataclass
class LLMResult:
    text: str
    tool_calls: list[ToolCall]
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    transcript_missing: bool = False  # the store lost messages: send the window again (no model call made)
    usage_estimated: bool = False  # the server reported no usage: the tokens are estimated (characters / 4)
    over_budget: bool = False  # the round's tokens took its user or channel past the day's budget
    context_tokens: int = 0  # estimated tokens of the request (0: an older worker did not count)
    context_full: bool = False  # the unsummarised messages fill their share of the budget: summarise
    steps: list[InlineStep] = field(default_factory=list)  # rounds before this one, run in this activity


@dataclass
class ToolRequest:
    conversation_id: str
    turn_id: str
    call: ToolCall
    idempotency_key: str
    fingerprint: str | None = None
    stream: str | None = None
    source: str | None = None


@dataclass
class ToolResult:
    call_id: str
    name: str
    output: str
    ok: bool = True
    attachments: list[BlobRef] = field(default_factory=list)  # files the tool made, stored by the activity


@dataclass
class ApprovalInfo:
    id: str
    turn_id: str
    tool: str
    arguments: str
    requested_by: str
    status: str = "pending"  # pending | approved | denied | expired | cancelled
    decided_by: str | None = None
    reason: str | None = None
    call_id: str | None = None
    deadline: str | None = None  # ISO time after which it expires
    # The policy of the message that asked (see UserMessage): the decide validator checks against it.
    approvers: list[str] | None = None
    admins: list[str] = field(default_factory=list)
    round: int | None = None  # the model round of the call; None on approvals asked by older versions
    # Whether "always allow in this thread" may be offered: False for admin-only tools, sub-agents'
    # approvals and approvals asked by versions that did not know the scope (they would ignore it).
    thread_scope: bool = False
    scope: str | None = None  # how an approval was given: "once" or "thread" (None: before scopes)
    # The tool is admin-only (agent or profile): no thread allowance covers it, also not a sub-agent's
    # call raised to its parent. False on approvals of versions before sub-agents used allowances.
    admin_only: bool = False

    def __post_init__(self) -> None:
        # Cards, statuses and carried turns repeat the arguments: whoever builds one, they stay small.
        from .limits import APPROVAL_ARGUMENTS_BYTES, clip

        self.arguments = clip(self.arguments, APPROVAL_ARGUMENTS_BYTES, "arguments")


@dataclass
class Decision:
    approval_id: str
    approved: bool
    by: str
    reason: str | None = None
    admin: bool = False  # the caller verified ``by`` as an admin of the conversation's workspace or guild
    # "once", or "thread": allow this tool, with any arguments, for the rest of the conversation.
    # Older workflows ignore the field and approve once; older adapters send none (once).
    scope: str = "once"


@dataclass
class Allowance:
    """A tool allowed for the whole conversation (thread) by a scoped approval, until revoked."""

    tool: str
    by: str  # who clicked "always allow in this thread"
    at: str  # ISO time
    approval_id: str  # the approval that granted it


@dataclass
class RevokeRequest:
    tool: str
    by: str


@dataclass
class CancelRequest:
    by: str
    reason: str | None = None
    turn_id: str | None = None  # None: whatever turn is running


@dataclass
class TurnStatus:
    turn_id: str
    state: str  # queued | running | awaiting_approval | finished | cancelled | failed
    text: str | None = None
    error: str | None = None
    error_kind: str | None = None
    approvals: list[ApprovalInfo] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)  # names, in order, for a compact display
    step: str | None = None  # what the turn is doing now, for status displays
    version: int = 0  # bumped at every change
    milestone: int = 0  # bumped when an approval is asked or decided and when the turn ends: long polls wait on it
    cancelled_by: str | None = None
    meta: dict[str, str] = field(default_factory=dict)  # the message's DeliveryTarget.meta, for adapters
    duplicate: bool = False  # set on the answer to a submit whose message id was already seen
    prompt_tokens: int = 0  # the turn's model rounds, summed
    completion_tokens: int = 0
    tokens_estimated: bool = False  # some round's usage was estimated (the server reported none)
    files: list[BlobRef] = field(default_factory=list)  # files the turn's tools made, delivered with the answer

    @property
    def done(self) -> bool:
        return self.state in ("finished", "cancelled", "failed")

    def bump(self, milestone: bool = False) -> None:
        """Mark a change; a milestone also wakes the long polls waiting on this turn."""
        self.version += 1
        if milestone:
            self.milestone += 1


@dataclass
class ProgressQuery:
    turn_id: str
    seen_milestone: int = -1


@dataclass
class Progress:
    turn: TurnStatus | None  # None: the turn is unknown to this run
    continued: bool = False  # the workflow is continuing as new: ask again


@dataclass
class ConversationStatus:
    conversation_id: str
    state: str  # idle | running | awaiting_approval
    turns: int
    current: TurnStatus | None
    queued: int
    started_at: str
    history_length: int = 0
    allowances: list[Allowance] = field(default_factory=list)  # tools allowed for the whole thread
    profile: str | None = None  # "name@version" of the profile the conversation runs under
    tokens: int = 0  # model tokens used by the conversation so far (prompt and completion)
    feedback: "FeedbackCounts | None" = None  # None: a workflow of a version without feedback
    context_tokens: int = 0  # estimated tokens of the last model request (0: not known)
    context_budget: int = 0  # the tokens a request may take (0: no token budget)
    summarised_turn: int | None = None  # the turn after which older turns were last summarised
    summarised_at: str | None = None  # and when (ISO time)
    summaries: int = 0
    build_id: str | None = None  # the worker build the run is on; None when workers run unversioned


@dataclass
class Delivery:
    """A durable notice for a platform adapter, delivered by an activity on its task queue."""

    kind: DeliveryKind  # a str enum: the wire value is the plain string
    conversation_id: str
    turn_id: str
    meta: dict[str, str]
    text: str | None = None
    approval: ApprovalInfo | None = None
    tool_calls: list[str] = field(default_factory=list)
    by: str | None = None  # who cancelled, for turn_cancelled
    files: list[BlobRef] = field(default_factory=list)  # uploaded into the thread after the answer's text
    workflow_id: str = ""
    run_id: str = ""


@dataclass
class AgentEvent:
    """One event on a run's stream.

    kinds: token (delta), round_started, retry (discard this round's partial text), tool_started,
    tool_finished, approval_requested, approval_decided, finished, cancelled, error.
    """

    kind: str
    turn_id: str
    delta: str | None = None
    text: str | None = None
    tool: str | None = None
    call_id: str | None = None
    approval: ApprovalInfo | None = None
    error: str | None = None
    round: int | None = None
    attempt: int | None = None
    offset: str | None = None  # position on the event bus, for resuming a subscription
    data: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # set on events of a sub-agent, to its name
    ts: float | None = None  # epoch seconds of publication, for the event-bus lag metric


def workflow_id_for(agent_name: str, conversation_id: str) -> str:
    return f"{agent_name}/{conversation_id}"
