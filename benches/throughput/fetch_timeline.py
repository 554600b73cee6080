"""Experiment: where a plain fetch() loop's time goes. One partition, batches of 1,000,
``get_data()`` and ``await ack()`` each; per round: the rate, nats-server's and the client's CPU
per message, nats-server's wake-ups per 1,000 messages, and per batch the median time inside
``fetch()`` and handling the batch.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/fetch_timeline.py $(pgrep -x nats-server) 17666 150000 4
"""

import asyncio
import os
import statistics
import sys
import time

from _experiment import connect, cpu, preloaded_consumer, wakeups

NP, PORT, N, ROUNDS = (int(a) for a in sys.argv[1:5])
BATCH = 1000


async def run(name: str) -> None:
    m = await connect(PORT)
    st, cons = await preloaded_consumer(m, PORT, name, N, BATCH)
    waits, handles = [], []
    got = 0
    s0, w0, c0, t0 = cpu(NP), wakeups(NP), time.process_time(), time.perf_counter()
    while got < N:
        a = time.perf_counter()
        msgs = await cons.fetch(batch_size=BATCH)
        b = time.perf_counter()
        for x in msgs:
            x.get_data()
            await x.ack()
        waits.append(b - a)
        handles.append(time.perf_counter() - b)
        got += len(msgs)
    await m._conn.flush()
    dt = time.perf_counter() - t0
    srv = (cpu(NP) - s0) / N * 1e6
    cli = (time.process_time() - c0) / N * 1e6
    wake = (wakeups(NP) - w0) / N * 1000
    await st.destroy()
    await m.close()
    print(
        f"{N / dt:,.0f}/s  nats-server {srv:.2f} us/msg  client {cli:.2f} us/msg  server wake-ups/1k {wake:.1f}"
        f"  in fetch() {statistics.median(waits) * 1e3:.2f} ms  handling {statistics.median(handles) * 1e3:.2f} ms"
        f"  ({len(waits)} batches)",
        flush=True,
    )


async def main() -> None:
    for r in range(ROUNDS):
        await run(f"tl-{r}-{os.getpid()}")


asyncio.run(main())
