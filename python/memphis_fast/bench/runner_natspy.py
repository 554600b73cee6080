"""nats-py's runner: JetStream on the same station streams, with the two Memphis headers.

``js.publish`` (one ack awaited at a time), ``js.publish_async`` then
``publish_async_completed()`` (pipelined; nats-py's default of 4000 pending), and a pull
subscription bound to the consumer group's durable: ``fetch(batch)`` + ``ack()`` per message.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import nats

try:
    from . import runner_common as rc
except ImportError:  # run by path (see runner_common)
    import runner_common as rc  # type: ignore[no-redef]

CLIENT = "nats-py"
WARMUP = 100


async def _connect(args: argparse.Namespace, host: str | None = None) -> Any:
    kw: dict[str, Any] = {"servers": [f"nats://{host or args.host}:{args.port}"], "allow_reconnect": False}
    if args.token:
        kw["token"] = args.token
    else:
        kw["user"] = rc.nats_user(args)
        kw["password"] = args.password
    return await nats.connect(**kw)


def _subjects(args: argparse.Namespace) -> list[str]:
    return [f"{s}.final" for s in rc.stream_names(args.station, args.partitions)]


async def connect(args: argparse.Namespace) -> dict[str, Any]:
    lat = []
    for _ in range(args.connects):
        t0 = time.perf_counter_ns()
        nc = await _connect(args, args.connect_host)
        lat.append(time.perf_counter_ns() - t0)
        await nc.close()
    return rc.result(args, CLIENT, latencies_ns=lat, extra={"connects": args.connects, "host": args.connect_host})


async def produce_sync(args: argparse.Namespace) -> dict[str, Any]:
    nc = await _connect(args)
    js = nc.jetstream()
    subjects = _subjects(args)
    ns = len(subjects)
    hdrs = rc.memphis_headers()
    payload = rc.make_payload(args.payload)
    for i in range(WARMUP):
        await js.publish(subjects[i % ns], payload, headers=hdrs)
    n = args.messages
    lat = [0] * n
    clock = time.perf_counter_ns
    publish = js.publish
    meter = rc.Meter(args.nats_pid)
    meter.start()
    for i in range(n):
        t0 = clock()
        await publish(subjects[i % ns], payload, headers=hdrs)
        lat[i] = clock() - t0
    meter.stop()
    await nc.close()
    return rc.result(args, CLIENT, messages=n, meter=meter, latencies_ns=lat, acked=n, extra={"warmup": WARMUP})


async def produce_nonblocking(args: argparse.Namespace) -> dict[str, Any]:
    nc = await _connect(args)
    js = nc.jetstream()
    subjects = _subjects(args)
    ns = len(subjects)
    hdrs = rc.memphis_headers()
    payload = rc.make_payload(args.payload)
    for i in range(WARMUP):
        await js.publish(subjects[i % ns], payload, headers=hdrs)
    n = args.messages
    ok = failed = 0

    def done(f: asyncio.Future[Any]) -> None:
        nonlocal ok, failed
        if f.cancelled() or f.exception() is not None:
            failed += 1
        else:
            ok += 1

    publish_async = js.publish_async
    meter = rc.Meter(args.nats_pid)
    meter.start()
    for i in range(n):
        fut = await publish_async(subjects[i % ns], payload, headers=hdrs)
        fut.add_done_callback(done)
    await js.publish_async_completed()
    await asyncio.sleep(0)  # the last done callbacks
    meter.stop()
    await nc.close()
    good = ok == n and failed == 0
    return rc.result(
        args, CLIENT, messages=n, meter=meter, ok=good, acked=ok, failed=failed,
        error=None if good else f"{failed} failed, {ok} acked of {n}", extra={"warmup": WARMUP},
    )


async def _bind(args: argparse.Namespace, js: Any) -> list[Any]:
    durable = rc.internal_name(rc.CONSUMER_GROUP)
    return [await js.pull_subscribe_bind(durable=durable, stream=s) for s in rc.stream_names(args.station, args.partitions)]


async def consume_ack(args: argparse.Namespace) -> dict[str, Any]:
    nc = await _connect(args)
    js = nc.jetstream()
    subs = await _bind(args, js)
    n = args.messages
    received = nbytes = 0
    rr = 0
    meter = rc.Meter(args.nats_pid)
    meter.start()
    while received < n:
        sub = subs[rr % len(subs)]
        rr += 1
        try:
            msgs = await sub.fetch(args.batch, timeout=5)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            nbytes += len(msg.data)
            await msg.ack()
        received += len(msgs)
    await nc.flush()
    meter.stop()
    await nc.close()
    ok = received == n and nbytes == n * args.payload
    return rc.result(
        args, CLIENT, messages=n, meter=meter, ok=ok, acked=received,
        error=None if ok else f"received {received} messages / {nbytes} bytes, expected {n}",
    )


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    """One message in flight: publish_async, wait for it on a fetch(1) loop."""
    nc = await _connect(args)
    js = nc.jetstream()
    sub = (await _bind(args, js))[0]
    subject = _subjects(args)[0]
    hdrs = rc.memphis_headers()
    payload = rc.make_payload(args.payload)
    got = asyncio.Event()
    t_recv = 0
    received = 0
    running = True

    async def consume() -> None:
        nonlocal t_recv, received
        while running:
            try:
                msgs = await sub.fetch(1, timeout=5)
            except nats.errors.TimeoutError:
                continue
            t_recv = time.perf_counter_ns()
            for msg in msgs:
                await msg.ack()
            received += len(msgs)
            got.set()

    task = asyncio.get_running_loop().create_task(consume())
    n = args.messages
    lat = [0] * n
    futures = []
    meter = rc.Meter(args.nats_pid)
    meter.start()
    for i in range(n):
        got.clear()
        t0 = time.perf_counter_ns()
        futures.append(await js.publish_async(subject, payload, headers=hdrs))
        await asyncio.wait_for(got.wait(), 30)
        lat[i] = t_recv - t0
    await asyncio.gather(*futures)
    await nc.flush()
    meter.stop()
    running = False
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await nc.close()
    ok = received == n
    return rc.result(
        args, CLIENT, messages=n, meter=meter, latencies_ns=lat, ok=ok, acked=received,
        error=None if ok else f"received {received} of {n}",
    )


HANDLERS: dict[str, rc.Handler] = {
    "connect": connect,
    "produce-sync": produce_sync,
    "produce-nonblocking": produce_nonblocking,
    "consume-ack": consume_ack,
    "latency": latency,
}

if __name__ == "__main__":
    raise SystemExit(rc.main(CLIENT, HANDLERS))
