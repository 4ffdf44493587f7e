"""Temporal's default payload converter, with dataclasses decoded from type hints looked up once.

Every activity input and result and every workflow activation crosses the worker as JSON that the
SDK turns back into durabot's dataclasses. The SDK resolves a dataclass's type hints
(``typing.get_type_hints``) on every value it decodes, which was about a tenth of a worker's Python
CPU per turn. This converter keeps each dataclass's fields and resolved hints and decodes the rest
exactly as the SDK does (same checks, same errors, same objects). Encoding is untouched: the wire
format is the SDK's ``json/plain``, so histories written with or without it read the same.
"""

from __future__ import annotations

import dataclasses
import typing
import weakref
from typing import Any

from temporalio.converter import (
    CompositePayloadConverter, DefaultPayloadConverter, JSONPlainPayloadConverter, JSONTypeConverter, value_to_type,
)

_EXACT = (str, int, float, bool)  # a value of exactly its field's type converts to itself
# Per class, shared: the SDK makes a converter per workflow activation and per activity. Weak keys, so
# classes a sandbox re-imports for each run do not pile up.
_PLANS: weakref.WeakKeyDictionary[type, tuple[_Field, ...]] = weakref.WeakKeyDictionary()


class _Field(typing.NamedTuple):
    name: str
    hint: Any
    init: bool
    exact: tuple[type, ...]  # value types that pass unchanged (no conversion needed)


class DataclassFields(JSONTypeConverter):
    """Decodes dataclasses with their fields' hints resolved once per class."""

    def __init__(self) -> None:
        self._converters = [self]

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not isinstance(hint, type) or not dataclasses.is_dataclass(hint):
            return JSONTypeConverter.Unhandled
        fields = _PLANS.get(hint)
        if fields is None:
            fields = _PLANS[hint] = _plan(hint)
        if not isinstance(value, dict):
            raise TypeError(f"Cannot convert to dataclass {hint}, value is {type(value)} not dict")
        values: dict[str, Any] = {}
        late: dict[str, Any] = {}
        for f in fields:
            raw = value.get(f.name, dataclasses.MISSING)
            if raw is dataclasses.MISSING:
                continue  # the dataclass's own __init__ says whether it was required
            if type(raw) in f.exact:
                converted = raw
            else:
                try:
                    converted = value_to_type(f.hint, raw, self._converters)
                except Exception as err:
                    raise TypeError(f"Failed converting field {f.name} on dataclass {hint}") from err
            if f.init:
                values[f.name] = converted
            else:
                late[f.name] = converted
        obj = hint(**values)
        for name, converted in late.items():  # init=False fields, restored as the SDK does
            object.__setattr__(obj, name, converted)
        return obj


def _plan(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(_Field(f.name, hints[f.name], f.init, _exact(hints[f.name])) for f in dataclasses.fields(cls))


def _exact(hint: Any) -> tuple[type, ...]:
    """Types a value may have to pass as it is: the hint itself if it is str, int, float or bool,
    plus None for an Optional of one (anything else goes through the SDK's conversion)."""
    if hint in _EXACT:
        return (hint,)
    args = getattr(hint, "__args__", ())
    if type(None) in args and len(args) == 2 and typing.get_origin(hint) in (typing.Union, _union_type()):
        other = args[0] if args[1] is type(None) else args[1]
        if other in _EXACT:
            return (other, type(None))
    return ()


def _union_type() -> Any:
    import types

    return types.UnionType


class DurabotPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, its JSON one given ``DataclassFields``."""

    def __init__(self) -> None:
        fields = DataclassFields()
        super().__init__(*(
            JSONPlainPayloadConverter(custom_type_converters=[fields])
            if type(c) is JSONPlainPayloadConverter else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ))
