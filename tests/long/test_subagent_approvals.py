"""A sub-agent's approval, raised to the top conversation, is decided under the top message's policy
and under an id that names it for good."""

from __future__ import annotations

import uuid

import pytest

from agent_core.errors import ApprovalNotAllowed
from tests.long.test_subagents import RAN, build, script


async def test_a_raised_approval_keeps_the_requesters_policy(temporal_config, model, fake_openai):
    RAN.clear()
    fake_openai.script = script
    top = await build(temporal_config, model)
    async with top:
        conv = f"deleg-policy-{uuid.uuid4().hex[:6]}"
        seen = []
        async for ev in top.stream("tides", conversation_id=conv, user="U1", approvers=["requester"]):
            if ev.kind == "approval_requested":
                seen.append(ev.approval.id)
                assert ev.approval.approvers == ["requester"] and ev.approval.requested_by == "U1"
                with pytest.raises(ApprovalNotAllowed):
                    await top.decide(conv, ev.approval.id, True, by="U2")
                await top.decide(conv, ev.approval.id, True, by="U1")
            if ev.kind == "finished":
                assert ev.text.endswith("fact about facts for research tides")
        assert RAN == ["facts for research tides"] and len(seen) == 1
        assert seen[0].startswith("a") and len(seen[0]) == 13  # a derived id, not a per-run number
