"""How a delivery attempt ends, the same on every platform.

The workflow delivers a conversation's notices one at a time, in order, so one notice that can never
go out must not hold up the ones behind it, and a notice that can go out later must not be lost.
Each adapter's ``durabot.deliver`` activity sorts its failures into three kinds (``Failure``):

- ``later``: a rate limit or an outage (5xx, no connection, a timeout). Retried by Temporal until the
  notice goes through (after Retry-After for a rate limit): an adapter or a platform that is down
  still gets its notices once it is back.
- ``refused``: the platform refused for good (the channel is gone, the bot has no access). Not
  retried; logged with the platform's reason.
- ``unexpected``: anything else (a payload the platform rejects, a bug in a renderer). Retried until
  attempt ``UNEXPECTED_ATTEMPTS``; then the same notice goes out once as plain text, with the same
  idempotency keys as the normal path, and if that fails too the delivery gives up for good.

Nothing of an unexpected exception's text reaches chat, and logs carry the exception type, where it
was raised and the conversation and turn ids.

``DeliveryActivity`` is that activity, once for every platform: it dispatches on the notice's
``DeliveryKind`` to the platform's ``Deliverer`` (which puts answers and cards in its chat, and sorts
its own errors with ``classify``), and settles the attempt's outcome here. A turn's end is first
handed to the live follows of this process (``bots.core.follow.turn_ends``): they learn it there
instead of asking the workflow.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import aiohttp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agent_core.contract import DELIVER_ACTIVITY, DeliveryKind
from agent_core.errors import DELIVERY_FAILED, DELIVERY_LATER, DELIVERY_REFUSED, DELIVERY_UNEXPECTED
from agent_core.metrics import rate_limit_wait_seconds_total
from agent_core.types import Delivery, TurnStatus
from bots.core.follow import turn_ends

__all__ = [
    "UNEXPECTED_ATTEMPTS", "Failure", "Deliverer", "DeliveryActivity", "deliver_with_fallback",
    "ended_status", "plain", "transport_failure",
]

log = logging.getLogger(__name__)

UNEXPECTED_ATTEMPTS = 3  # attempts of the normal path before the plain-text fallback

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Failure:
    kind: str  # later | refused | unexpected
    reason: str  # for logs: a platform error code or an exception type, never a secret
    retry_after: float | None = None  # seconds, for a rate limit

    @classmethod
    def later(cls, reason: str, retry_after: float | None = None) -> Failure:
        return cls("later", reason, retry_after)

    @classmethod
    def refused(cls, reason: str) -> Failure:
        return cls("refused", reason)

    @classmethod
    def unexpected(cls, reason: str) -> Failure:
        return cls("unexpected", reason)


def transport_failure(exc: Exception) -> Failure:
    """The part of every platform's ``classify`` that is not about the platform: a network failure or
    a timeout is an outage (retried until it ends); anything else nobody expected."""
    if isinstance(exc, (TimeoutError, aiohttp.ClientError, OSError)):
        return Failure.later(type(exc).__name__)
    return Failure.unexpected(type(exc).__name__)


class Deliverer(Protocol):
    """A platform's half of the delivery: put a notice in its chat, normally or as plain text.

    Every method is called again for the same notice after a failure, so each must be idempotent
    (see the platform's module for how). ``attempt`` is Temporal's, from 1."""

    platform: str  # as logs and errors name it: "Slack", "Discord"

    def classify(self, exc: Exception) -> Failure: ...

    async def answer(self, d: Delivery, attempt: int) -> None: ...  # a turn's end: finished, failed, cancelled

    async def card(self, d: Delivery, attempt: int) -> None: ...  # an approval asked: the card with buttons

    async def decided_card(self, d: Delivery, attempt: int) -> None: ...  # the card, decided, without buttons

    async def plain_answer(self, d: Delivery) -> None: ...

    async def plain_card(self, d: Delivery) -> None: ...

    async def plain_decided_card(self, d: Delivery) -> None: ...


class DeliveryActivity:
    """The ``durabot.deliver`` activity, registered on the adapter's delivery task queue."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, d: Delivery) -> None:
        kind = DeliveryKind(d.kind)
        if not kind.known:  # from a newer workflow: skipping it must not hold up the notices behind it
            log.warning("ignoring delivery of unknown kind %r for %s", d.kind, d.conversation_id)
            return
        out = self.deliverer
        if kind.ends_turn:
            # The follows here learn the end now, before any write, as from a query that finds it.
            turn_ends.ended(d.conversation_id, d.turn_id, ended_status(d))
            normal, fallback = out.answer, out.plain_answer
        elif d.approval is None:
            log.warning("delivery %s of %s carries no approval; skipped", d.kind, d.conversation_id)
            return
        elif kind is DeliveryKind.APPROVAL_REQUESTED:
            normal, fallback = out.card, out.plain_card
        else:
            normal, fallback = out.decided_card, out.plain_decided_card
        attempt = activity.info().attempt if activity.in_activity() else 1
        await deliver_with_fallback(d, attempt, lambda: normal(d, attempt), lambda: fallback(d), out.classify,
                                    out.platform)


def ended_status(d: Delivery) -> TurnStatus:
    """The turn's end as a notice of it tells: what a query of the ended turn gives a live follow."""
    state = DeliveryKind(d.kind).value.removeprefix("turn_")  # finished | failed | cancelled
    return TurnStatus(turn_id=d.turn_id, state=state, text=d.text if state == "finished" else None,
                      error=d.text if state == "failed" else None, tool_calls=list(d.tool_calls),
                      cancelled_by=d.by, meta=dict(d.meta), files=list(d.files))


def plain(text: str) -> str:
    """``text`` without control characters (a NUL in a model's answer must not break a fallback)."""
    return _CONTROL.sub("", text)


async def deliver_with_fallback(
    d: Delivery, attempt: int, normal: Callable[[], Awaitable[None]], fallback: Callable[[], Awaitable[None]],
    classify: Callable[[Exception], Failure], platform: str,
) -> None:
    """Run one attempt of a delivery: ``normal``, and ``fallback`` (plain text) when ``normal`` keeps
    failing unexpectedly. Raises the ``ApplicationError`` that tells Temporal what to do next."""
    try:
        await normal()
        return
    except ApplicationError:
        raise  # the delivery itself already decided (a delivery without a channel, say)
    except Exception as exc:  # whatever it is, it must not hold up the conversation's later notices
        failure = classify(exc)
        if failure.kind != "unexpected":
            raise _settle(d, failure, platform) from None
        _log_unexpected(d, exc, failure, attempt, platform, "the normal path")
        if attempt < UNEXPECTED_ATTEMPTS:
            raise ApplicationError(
                f"{platform} delivery of {d.kind} failed unexpectedly ({failure.reason}); retrying",
                type=DELIVERY_UNEXPECTED,
            ) from None
    try:
        await fallback()
    except ApplicationError:
        raise
    except Exception as exc:  # the last resort failed: give up on this notice, not on the next ones
        failure = classify(exc)
        if failure.kind != "unexpected":
            raise _settle(d, failure, platform) from None
        _log_unexpected(d, exc, failure, attempt, platform, "the plain-text fallback")
        raise ApplicationError(
            f"{platform} delivery of {d.kind} failed, plain text too ({failure.reason}); dropped",
            type=DELIVERY_FAILED, non_retryable=True,
        ) from None
    log.warning("%s: %s of conversation %s turn %s was sent as plain text after %d failed attempts",
                platform, d.kind, d.conversation_id, d.turn_id, attempt)


def _settle(d: Delivery, failure: Failure, platform: str) -> ApplicationError:
    if failure.kind == "refused":
        log.warning("%s refused %s of conversation %s turn %s for good (%s); not retried",
                    platform, d.kind, d.conversation_id, d.turn_id, failure.reason)
        return ApplicationError(f"{platform} refused {d.kind}: {failure.reason}", type=DELIVERY_REFUSED,
                                non_retryable=True)
    delay = None
    if failure.retry_after:  # Temporal waits this long before the next attempt
        rate_limit_wait_seconds_total.labels(platform=platform.lower()).inc(failure.retry_after)
        delay = timedelta(seconds=failure.retry_after)
    log.info("%s delivery of %s in conversation %s will be retried (%s)", platform, d.kind, d.conversation_id,
             failure.reason)
    return ApplicationError(f"{platform} delivery of {d.kind} will be retried: {failure.reason}",
                            type=DELIVERY_LATER, next_retry_delay=delay)


def _log_unexpected(d: Delivery, exc: Exception, failure: Failure, attempt: int, platform: str, path: str) -> None:
    log.warning("%s: %s of %s of conversation %s turn %s failed on attempt %d: %s at %s",
                platform, path, d.kind, d.conversation_id, d.turn_id, attempt, failure.reason, _where(exc))


def _where(exc: BaseException) -> str:
    """Where an exception was raised (file:line in function): enough to find a bug, no message text."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"
