"""``durabot audit``: the audit trail from the command line, as lines or (``--json``) one JSON array.

Lines come newest first; the JSON export of everything comes in the order the records were written
(oldest first, the table's own order: no sort), ``--limit N`` the newest N.

Reads ``DURABOT_DATABASE_URL`` directly: no Temporal, no adapter. Whoever runs it has the database's
credentials, so it is not limited to one workspace. The command reads that one setting, not the whole
configuration, and imports only the database layer: an export of 100,000 records is a new process of
well under a second (``bench/governance.py``), most of it the database building each record's JSON.
"""

from __future__ import annotations

import sys
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Mapping, TextIO

if TYPE_CHECKING:
    from bots.core.audit import AuditFilter

CHUNK = 5000  # records per write: few system calls, little memory


def add_arguments(p: Any) -> None:
    p.add_argument("--json", action="store_true", help="one JSON array of every matching record (export)")
    p.add_argument("--workspace", help="Slack team or Discord guild id")
    p.add_argument("--user", help="platform user id")
    p.add_argument("--channel", help="channel id")
    p.add_argument("--tool", help="tool name")
    p.add_argument("--since", help="30m, 12h, 7d, 2w or a date (2026-12-01)")
    p.add_argument("--limit", type=int, default=None, help="newest N records (default: all)")


def database_url(env: Mapping[str, str] | None = None, dotenv: str | None = ".env") -> str:
    """``DURABOT_DATABASE_URL`` as every process reads it (``.env``, then the environment), alone."""
    from agent_core.settings import read_env
    from bots.core.settings import DatabaseSettings, from_values

    return from_values(DatabaseSettings, read_env(env, dotenv)).url


def audit_filter(args: Any, now: datetime | None = None) -> "AuditFilter":
    from agent_core.errors import UserError
    from bots.core.audit import AuditFilter
    from bots.core.audit_view import parse_audit

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
    from bots.core.audit import AuditLog

    log = AuditLog.open(url, metrics=False)
    if args.json:
        return _write_array(log.json_rows_sync(audit_filter(args), oldest_first=args.limit is None), out)
    from datetime import UTC

    count = 0
    for rec in log.iter_sync(audit_filter(args)):
        what = rec.tool or rec.command or ""
        name = f" ({rec.user_name})" if rec.user_name else ""
        out.write(f"{rec.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z {rec.platform}:{rec.workspace} "
                  f"#{rec.channel} {rec.user_id}{name} {rec.action} {what} -> {rec.outcome}\n")
        count += 1
    return count


def _write_array(texts: Any, out: TextIO, chunk: int = CHUNK) -> int:
    """One JSON array, a record per line, from the records' JSON texts, ``chunk`` at a time."""
    texts = iter(texts)
    count = 0
    out.write("[")
    while part := list(islice(texts, chunk)):
        out.write(("," if count else "") + "\n" + ",\n".join(part))
        count += len(part)
    out.write("\n]\n" if count else "]\n")
    return count
