"""Prometheus metrics recorded by activities and adapters (one registry per process).

Turn and approval metrics are not here: the workflow records them with Temporal's replay-safe metric
meter (``workflow.metric_meter()``), so they are exported by the Temporal runtime (see
``WORKFLOW_METRIC_NAMES``). Serve this registry with ``workers.observability.serve_health``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

disable_created_metrics()  # no "*_created" series: they double the output and nobody graphs them
REGISTRY = CollectorRegistry(auto_describe=True)
_NS = "durabot"

first_token_seconds = Histogram(
    "first_token_seconds", "Time from the user's message reaching the workflow to the first streamed token.",
    namespace=_NS, registry=REGISTRY, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
llm_tokens_total = Counter(
    "llm_tokens", "LLM tokens, by kind (prompt | completion).", ["kind"], namespace=_NS, registry=REGISTRY
)
profile_tokens_total = Counter(
    "profile_tokens", "LLM tokens by profile ('' without profiles), kind (prompt | completion) and source "
    "(reported by the server | estimated when it reported none). No user ids.",
    ["profile", "kind", "source"], namespace=_NS, registry=REGISTRY,
)
llm_errors_total = Counter(
    "llm_errors", "LLM call failures, by kind (rate_limit | timeout | server | client | malformed | other).",
    ["kind"], namespace=_NS, registry=REGISTRY,
)
tool_calls_total = Counter(
    "tool_calls", "Tool calls run, by tool and outcome (ok | error).", ["tool", "outcome"],
    namespace=_NS, registry=REGISTRY,
)
platform_api_calls_total = Counter(
    "platform_api_calls", "Calls to a chat platform's API, by platform and method.", ["platform", "method"],
    namespace=_NS, registry=REGISTRY,
)
rate_limit_wait_seconds_total = Counter(
    "rate_limit_wait_seconds", "Seconds spent waiting for a platform's rate limits.", ["platform"],
    namespace=_NS, registry=REGISTRY,
)
event_bus_lag_seconds = Histogram(
    "event_bus_lag_seconds", "Delay between an event's publication and its reading by a subscriber.",
    namespace=_NS, registry=REGISTRY, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
feedback_total = Counter(
    "feedback", "Ratings of answers recorded, by rating (up | down); a changed rating counts again.",
    ["rating"], namespace=_NS, registry=REGISTRY,
)
for _rating in ("up", "down"):
    feedback_total.labels(rating=_rating)  # both series exist from the start, at 0

METRIC_NAMES = (
    "durabot_first_token_seconds",
    "durabot_llm_tokens_total",
    "durabot_llm_errors_total",
    "durabot_tool_calls_total",
    "durabot_platform_api_calls_total",
    "durabot_rate_limit_wait_seconds_total",
    "durabot_event_bus_lag_seconds",
    "durabot_feedback_total",
)

# Recorded in workflow code with workflow.metric_meter(): counted once, never again on replay.
WORKFLOW_METRIC_NAMES = (
    "durabot_turns",  # counter, attribute outcome: finished | failed | cancelled
    "durabot_turn_seconds",  # histogram
    "durabot_approvals_requested",  # counter; pending = requested - decided
    "durabot_approvals_decided",  # counter, attribute outcome: approved | denied | expired | cancelled
    "durabot_approval_wait_seconds",  # histogram
)
