"""Experiment: produce_batch pipelined with batches of 1,000 and of 256 messages (4,096 in flight
either way) against the raw reference's pipelined produce (256 per write, 4,096 window), on
one local broker, 4 rounds in alternating order: rate, nats-server CPU per message and its
voluntary context switches (wake-ups) per run of 200,000 messages.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/produce_batch_sizes.py $(pgrep -x nats-server) 17666
"""

import asyncio
import collections
import os
import sys
import time

from _experiment import connect, cpu, raw_pipelined, wakeups

from memphis_fast.bench import runner_common as rc

NP = int(sys.argv[1])
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 17666
N = 200000


async def mkconn():
    return await connect(PORT)


async def run_mf(name, batch):
    m = await mkconn()
    st = await m.station(name=name, storage_type="memory")
    p = await m.producer(station_name=name, producer_name="p")
    payload = rc.make_payload(128)
    for _ in range(100):
        await p.produce(payload)
    chunk = [payload] * batch
    depth = max(1, 4096 // batch)
    s0, x0, t0 = cpu(NP), wakeups(NP), time.perf_counter()
    pending = collections.deque()
    ok = 0
    for _ in range(N // batch):
        if len(pending) >= depth:
            ok += sum(1 for r in await pending.popleft() if r.stored)
        pending.append(asyncio.ensure_future(p.produce_batch(chunk)))
    while pending:
        ok += sum(1 for r in await pending.popleft() if r.stored)
    dt = time.perf_counter() - t0
    out = (N / dt, (cpu(NP) - s0) / N * 1e6, (wakeups(NP) - x0), ok)
    await st.destroy()
    await m.close()
    return out


async def run_raw(name):
    return await raw_pipelined(PORT, name, N, NP)


async def main():
    res = collections.defaultdict(list)
    for rnd in range(4):
        order = ["raw", "mf1000", "mf256"]
        if rnd % 2:
            order.reverse()
        for k in order:
            name = f"pbx-{k}-{rnd}-{os.getpid()}"
            r = await (run_raw(name) if k == "raw" else run_mf(name, int(k[2:])))
            res[k].append(r)
    for k, v in res.items():
        print(k, " | ".join(f"{r:,.0f}/s srv {s:.2f} ctx {x}" for r, s, x, ok in v))


asyncio.run(main())
