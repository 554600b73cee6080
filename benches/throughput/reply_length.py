"""Experiment: does the length of the reply subject of a publish cost nats-server? The raw
reference's pipelined produce (256 per write, 4,096 in flight) with its reply prefix
``_INBOX.rawack`` (short) against prefixes of 11, 16 and 32 hex characters (``_INBOX.<hex>``,
memphis-fast's default is 32), 200,000 messages per run, rounds in alternating order; rate and
nats-server CPU per message, paired ratios against short.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/reply_length.py $(pgrep -x nats-server) 17666 12
"""

import asyncio
import collections
import os
import sys
import time
import uuid

import memphis_fast as mf
from memphis_fast.bench import runner_common as rc
from memphis_fast.bench import runner_raw as rr

NP = int(sys.argv[1])
PORT = int(sys.argv[2])
N = 200000
ROUNDS = int(sys.argv[3])


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


async def mkconn():
    m = mf.Memphis()
    await m.connect(host="127.0.0.1", port=PORT, username="root", password="memphis")
    return m


async def run_raw(name, inbox):
    m = await mkconn()
    st = await m.station(name=name, storage_type="memory")
    rr.ACK_INBOX = inbox
    c = rr.RawClient("127.0.0.1", PORT, user="root$1", password="memphis")
    fr = rr.Frames([f"{rc.internal_name(name)}$1.final"], rc.memphis_headers(), rc.make_payload(128))
    s0, t0 = cpu(NP), time.perf_counter()
    cnt = rr.publish_pipelined(c, fr, N)
    dt = time.perf_counter() - t0
    out = (N / dt, (cpu(NP) - s0) / N * 1e6)
    assert cnt.acked == N
    c.close()
    await st.destroy()
    await m.close()
    return out


async def run_mf(name):
    m = await mkconn()
    st = await m.station(name=name, storage_type="memory")
    p = await m.producer(station_name=name, producer_name="p")
    payload = rc.make_payload(128)
    chunk = [payload] * 256
    s0, t0 = cpu(NP), time.perf_counter()
    pending = collections.deque()
    ok = 0
    for _ in range(N // 256):
        if len(pending) >= 16:
            ok += sum(1 for r in await pending.popleft() if r.stored)
        pending.append(asyncio.ensure_future(p.produce_batch(chunk)))
    while pending:
        ok += sum(1 for r in await pending.popleft() if r.stored)
    dt = time.perf_counter() - t0
    out = (N // 256 * 256 / dt, (cpu(NP) - s0) / N * 1e6)
    await st.destroy()
    await m.close()
    return out


async def main():
    res = collections.defaultdict(list)
    V = ["short", "t11", "t16", "long"]
    for rnd in range(ROUNDS):
        for k in V if rnd % 2 == 0 else V[::-1]:
            name = f"il-{k}-{rnd}-{os.getpid()}"
            if k == "mf":
                r = await run_mf(name)
            else:
                r = await run_raw(
                    name,
                    {
                        "short": b"_INBOX.rawack",
                        "t11": b"_INBOX." + uuid.uuid4().hex[:11].encode(),
                        "t16": b"_INBOX." + uuid.uuid4().hex[:16].encode(),
                        "long": b"_INBOX." + uuid.uuid4().hex.encode(),
                    }[k],
                )
            res[k].append(r)
        print(rnd, {k: f"{v[-1][0]:,.0f}/s {v[-1][1]:.2f}us" for k, v in res.items()}, flush=True)
    for k, v in res.items():
        rs = sorted(a[0] / b[0] for a, b in zip(v, res["short"], strict=True))
        ss = sorted(a[1] / b[1] for a, b in zip(v, res["short"], strict=True))
        ss2 = " ".join(f"{r:.2f}" for r in ss)
        print(ss2)
        print(
            f"{k:6s} median {sorted(a[0] for a in v)[len(v) // 2]:,.0f}/s srv {sorted(a[1] for a in v)[len(v) // 2]:.2f}us  paired rate {rs[len(rs) // 2]:.3f} srv {ss[len(ss) // 2]:.3f}  rates {' '.join(f'{r:.2f}' for r in rs)}"
        )


asyncio.run(main())
