"""Experiment: the raw reference's pipelined produce against memphis-fast's pipelined
produce_batch (batches of 256, 16 in flight) and nonblocking produce, in one process on one
local broker, rounds in alternating order. Per variant: the rate, nats-server's CPU and this
process's CPU per message, and per 1,000 messages nats-server's wake-ups (voluntary context
switches) and its read(2) and write(2) calls; the rate's paired ratios against the first variant.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/produce_ab.py $(pgrep -x nats-server) 17666 256000 6 raw,batch,nb
"""

import asyncio
import collections
import os
import sys
import time

from _experiment import connect, cpu, io_calls, wakeups

from memphis_fast.bench import runner_common as rc
from memphis_fast.bench import runner_raw as rr

NP = int(sys.argv[1])
PORT = int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 256000
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 6
VARIANTS = sys.argv[5].split(",") if len(sys.argv) > 5 else ["raw", "batch", "nb"]
CHUNK = 256  # the raw reference's write, and the bench's produce-batch/pipelined batch
DEPTH = 16  # batches in flight: 4,096 messages, the raw reference's window


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def run(k: str, name: str) -> tuple[float, ...]:
    m = await connect(PORT)
    st = await m.station(name=name, storage_type="memory")
    payload = rc.make_payload(128)
    p = await m.producer(station_name=name, producer_name="p")
    for _ in range(100):
        await p.produce(payload)
    if k == "raw":
        c = rr.RawClient("127.0.0.1", PORT, user="root$1", password="memphis")
        frames = rr.Frames([f"{rc.internal_name(name)}$1.final"], rc.memphis_headers(), payload)
    n = N // CHUNK * CHUNK
    s0, w0, (r0, x0), c0, t0 = cpu(NP), wakeups(NP), io_calls(NP), own_cpu(), time.perf_counter()
    if k == "raw":
        counter = rr.publish_pipelined(c, frames, n, chunk=CHUNK)
        assert counter.acked == n, counter.acked
    elif k == "seq":
        # produce_batch of 1,000 awaited one after the other (the bench's produce-batch row)
        chunk = [payload] * 1000
        stored = 0
        for _ in range(n // 1000):
            stored += sum(1 for r in await p.produce_batch(chunk) if r.stored)  # type: ignore[attr-defined]
        rest = n % 1000
        if rest:
            stored += sum(1 for r in await p.produce_batch(chunk[:rest]) if r.stored)  # type: ignore[attr-defined]
        assert stored == n, stored
    elif k == "batch":
        chunk = [payload] * CHUNK
        pending: collections.deque[asyncio.Future[list[object]]] = collections.deque()
        stored = 0
        for _ in range(n // CHUNK):
            if len(pending) >= DEPTH:
                stored += sum(1 for r in await pending.popleft() if r.stored)  # type: ignore[attr-defined]
            pending.append(asyncio.ensure_future(p.produce_batch(chunk)))
        while pending:
            stored += sum(1 for r in await pending.popleft() if r.stored)  # type: ignore[attr-defined]
        assert stored == n, stored
    else:
        for _ in range(n):
            await p.produce(payload, nonblocking=True)
        await p.flush()  # raises if any message failed
    dt = time.perf_counter() - t0
    r1, x1 = io_calls(NP)
    out = (
        n / dt, (cpu(NP) - s0) / n * 1e6, (own_cpu() - c0) / n * 1e6,
        (wakeups(NP) - w0) / n * 1000, (r1 - r0) / n * 1000, (x1 - x0) / n * 1000,
    )  # fmt: skip
    if k == "raw":
        c.close()
    await st.destroy()
    await m.close()
    return out


async def main() -> None:
    res: dict[str, list[tuple[float, ...]]] = collections.defaultdict(list)
    for rnd in range(ROUNDS):
        for k in VARIANTS if rnd % 2 == 0 else VARIANTS[::-1]:
            res[k].append(await run(k, f"pab-{k}-{rnd}-{os.getpid()}"))
        print(rnd, {k: f"{v[-1][0]:,.0f}/s {v[-1][1]:.2f}us" for k, v in res.items()}, flush=True)
    base = res[VARIANTS[0]]
    for k, v in res.items():
        med = [sorted(x[i] for x in v)[len(v) // 2] for i in range(6)]
        rs = sorted(a[0] / b[0] for a, b in zip(v, base, strict=True))
        print(
            f"{k:6s} median {med[0]:,.0f}/s  server {med[1]:.2f} us/msg  client {med[2]:.2f} us/msg  "
            f"server per 1k msgs: {med[3]:.1f} wake-ups, {med[4]:.1f} reads, {med[5]:.1f} writes  "
            f"paired vs {VARIANTS[0]} {rs[len(rs) // 2]:.3f}  all {' '.join(f'{r:.2f}' for r in rs)}"
        )


asyncio.run(main())
