"""The benchmark paths written once against the memphis-py API.

``runner_memphis_py`` and ``runner_memphis_fast`` differ only in their import: each passes its
client's module to :func:`handlers`. The code here calls exactly what a memphis-py user calls
(``connect``, ``producer``, ``produce(..., nonblocking=True)``, waiting for
``background_tasks`` to drain, ``consumer``, ``fetch``/``consume``, ``ack``); the few paths
that need memphis-fast's own API (``produce_batch``, ``flush``, the produce window of the
memory-bound path) say so. This module imports neither client.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import time
from types import ModuleType
from typing import Any

try:
    from . import runner_common as rc
except ImportError:  # run by path (see runner_common)
    import runner_common as rc  # type: ignore[no-redef]

WARMUP = 100
#: messages in flight of produce-batch/pipelined: the raw reference's window
PIPELINE_WINDOW = 4096
#: messages per produce_batch call of produce-batch/pipelined: the raw reference's write
#: (runner_raw.CHUNK). With 1,000-message batches nats-server woke up ~1.5x as often and spent
#: 0-25 % more CPU per message (4 paired rounds, benches/RESULTS.md).
PIPELINE_BATCH = 256
#: A JSON message for the schema-json path (~128 bytes serialized).
SCHEMA_MESSAGE = {
    "id": 12345,
    "customer": "customer-0001",
    "items": [{"sku": "sku-001", "qty": 2}, {"sku": "sku-002", "qty": 1}],
    "total": 42.5,
    "paid": True,
}


class Api:
    """What a runner needs from its client: the module and whether it is memphis-fast."""

    def __init__(self, client: str, memphis_module: ModuleType) -> None:
        self.client = client
        self.Memphis = memphis_module.Memphis
        self.fast = client == "memphis-fast"

    async def connect(self, args: argparse.Namespace, host: str | None = None) -> Any:
        m = self.Memphis()
        kw: dict[str, Any] = {"host": host or args.host, "username": args.user, "port": args.port}
        if args.account_id != 1:
            kw["account_id"] = args.account_id
        if args.token:
            kw["connection_token"] = args.token
        else:
            kw["password"] = args.password
        await m.connect(**kw)
        return m


async def _drain(producer: Any) -> None:
    """memphis-py's idiom: poll ``background_tasks`` until no message is in flight."""
    while len(producer.background_tasks) > 0:
        await asyncio.sleep(0.001)


async def _flush(api: Api, m: Any) -> None:
    """One round trip to the server: everything written before (acks) was processed."""
    await m.broker_manager.flush()


def make(api: Api) -> dict[str, rc.Handler]:
    client = api.client

    async def connect(args: argparse.Namespace) -> dict[str, Any]:
        lat = []
        for _ in range(args.connects):
            t0 = time.perf_counter_ns()
            m = await api.connect(args, args.connect_host)
            lat.append(time.perf_counter_ns() - t0)
            await m.close()
        return rc.result(args, client, latencies_ns=lat, extra={"connects": args.connects, "host": args.connect_host})

    async def produce_sync(args: argparse.Namespace) -> dict[str, Any]:
        m = await api.connect(args)
        producer = await m.producer(station_name=args.station, producer_name=rc.PRODUCER_NAME)
        payload = bytearray(rc.make_payload(args.payload))  # memphis-py refuses bytes
        for _ in range(WARMUP):
            await producer.produce(payload)
        n = args.messages
        lat = [0] * n
        clock = time.perf_counter_ns
        produce = producer.produce
        meter = rc.Meter(args.nats_pid)
        meter.start()
        for i in range(n):
            t0 = clock()
            await produce(payload)
            lat[i] = clock() - t0
        meter.stop()
        await m.close()
        return rc.result(args, client, messages=n, meter=meter, latencies_ns=lat, acked=n, extra={"warmup": WARMUP})

    async def produce_nonblocking(args: argparse.Namespace) -> dict[str, Any]:
        m = await api.connect(args)
        producer = await m.producer(station_name=args.station, producer_name=rc.PRODUCER_NAME)
        payload = bytearray(rc.make_payload(args.payload))  # memphis-py refuses bytes
        for _ in range(WARMUP):
            await producer.produce(payload)
        n = args.messages
        produce = producer.produce
        limit = args.batch if args.variant == "limit" else None
        meter = rc.Meter(args.nats_pid)
        meter.start()
        if limit is None:
            for _ in range(n):
                await produce(payload, nonblocking=True)
        else:
            for _ in range(n):
                await produce(payload, nonblocking=True, concurrent_task_limit=limit)
        await _drain(producer)
        if api.fast:
            await producer.flush()  # raises if any message failed
        meter.stop()
        await m.close()
        extra: dict[str, Any] = {"warmup": WARMUP}
        if limit is not None:
            extra["concurrent_task_limit"] = limit
        return rc.result(args, client, messages=n, meter=meter, extra=extra)

    async def produce_batch(args: argparse.Namespace) -> dict[str, Any]:
        m = await api.connect(args)
        producer = await m.producer(station_name=args.station, producer_name=rc.PRODUCER_NAME)
        payload = bytearray(rc.make_payload(args.payload))  # memphis-py refuses bytes
        for _ in range(WARMUP):
            await producer.produce(payload)
        n = args.messages
        size = PIPELINE_BATCH if args.variant == "pipelined" else args.batch
        batch = [payload] * size
        stored = failed = 0
        meter = rc.Meter(args.nats_pid)
        meter.start()
        chunks = []
        left = n
        while left > 0:
            chunks.append(batch if left >= len(batch) else batch[:left])
            left -= len(chunks[-1])

        def count(results: list[Any]) -> None:
            nonlocal stored, failed
            for r in results:
                if r.stored:
                    stored += 1
                else:
                    failed += 1

        if args.variant == "pipelined":
            # The raw reference's pattern: batches of its write (256 messages), as many in
            # flight as fit its window (4,096 messages, memphis-fast's default produce window):
            # the next batch is sent while the acks of the ones before it arrive.
            depth = max(1, PIPELINE_WINDOW // len(batch))
            pending: collections.deque[asyncio.Future[Any]] = collections.deque()
            for chunk in chunks:
                if len(pending) >= depth:
                    count(await pending.popleft())
                pending.append(asyncio.ensure_future(producer.produce_batch(chunk)))
            while pending:
                count(await pending.popleft())
        else:
            for chunk in chunks:
                count(await producer.produce_batch(chunk))
        meter.stop()
        await m.close()
        ok = stored == n and failed == 0
        return rc.result(
            args, client, messages=n, meter=meter, ok=ok, acked=stored, failed=failed,
            error=None if ok else f"{failed} of {n} messages not stored", extra={"warmup": WARMUP, "batch": size},
        )

    async def consume_ack(args: argparse.Namespace) -> dict[str, Any]:
        m = await api.connect(args)
        consumer = await m.consumer(
            station_name=args.station,
            consumer_name="bench-consumer",
            consumer_group=rc.CONSUMER_GROUP,
            batch_size=args.batch,
            pull_interval_ms=1,  # memphis-py's consume() stops at 0 and sleeps this after every batch
        )
        n = args.messages
        received = 0
        nbytes = 0
        extra: dict[str, Any] = {}
        meter = rc.Meter(args.nats_pid)
        if args.variant == "consume":
            done = asyncio.Event()

            async def handler(msgs: list[Any], error: Any, context: Any) -> None:
                nonlocal received, nbytes
                for msg in msgs:
                    nbytes += len(msg.get_data())
                    await msg.ack()
                received += len(msgs)
                if received >= n:
                    done.set()

            meter.start()
            consumer.consume(handler)
            await done.wait()
            await _flush(api, m)
            meter.stop()
        elif args.variant == "async-for":
            # memphis-fast's ``async for msg in consumer`` (batches pulled behind the iterator).
            meter.start()
            async for msg in consumer:
                nbytes += len(msg.get_data())
                await msg.ack()
                received += 1
                if received >= n:
                    break
            await _flush(api, m)
            meter.stop()
        else:
            # fetch(): one batch per call. On several partitions the runner names the partition
            # and asks for at most what is left on it (the preload fills them round-robin), as the
            # Go peers do: a pull for more than a partition holds waits its full expiry
            # (batch_max_time_to_wait_ms) before it returns the rest. The variant "fetch-rr" keeps
            # the client's own round-robin with a fixed batch size, to measure exactly that wait.
            parts = args.partitions
            left = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
            sized = parts > 1 and args.variant not in ("fetch-rr", "fetch-wait")
            # fetch-prefetch: fetch(prefetch=True), the next batch pulled while this one is
            # handled (as the raw reference keeps a second pull outstanding)
            prefetch = {"prefetch": True} if args.variant == "fetch-prefetch" else {}
            if args.variant == "fetch-wait" and hasattr(consumer, "fetch_idle_ms"):
                # (an experiment, not in the bench's plan) memphis-fast's fetch() without its
                # early return on a pause: wait for the full batch up to the pull's expiry
                consumer.fetch_idle_ms = consumer.batch_max_time_to_wait_ms
            clock = time.perf_counter
            short = 0
            short_s = 0.0
            calls = 0
            p = 0
            meter.start()
            while received < n:
                t0 = clock()
                if sized:
                    while left[p] == 0:
                        p = (p + 1) % parts
                    want = min(args.batch, left[p])
                    msgs = await consumer.fetch(batch_size=want, consumer_partition_number=p + 1, **prefetch)
                    left[p] -= len(msgs)
                    p = (p + 1) % parts
                else:
                    want = args.batch
                    msgs = await consumer.fetch(batch_size=want, **prefetch)
                calls += 1
                if len(msgs) < want:
                    short += 1
                    short_s += clock() - t0
                for msg in msgs:
                    nbytes += len(msg.get_data())
                    await msg.ack()
                received += len(msgs)
            await _flush(api, m)
            meter.stop()
            extra["fetch_calls"] = calls
            extra["short_fetches"] = short  # calls that returned fewer messages than asked for
            extra["short_fetch_s"] = round(short_s, 4)  # wall time spent in them
            extra["partition_sized"] = sized
            stats = getattr(consumer, "stats", None)
            if isinstance(stats, dict) and "pulls" in stats:
                extra["pulls"] = stats["pulls"]  # memphis-fast: pull requests sent
        await _close_consumer(api, consumer)
        await m.close()
        ok = received == n and nbytes == n * args.payload
        return rc.result(
            args, client, messages=n, meter=meter, ok=ok, acked=received, extra=extra,
            error=None if ok else f"received {received} messages / {nbytes} bytes, expected {n}",
        )

    async def latency(args: argparse.Namespace) -> dict[str, Any]:
        """One message in flight: nonblocking produce, wait for it in the consume callback."""
        m = await api.connect(args)
        producer = await m.producer(station_name=args.station, producer_name=rc.PRODUCER_NAME)
        consumer = await m.consumer(
            station_name=args.station,
            consumer_name="bench-consumer",
            consumer_group=rc.CONSUMER_GROUP,
            batch_size=1,
            pull_interval_ms=1,
        )
        payload = bytearray(rc.make_payload(args.payload))  # memphis-py refuses bytes
        got = asyncio.Event()
        t_recv = 0
        received = 0

        async def handler(msgs: list[Any], error: Any, context: Any) -> None:
            nonlocal t_recv, received
            if msgs:
                t_recv = time.perf_counter_ns()
                for msg in msgs:
                    await msg.ack()
                received += len(msgs)
                got.set()

        consumer.consume(handler)
        n = args.messages
        lat = [0] * n
        meter = rc.Meter(args.nats_pid)
        meter.start()
        for i in range(n):
            got.clear()
            t0 = time.perf_counter_ns()
            await producer.produce(payload, nonblocking=True)
            await asyncio.wait_for(got.wait(), 30)
            lat[i] = t_recv - t0
        await _drain(producer)
        await _flush(api, m)
        meter.stop()
        await _close_consumer(api, consumer)
        await m.close()
        ok = received == n
        return rc.result(
            args, client, messages=n, meter=meter, latencies_ns=lat, ok=ok, acked=received,
            error=None if ok else f"received {received} of {n}",
        )

    async def schema_json(args: argparse.Namespace) -> dict[str, Any]:
        """Produce dicts (nonblocking) into a station with a JSON schema: validation + encoding."""
        m = await api.connect(args)
        producer = await m.producer(station_name=args.station, producer_name=rc.PRODUCER_NAME)
        msg = dict(SCHEMA_MESSAGE)
        for _ in range(WARMUP):
            await producer.produce(msg)
        n = args.messages
        produce = producer.produce
        meter = rc.Meter(args.nats_pid)
        meter.start()
        for _ in range(n):
            await produce(msg, nonblocking=True)
        await _drain(producer)
        if api.fast:
            await producer.flush()
        meter.stop()
        await m.close()
        return rc.result(args, client, messages=n, meter=meter, extra={"warmup": WARMUP})

    async def memory_bound(args: argparse.Namespace) -> dict[str, Any]:
        return await _memory_bound(api, args)

    out: dict[str, rc.Handler] = {
        "connect": connect,
        "produce-sync": produce_sync,
        "produce-nonblocking": produce_nonblocking,
        "consume-ack": consume_ack,
        "latency": latency,
        "schema-json": schema_json,
        "memory-bound": memory_bound,
    }
    if api.fast:
        out["produce-batch"] = produce_batch
    return out


async def _close_consumer(api: Api, consumer: Any) -> None:
    if api.fast:
        await consumer.stop_consume()
    else:
        task = getattr(consumer, "t_consume", None)
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass


def _wait_stopped(pid: int, timeout: float = 2.0) -> bool:
    """Wait until every thread of ``pid`` is stopped (state ``T`` in ``/proc``), at most
    ``timeout`` seconds; False if they were not (or ``/proc`` cannot tell).

    ``kill(SIGSTOP)`` returns before the process has stopped: the kernel wakes one of its
    threads to take the stop, and on two busy CPUs that thread may wait for a CPU for a
    scheduler tick or more while nats-server's busy threads go on storing and acknowledging
    (a bench run counted 821 produce calls more than the window that way)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            states = []
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                    stat = f.read()
                at = stat.rindex(b") ") + 2  # the state follows the command name's ")"
                states.append(stat[at : at + 1])
        except OSError:
            return False
        if states and all(st in (b"T", b"t") for st in states):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)


async def _memory_bound(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    """nats-server is stopped (SIGSTOP) while a producer keeps calling nonblocking produce.

    memphis-fast must block at its window (at most ``max_inflight`` calls after the stop, once
    every thread of nats-server is stopped, plus the one call in progress; no
    progress while stopped) with RSS within baseline + window bytes + 20 MB, and every
    message must complete after SIGCONT. memphis-py runs the same code for contrast (it has no
    window: every call makes a task)."""
    if not args.nats_pid:
        return rc.failure(args, api.client, "memory-bound needs the nats-server pid (local broker)")
    m = await api.connect(args)
    producer = await m.producer(station_name=args.station, producer_name=rc.PRODUCER_NAME)
    payload = bytearray(rc.make_payload(args.payload))  # memphis-py refuses bytes
    max_inflight = int(getattr(producer, "max_inflight", 0))
    max_bytes = int(getattr(producer, "max_inflight_bytes", 0))
    # Warm up to steady state (a full window in flight, twice) before the baseline.
    warm = max(2 * max_inflight, 10_000)
    for _ in range(warm):
        await producer.produce(payload, nonblocking=True)
    await _drain(producer)
    baseline = rc.rss_bytes()
    calls = 0
    running = True

    async def pump() -> None:
        nonlocal calls
        while running:
            await producer.produce(payload, nonblocking=True)
            calls += 1

    task = asyncio.get_running_loop().create_task(pump())
    samples: list[int] = []
    resumed = False
    try:
        await asyncio.sleep(0.3)
        os.kill(args.nats_pid, signal.SIGSTOP)
        # No await until it has stopped: the pump makes no call meanwhile, so every call
        # counted after this point was made against a stopped server.
        stopped = _wait_stopped(args.nats_pid)
        at_stop = calls
        t_stop = time.monotonic()
        half = t_stop + args.stop_seconds / 2
        at_half = -1
        while time.monotonic() - t_stop < args.stop_seconds:
            samples.append(rc.rss_bytes())
            if at_half < 0 and time.monotonic() >= half:
                at_half = calls
            await asyncio.sleep(0.02)
        at_end = calls
        os.kill(args.nats_pid, signal.SIGCONT)
        resumed = True
        await asyncio.sleep(0.3)
    finally:
        if not resumed:
            os.kill(args.nats_pid, signal.SIGCONT)
        running = False
    await asyncio.wait_for(task, 60)
    t0 = time.monotonic()
    await asyncio.wait_for(_drain(producer), 60)
    if api.fast:
        await producer.flush(timeout=60)
    drain_s = time.monotonic() - t0
    await m.close()
    peak = max(samples) if samples else 0
    per_msg = args.payload + 128  # payload + the HPUB line and the two Memphis headers, generously
    window_bytes = min(max_inflight * per_msg, max_bytes) if max_inflight else 0
    bound = baseline + window_bytes + 20_000_000
    after_stop = at_end - at_stop
    # + 1: the pump may have been suspended inside a call whose message was already published
    # (produce yields now and then after publishing), which then counts after the stop.
    blocked = stopped and max_inflight > 0 and after_stop <= max_inflight + 1 and at_half == at_end
    within = peak <= bound
    extra = {
        "baseline_rss_mb": baseline / 1e6,
        "peak_rss_stopped_mb": peak / 1e6,
        "rss_growth_mb": (peak - baseline) / 1e6,
        "window_messages": max_inflight,
        "window_bytes_mb": window_bytes / 1e6,
        "bound_mb": bound / 1e6,
        "calls_before_stop": at_stop,
        "calls_after_stop": after_stop,
        "progress_second_half": at_end - at_half,
        "blocked": blocked,
        "server_stopped": stopped,
        "within_bound": within,
        "stopped_s": args.stop_seconds,
        "drain_after_resume_s": drain_s,
        "warmup": warm,
        "produced": calls,
    }
    # The bench checks that warmup + produced messages were stored.
    ok = blocked and within if api.fast else True
    err = None
    if not ok:
        if not stopped:
            err = "nats-server did not stop within 2 s of SIGSTOP (every thread in state T)"
        elif not blocked:
            err = (
                f"produce did not block at the window ({after_stop} calls after SIGSTOP, window {max_inflight}, "
                f"{at_end - at_half} in the second half)"
            )
        else:
            err = f"RSS {peak / 1e6:.1f} MB above the bound {bound / 1e6:.1f} MB"
    return rc.result(args, api.client, messages=calls, ok=ok, error=err, acked=calls, extra=extra)
