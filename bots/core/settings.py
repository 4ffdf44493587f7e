"""An adapter's own settings: a dataclass whose fields each name the variable they are read from.

The process reads every variable once (``agent_core.settings.read_env``) and hands the same values to
the agent's settings and to each adapter's part, so an adapter adds variables without the agent
knowing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def env_field(name: str, *, secret: bool = False) -> Any:
    """A setting read from variable ``name`` (unset or empty: None); a secret is masked in logs."""
    return field(default=None, repr=not secret, metadata={"env": name, "secret": secret})


def from_values(cls: type[T], values: Mapping[str, str]) -> T:
    return cls(**{f.name: values.get(f.metadata["env"]) or None for f in fields(cls)})  # type: ignore[arg-type]


def env_vars(cls: type) -> dict[str, str | None]:
    """The variables ``cls`` reads, with their default (none)."""
    return {f.metadata["env"]: None for f in fields(cls)}


def secrets(part: Any) -> list[str]:
    return [v for f in fields(part) if f.metadata["secret"] and (v := getattr(part, f.name))]


DEFAULT_DATABASE_URL = "sqlite:///.durabot/durabot.sqlite3"


@dataclass
class DatabaseSettings:
    """The one database of a deployment (``DURABOT_DATABASE_URL``): SQLite under ``.durabot/`` by
    default, PostgreSQL (``postgresql+psycopg://...``) in production. Every feature that keeps records
    there (the audit trail, Slack installations...) reads this one setting and owns its own tables."""

    url_value: str | None = env_field("DURABOT_DATABASE_URL", secret=True)  # may carry a password

    @property
    def url(self) -> str:
        return self.url_value or DEFAULT_DATABASE_URL


def database_url(settings: Any) -> str:
    """The database URL of a process's settings (``settings.database``; the default without it)."""
    part = getattr(settings, "database", None)
    return part.url if isinstance(part, DatabaseSettings) else DEFAULT_DATABASE_URL
