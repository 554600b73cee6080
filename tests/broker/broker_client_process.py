"""A Memphis client in its own process, for tests that kill a client without closing it.

Usage: python broker_client_process.py '<json>' where the JSON holds ``client`` ("memphis-py"
or "memphis-fast"), ``connect`` (Memphis.connect keyword arguments), ``station`` and
``group``. It creates a producer and a consumer, prints ``{"connection_id": ...}`` and waits
to be killed.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys


async def main(spec: dict[str, object]) -> None:
    module = importlib.import_module("memphis" if spec["client"] == "memphis-py" else "memphis_fast")
    conn = module.Memphis()
    await conn.connect(**spec["connect"])  # type: ignore[arg-type]
    station = str(spec["station"])
    await conn.producer(station, "doomed-producer", timeout_retries=0)
    await conn.consumer(station, "doomed-consumer", consumer_group=str(spec["group"]), timeout_retries=0)
    sys.stdout.write(json.dumps({"connection_id": conn.connection_id}) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
