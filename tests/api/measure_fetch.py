"""fetch() with fewer messages than batch_size: the early return (20 ms idle) vs waiting the whole pull.

.venv/bin/python tests/api/measure_fetch.py
"""

import asyncio
import statistics
import time

import memphis_fast as mf
from memphis_fast.broker import LocalBroker
from memphis_fast.types import Storage


async def trickle(m, st, idle_ms):
    p = await m.producer(st, "p")
    c = await m.consumer(st, f"trickle-{idle_ms}", batch_max_time_to_wait_ms=2000)
    c.fetch_idle_ms = idle_ms
    lat = []
    for _i in range(5):
        await p.produce(b"one")
        t0 = time.perf_counter()
        msgs = await c.fetch(10)
        lat.append(time.perf_counter() - t0)
        assert len(msgs) == 1, len(msgs)
        await c.ack(msgs)
    await c.destroy()
    return statistics.median(lat)


async def loaded(m, st, idle_ms, seconds=3.0):
    """A producer task keeps producing (nonblocking); fetch(100) in a loop."""
    p = await m.producer(st, "pl")
    c = await m.consumer(st, f"load-{idle_ms}", batch_max_time_to_wait_ms=500)
    c.fetch_idle_ms = idle_ms
    stop = False

    async def produce():
        while not stop:
            for _ in range(50):
                await p.produce(b"x" * 128, nonblocking=True)
            await asyncio.sleep(0.001)

    task = asyncio.create_task(produce())
    sizes = []
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        msgs = await c.fetch(100)
        sizes.append(len(msgs))
        n += len(msgs)
        await c.ack(msgs)
    dt = time.perf_counter() - t0
    stop = True
    await task
    await p.flush()
    await c.destroy()
    full = sum(1 for s in sizes if s == 100) / len(sizes)
    return n / dt, statistics.mean(sizes), full


async def main():
    async with LocalBroker(memory=True) as b:
        async with await mf.connect(**b.connect_kwargs()) as m:
            for idle in (20, 10**7):
                label = "early return (20 ms idle)" if idle == 20 else "wait the whole pull (before)"
                st = f"fetch-{idle}"
                await m.station(st, storage_type=Storage.MEMORY)
                t = await trickle(m, st, idle)
                st2 = f"fetchl-{idle}"
                await m.station(st2, storage_type=Storage.MEMORY)
                rate, mean, full = await loaded(m, st2, idle)
                print(
                    f"{label:30s} trickle (1 of 10 there, 2 s pull): median {t * 1000:7.1f} ms | "
                    f"under load fetch(100): {rate / 1000:5.1f}k msg/s, mean batch {mean:5.1f}, full batches {full:.0%}"
                )


asyncio.run(main())
