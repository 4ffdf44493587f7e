"""Profiles: what the agent may do where. A file (``DURABOT_PROFILES``, TOML or YAML) names profiles and
the workspaces and channels each one serves; a message's place picks its profile.

    default = "general"                      # the profile of every place no profile names

    [profiles.general]
    system_prompt = "You help the whole company."

    [profiles.ops]
    system_prompt = "You are the ops team's assistant."
    model = "gpt-4o"
    tools = ["get_time", "deploy"]           # a subset of the loaded tools (default: all)
    mcp_servers = ["files"]                  # tools of other MCP servers are left out (default: all)
    approval = "all"                         # marked | all | none
    approvers = ["requester", "U0OPS"]
    admins = ["U0LEAD"]
    admin_only = ["deploy"]                  # never "always allow in this thread"
    mode = "autonomous"                      # the turns' timeouts: interactive (default) | autonomous
    max_iterations = 6
    tokens_per_user_per_day = 200000
    tokens_per_channel_per_day = 1000000
    slack_workspaces = ["T0OPS"]             # exact ids; a channel beats its workspace
    slack_channels = ["C0OPS"]
    discord_guilds = ["1234"]
    discord_channels = ["5678"]

A profile's version is a digest of its content; a conversation records the name and version each turn
ran with. What the worker must apply (prompt, model, tools) is part of the configuration fingerprint,
so a worker with other profiles is refused. The message carries only the small part the workflow
needs (``ProfileRef``); the prompt stays on the worker and is found there by name and version.

Errors stop start-up with one line naming the file and the place (``UserError``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError
from .types import AgentMode, ApprovalPolicy, ProfileRef

__all__ = ["Profile", "ProfileSet", "load_profiles", "parse_profiles"]

_LISTS = ("tools", "mcp_servers", "approvers", "admins", "admin_only")
_PLACES = {"slack_workspaces": ("slack", "workspace"), "slack_channels": ("slack", "channel"),
           "discord_guilds": ("discord", "workspace"), "discord_channels": ("discord", "channel")}
_INTS = ("max_iterations", "tokens_per_user_per_day", "tokens_per_channel_per_day")
_STRINGS = ("system_prompt", "model", "approval", "mode")
MAX_PROMPT_BYTES = 16_000


@dataclass(frozen=True)
class Profile:
    name: str
    system_prompt: str | None = None
    model: str | None = None
    tools: tuple[str, ...] | None = None  # None: every loaded tool
    mcp_servers: tuple[str, ...] | None = None  # None: every configured MCP server's tools
    approval: str | None = None
    approvers: tuple[str, ...] | None = None  # None: DURABOT_APPROVERS
    admins: tuple[str, ...] = ()  # in addition to DURABOT_ADMINS
    admin_only: tuple[str, ...] = ()
    mode: str | None = None
    max_iterations: int | None = None
    tokens_per_user_per_day: int | None = None
    tokens_per_channel_per_day: int | None = None
    version: str = field(default="", compare=False)

    def content(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("version")
        return out

    def allowed_tools(self, tools: Iterable[Any]) -> list[str]:
        """The names of ``tools`` (loaded ``Tool``s) this profile offers."""
        names = []
        for t in tools:
            server = getattr(getattr(t, "server", None), "name", None)
            if self.tools is not None and t.name not in self.tools:
                continue
            if server is not None and self.mcp_servers is not None and server not in self.mcp_servers:
                continue
            names.append(t.name)
        return names

    def ref(self, tools: Iterable[Any]) -> ProfileRef:
        return ProfileRef(name=self.name, version=self.version, system_prompt=self.system_prompt, model=self.model,
                          approval=self.approval,
                          tools=self.allowed_tools(tools) if self.tools is not None or self.mcp_servers is not None
                          else None,
                          admin_only=list(self.admin_only), max_iterations=self.max_iterations, mode=self.mode)


@dataclass(frozen=True)
class ProfileSet:
    profiles: dict[str, Profile]
    default: str | None
    places: dict[tuple[str, str, str], str]  # (platform, workspace|channel, id) -> profile name
    source: str = ""

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)

    def resolve(self, platform: str, workspace: str | None, channel: str | None) -> Profile | None:
        """The profile of a place: its channel's, else its workspace's, else the default (or None)."""
        for kind, key in (("channel", channel), ("workspace", workspace)):
            name = self.places.get((platform, kind, key or ""))
            if name is not None:
                return self.profiles[name]
        return self.profiles.get(self.default) if self.default else None

    def check_tools(self, tools: Iterable[Any], mcp_servers: Iterable[str]) -> None:
        """Refuse a profile naming a tool or MCP server that is not loaded."""
        loaded = {t.name for t in tools}
        servers = set(mcp_servers)
        for p in self.profiles.values():
            for name in (*(p.tools or ()), *p.admin_only):
                if name not in loaded:
                    raise UserError(f"{self.source}: profile {p.name!r} names unknown tool {name!r} "
                                    f"(loaded: {', '.join(sorted(loaded)) or 'none'})")
            for name in p.mcp_servers or ():
                if name not in servers:
                    raise UserError(f"{self.source}: profile {p.name!r} names unknown MCP server {name!r}")

    def manifest(self) -> dict[str, str]:
        """What the fingerprint holds of the profiles: each one's version."""
        return {f"profile:{name}": p.version for name, p in sorted(self.profiles.items())}


def load_profiles(path: str) -> ProfileSet:
    """Read and check a profiles file (``.toml``, or ``.yaml`` / ``.yml``)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise UserError(f"DURABOT_PROFILES={path!r}: cannot read it ({exc.strerror})") from None
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise UserError(f"{path}: {where}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: not valid TOML ({exc})") from None
    return parse_profiles(data, path)


def parse_profiles(data: Any, source: str = "profiles") -> ProfileSet:
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict) or not data["profiles"]:
        raise UserError(f"{source}: expected a table 'profiles' with at least one profile")
    unknown = set(data) - {"profiles", "default"}
    if unknown:
        raise UserError(f"{source}: unknown top-level key {sorted(unknown)[0]!r} (expected 'default', 'profiles')")
    profiles: dict[str, Profile] = {}
    places: dict[tuple[str, str, str], str] = {}
    for name, body in data["profiles"].items():
        where = f"{source}: profile {name!r}"
        if not isinstance(body, dict):
            raise UserError(f"{where}: expected a table of settings")
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key in _STRINGS:
                if not isinstance(value, str):
                    raise UserError(f"{where}: {key} must be a string")
                if len(value.encode()) > MAX_PROMPT_BYTES:  # each turn's message carries it
                    raise UserError(f"{where}: {key} is over {MAX_PROMPT_BYTES:,} bytes")
                values[key] = value
            elif key in _INTS:
                if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "max_iterations" else 0):
                    raise UserError(f"{where}: {key} must be a whole number" +
                                    (" of at least 1" if key == "max_iterations" else ""))
                values[key] = value
            elif key in _LISTS or key in _PLACES:
                if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
                    raise UserError(f"{where}: {key} must be a list of names or ids")
                items = tuple(str(v) for v in value)
                if key in _PLACES:
                    platform, kind = _PLACES[key]
                    for item in items:
                        other = places.setdefault((platform, kind, item), name)
                        if other != name:
                            raise UserError(f"{source}: {key[:-1].replace('_', ' ')} {item!r} is in two profiles, "
                                            f"{other!r} and {name!r}")
                else:
                    values[key] = items
            else:
                raise UserError(f"{where}: unknown key {key!r}")
        if "approval" in values:
            try:
                ApprovalPolicy(values["approval"])
            except ValueError:
                raise UserError(f"{where}: approval {values['approval']!r} is not one of marked, all, none") from None
        if "mode" in values:
            try:
                AgentMode(values["mode"])
            except ValueError:
                raise UserError(f"{where}: mode {values['mode']!r} is not one of interactive, autonomous") from None
        profile = Profile(name=str(name), **values)
        digest = hashlib.sha256(json.dumps(profile.content(), sort_keys=True).encode()).hexdigest()[:12]
        profiles[str(name)] = Profile(name=str(name), version=digest, **values)
    default = data.get("default")
    if default is not None and default not in profiles:
        raise UserError(f"{source}: default profile {default!r} is not defined")
    return ProfileSet(profiles, default, places, source)
