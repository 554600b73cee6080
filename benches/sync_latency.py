"""One-at-a-time awaited produce against a local broker: rate and p50 latency, interleaved
rounds (the wall-clock check of the awaited-publish write path; instruction counts are in
benches/paths_instructions.py). Usage: .venv/bin/python benches/sync_latency.py [N] [ROUNDS]"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from memphis_fast import Memphis
from memphis_fast.broker import LocalBroker


async def one_round(m: Memphis, station: str, n: int) -> tuple[float, float]:
    await m.station(station)
    p = await m.producer(station, "p")
    payload = b"x" * 128
    for _ in range(200):  # warm-up
        await p.produce(payload)
    lat: list[int] = []
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter_ns()
        await p.produce(payload)
        lat.append(time.perf_counter_ns() - a)
    return n / (time.perf_counter() - t0), statistics.median(lat) / 1000


async def main(n: int, rounds: int) -> None:
    async with LocalBroker() as broker, Memphis() as m:
        await m.connect(**broker.connect_kwargs())
        results = [await one_round(m, f"sync-latency-{r}", n) for r in range(rounds)]
    rates = [r for r, _ in results]
    p50s = [p for _, p in results]
    sys.stdout.write(
        f"{rounds} rounds of {n}: median {statistics.median(rates):,.0f} msg/s, "
        f"median p50 {statistics.median(p50s):.1f} us\n"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
