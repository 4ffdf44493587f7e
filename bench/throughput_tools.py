"""The tool the throughput benchmark's workers load (DURABOT_TOOLS=bench.throughput_tools)."""

from __future__ import annotations

from agent_core import tool


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"
