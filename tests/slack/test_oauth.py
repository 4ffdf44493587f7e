"""One app, many workspaces: installs through the real OAuth endpoints, each workspace's own token on
every call, isolation between workspaces, uninstall, and tokens encrypted at rest."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from agent_core import Agent
from agent_core.contract import DeliveryKind
from agent_core.errors import DELIVERY_LATER, DELIVERY_REFUSED, UserError
from agent_core.types import Delivery
from bots.slack import SlackAdapter
from bots.slack.installations import TokenBox, TokenError, engine_for
from bots.core.settings import DEFAULT_DATABASE_URL
from bots.slack.settings import SlackSettings
from bots.slack.workspaces import NOT_INSTALLED
from tests.fakes.slack_api import FakeSlack, SlackSender
from tests.slack.conftest import SECRET
from tests.slack.test_approval_safety import deploy_script
from tests.slack.test_approvals_and_commands import card_of
from workers.example_tools import EXAMPLE_TOOLS
from workers.settings import Settings

STATE_COOKIE = "slack-app-oauth-state"
KEY = base64.b64encode(os.urandom(32)).decode()
CHANNELS = {"T1": "C1", "T2": "C2"}


@dataclass
class Workspaces:
    fake: FakeSlack
    adapter: SlackAdapter
    agent: Agent
    base: str
    db: Path
    session: aiohttp.ClientSession
    senders: dict[str, SlackSender] = field(default_factory=dict)

    async def install(self, team: str) -> str:
        """Install the app in ``team`` the way a person does; returns the bot token Slack issued."""
        query, cookie = await self.begin()
        assert query["client_id"] == [self.fake.client_id] and "chat:write" in query["scope"][0].split(",")
        assert cookie == query["state"][0]
        code = self.fake.authorize(team)  # the person approves on Slack's page; Slack redirects back
        status, _ = await self.redirect(code, query["state"][0], cookie)
        assert status == 200
        tokens = [t for t, owner in self.fake.tokens.items() if owner == team]
        assert tokens
        self.senders[team] = SlackSender(f"{self.base}/slack/events", SECRET, team)
        return tokens[-1]

    async def begin(self) -> tuple[dict[str, list[str]], str]:
        """Open the install link: (the query of Slack's authorize URL it sends to, the state cookie)."""
        async with self.session.get(f"{self.base}/slack/install", allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            authorize = urllib.parse.urlparse(resp.headers["Location"])
            cookie = resp.cookies[STATE_COOKIE]
        assert authorize.netloc == "slack.com" and authorize.path == "/oauth/v2/authorize"
        assert cookie["secure"] and cookie["httponly"]
        return urllib.parse.parse_qs(authorize.query), cookie.value

    async def redirect(self, code: str, state: str, cookie: str | None = None) -> tuple[int, str]:
        """Slack's redirect back, from the browser that began the install (its state cookie, which a
        browser sends over https only: given here by hand)."""
        url = f"{self.base}/slack/oauth_redirect?" + urllib.parse.urlencode({"code": code, "state": state})
        headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie else {}
        async with self.session.get(url, allow_redirects=False, headers=headers) as resp:
            return resp.status, await resp.text()

    def bot_user(self, team: str) -> str:
        return self.fake.bots[team][0]

    async def mention(self, team: str, text: str, user: str = "U1") -> dict:
        channel = CHANNELS[team]
        event = self.fake.add_user_message(channel, f"<@{self.bot_user(team)}> {text}", user)
        event["type"] = "app_mention"
        event.pop("channel_type", None)
        status, _ = await self.senders[team].event(event)
        assert status == 200
        return event

    async def answer(self, team: str, event: dict, contains: str, timeout: float = 15) -> dict:
        channel = CHANNELS[team]

        def done() -> dict | None:
            for m in self.fake.bot_messages(channel, event["ts"]):
                if contains in m["text"] and "Thinking" not in m["text"]:
                    return m
            return None

        return await self.fake.wait_for(done, timeout)


@pytest.fixture
async def workspaces(make_agent: Callable[..., Any], fake_slack: FakeSlack, task_queue: str,
                     tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[SlackAdapter, aiohttp.ClientSession, Workspaces]] = []

    async def start(**env: str) -> Workspaces:
        db = tmp_path / "durabot.sqlite3"
        values = {"SLACK_CLIENT_ID": fake_slack.client_id, "SLACK_CLIENT_SECRET": fake_slack.client_secret,
                  "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake_slack.base_url,
                  "DURABOT_TASK_QUEUE": task_queue, "DURABOT_SECRET_KEY": KEY,
                  "DURABOT_DATABASE_URL": f"sqlite:///{db}", **env}
        settings = Settings.load(env=values, dotenv=None)
        agent = await make_agent(tools=EXAMPLE_TOOLS)
        adapter = SlackAdapter(settings, agent)
        await adapter.start()
        port = await adapter.serve_http(port=0, host="127.0.0.1")
        session = aiohttp.ClientSession()
        ws = Workspaces(fake_slack, adapter, agent, f"http://127.0.0.1:{port}", db, session)
        started.append((adapter, session, ws))
        return ws

    yield start
    for adapter, session, ws in reversed(started):
        for sender in ws.senders.values():
            await sender.close()
        await session.close()
        await adapter.stop()


def tokens_used(fake: FakeSlack, channel: str) -> set[str]:
    return {c.token for c in fake.calls if c.method.startswith("chat.") and c.params.get("channel") == channel}


async def test_two_workspaces_at_once_each_answered_with_its_own_token(workspaces, fake_openai):
    ws = await workspaces()
    token1, token2 = await ws.install("T1"), await ws.install("T2")
    assert token1 != token2 and ws.bot_user("T1") != ws.bot_user("T2")
    e1, e2 = await asyncio.gather(ws.mention("T1", "hello from one"), ws.mention("T2", "hello from two", "U2"))
    a1, a2 = await asyncio.gather(ws.answer("T1", e1, "echo: hello from one"),
                                  ws.answer("T2", e2, "echo: hello from two"))
    # Each workspace's bot answered in its own workspace (the mention of that workspace's bot removed).
    assert a1["bot_id"] == ws.fake.bots["T1"][1] and a2["bot_id"] == ws.fake.bots["T2"][1]
    assert tokens_used(ws.fake, "C1") == {token1} and tokens_used(ws.fake, "C2") == {token2}
    # Nothing was called without a token, or with a token Slack did not issue to an installation.
    assert {c.token for c in ws.fake.calls if c.method != "oauth.v2.access"} <= {token1, token2}
    assert all(c.error != "invalid_auth" for c in ws.fake.calls)
    # A second turn in each thread still goes to the right workspace (the follow-up needs no mention).
    f2 = ws.fake.add_user_message("C2", "and again", "U2", thread_ts=e2["ts"])
    assert (await ws.senders["T2"].event(f2))[0] == 200
    await ws.answer("T2", e2, "echo: and again")
    assert tokens_used(ws.fake, "C2") == {token2}
    assert ws.fake.over_limit == 0


async def test_a_button_or_a_listing_never_crosses_workspaces(workspaces, fake_openai):
    fake_openai.script = deploy_script()
    ws = await workspaces(DURABOT_ADMINS="UADMIN")
    token1 = await ws.install("T1")
    token2 = await ws.install("T2")
    event = await ws.mention("T1", "deploy web", user="U1")
    message, (approve, deny) = await ws.fake.wait_for(lambda: card_of(ws, "C1", event["ts"]))
    conv = f"slack:T1:C1:{event['ts']}"
    approval_id = approve["value"].split("|")[1]

    # The card's ids clicked in workspace T2, by a user with the requester's id: refused, nothing decided.
    for element in (approve, deny):
        foreign = SlackSender.click_payload(element["action_id"], element["value"], "U1", "C2", message, team="T2")
        assert (await ws.senders["T2"].click(foreign))[0] == 200
    refusals = [c for c in ws.fake.calls if c.method == "chat.postEphemeral" and c.team == "T2"]
    assert len(refusals) == 2 and all("another workspace" in c.params["text"] for c in refusals)
    assert {c.token for c in refusals} == {token2}
    assert (await ws.agent.get_approval(conv, approval_id)).status == "pending"

    # /durabot runs: an admin of T2 sees none of T1's conversations; the same admin id in T1 does.
    status, text = await ws.senders["T2"].command("runs", "UADMIN", channel="C2")
    assert status == 200 and "No active runs in this workspace" in text
    status, text = await ws.senders["T2"].command(f"status C1:{event['ts']}", "UADMIN", channel="C2")
    assert "No conversation is open" in text  # T2's id space: the thread is not T2's
    short = f"C1:{event['ts']}"
    for _ in range(50):  # the visibility store lags a little behind a new workflow
        status, text = await ws.senders["T1"].command("runs", "UADMIN", channel="C1")
        if short in text:
            break
        await ws.fake.wait_for(lambda: True, 0.1)
    assert short in text and "awaiting_approval" in text
    assert f"https://fake.slack.test/archives/C1/p{event['ts'].replace('.', '')}" in text  # T1's own address

    # A workspace admin is asked of that workspace, with its token, and administers that workspace only:
    # UWS administers T1, and is an ordinary member in T2.
    ws.fake.team_users["T1"] = {"UWS": {"id": "UWS", "is_admin": True}}
    status, text = await ws.senders["T1"].command("runs", "UWS", channel="C1")
    assert short in text and "Active runs in this workspace" in text
    status, text = await ws.senders["T2"].command("runs", "UWS", channel="C2")
    assert "No active runs in this channel" in text
    assert [c.token for c in ws.fake.calls if c.method == "users.info"] == [token1, token2]
    status, text = await ws.senders["T2"].command(f"cancel {conv}", "UWS", channel="C2")
    assert "not a run id or a thread link of this workspace" in text
    assert (await ws.agent.status(conv)).state == "awaiting_approval"

    # The click in its own workspace decides.
    click = SlackSender.click_payload(approve["action_id"], approve["value"], "U1", "C1", message, team="T1")
    assert (await ws.senders["T1"].click(click))[0] == 200
    await ws.answer("T1", event, "done:")


async def test_uninstall_ends_that_workspaces_conversations_and_refuses_its_deliveries(
        workspaces, fake_openai, caplog):
    fake_openai.script = deploy_script()
    caplog.set_level(logging.DEBUG)
    ws = await workspaces()
    token1 = await ws.install("T1")
    await ws.install("T2")
    waiting = await ws.mention("T1", "deploy web")  # a turn waiting for approval
    await ws.fake.wait_for(lambda: card_of(ws, "C1", waiting["ts"]))
    other = await ws.mention("T2", "deploy web")
    await ws.fake.wait_for(lambda: card_of(ws, "C2", other["ts"]))
    conv1, conv2 = f"slack:T1:C1:{waiting['ts']}", f"slack:T2:C2:{other['ts']}"
    for _ in range(50):  # uninstall lists the workspace's conversations: wait until both are visible
        if await ws.agent.count_conversations("slack:T1:") and await ws.agent.count_conversations("slack:T2:"):
            break
        await ws.fake.wait_for(lambda: True, 0.1)

    ws.fake.revoke("T1")  # Slack revokes the tokens, then sends the event
    body = json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": "EvUninstall", "event_time": 1, "event": {"type": "app_uninstalled"}})
    assert (await ws.senders["T1"].post(body, "application/json"))[0] == 200
    assert await ws.adapter.stores.installations.async_find_bot(enterprise_id=None, team_id="T1") is None

    handle = ws.agent.client.get_workflow_handle(ws.agent.workflow_id(conv1))

    async def ended() -> None:
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await ws.fake.wait_for(lambda: True, 0.1)

    await asyncio.wait_for(ended(), 15)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert (await ws.agent.status(conv2)).state == "awaiting_approval"  # the other workspace goes on

    # A late delivery to the removed workspace is refused for good, without a call to Slack.
    calls = len(ws.fake.calls)
    late = Delivery(kind=DeliveryKind.TURN_FINISHED, conversation_id=conv1, turn_id=waiting["ts"],
                    meta={"channel": "C1", "thread": waiting["ts"]}, text="too late")  # an old ref: no team
    with pytest.raises(ApplicationError) as refused:
        await ws.adapter.delivery.deliver(late)
    assert refused.value.type == DELIVERY_REFUSED and refused.value.non_retryable
    assert NOT_INSTALLED in str(refused.value)
    assert len(ws.fake.calls) == calls
    assert token1 not in caplog.text
    # Its events are no longer taken: no installation authorizes them (a turn is submitted before the ack).
    event = ws.fake.add_user_message("C1", f"<@{ws.bot_user('T1')}> still there?")
    event["type"] = "app_mention"
    await ws.senders["T1"].event(event)
    assert await ws.agent.status(f"slack:T1:C1:{event['ts']}") is None


async def test_a_revoked_bot_token_removes_the_installation_but_user_tokens_do_not(workspaces, fake_openai):
    ws = await workspaces()
    await ws.install("T1")
    store = ws.adapter.stores.installations

    async def revoked(tokens: dict) -> None:
        body = json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                           "event_id": f"Ev{len(tokens)}", "event_time": 1,
                           "event": {"type": "tokens_revoked", "tokens": tokens}})
        assert (await ws.senders["T1"].post(body, "application/json"))[0] == 200

    await revoked({"oauth": ["U1"]})  # a user token of the workspace: the bot's installation stays
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is not None
    ws.fake.revoke("T1")
    await revoked({"bot": [ws.bot_user("T1")]})
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None


async def test_tokens_are_encrypted_at_rest(workspaces, fake_openai):
    ws = await workspaces()
    token = await ws.install("T1")
    # The deployment's database runs SQLite in WAL mode (set by the audit trail's engine on the same file):
    # the newest rows may still be in the write-ahead log beside it.
    stored = b"".join(p.read_bytes() for p in (ws.db, ws.db.with_name(ws.db.name + "-wal")) if p.exists())
    assert b"T1" in stored  # the installation is there...
    assert token.encode() not in stored and token.split("-")[-1].encode() not in stored  # ...its token is not
    bot = await ws.adapter.stores.installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == token
    # Sealed for its field and workspace: another key, or the same value under another team, does not open.
    box = TokenBox(KEY)
    sealed = box.seal(token, "bot_token", "T1")
    assert box.open(sealed, "bot_token", "T1") == token
    with pytest.raises(TokenError):
        box.open(sealed, "bot_token", "T2")
    with pytest.raises(TokenError):
        TokenBox(base64.b64encode(os.urandom(32)).decode()).open(sealed, "bot_token", "T1")


async def test_a_missing_forged_or_replayed_state_installs_nothing(workspaces, fake_openai):
    ws = await workspaces()
    code = ws.fake.authorize("T2")
    status, _ = await ws.redirect(code, "")  # no state, no cookie
    assert status == 400
    status, _ = await ws.redirect(code, "forged", "forged")  # the cookie matches, but no state was issued
    assert status == 401
    query, cookie = await ws.begin()
    status, _ = await ws.redirect(code, query["state"][0])  # an issued state from another browser
    assert status == 400
    assert ws.fake.count("oauth.v2.access") == 0 and code in ws.fake.codes

    query, cookie = await ws.begin()
    assert (await ws.redirect(code, query["state"][0], cookie))[0] == 200
    status, _ = await ws.redirect(ws.fake.authorize("T3"), query["state"][0], cookie)  # used once only
    assert status == 401
    assert "T3" not in ws.fake.tokens.values() and "T2" in ws.fake.tokens.values()
    assert await ws.adapter.stores.installations.async_find_bot(enterprise_id=None, team_id="T3") is None


def test_settings_say_what_is_missing():
    def check(**values: str) -> None:
        SlackSettings(**values).check(values.pop("secret_key", None))

    with pytest.raises(UserError, match="SLACK_CLIENT_SECRET"):
        check(client_id="1.2", signing_secret="s")
    with pytest.raises(UserError, match="DURABOT_SECRET_KEY"):
        SlackSettings(client_id="1.2", client_secret="x", signing_secret="s").check(None)
    with pytest.raises(UserError, match="SLACK_SIGNING_SECRET"):
        SlackSettings(client_id="1.2", client_secret="x").check(KEY)
    with pytest.raises(UserError, match="SLACK_APP_TOKEN"):
        SlackSettings(client_id="1.2", client_secret="x", signing_secret="s", app_token="xapp").check(KEY)
    with pytest.raises(UserError, match="SLACK_BOT_TOKEN"):
        SlackSettings().check(KEY)
    SlackSettings(client_id="1.2", client_secret="x", signing_secret="s").check(KEY)
    # A bot token keeps the single-workspace mode, whatever else is set.
    single = SlackSettings(bot_token="xoxb-1", client_id="1.2", signing_secret="s")
    single.check(None)
    assert not single.oauth
    assert SlackSettings(scopes=" chat:write , commands").scope_list == ["chat:write", "commands"]
    manifest = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "slack-app-manifest.yaml").read_text())
    assert SlackSettings().scope_list == manifest["oauth_config"]["scopes"]["bot"]  # the manifest's, in order
    assert DEFAULT_DATABASE_URL.startswith("sqlite:///.durabot/")
    with pytest.raises(UserError, match="not a database URL"):
        engine_for("durabot.sqlite3")
    with pytest.raises(UserError, match="driver that is not installed"):
        engine_for("postgresql+nosuchdriver://durabot:secret@db/durabot")


async def test_a_database_outage_is_retried_not_a_refusal(workspaces, fake_openai):
    ws = await workspaces()
    await ws.install("T1")
    ts = ws.fake.add_user_message("C1", "hello")["ts"]
    ws.adapter.stores.engine.dispose()  # no connection left open to the file...
    ws.db.rename(ws.db.with_name("moved.sqlite3"))
    ws.db.mkdir()  # ...and none can be opened: the database is unreachable
    ws.adapter.clients.forget("T1")
    notice = Delivery(kind=DeliveryKind.TURN_FINISHED, conversation_id=f"slack:T1:C1:{ts}", turn_id=ts,
                      meta={"team": "T1", "channel": "C1", "thread": ts}, text="hi")
    with pytest.raises(ApplicationError) as later:
        await ws.adapter.delivery.deliver(notice)
    assert later.value.type == DELIVERY_LATER and not later.value.non_retryable
    assert "installations database unavailable" in str(later.value)
    # Back again, the same notice goes out with the workspace's token.
    ws.db.rmdir()
    ws.db.with_name("moved.sqlite3").rename(ws.db)
    await ws.adapter.delivery.deliver(notice)
    assert ws.fake.calls_of("T1", "chat.postMessage")[-1].params["text"] == "hi"
