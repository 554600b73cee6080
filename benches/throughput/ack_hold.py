"""Experiment: where a fetch() loop's cycle goes on the server, and what holding a batch's acks
back until the next batch is in (NatsConnection.hold_acks, since this script's commit) does:
memphis-fast's fetch() with internals patched; rounds in alternating order, paired ratios
against the first variant.

Variants:
  fetch     fetch() as it is: the acks go out every ~32 KiB while the caller acks; the rest,
            buffered when the next fetch()'s pull goes out, are held until its batch is in
  no-hold   the same without the hold (before): the rest go out with that pull, behind it
  held-all  no ~32 KiB early writes: all of a batch's acks are held until the next batch is in
  ping      diagnosis (no-hold): after each batch's acks, a PING/PONG round trip (the time the
            server takes to work through 1,000 acks), then the next fetch()

Per variant it prints the rate, nats-server's CPU per message and, per fetch() cycle (medians):
first (the call to the first delivery read), span (first to last read of the batch) and cycle.

    .venv/bin/memphis-fast broker --memory --port 17666 --data-dir /tmp/sb &
    .venv/bin/python benches/throughput/ack_hold.py $(pgrep -x nats-server) 17666 150000 10 no-hold,fetch
"""

import asyncio
import statistics
import sys
import time

from _experiment import connect, cpu, preloaded_consumer

from memphis_fast import _connection, consumer

NP, PORT, N, ROUNDS = (int(a) for a in sys.argv[1:5])
VARIANTS = sys.argv[5].split(",") if len(sys.argv) > 5 else ["no-hold", "fetch", "held-all", "ping"]
BATCH = 1000

mode = {"v": "fetch"}
reads: list[float] = []

_hold = _connection.NatsConnection.hold_acks
_on_msgs = consumer._Fetcher._on_msgs
_ack = _connection.NatsConnection.ack


def hold_acks(self):  # type: ignore[no-untyped-def]
    return False if mode["v"] in ("no-hold", "ping") else _hold(self)


def on_msgs(self, msgs):  # type: ignore[no-untyped-def]
    reads.append(time.perf_counter())
    return _on_msgs(self, msgs)


def ack(self, msg, kind=_connection.ACK, delay_ns=0):  # type: ignore[no-untyped-def]
    if mode["v"] != "held-all":
        return _ack(self, msg, kind, delay_ns)
    self.core.ack(msg, kind, delay_ns)  # its "~32 KiB encoded" signal ignored
    if not self._flush_scheduled:
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)


_connection.NatsConnection.hold_acks = hold_acks
consumer._Fetcher._on_msgs = on_msgs
_connection.NatsConnection.ack = ack


def ms(v: list[float]) -> str:
    return f"{statistics.median(v) * 1e3:.2f}" if v else "-"


async def one(m, name: str, variant: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    st, cons = await preloaded_consumer(m, PORT, name, N, BATCH)
    mode["v"] = variant
    first, span, cycle, ping = [], [], [], []
    got, s0, t0 = 0, cpu(NP), time.perf_counter()
    while got < N:
        reads.clear()
        a = time.perf_counter()
        msgs = await cons.fetch(batch_size=BATCH)
        for x in msgs:
            await x.ack()
        got += len(msgs)
        if variant == "ping":
            b = time.perf_counter()
            await m._conn.flush()
            ping.append(time.perf_counter() - b)
        if reads:
            first.append(reads[0] - a)
            span.append(reads[-1] - reads[0])
            cycle.append(time.perf_counter() - a)
    await m._conn.flush()
    dt = time.perf_counter() - t0
    rate, srv = N / dt, (cpu(NP) - s0) / N * 1e6
    mode["v"] = "fetch"
    await cons.destroy()
    await st.destroy()
    print(
        f"  {variant:9} {rate:9,.0f}/s  srv {srv:5.2f}us  first {ms(first)}ms  span {ms(span)}ms"
        f"  cycle {ms(cycle)}ms" + (f"  ping after the acks {ms(ping)}ms" if ping else ""),
        flush=True,
    )
    return rate, srv


async def main() -> None:
    m = await connect(PORT)
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in VARIANTS}
    for r in range(ROUNDS):
        print(f"round {r}", flush=True)
        for k in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            res[k].append(await one(m, f"ah{r}{k}", k))
    base = res[VARIANTS[0]]
    for k in VARIANTS:
        paired = [b[0] / a[0] for a, b in zip(base, res[k], strict=True)]
        faster = sum(p > 1 for p in paired)
        print(
            f"{k:9} median {statistics.median(x[0] for x in res[k]):9,.0f}/s"
            f"  srv {statistics.median(x[1] for x in res[k]):.2f}us"
            f"  paired vs {VARIANTS[0]} {statistics.median(paired):.3f} ({faster} of {len(paired)} faster)"
        )
    await m.close()


asyncio.run(main())
