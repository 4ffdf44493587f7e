"""``Delivery.kind`` is a str enum: it travels as the plain string it always was, and a payload with
that string (from a workflow of an earlier version) decodes into the enum."""

from __future__ import annotations

import json

from agent_core.codec import data_converter
from agent_core.contract import DeliveryKind
from agent_core.types import ApprovalInfo, Delivery


async def test_delivery_kind_round_trips_through_the_data_converter():
    conv = data_converter()
    for kind in DeliveryKind:
        item = Delivery(kind=kind, conversation_id="c", turn_id="t", meta={"ch": "1"},
                        approval=ApprovalInfo(id="a1", turn_id="t", tool="x", arguments="{}", requested_by="u"))
        payloads = await conv.encode([item])
        back = (await conv.decode(payloads, [Delivery]))[0]
        assert back.kind is kind and back == item
        plain = conv.payload_converter.to_payloads([item])[0]
        assert json.loads(plain.data)["kind"] == kind.value


async def test_a_payload_with_the_plain_string_decodes():
    conv = data_converter()
    old = conv.payload_converter.to_payloads([{"kind": "turn_failed", "conversation_id": "c", "turn_id": "t",
                                               "meta": {}, "text": "boom"}])
    back = (await conv.decode(await conv.payload_codec.encode(old), [Delivery]))[0]
    assert back.kind is DeliveryKind.TURN_FAILED and back.kind == "turn_failed" and back.text == "boom"


def test_a_kind_reads_as_its_value_in_messages_and_logs():
    for kind in DeliveryKind:
        assert str(kind) == f"{kind}" == "%s" % kind == kind.value


async def test_a_kind_from_a_newer_workflow_decodes_and_is_no_known_kind():
    conv = data_converter()
    newer = conv.payload_converter.to_payloads([{"kind": "file_attached", "conversation_id": "c", "turn_id": "t",
                                                 "meta": {}}])
    back = (await conv.decode(newer, [Delivery]))[0]
    assert back.kind == "file_attached" and back.kind not in list(DeliveryKind) and not back.kind.ends_turn
    assert not back.kind.known and all(k.known for k in DeliveryKind)
    assert f"{back.kind}" == "file_attached"
