"""The replay gate: recorded histories replayed against the current workflow code.

A failure names the history file and the first event the new code disagrees with (its id and type,
read from the SDK's non-determinism message and looked up in the history), so the breaking change
is found without rerunning anything. ``kinds`` says which kinds of turn a history holds, so a test
can check that the recorded set covers every kind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from agent_core.contract import LLM_ACTIVITY, TOOL_ACTIVITY, Signal, Update
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import UPGRADE_PATCH, ConversationWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"

# Every kind of turn a release must keep replaying (see tests/histories/README.md).
KINDS = ("plain", "tools", "approval", "cancel", "sub-agent", "continue-as-new", "version-upgrade")

# The SDK names the event as "HistoryEvent(id: 8, ActivityTaskScheduled)" or "... EventId=8 ...".
_EVENT_ID = re.compile(r"HistoryEvent\(id: (\d+)|[Ee]vent[ _]?[Ii][Dd][=:]\s*(\d+)")


class ReplayMismatch(AssertionError):
    """A recorded history no longer replays: the change would break conversations running now."""


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def save(name: str, history: WorkflowHistory) -> Path:
    """Write a newly recorded history beside the others (``RECORD_HISTORIES`` is the label); never over one."""
    label = os.environ["RECORD_HISTORIES"]
    path = HISTORIES / f"{name}-{label}.json"
    if path.exists():
        raise FileExistsError(f"{path.name} exists: recorded histories are only added, choose a new label")
    path.write_text(history.to_json())
    return path


def first_mismatch(history: WorkflowHistory, message: str) -> str:
    """``event 8 (ACTIVITY_TASK_SCHEDULED durabot.llm_round)`` from the SDK's message, or what is known."""
    match = _EVENT_ID.search(message)
    if match is None:
        return "an event the SDK did not name"
    event_id = int(match.group(1) or match.group(2))
    event = next((e for e in history.events if e.event_id == event_id), None)
    if event is None:
        return f"event {event_id}"
    return f"event {event_id} ({_describe(event)})"


def _describe(event: HistoryEvent) -> str:
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    detail = ""
    if event.HasField("activity_task_scheduled_event_attributes"):
        detail = event.activity_task_scheduled_event_attributes.activity_type.name
    elif event.HasField("timer_started_event_attributes"):
        detail = "timer " + event.timer_started_event_attributes.timer_id
    elif event.HasField("marker_recorded_event_attributes"):
        detail = event.marker_recorded_event_attributes.marker_name
    elif event.HasField("start_child_workflow_execution_initiated_event_attributes"):
        detail = event.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
    return f"{kind} {detail}".strip()


async def replay(path: Path, workflows: Sequence[type] = (ConversationWorkflow,), runner: Any = SANDBOXED_RUNNER) -> None:
    """Replay one recorded history; raise ``ReplayMismatch`` naming the file and the first mismatching event."""
    history = load(path)
    replayer = Replayer(workflows=list(workflows), workflow_runner=runner)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    failure = result.replay_failure
    if failure is not None:
        raise ReplayMismatch(
            f"{path.name}: the current workflow code no longer replays this recorded conversation; first "
            f"mismatching {first_mismatch(history, str(failure))}. Put the change behind workflow.patched() "
            f"(tests/histories/README.md). SDK said: {failure}"
        )


def kinds(history: WorkflowHistory) -> set[str]:
    """The kinds of turn (``KINDS``) a recorded history holds, read from its events."""
    found: set[str] = set()
    activities = set()
    for ev in history.events:
        if ev.HasField("activity_task_scheduled_event_attributes"):
            activities.add(ev.activity_task_scheduled_event_attributes.activity_type.name)
        elif ev.HasField("workflow_execution_update_accepted_event_attributes"):
            name = ev.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            if name == Update.DECIDE.value:
                found.add("approval")
        elif ev.HasField("workflow_execution_signaled_event_attributes"):
            name = ev.workflow_execution_signaled_event_attributes.signal_name
            if name == Signal.CANCEL.value:
                found.add("cancel")
            elif name in (Signal.DECIDE_CHILD.value, Signal.CHILD_APPROVAL.value):
                found.add("approval")
        elif ev.HasField("start_child_workflow_execution_initiated_event_attributes"):
            found.add("sub-agent")
        elif ev.HasField("workflow_execution_continued_as_new_event_attributes"):
            found.add("continue-as-new")
        elif ev.HasField("marker_recorded_event_attributes"):
            details = ev.marker_recorded_event_attributes.details
            if "patch-data" in details and UPGRADE_PATCH.encode() in details["patch-data"].payloads[0].data:
                found.add("version-upgrade")
    if TOOL_ACTIVITY in activities:
        found.add("tools")
    elif LLM_ACTIVITY in activities and "sub-agent" not in found:
        found.add("plain")  # model rounds only: turns answered without a tool
    return found
