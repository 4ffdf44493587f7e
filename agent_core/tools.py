"""The ``@tool`` decorator: a Python function becomes a tool the model can call.

The docstring is the description, the type hints are the JSON schema, and a parameter annotated
``ToolContext`` receives the call's context (its ``idempotency_key`` is stable across retries).
A tool returns text (or any JSON value), or a ``ToolOutput`` with files attached: the worker puts
their bytes in the blob store and the chat adapter uploads them into the thread after the answer.

    @tool
    async def export(rows: list) -> ToolOutput:
        "Rows as a CSV file."
        return ToolOutput("Here is the CSV.", [Attachment("rows.csv", data=b"...", media_type="text/csv")])
"""

from __future__ import annotations

import asyncio
import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .errors import UserError
from .types import BlobRef

_PRIMITIVES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dict: {"type": "object"},
    list: {"type": "array"},
}


@dataclass
class ToolContext:
    """What a running tool knows of its call."""

    conversation_id: str
    turn_id: str
    call_id: str
    idempotency_key: str  # same on every retry of this call: use it to make side effects idempotent
    attempt: int = 1

    def heartbeat(self, *details: Any) -> None:
        """Tell Temporal the tool is alive; raises CancelledError at the next await once cancelled."""
        from temporalio import activity

        if activity.in_activity():
            activity.heartbeat(*details)


@dataclass
class Attachment:
    """A file a tool returns: its bytes, or a reference to bytes already in the blob store."""

    name: str
    data: bytes | None = None
    media_type: str | None = None  # None: guessed from the name
    ref: BlobRef | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.ref is None):
            raise UserError(f"attachment {self.name!r}: give either data (bytes) or ref (a BlobRef)")


@dataclass
class ToolOutput:
    """What a tool returns when it has files: the text the model reads, and the files."""

    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)


class Tool:
    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = (description or inspect.getdoc(fn) or self.name).strip()
        self.requires_approval = requires_approval
        self._context_param: str | None = None
        self.parameters = self._schema()

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, requires_approval={self.requires_approval})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def _schema(self) -> dict[str, Any]:
        try:
            hints = typing.get_type_hints(self.fn)
        except Exception as exc:  # unresolved forward references
            raise UserError(f"tool {self.name!r}: cannot read its type hints ({exc})") from exc
        props: dict[str, Any] = {}
        required: list[str] = []
        for pname, param in inspect.signature(self.fn).parameters.items():
            hint = hints.get(pname, str)
            if hint is ToolContext:
                self._context_param = pname
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise UserError(f"tool {self.name!r}: *args/**kwargs cannot be described to a model")
            prop = _json_schema(hint)
            if param.default is inspect.Parameter.empty:
                required.append(pname)
            else:
                prop["default"] = param.default
            props[pname] = prop
        return {"type": "object", "properties": props, "required": required}

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def signature_text(self) -> str:
        """Stable text of what the model sees of this tool, for the configuration fingerprint."""
        return json.dumps(
            {"d": self.description, "p": self.parameters, "a": self.requires_approval}, sort_keys=True
        )

    def parse_arguments(self, raw: str) -> dict[str, Any]:
        """Parse and check the model's arguments; raises ValueError with a message for the model."""
        try:
            args = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") from None
        if not isinstance(args, dict):
            raise ValueError("arguments must be a JSON object")
        props = self.parameters["properties"]
        unknown = sorted(set(args) - set(props))
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(unknown)}; expected {', '.join(props) or 'none'}")
        missing = [p for p in self.parameters["required"] if p not in args]
        if missing:
            raise ValueError(f"missing required argument(s) {', '.join(missing)}")
        for key, value in args.items():
            expected = props[key].get("type")
            if expected and not _matches(value, expected):
                raise ValueError(f"argument {key!r} must be of type {expected}")
        return args

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        kwargs = dict(args)
        if self._context_param:
            kwargs[self._context_param] = ctx
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**kwargs)
        return await asyncio.to_thread(self.fn, **kwargs)


def _matches(value: Any, expected: str | list[str]) -> bool:
    kinds = expected if isinstance(expected, list) else [expected]
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
    }
    return any(checks.get(k, lambda v: True)(value) for k in kinds)


def _json_schema(hint: Any) -> dict[str, Any]:
    if hint in _PRIMITIVES:
        return dict(_PRIMITIVES[hint])
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            inner = _json_schema(non_null[0])
            if "type" in inner and isinstance(inner["type"], str):
                inner["type"] = [inner["type"], "null"]
            return inner
        return {"anyOf": [_json_schema(a) for a in args]}
    if origin in (list, tuple, set, frozenset):
        return {"type": "array", "items": _json_schema(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object"}
    return {"type": "string"}


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
) -> Any:
    """Make a function a tool. Use as ``@tool`` or ``@tool(requires_approval=True)``."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, requires_approval=requires_approval)

    return wrap(fn) if fn is not None else wrap


def load_tools(spec: str) -> list[Tool]:
    """Load tools from ``pkg.module`` (every Tool in it) or ``pkg.module:attr`` (one tool or a list)."""
    import importlib

    found: list[Tool] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        module_name, _, attr = item.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(f"DURABOT_TOOLS: cannot import module {module_name!r} ({exc})") from None
        if attr:
            if not hasattr(module, attr):
                raise UserError(f"DURABOT_TOOLS: module {module_name!r} has no attribute {attr!r}")
            value = getattr(module, attr)
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if not isinstance(v, Tool):
                    raise UserError(f"DURABOT_TOOLS: {item!r} is not a tool; decorate it with @tool")
                found.append(v)
        else:
            tools = [v for v in vars(module).values() if isinstance(v, Tool)]
            if not tools:
                raise UserError(f"DURABOT_TOOLS: module {module_name!r} defines no @tool functions")
            found.extend(tools)
    return found


def checked_tools(tools: Iterable[Tool]) -> list[Tool]:
    """``tools`` as a list, refused if one is no ``Tool`` or two share a name."""
    tools = list(tools)
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"two tools share the name(s) {', '.join(map(repr, duplicates))}")
    for t in tools:
        if not isinstance(t, Tool):
            raise UserError(f"{t!r} is not a tool; decorate it with @tool")
    return tools


def delegation_tool(agent_name: str, description: str = "") -> Tool:
    """The tool by which the model delegates a task to sub-agent ``agent_name`` (a child workflow)."""
    async def delegate(task: str) -> str:
        raise RuntimeError("delegations run as child workflows, not as tool activities")

    found = Tool(delegate, name=f"ask_{agent_name}"[:64],
                 description=description or f"Delegate a task to the {agent_name!r} agent and get its answer.")
    found.subagent = agent_name  # type: ignore[attr-defined]
    return found
