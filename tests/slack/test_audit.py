"""Slack: every decision, allowance, revocation and cancel leaves one audit record; admins read them
with /durabot audit (others are refused), across an adapter restart and from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import subprocess_env
from tests.fakes.openai_server import Reply
from tests.slack.test_approvals_and_commands import card_of, click, ephemerals
from tests.slack.test_runs_visibility import command
from tests.slack.test_scoped_approvals import allow_button


def deploy_script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": last["content"].split()[-1]})])


async def test_audit_records_and_who_may_read_them(start_slack, fake_openai, tmp_path):
    fake_openai.script = deploy_script
    url = f"sqlite:///{tmp_path}/audit.db"
    h = await start_slack(DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=url)
    first = await h.mention("deploy web", user="U1")
    message, (approve, _deny) = await h.fake.wait_for(lambda: card_of(h, "C1", first["ts"]))
    await click(h, message, approve, "U2")  # refused: recorded as a refusal
    await h.fake.wait_for(lambda: ephemerals(h, "U2"))
    await click(h, message, approve, "U1")
    await h.final_reply("C1", first["ts"], "done: Deployed web")

    second = await h.mention("deploy api", user="U1")
    message, _ = await h.fake.wait_for(lambda: card_of(h, "C1", second["ts"]))
    _, allow = await h.fake.wait_for(lambda: allow_button(h, "C1", second["ts"]))
    await click(h, message, allow, "U1")
    await h.final_reply("C1", second["ts"], "done: Deployed api")
    assert "needs approval again" in await command(h.sender, f"revoke deploy C1:{second['ts']}", "U1", "C1")

    refused = await command(h.sender, "audit", "U1", "C1")
    assert "Only admins" in refused and "deploy" not in refused
    everything = await command(h.sender, "audit", "UADMIN", "C1")
    rows = [line for line in everything.splitlines() if line.startswith("•")]
    assert len(rows) == 4, everything  # newest first
    assert "<@U1> (u1) — revocation: deploy → revoked" in rows[0]
    assert "<@U1> (u1) — allowance: deploy (arguments " in rows[1] and "approved for the thread" in rows[1]
    assert "<@U1> (u1) — approval: deploy (arguments " in rows[2] and rows[2].endswith(
        f"→ approved · <https://fake.slack.test/archives/C1/p{first['ts'].replace('.', '')}|#C1>")
    assert "<@U2> (u2) — approval: deploy" in rows[3] and "refused: may not approve" in rows[3]
    only_u2 = await command(h.sender, "audit <@U2|u2> 1d", "UADMIN", "C1")
    assert only_u2.count("•") == 1 and "<@U2>" in only_u2
    assert "No audit records match" in await command(h.sender, "audit other_tool", "UADMIN", "C1")
    assert "No audit records match" in await command(h.sender, "audit <#C9|elsewhere>", "UADMIN", "C1")
    assert "is not a person" in await command(h.sender, "audit what?", "UADMIN", "C1")

    # Another adapter process on the same database (a restart or a replica) reads the same trail.
    await h.adapter.stop()
    again = await start_slack(DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=url, agent=h.agent)
    assert (await command(again.sender, "audit deploy", "UADMIN", "C1")).count("•") == 4

    # And the command line exports it, in a process of its own.
    out = subprocess.run([sys.executable, "-m", "workers.cli", "audit", "--json"], capture_output=True, text=True,
                         env=subprocess_env(DURABOT_DATABASE_URL=url), timeout=60, check=True)
    exported = json.loads(out.stdout)
    assert [r["action"] for r in exported] == ["approval", "approval", "allowance", "revocation"]  # as written
    assert exported[1]["user_name"] == "u1" and exported[1]["workspace"] == "T1" and exported[1]["thread"] == first["ts"]
    assert len(exported[1]["arguments_digest"]) == 16


async def test_cancel_is_recorded(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack(DURABOT_ADMINS="UADMIN")
    event = await h.mention("deploy web", user="U1")
    await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    assert "Only admins" in await command(h.sender, f"cancel C1:{event['ts']}", "U1", "C1")
    assert "Cancelling" in await command(h.sender, f"cancel C1:{event['ts']}", "UADMIN", "C1")
    trail = await command(h.sender, "audit", "UADMIN", "C1")
    assert trail.count("•") == 1 and f"cancel: cancel C1:{event['ts']} → cancel requested" in trail
