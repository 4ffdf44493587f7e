"""What one turn costs the Temporal server, read from a conversation's history: workflow tasks,
activity tasks (regular and local), history events by type, and billable Temporal Cloud actions.

Actions are counted by Temporal Cloud's published definition (docs.temporal.io, "Temporal Cloud
Actions"), for the kinds that show in a history:
- workflow started (a start, a continue-as-new);
- update received (an accepted update; a rejected one leaves no event, so it is not counted here);
- signal received; timer started; search-attribute upsert, except one that only sets
  ``TemporalChangeVersion`` (the patch bookkeeping, exempt);
- activity started or retried (each attempt);
- local activities: all markers a workflow task records count as one action, so a workflow task with
  one or more local-activity or side-effect markers is one action. A workflow task whose only markers
  are patch markers is counted as none: version markers are not among the listed kinds (if Cloud
  billed them by the marker rule, add one per run that records a patch marker);
- a child workflow: two (its start and its execution).
Queries and activity heartbeats are billed too but leave no event; a turn of this benchmark makes none
(tool and model activities finish well within the heartbeat interval).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from temporalio.api.enums.v1 import EventType

_E = EventType
_LOCAL_MARKERS = ("core_local_activity", "core_side_effect", "LocalActivity", "SideEffect")
_CHANGE_VERSION = "TemporalChangeVersion"

TARGETS = {  # the engine's targets (p50 overheads against a direct in-process call of the same run)
    "ttft": 20.0, "plain": 25.0, "tool": 40.0, "turns_per_s": 35.0, "machine_cpu_ms": 40.0,
}


@dataclass
class TurnCost:
    workflow_tasks: int = 0
    activity_tasks: int = 0  # attempts of regular activities
    local_activities: int = 0
    actions: int = 0
    events: Counter = field(default_factory=Counter)
    bytes: int = 0

    @property
    def event_count(self) -> int:
        return sum(self.events.values())

    def line(self) -> str:
        return (f"{self.workflow_tasks} workflow tasks, {self.activity_tasks} activity tasks + "
                f"{self.local_activities} local, {self.event_count} history events "
                f"({self.bytes / 1024:.1f} KB), {self.actions} billable actions")

    def kinds(self) -> str:
        return ", ".join(f"{k.lower()} {v}" for k, v in self.events.most_common())


def cost(events: Iterable[Any]) -> TurnCost:
    """The cost of these history events (``temporalio.api.history.v1.HistoryEvent``s)."""
    c = TurnCost()
    markers_in_task = False  # local-activity markers recorded by the current workflow task
    for e in events:
        kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        c.events[kind] += 1
        c.bytes += e.ByteSize()
        t = e.event_type
        if t == _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            c.workflow_tasks += 1
            markers_in_task = False
        elif t == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts = max(1, e.activity_task_started_event_attributes.attempt)
            c.activity_tasks += attempts
            c.actions += attempts
        elif t == _E.EVENT_TYPE_MARKER_RECORDED:
            name = e.marker_recorded_event_attributes.marker_name
            if name in _LOCAL_MARKERS:
                c.local_activities += name in ("core_local_activity", "LocalActivity")
                if not markers_in_task:
                    c.actions += 1
                    markers_in_task = True
        elif t == _E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if set(fields) - {_CHANGE_VERSION}:
                c.actions += 1
        elif t in (_E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                   _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, _E.EVENT_TYPE_TIMER_STARTED,
                   _E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED):
            c.actions += 1
        elif t == _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            c.actions += 2
    return c


def turns(events: list[Any]) -> list[list[Any]]:
    """A conversation's history cut into its turns: each from the workflow task that accepted the
    turn's update to the one before the next turn's. Events before the first update (the start) go
    with the first turn; idle-timer events between turns go with the turn before them. Meant for turns
    sent one after another (each answered before the next is sent): a message sent while the previous
    turn's last task is pending shares that task, and its cost goes to the turn before it."""
    cuts = []
    for i, e in enumerate(events):
        if e.event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            j = i
            while j > 0 and events[j - 1].event_type != _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                j -= 1
            # back over that one task's completed / started / scheduled events, not over the task
            # right before it (the previous turn's last, which took its delivery's completion)
            for kind in (_E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, _E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
                         _E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED):
                if j > 0 and events[j - 1].event_type == kind:
                    j -= 1
            cuts.append(j)
    if not cuts:
        return [events]
    cuts[0] = 0
    return [events[a:b] for a, b in zip(cuts, cuts[1:] + [len(events)])]


def is_tool_turn(events: list[Any]) -> bool:
    """A turn that ran the tool activity, regular or local, or a tool inside a model round's activity
    (its result carries the inline steps)."""
    for e in events:
        if e.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and any(
                b'"steps":[{' in p.data for p in e.activity_task_completed_event_attributes.result.payloads):
            return True
        if e.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and \
                e.activity_task_scheduled_event_attributes.activity_type.name.endswith("run_tool"):
            return True
        if e.event_type == _E.EVENT_TYPE_MARKER_RECORDED and any(
                b"run_tool" in p.data for ps in e.marker_recorded_event_attributes.details.values()
                for p in ps.payloads):
            return True
    return False


async def history_events(handle: Any) -> list[Any]:
    return list((await handle.fetch_history()).events)
