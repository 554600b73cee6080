"""Experiment: memphis-fast's pipelined produce_batch (batches of 256, 16 in flight) with the
old inbox prefix (``_INBOX.`` + 32 hex characters) against the new one (``_INBOX.`` + 16
base62 characters, ``_connect.new_inbox_prefix``), 200,000 messages per run, rounds in
alternating order; rate and nats-server CPU per message, paired ratios against the first
prefix. The fifth argument picks the prefixes: ``long,short`` (default), or ``short,12`` for the
16 characters against 12 (nats.go's 71 random bits; 2026-12-03: rate 0.96x, 1.00x and
1.05x, nats-server CPU 1.06x, 1.00x and 0.97x in three experiments, not taken).

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/inbox_prefix_ab.py $(pgrep -x nats-server) 17666 12 batch
    .venv/bin/python benches/throughput/inbox_prefix_ab.py $(pgrep -x nats-server) 17666 30 batch short,12
"""

import asyncio
import collections
import os
import secrets
import sys
import time
import uuid

from _experiment import cpu

import memphis_fast as mf
from memphis_fast import _connect, _connection
from memphis_fast.bench import runner_common as rc

NP = int(sys.argv[1])
PORT = int(sys.argv[2])
N = 200000
ROUNDS = int(sys.argv[3])
MODE = {"v": "short"}
_orig = _connection.NatsConnection.__init__


def _init(self, opts, loop):
    if MODE["v"] == "long":
        opts.inbox_prefix = "_INBOX." + uuid.uuid4().hex
    elif MODE["v"] == "12":
        opts.inbox_prefix = "_INBOX." + "".join(secrets.choice(_connect._INBOX_CHARS) for _ in range(12))
    _orig(self, opts, loop)


_connection.NatsConnection.__init__ = _init


async def run_mf(name, mode, path):
    MODE["v"] = mode
    m = mf.Memphis()
    await m.connect(host="127.0.0.1", port=PORT, username="root", password="memphis")
    want = {"long": 32, "short": 16, "12": 12}[mode]
    assert len(m._conn.inbox_prefix.rstrip(".")) == 7 + want, m._conn.inbox_prefix
    st = await m.station(name=name, storage_type="memory")
    p = await m.producer(station_name=name, producer_name="p")
    payload = rc.make_payload(128)
    chunk = [payload] * 256
    s0, t0 = cpu(NP), time.perf_counter()
    if path == "batch":
        pending = collections.deque()
        for _ in range(N // 256):
            if len(pending) >= 16:
                await pending.popleft()
            pending.append(asyncio.ensure_future(p.produce_batch(chunk)))
        while pending:
            await pending.popleft()
        n = N // 256 * 256
    else:
        for _ in range(N):
            await p.produce(payload, nonblocking=True)
        await p.flush()
        n = N
    dt = time.perf_counter() - t0
    out = (n / dt, (cpu(NP) - s0) / n * 1e6)
    await st.destroy()
    await m.close()
    return out


async def main():
    path = sys.argv[4] if len(sys.argv) > 4 else "batch"
    res = collections.defaultdict(list)
    V = sys.argv[5].split(",") if len(sys.argv) > 5 else ["long", "short"]
    for rnd in range(ROUNDS):
        for k in V if rnd % 2 == 0 else V[::-1]:
            res[k].append(await run_mf(f"mi-{k}-{rnd}-{os.getpid()}", k, path))
    for k, v in res.items():
        rs = sorted(a[0] / b[0] for a, b in zip(v, res[V[0]], strict=True))
        ss = sorted(a[1] / b[1] for a, b in zip(v, res[V[0]], strict=True))
        print(
            f"{k:6s} median {sorted(a[0] for a in v)[len(v) // 2]:,.0f}/s srv {sorted(a[1] for a in v)[len(v) // 2]:.2f}us  paired rate {rs[len(rs) // 2]:.3f} srv {ss[len(ss) // 2]:.3f} | rates {' '.join(f'{r:.2f}' for r in rs)} | srv {' '.join(f'{r:.2f}' for r in ss)}"
        )


asyncio.run(main())
