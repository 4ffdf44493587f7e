"""durabot's payload converter decodes every payload exactly as Temporal's default one does: every
payload of every recorded history, as every durabot dataclass, gives equal objects or the same error;
encoding is byte for byte the SDK's."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any, Optional

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import DefaultPayloadConverter

from agent_core import types
from agent_core.codec import DurabotCodec, data_converter
from agent_core.payload_converter import DurabotPayloadConverter

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
DATACLASSES = [c for _, c in inspect.getmembers(types, inspect.isclass)
               if dataclasses.is_dataclass(c) and c.__module__ == types.__name__]


def _payloads(message: Any) -> list[Payload]:
    found = []
    for _, value in message.ListFields():
        for item in _items(value):
            found += [item] if isinstance(item, Payload) else _payloads(item)
    return found


def _items(value: Any) -> list[Any]:
    """The messages a field holds: one, a repeated field's, a map's values."""
    if hasattr(value, "ListFields"):
        return [value]
    if isinstance(value, (str, bytes, int, float)):
        return []
    items = list(value.values()) if hasattr(value, "values") else list(value)
    return [i for i in items if hasattr(i, "ListFields")]


def _decode(converter: Any, payload: Payload, hint: Any) -> tuple[str, Any]:
    try:
        return "ok", converter.from_payload(payload, hint)
    except Exception as exc:
        return "error", type(exc)


def _history_payloads() -> list[Payload]:
    codec = DurabotCodec()
    out = []
    for path in HISTORIES:
        history = WorkflowHistory.from_json("replay", json.loads(path.read_text()))
        for event in history.events:
            out += [codec.decode_one(p) for p in _payloads(event)
                    if p.metadata.get("encoding") != b"binary/encrypted"]
    return out


def test_every_recorded_payload_decodes_the_same_as_every_dataclass():
    unique = {p.SerializeToString(): p for p in _history_payloads() if p.metadata.get("encoding") == b"json/plain"}
    payloads = list(unique.values())
    assert len(payloads) > 300 and len(DATACLASSES) > 20
    default, ours = DefaultPayloadConverter(), DurabotPayloadConverter()
    decoded = 0
    for payload in payloads:
        for cls in DATACLASSES:
            expected = _decode(default, payload, cls)
            assert _decode(ours, payload, cls) == expected, (cls, payload.data[:200])
            decoded += expected[0] == "ok"
    assert decoded > len(payloads)  # most payloads are some dataclass: the comparison did compare


@dataclasses.dataclass
class Sample:
    name: str
    count: int = 0
    ratio: float = 0.0
    flag: Optional[bool] = None
    note: str | None = None
    nested: list[types.ToolCall] = dataclasses.field(default_factory=list)
    derived: str = dataclasses.field(default="", init=False)


@pytest.mark.parametrize("value", [
    {"name": "a", "count": 3, "ratio": 2, "flag": True, "note": None,
     "nested": [{"id": "c", "name": "n", "arguments": "{}"}], "derived": "d"},
    {"name": "a", "count": True},  # a bool where an int is hinted: the SDK makes it 1
    {"name": "a", "ratio": 1},  # an int where a float is hinted: made a float
    {"name": 5}, {"name": "a", "flag": "yes"}, {"name": "a", "note": 3}, {"count": 1}, ["a"],
    {"name": "a", "nested": [{"id": "c"}]}, {"name": "a", "unknown": 1},
])
def test_odd_values_decode_or_fail_as_the_sdk_does(value):
    payload = DefaultPayloadConverter().to_payload(value)
    expected = _decode(DefaultPayloadConverter(), payload, Sample)
    got = _decode(DurabotPayloadConverter(), payload, Sample)
    assert got == expected
    if got[0] == "ok":
        assert [type(getattr(got[1], f.name)) for f in dataclasses.fields(Sample)] == \
            [type(getattr(expected[1], f.name)) for f in dataclasses.fields(Sample)]


def test_encoding_is_the_sdks_byte_for_byte():
    value = types.ChatMessage(role="assistant", content="x", tool_calls=[types.ToolCall(id="1", name="n", arguments="{}")])
    assert DurabotPayloadConverter().to_payloads([value]) == DefaultPayloadConverter().to_payloads([value])
    assert data_converter().payload_converter_class is DurabotPayloadConverter
