"""Experiment: does the length of the reply subject of a publish cost nats-server? The raw
reference's pipelined produce (256 per write, 4,096 in flight) with its reply prefix
``_INBOX.rawack`` (short) against prefixes of 11, 16 and 32 hex characters and 22 base62 characters (``_INBOX.<token>``;
memphis-fast's default was 32 hex until 41a9ce2), 200,000 messages per run, rounds in alternating order; rate and
nats-server CPU per message, paired ratios against short.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/reply_length.py $(pgrep -x nats-server) 17666 12 [short,t22,long]
"""

import asyncio
import collections
import os
import random
import string
import sys
import uuid

from _experiment import raw_pipelined

from memphis_fast.bench import runner_raw as rr

NP = int(sys.argv[1])
PORT = int(sys.argv[2])
N = 200000
ROUNDS = int(sys.argv[3])


PREFIXES = {
    "short": lambda: b"_INBOX.rawack",
    "t11": lambda: b"_INBOX." + uuid.uuid4().hex[:11].encode(),
    "t16": lambda: b"_INBOX." + uuid.uuid4().hex[:16].encode(),
    "t22": lambda: (
        b"_INBOX." + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(22)).encode()
    ),
    "long": lambda: b"_INBOX." + uuid.uuid4().hex.encode(),
    # memphis-fast's inbox token (16 base62 characters) and nats.go's random part (12)
    "b16": lambda: b"_INBOX." + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(16)).encode(),
    "b12": lambda: b"_INBOX." + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(12)).encode(),
}


async def run_raw(name, inbox):
    rr.ACK_INBOX = inbox
    rate, srv, _, acked = await raw_pipelined(PORT, name, N, NP)
    assert acked == N
    return rate, srv


async def main():
    res = collections.defaultdict(list)
    V = sys.argv[4].split(",") if len(sys.argv) > 4 else list(PREFIXES)
    for rnd in range(ROUNDS):
        for k in V if rnd % 2 == 0 else V[::-1]:
            name = f"il-{k}-{rnd}-{os.getpid()}"
            r = await run_raw(name, PREFIXES[k]())
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
