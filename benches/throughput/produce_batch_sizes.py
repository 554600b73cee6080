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

import memphis_fast as mf
from memphis_fast.bench import runner_common as rc
from memphis_fast.bench import runner_raw as rr

NP = int(sys.argv[1])
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 17666
N = 200000


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def ctx(pid):
    s = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        for line in open(f"/proc/{pid}/task/{t}/status"):
            if "voluntary_ctxt_switches" in line:
                s += int(line.split()[1])
    return s


async def mkconn():
    m = mf.Memphis()
    await m.connect(host="127.0.0.1", port=PORT, username="root", password="memphis")
    return m


async def run_mf(name, batch):
    m = await mkconn()
    st = await m.station(name=name, storage_type="memory")
    p = await m.producer(station_name=name, producer_name="p")
    payload = rc.make_payload(128)
    for _ in range(100):
        await p.produce(payload)
    chunk = [payload] * batch
    depth = max(1, 4096 // batch)
    s0, x0, t0 = cpu(NP), ctx(NP), time.perf_counter()
    pending = collections.deque()
    ok = 0
    for _ in range(N // batch):
        if len(pending) >= depth:
            ok += sum(1 for r in await pending.popleft() if r.stored)
        pending.append(asyncio.ensure_future(p.produce_batch(chunk)))
    while pending:
        ok += sum(1 for r in await pending.popleft() if r.stored)
    dt = time.perf_counter() - t0
    out = (N / dt, (cpu(NP) - s0) / N * 1e6, (ctx(NP) - x0), ok)
    await st.destroy()
    await m.close()
    return out


async def run_raw(name):
    m = await mkconn()
    st = await m.station(name=name, storage_type="memory")
    c = rr.RawClient("127.0.0.1", PORT, user="root$1", password="memphis")
    fr = rr.Frames([f"{rc.internal_name(name)}$1.final"], rc.memphis_headers(), rc.make_payload(128))
    s0, x0, t0 = cpu(NP), ctx(NP), time.perf_counter()
    cnt = rr.publish_pipelined(c, fr, N)
    dt = time.perf_counter() - t0
    out = (N / dt, (cpu(NP) - s0) / N * 1e6, (ctx(NP) - x0), cnt.acked)
    c.close()
    await st.destroy()
    await m.close()
    return out


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
