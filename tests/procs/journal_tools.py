"""Tools for process tests: they write what they do to a journal file named by JOURNAL_PATH.

``slow_step`` waits for a release file (RELEASE_PATH) while heartbeating, so a test can kill the
worker while the tool runs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent_core import Attachment, ToolContext, ToolOutput, tool


def _journal(line: str) -> None:
    with open(os.environ["JOURNAL_PATH"], "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@tool
async def quick_step(name: str, ctx: ToolContext) -> str:
    """A fast step."""
    _journal(f"quick {name} {ctx.idempotency_key}")
    return f"quick {name} done"


@tool
async def slow_step(name: str, ctx: ToolContext) -> str:
    """A step that waits to be released."""
    _journal(f"slow-start {name} {ctx.idempotency_key} attempt={ctx.attempt}")
    release = Path(os.environ["RELEASE_PATH"])
    while not release.exists():
        ctx.heartbeat()
        await asyncio.sleep(0.05)
    _journal(f"slow-done {name} {ctx.idempotency_key}")
    return f"slow {name} done"


@tool(requires_approval=True)
async def guarded_step(name: str, ctx: ToolContext) -> str:
    """A step that needs approval."""
    _journal(f"guarded {name} {ctx.idempotency_key}")
    return f"guarded {name} done"


@tool
async def table_step(rows: int, ctx: ToolContext) -> ToolOutput:
    """A step that makes a CSV file."""
    _journal(f"table {rows} {ctx.idempotency_key}")
    data = "n\n" + "".join(f"{i}\n" for i in range(rows))
    return ToolOutput(f"made {rows} rows", [Attachment("table.csv", data=data.encode(), media_type="text/csv")])
