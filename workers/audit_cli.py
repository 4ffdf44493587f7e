"""``durabot audit``: the audit trail from the command line, as lines or (``--json``) one JSON array.

Reads ``DURABOT_DATABASE_URL`` directly: no Temporal, no adapter. Whoever runs it has the database's
credentials, so it is not limited to one workspace.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from agent_core.errors import UserError
from bots.core.audit import AuditFilter, AuditLog
from bots.core.audit_view import parse_audit


def add_arguments(p: Any) -> None:
    p.add_argument("--json", action="store_true", help="one JSON array of every matching record (export)")
    p.add_argument("--workspace", help="Slack team or Discord guild id")
    p.add_argument("--user", help="platform user id")
    p.add_argument("--channel", help="channel id")
    p.add_argument("--tool", help="tool name")
    p.add_argument("--since", help="30m, 12h, 7d, 2w or a date (2026-12-01)")
    p.add_argument("--limit", type=int, default=None, help="newest N records (default: all)")


def audit_filter(args: Any, now: datetime | None = None) -> AuditFilter:
    since = None
    if args.since:
        parsed = parse_audit(args.since, "", now)
        if parsed.filter is None or parsed.filter.since is None:
            raise UserError(f"--since {args.since!r} is not 30m, 12h, 7d, 2w or a date such as 2026-12-01")
        since = parsed.filter.since
    return AuditFilter(workspace=args.workspace, user=args.user, channel=args.channel, tool=args.tool,
                       since=since, limit=args.limit)


def export(url: str, args: Any, out: TextIO = sys.stdout) -> int:
    """Write the matching records to ``out``; how many."""
    log = AuditLog.open(url)
    count = 0
    if args.json:
        out.write("[")
        for rec in log.iter_sync(audit_filter(args)):
            out.write(("," if count else "") + "\n" + json.dumps(rec.to_json(), ensure_ascii=False))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    for rec in log.iter_sync(audit_filter(args)):
        what = rec.tool or rec.command or ""
        name = f" ({rec.user_name})" if rec.user_name else ""
        out.write(f"{rec.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z {rec.platform}:{rec.workspace} "
                  f"#{rec.channel} {rec.user_id}{name} {rec.action} {what} -> {rec.outcome}\n")
        count += 1
    return count
