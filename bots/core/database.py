"""The deployment's database, through SQLAlchemy: one engine per URL (``DURABOT_DATABASE_URL``).

SQLAlchemy's engine is synchronous; callers run their statements on a thread (``asyncio.to_thread``)
so the event loop never waits on disk or network. SQLite runs in WAL mode with ``synchronous=NORMAL``:
a commit survives a process crash (not a power cut, which a team chat bot's records can take), and
readers do not block the writer.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url

from agent_core.errors import UserError

__all__ = ["engine_for", "metadata"]

metadata = MetaData()  # every table of the project's database, each feature its own

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """The engine of ``url`` (one per process and URL). Each feature creates its own tables
    (``table.create(engine, checkfirst=True)``), so none depends on which modules were imported."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def _create(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy's ArgumentError; the message would repeat a password
        raise UserError("DURABOT_DATABASE_URL is not a database URL (for example "
                        "sqlite:///.durabot/durabot.sqlite3 or postgresql+psycopg://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    return engine
