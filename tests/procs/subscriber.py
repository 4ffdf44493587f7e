"""A subscriber process: follows one turn on the Redis bus and writes what it sees.

Usage: python -m tests.procs.subscriber REDIS_URL STREAM OUT_FILE [AFTER_OFFSET]
Each line of OUT_FILE is ``offset<TAB>kind<TAB>json``; a last line ``END`` when the final round is seen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from agent_core.redis_backend import RedisEventBus


async def main(url: str, stream: str, out: str, after: str | None) -> None:
    bus = RedisEventBus(url)
    with open(out, "a") as f:
        async for ev in bus.subscribe(stream, after, idle_timeout=60):
            data = {k: v for k, v in dataclasses.asdict(ev).items() if v not in (None, {}, [])}
            f.write(f"{ev.offset}\t{ev.kind}\t{json.dumps(data)}\n")
            f.flush()
            if ev.kind == "round_finished" and ev.data.get("final"):
                f.write("END\n")
                break
    await bus.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
