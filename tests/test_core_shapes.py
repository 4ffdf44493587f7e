"""The platform-neutral half of an adapter (bots/core): conversation refs, approval policy, the
delivery activity's dispatch, the plain-text fallback's words and the runs listing's overflow line."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from agent_core.contract import DeliveryKind, ErrorType
from agent_core.types import ApprovalInfo, Delivery
from bots.core.delivery import DeliveryActivity, Failure
from bots.core.delivery_worker import delivery_queue
from bots.core.fallback_text import plain_answer, plain_card
from bots.core.policy import is_admin, may_decide
from bots.core.runs import MAX_RUNS, more_line
from bots.discord import delivery as discord_delivery
from bots.discord.ids import ThreadRef as DiscordRef
from bots.discord.ids import parse_conversation_id as parse_discord
from bots.discord.placeholder import parse_stop_custom_id, stop_custom_id
from bots.slack import delivery as slack_delivery
from bots.slack.ids import ThreadRef as SlackRef
from bots.slack.ids import parse_conversation_id as parse_slack


def test_conversation_ids_keep_their_spelling_and_round_trip() -> None:
    # Running conversations are workflows named by these ids: the spelling is a contract.
    thread, dm = SlackRef("T1", "C1", "1700000000.000100"), SlackRef("T1", "D1", "")
    assert (thread.conversation_id, dm.conversation_id) == ("slack:T1:C1:1700000000.000100", "slack:T1:D1:dm")
    assert dm.thread_ts == "" and dm.short_id == "D1:dm" and thread.team == "T1"
    assert parse_slack(dm.conversation_id) == dm and parse_slack(thread.conversation_id) == thread
    guild, direct = DiscordRef("11", "22", "33"), DiscordRef("@me", "44", "44")
    assert (guild.conversation_id, direct.conversation_id) == ("discord:11:22:33", "discord:@me:44:44")
    assert parse_discord(guild.conversation_id) == guild and direct.is_dm and not guild.is_dm
    assert parse_slack(guild.conversation_id) is None and parse_discord(thread.conversation_id) is None
    assert parse_slack("slack:T1::dm") is None and parse_discord("discord:x:1:2") is None


def test_stop_button_id_keeps_its_base36_spelling() -> None:
    ref = DiscordRef("@me", "35", "36")
    assert stop_custom_id(ref, "36", "1") == "db:x:0.z.10:10:1"
    assert parse_stop_custom_id("db:x:0.z.10:10:1") == (ref, "36", "1")


def test_delivery_queue_names_are_unchanged() -> None:
    assert delivery_queue("durabot", "slack") == "durabot-slack"
    assert delivery_queue("q", "discord") == "q-discord"


def test_who_may_decide_is_one_rule() -> None:
    assert may_decide("1", "1", []) and not may_decide("2", "1", [])  # no list: the requester
    assert may_decide("2", "1", ["requester"], admin=True) and may_decide("9", "1", ["anyone"])
    assert may_decide("3", "1", ["3"]) and not may_decide("1", "1", ["3"])


async def test_platform_admin_is_asked_only_when_the_list_does_not_say() -> None:
    asked: list[str] = []

    async def platform_admin(user: str) -> bool:
        asked.append(user)
        return user == "P"

    assert await is_admin("A", ["A"], platform_admin) and asked == []
    assert await is_admin("P", ["A"], platform_admin) and not await is_admin("X", ["A"], platform_admin)
    assert asked == ["P", "X"]
    assert not await is_admin("P", ["A"])  # no platform check: only the list counts


def test_overflow_line() -> None:
    assert more_line(MAX_RUNS, 0, "older ones") is None
    assert more_line(MAX_RUNS + 3, 2, "older ones") == "… and 3 more, 2 older ones not checked"


def test_status_names_the_build_only_when_workers_run_versioned() -> None:
    from agent_core.types import ConversationStatus
    from bots.discord.commands import describe as discord_status
    from bots.slack.commands import describe as slack_status

    unversioned = ConversationStatus("slack:T1:C1:1.2", "idle", 2, None, 0, "2026-01-01T00:00:00+00:00")
    versioned = ConversationStatus("slack:T1:C1:1.2", "idle", 2, None, 0, "2026-01-01T00:00:00+00:00",
                                   build_id="1.4.0-abc")
    assert "uild" not in discord_status(unversioned) and "uild" not in slack_status(unversioned, "")
    assert discord_status(versioned).endswith("**Build:** `1.4.0-abc`")
    assert slack_status(versioned, "").endswith("build `1.4.0-abc`")


def _delivery(kind: str, approval: bool = True, text: str = "hi") -> Delivery:
    info = ApprovalInfo("a1", "t1", "rm<&>", "{}", "U1") if approval else None
    return Delivery(kind, "slack:T1:C1:1.2", "t1", {"channel": "C1"}, text=text, approval=info)


class Recorder:
    """A deliverer that records what it was asked to do, failing its normal path ``fail`` times."""

    platform = "Test"

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def classify(self, exc: Exception) -> Failure:
        return Failure.unexpected(type(exc).__name__)

    async def _normal(self, name: str) -> None:
        self.calls.append(name)
        if self.fail:
            self.fail -= 1
            raise KeyError("boom")

    async def answer(self, d: Delivery, attempt: int) -> None:
        await self._normal("answer")

    async def card(self, d: Delivery, attempt: int) -> None:
        await self._normal("card")

    async def decided_card(self, d: Delivery, attempt: int) -> None:
        await self._normal("decided_card")

    async def plain_answer(self, d: Delivery) -> None:
        self.calls.append("plain_answer")

    async def plain_card(self, d: Delivery) -> None:
        self.calls.append("plain_card")

    async def plain_decided_card(self, d: Delivery) -> None:
        self.calls.append("plain_decided_card")


async def test_the_activity_dispatches_on_the_delivery_kind() -> None:
    out = Recorder()
    activity = DeliveryActivity(out)
    for kind in DeliveryKind:
        await activity.deliver(_delivery(kind.value))
    await activity.deliver(_delivery("from_the_future"))  # skipped: it must not hold up later notices
    await activity.deliver(_delivery(DeliveryKind.APPROVAL_DECIDED.value, approval=False))  # nothing to show
    assert out.calls == ["card", "decided_card", "answer", "answer", "answer"]


async def test_an_unexpected_failure_is_retried_with_its_type() -> None:
    activity = DeliveryActivity(Recorder(fail=1))
    with pytest.raises(ApplicationError) as raised:
        await activity.deliver(_delivery(DeliveryKind.TURN_FINISHED.value))
    assert raised.value.type == ErrorType.DELIVERY_UNEXPECTED.value and not raised.value.non_retryable


def test_plain_fallback_keeps_each_platforms_words() -> None:
    card = _delivery(DeliveryKind.APPROVAL_REQUESTED.value)
    assert plain_card(card, slack_delivery.WORDS).startswith("Approval needed: rm&lt;&amp;&gt; requested by <@U1>. ")
    assert plain_card(card, discord_delivery.WORDS).startswith("Approval needed: rm<&>, requested by U1. ")
    failed = _delivery(DeliveryKind.TURN_FAILED.value, text="x <y>")
    assert plain_answer(failed, None, slack_delivery.WORDS, 4000) == [
        "Sorry, I could not finish this: x &lt;y&gt;\n"
        "Write again to retry; if it keeps failing, ask an admin to check the worker logs."]
    assert plain_answer(failed, "", discord_delivery.WORDS, 2000)[0].endswith(
        "Try again in a moment; if it keeps failing, an admin can check the worker logs.")
