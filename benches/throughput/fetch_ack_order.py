"""Experiment: a fetch loop's pattern (one pull at a time, the acks of the batch before it
written with the next pull) with the pull written before or after those acks, against
memphis-fast fetch() and the raw pipelined consumer; rate and nats-server CPU per message,
rounds in alternating order, paired ratios against the first variant.

Variants: pipe (the raw reference, two pulls in flight), acks-first / pull-first (the raw
one-pull loop, its acks written before / after its next pull), mf-fetch (memphis-fast
fetch(); since f179c8a its pull goes in front of the acks written last), mf-fetch-acksfirst
(the same, the acks written out before each fetch() call: the order before f179c8a),
mf-prefetch (fetch(prefetch=True)), mf-prefetch-late (the same, each batch acked only once the
next one is in), mf-consume (consume() with a handler that acks each).
Besides the rate, nats-server's CPU per message and this process's (the client's; the raw
variants run in it too), per 1,000 messages: nats-server's wake-ups
(voluntary context switches) and its read(2) and write(2) calls.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/fetch_ack_order.py $(pgrep -x nats-server) 17666 150000 10 \
        mf-fetch-acksfirst,mf-fetch,pipe
"""

import argparse
import asyncio
import collections
import os
import sys
import time

from _experiment import cpu, io_calls, preloaded_consumer, wakeups

import memphis_fast as mf
from memphis_fast.bench import runner_common as rc
from memphis_fast.bench import runner_raw as rr

NP = int(sys.argv[1])
PORT = int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 4
VARIANTS = sys.argv[5].split(",") if len(sys.argv) > 5 else ["pipe", "acks-first", "pull-first", "mf-fetch"]
BATCH = 1000
#: per variant, per round: nats-server's wake-ups, read(2) and write(2) calls per 1,000 messages
SERVER = collections.defaultdict(list)
#: per variant, per round: this process's CPU per message (µs)
CLIENT = collections.defaultdict(list)


def one_pull(c, stream, durable, n, pull_first):
    inbox = b"_INBOX.rawpull.1"
    c.sock.sendall(b"SUB %s 1\r\n" % inbox)
    c.ping()
    api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}".encode()
    acks, received, pending = [], 0, b""
    while received < n:
        want = min(BATCH, n - received)
        pull = rr._pull_frame(api, inbox, want, 5_000_000_000)
        ab = b"".join(acks)
        c.sock.sendall(pull + ab if pull_first else ab + pull)
        acks = []
        got, _, pending = rr.receive_batch(c, pending, want, acks)
        received += got
    c.sock.sendall(b"".join(acks))
    c.ping()


async def run(k, name):
    m = mf.Memphis()
    await m.connect(host="127.0.0.1", port=PORT, username="root", password="memphis")
    st, cons = await preloaded_consumer(m, PORT, name, N, BATCH)
    durable = rc.internal_name(rc.CONSUMER_GROUP)
    stream = rc.stream_names(name, 1)[0]
    s0, t0, c0 = cpu(NP), time.perf_counter(), time.process_time()
    w0, (r0, x0) = wakeups(NP), io_calls(NP)
    if k == "mf-consume":
        done = asyncio.Event()
        got = 0

        async def handler(msgs, error, context):
            nonlocal got
            for x in msgs:
                await x.ack()
            got += len(msgs)
            if got >= N:
                done.set()

        cons.consume(handler)
        await done.wait()
        await m._conn.flush()
        await cons.stop_consume()
    elif k.startswith("mf-prefetch"):
        got = 0
        late = k == "mf-prefetch-late"
        prev = []  # mf-prefetch-late: the batch before, acked once the next one is in
        while got < N:
            # no prefetch for the last batch: nothing would be left to take
            msgs = await cons.fetch(batch_size=min(BATCH, N - got), prefetch=got + BATCH < N)
            for x in prev if late else msgs:
                await x.ack()
            prev = msgs
            got += len(msgs)
        for x in prev if late else ():
            await x.ack()
        await m._conn.flush()
    elif k.startswith("mf-fetch"):
        got = 0
        early = k == "mf-fetch-acksfirst"
        while got < N:
            if early:
                m._conn._protocol.flush_now()
            msgs = await cons.fetch(batch_size=BATCH)
            for x in msgs:
                await x.ack()
            got += len(msgs)
        await m._conn.flush()
    elif k == "pipe":
        args = argparse.Namespace(
            host="127.0.0.1",
            port=PORT,
            token="",
            user="root",
            account_id=1,
            password="memphis",
            station=name,
            partitions=1,
            batch=BATCH,
            messages=N,
            nats_pid=0,
            variant="",
            payload=128,
            path="consume-ack",
        )
        await rr.consume_ack(args)
    else:
        c = rr.RawClient("127.0.0.1", PORT, user="root$1", password="memphis")
        one_pull(c, stream, durable, N, k == "pull-first")
        c.close()
    dt = time.perf_counter() - t0
    CLIENT[k].append((time.process_time() - c0) / N * 1e6)
    srv = (cpu(NP) - s0) / N * 1e6
    r1, x1 = io_calls(NP)
    SERVER[k].append(((wakeups(NP) - w0) / N * 1000, (r1 - r0) / N * 1000, (x1 - x0) / N * 1000))
    await st.destroy()
    await m.close()
    return N / dt, srv


async def main():
    res = collections.defaultdict(list)
    for rnd in range(ROUNDS):
        order = list(VARIANTS) if rnd % 2 == 0 else list(reversed(VARIANTS))
        for k in order:
            res[k].append(await run(k, f"fo-{k}-{rnd}-{os.getpid()}"))
        print(rnd, {k: f"{v[-1][0]:,.0f}/s {v[-1][1]:.2f}us" for k, v in res.items()}, flush=True)
    base = res[VARIANTS[0]]
    for k, v in res.items():
        rs = sorted(a[0] / b[0] for a, b in zip(v, base, strict=True))
        wake, reads, writes = (sorted(e[i] for e in SERVER[k])[len(v) // 2] for i in range(3))
        print(
            f"{k:18s} server per 1k msgs: {wake:.1f} wake-ups, {reads:.1f} reads, {writes:.1f} writes; median {sorted(a[0] for a in v)[len(v) // 2]:,.0f}/s  srv {sorted(a[1] for a in v)[len(v) // 2]:.2f}us  client {sorted(CLIENT[k])[len(v) // 2]:.2f}us  paired vs {VARIANTS[0]} {rs[len(rs) // 2]:.3f}  all {' '.join(f'{r:.2f}' for r in rs)}"
        )


asyncio.run(main())
