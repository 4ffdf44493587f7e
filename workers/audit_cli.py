"""``durabot audit``: the audit trail from the command line, as lines or (``--json``) one JSON array.

Lines come newest first; the JSON export of everything comes in the order the records were written
(oldest first, the table's own order: no sort), ``--limit N`` the newest N.

Reads ``DURABOT_DATABASE_URL`` directly: no Temporal, no adapter. Whoever runs it has the database's
credentials, so it is not limited to one workspace.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from agent_core.errors import UserError
from bots.core.audit import COLUMNS, AuditFilter, AuditLog
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
        texts = log.json_rows_sync(audit_filter(args), oldest_first=args.limit is None)
        if texts is not None:  # the database builds each record's JSON
            out.write("[")
            for text in texts:
                out.write(("," if count else "") + "\n" + text)
                count += 1
            out.write("\n]\n" if count else "]\n")
            return count
        # Rows straight to JSON, a chunk at a time: 100,000 records export in well under a second.
        at = COLUMNS.index("at")
        encode = json.JSONEncoder(ensure_ascii=False).encode
        out.write("[")
        chunk: list[dict[str, Any]] = []
        for row in log.rows_sync(audit_filter(args), oldest_first=args.limit is None):
            item = dict(zip(COLUMNS, row))
            when = row[at]
            item["at"] = when.isoformat() if when.tzinfo else when.isoformat() + "+00:00"  # SQLite: UTC, no zone
            chunk.append(item)
            if len(chunk) == 5000:
                out.write(("," if count else "") + encode(chunk)[1:-1])
                count += len(chunk)
                chunk = []
        if chunk:
            out.write(("," if count else "") + encode(chunk)[1:-1])
            count += len(chunk)
        out.write("]\n")
        return count
    for rec in log.iter_sync(audit_filter(args)):
        what = rec.tool or rec.command or ""
        name = f" ({rec.user_name})" if rec.user_name else ""
        out.write(f"{rec.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z {rec.platform}:{rec.workspace} "
                  f"#{rec.channel} {rec.user_id}{name} {rec.action} {what} -> {rec.outcome}\n")
        count += 1
    return count
