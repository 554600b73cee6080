"""async for vs consume(): same station, same run, each message acked; medians of alternating runs.
Rates are wall-clock messages per second.

    .venv/bin/python tests/api/measure_async_for.py [N] [RUNS]
"""

import asyncio
import statistics
import sys
import time

import memphis_fast as mf
from memphis_fast.broker import LocalBroker
from memphis_fast.types import Storage

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BATCH = 100


async def run_consume(m, st, group):
    c = await m.consumer(st, group, batch_size=BATCH, batch_max_time_to_wait_ms=1000)
    done = asyncio.Event()
    n = 0

    async def cb(msgs, err, ctx):
        nonlocal n
        for msg in msgs:
            await msg.ack()
        n += len(msgs)
        if n >= N:
            done.set()

    t0 = time.perf_counter()
    c.consume(cb)
    await done.wait()
    dt = time.perf_counter() - t0
    await c.stop_consume()
    return N / dt


async def run_aiter(m, st, group):
    c = await m.consumer(st, group, batch_size=BATCH, batch_max_time_to_wait_ms=1000)
    n = 0
    t0 = time.perf_counter()
    async for msg in c:
        await msg.ack()
        n += 1
        if n >= N:
            break
    dt = time.perf_counter() - t0
    return N / dt


async def run_aiter_batch_ack(m, st, group):
    c = await m.consumer(st, group, batch_size=BATCH, batch_max_time_to_wait_ms=1000)
    n = 0
    t0 = time.perf_counter()
    held = []
    async for msg in c:
        held.append(msg)
        n += 1
        if len(held) == BATCH:
            await c.ack(held)
            held = []
        if n >= N:
            break
    if held:
        await c.ack(held)
    dt = time.perf_counter() - t0
    return N / dt


async def run_batches(m, st, group):
    c = await m.consumer(st, group, batch_size=BATCH, batch_max_time_to_wait_ms=1000)
    n = 0
    t0 = time.perf_counter()
    async for msgs in c.batches():
        for msg in msgs:
            await msg.ack()
        n += len(msgs)
        if n >= N:
            break
    return N / (time.perf_counter() - t0)


async def main():
    async with LocalBroker(memory=True) as b:
        async with await mf.connect(**b.connect_kwargs()) as m:
            st = "bench-aiter"
            await m.station(
                st,
                storage_type=Storage.MEMORY,
                retention_type=mf.Retention.MESSAGES,
                retention_value=10_000_000,
            )
            p = await m.producer(st, "p")
            payload = b"x" * 128
            for _i in range(0, N, 1000):
                await p.produce_batch([payload] * 1000)
            res = {"consume": [], "async for": [], "async for + consumer.ack(batch)": [], "batches()": []}
            for r in range(RUNS):
                res["consume"].append(await run_consume(m, st, f"g-c-{r}"))
                res["async for"].append(await run_aiter(m, st, f"g-a-{r}"))
                res["async for + consumer.ack(batch)"].append(await run_aiter_batch_ack(m, st, f"g-b-{r}"))
                res["batches()"].append(await run_batches(m, st, f"g-bb-{r}"))
            for k, v in res.items():
                print(
                    f"{k:34s} median {statistics.median(v) / 1000:7.1f}k msg/s  runs {[round(x / 1000, 1) for x in v]}"
                )
            print(
                f"async for / consume = {statistics.median(res['async for']) / statistics.median(res['consume']):.2f}"
            )
            ratios = [a / c for a, c in zip(res["async for"], res["consume"], strict=False)]
            print(f"paired per-run ratios {[round(x, 2) for x in ratios]}")


asyncio.run(main())
