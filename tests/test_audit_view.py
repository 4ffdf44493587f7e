"""The words of /durabot audit, the store's filters, and the export's shape (SQLite in a temp dir)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from bots.core.audit import Action, AuditFilter, AuditLog, AuditRecord, Where, Who
from bots.core.audit_view import MAX_LINES, lines, parse_audit
from workers.audit_cli import export

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def test_parse_audit_words():
    f = parse_audit("<@U1|alice> <#C9|ops> deploy 7d", "T1", NOW).filter
    assert (f.workspace, f.user, f.channel, f.tool, f.since) == ("T1", "U1", "C9", "deploy", NOW - timedelta(days=7))
    assert parse_audit("<@!123> 2026-12-01", "G", NOW).filter.since == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_audit("", "T1", NOW).filter == AuditFilter(workspace="T1", limit=MAX_LINES + 1)
    assert "is not a person" in parse_audit("who?", "T1", NOW).problem
    assert "is not a date" in parse_audit("2026-13-45", "T1", NOW).problem


def test_store_filters_order_and_export(tmp_path):
    log = AuditLog.open(f"sqlite:///{tmp_path}/a.db")
    where = Where("slack", "T1", "C1", "1.2", "https://x/archives/C1/p12", "slack:T1:C1:1.2")
    for i, (user, tool, age) in enumerate([("U1", "deploy", 3), ("U2", "drop", 2), ("U1", "drop", 1)]):
        rec = AuditRecord.of(Action.APPROVAL, "approved", Who(user, user.lower()), where, tool=tool)
        rec.at = NOW - timedelta(hours=age)
        log.write_sync(rec)
    log.write_sync(AuditRecord.of(Action.CANCEL, "cancel requested", Who("U3"), Where("slack", "T2", "C5"),
                                  command="cancel"))
    newest = log.find_sync(AuditFilter(workspace="T1"))
    assert [(r.user_id, r.tool) for r in newest] == [("U1", "drop"), ("U2", "drop"), ("U1", "deploy")]
    assert newest[0].at == NOW - timedelta(hours=1)  # read back in UTC
    assert [r.tool for r in log.find_sync(AuditFilter(workspace="T1", user="U1"))] == ["drop", "deploy"]
    assert len(log.find_sync(AuditFilter(workspace="T1", since=NOW - timedelta(minutes=150)))) == 2
    assert [r.workspace for r in log.find_sync(AuditFilter(channel="C5"))] == ["T2"]
    shown = lines(newest, lambda u: f"<@{u}>", lambda r: r.channel)
    assert shown[0] == "• 2026-12-03 11:00Z <@U1> (u1) — approval: drop → approved · C1"

    out = io.StringIO()
    args = SimpleNamespace(json=True, workspace=None, user=None, channel=None, tool=None, since=None, limit=None)
    assert export(f"sqlite:///{tmp_path}/a.db", args, out) == 4
    exported = json.loads(out.getvalue())
    assert [r["id"] for r in exported] == [1, 2, 3, 4]  # the order they were written
    assert datetime.fromisoformat(exported[0]["at"]) == NOW - timedelta(hours=3) and exported[3]["command"] == "cancel"
    assert exported[0]["user_name"] == "u1" and exported[3]["tool"] is None and exported[0]["id"] == 1
    empty = io.StringIO()
    assert export(f"sqlite:///{tmp_path}/a.db", SimpleNamespace(**{**vars(args), "tool": "nope"}), empty) == 0
    assert json.loads(empty.getvalue()) == []
    # Past one write's chunk the array stays one array; the rows another database's export encodes in
    # Python read the same as the ones SQLite builds itself.
    many = io.StringIO()
    assert export(f"sqlite:///{tmp_path}/a.db", args, many) == 4
    assert many.getvalue() == out.getvalue()
    from workers import audit_cli

    chunked = io.StringIO()
    assert audit_cli._write_array(iter(['{"n":1}', '{"n":2}', '{"n":3}']), chunked, chunk=2) == 3
    assert json.loads(chunked.getvalue()) == [{"n": 1}, {"n": 2}, {"n": 3}]
    def moment(r: dict) -> dict:  # "09:00:00" and "09:00:00.000000" are the same ISO 8601 time
        return {**r, "at": datetime.fromisoformat(r["at"])}

    encoded = [json.loads(t) for t in log._encoded_rows(AuditFilter(limit=None), oldest_first=True)]
    assert [moment(r) for r in encoded] == [moment(r) for r in exported]


def test_audit_command_loads_only_the_database_layer(tmp_path):
    """``durabot audit`` is a new process an operator waits for: no Temporal, HTTP, metrics or Redis
    client is imported, and no setting but the database URL is read (a broken one elsewhere is ignored)."""
    url = f"sqlite:///{tmp_path}/c.db"
    AuditLog.open(url).write_sync(AuditRecord.of(Action.CANCEL, "cancel requested", Who("U3"),
                                                 Where("slack", "T2", "C5"), command="cancel"))
    probe = ("import sys, json\nfrom workers.cli import main\nmain(['audit', '--json'])\n"
             "heavy = {'temporalio', 'aiohttp', 'prometheus_client', 'redis', 'openai', 'slack_sdk', 'discord'}\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DURABOT_DATABASE_URL": url, "DURABOT_HTTP_PORT": "not a port"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    array, _, loaded = out.stdout.rpartition("]\n[")
    assert [r["command"] for r in json.loads(array + "]")] == ["cancel"]
    assert json.loads("[" + loaded) == []


async def test_profile_changes_are_recorded_once(tmp_path):
    from agent_core.profiles import parse_profiles
    from bots.core.profile_audit import record_profile_changes

    log = AuditLog.open(f"sqlite:///{tmp_path}/p.db")
    first = parse_profiles({"profiles": {"ops": {"model": "a"}, "dev": {}}}, "profiles.toml")
    assert await record_profile_changes(log, first) == ["dev", "ops"]
    assert await record_profile_changes(log, first) == []  # a restart with the same file
    second = parse_profiles({"profiles": {"ops": {"model": "b"}, "dev": {}}}, "profiles.toml")
    assert await record_profile_changes(log, second) == ["ops"]
    seen = log.find_sync(AuditFilter(workspace="T1"))  # every workspace's admins see them
    assert [(r.action, r.tool) for r in seen][0] == ("profile_change", "ops")
    assert seen[0].outcome == f"version {second.get('ops').version} (was {first.get('ops').version})"
