"""Small helpers shared by tests."""

from __future__ import annotations


async def wait_for_approval(handle) -> str:
    """The id of the turn's first pending approval, following the workflow's long poll."""
    seen = -1
    while True:
        st = await handle.progress(seen)
        seen = st.milestone
        pending = [a for a in st.approvals if a.status == "pending"]
        if pending:
            return pending[0].id
        assert not st.done, f"the turn ended without asking: {st}"
