"""pytest-benchmark suite for the paths of issue 6: memphis-fast, memphis-py 1.3.1, nats-py and
the raw-socket reference client on one local broker.

Not part of the test suite (``testpaths = ["tests"]``); run it explicitly::

    .venv/bin/pytest benches/test_bench_paths.py -p no:randomly --benchmark-columns=median,min,max,rounds \\
        [--benchmark-autosave] [-k "nonblocking"]

Environment: ``MEMPHIS_BENCH_MESSAGES`` (20000), ``MEMPHIS_BENCH_ROUNDS`` (3),
``MEMPHIS_BENCH_PAYLOAD`` (128), ``MEMPHIS_BENCH_PARTITIONS`` (1).

Each round gets a fresh memory-storage station (setup, not timed); the timed target is the
path's work only (the client is connected and its producer/consumer created before); the
round's teardown checks on the broker that every message was stored, or received and acked.
``extra_info`` holds msgs/s of the median round. Unlike ``memphis-fast bench``, all clients
share this process; use ``memphis-fast bench`` (a fresh process per client and run) for the
cross-client figures, and this suite to track one path over time (``--benchmark-compare``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import memphis
import nats
import pytest

import memphis_fast
from memphis_fast.bench import runner_common as rc
from memphis_fast.bench import runner_raw as raw
from memphis_fast.bench.cli import JSON_SCHEMA, SCHEMA_NAME
from memphis_fast.bench.runner_memphis_api import SCHEMA_MESSAGE, Api, _memory_bound

pytestmark = [
    pytest.mark.benchmark(group="issue-6", disable_gc=False, warmup=False),
    # memphis-py and nats-py warn from their own code (deprecated asyncio APIs).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.timeout(600),
]

MESSAGES = int(os.environ.get("MEMPHIS_BENCH_MESSAGES", "20000"))
ROUNDS = int(os.environ.get("MEMPHIS_BENCH_ROUNDS", "3"))
PAYLOAD = int(os.environ.get("MEMPHIS_BENCH_PAYLOAD", "128"))
PARTITIONS = int(os.environ.get("MEMPHIS_BENCH_PARTITIONS", "1"))
MODULES = {"memphis-fast": memphis_fast, "memphis-py": memphis}
Env = Any  # benches/conftest.py: the session's broker, event loop and control connection
CG = rc.CONSUMER_GROUP


def payload() -> bytearray:
    return bytearray(rc.make_payload(PAYLOAD))  # memphis-py refuses bytes


async def memphis_connect(env: Env, client: str, host: str | None = None) -> Any:
    m = MODULES[client].Memphis()
    await m.connect(**env.connect_kwargs(host))
    return m


async def nats_connect(env: Env, host: str | None = None) -> Any:
    kw = env.broker.nats_kwargs()
    if host:
        kw["servers"] = [f"nats://{host}:{env.broker.port}"]
    return await nats.connect(**kw, allow_reconnect=False)


def raw_connect(env: Env) -> raw.RawClient:
    b = env.broker
    return raw.RawClient(b.host, b.port, user=b.nats_user, password=b.password)


def subjects(station: str) -> list[str]:
    return [f"{s}.final" for s in rc.stream_names(station, PARTITIONS)]


def check_stored(env: Env, station: str, expect: int) -> None:
    deadline = time.monotonic() + 3
    while True:
        stored = env.run(env.control.stored(station, PARTITIONS))
        if stored >= expect or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert stored == expect, f"{stored} messages stored, expected {expect}"


def check_acked(env: Env, station: str, expect: int) -> None:
    st = env.run(env.control.wait_acked(station, PARTITIONS, CG, expect))
    assert st["ack_floor"] == expect and st["ack_pending"] == 0, st


def rounds(
    benchmark: Any,
    env: Env,
    tag: str,
    prepare: Callable[[str], dict[str, Any]],
    work: Callable[[dict[str, Any]], None],
    verify: Callable[[dict[str, Any]], None],
    *,
    schema: str = "",
    n_rounds: int = ROUNDS,
) -> None:
    """Fresh station + ``prepare`` (untimed), ``work`` (timed), ``verify`` + cleanup (untimed)."""
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        state.clear()
        station = env.new_station(tag, schema=schema)
        state["station"] = station
        state.update(prepare(station))
        return (), {}

    def teardown(*_: Any) -> None:
        try:
            verify(state)
        finally:
            env.delete_station(state["station"])

    benchmark.pedantic(lambda: work(state), setup=setup, teardown=teardown, rounds=n_rounds, iterations=1)


# -- produce ----------------------------------------------------------------------------------
PRODUCE_CLIENTS = ["memphis-fast", "memphis-py", "nats-py", "raw"]


@pytest.mark.parametrize("client", PRODUCE_CLIENTS)
def test_produce_sync(benchmark: Any, env: Env, report_rate: Callable[[int], None], client: str) -> None:
    n = max(100, MESSAGES // 10)
    _produce(benchmark, env, client, n, nonblocking=False)
    report_rate(n)


@pytest.mark.parametrize("client", PRODUCE_CLIENTS)
def test_produce_nonblocking(benchmark: Any, env: Env, report_rate: Callable[[int], None], client: str) -> None:
    n = MESSAGES // 4 if client == "memphis-py" else MESSAGES
    _produce(benchmark, env, client, n, nonblocking=True)
    report_rate(n)


def _produce(benchmark: Any, env: Env, client: str, n: int, *, nonblocking: bool) -> None:
    data = payload()
    conn: dict[str, Any] = {}
    if client in MODULES:
        conn["m"] = env.run(memphis_connect(env, client))
    elif client == "nats-py":
        conn["nc"] = env.run(nats_connect(env))

    def prepare(station: str) -> dict[str, Any]:
        if client in MODULES:
            return {"producer": env.run(conn["m"].producer(station_name=station, producer_name=rc.PRODUCER_NAME))}
        if client == "nats-py":
            return {"subjects": subjects(station), "headers": rc.memphis_headers()}
        hdrs = rc.memphis_headers()
        frames = raw.Frames(subjects(station), hdrs, bytes(data))
        c = raw_connect(env)
        c.sock.sendall(b"SUB " + raw.ACK_INBOX + b".* 1\r\n")
        c.ping()
        return {"frames": frames, "raw": c}

    async def memphis_work(producer: Any) -> None:
        if nonblocking:
            for _ in range(n):
                await producer.produce(data, nonblocking=True)
            while len(producer.background_tasks) > 0:
                await asyncio.sleep(0.001)
        else:
            for _ in range(n):
                await producer.produce(data)

    async def nats_work(js: Any, subs: list[str], hdrs: dict[str, str]) -> None:
        k = len(subs)
        if nonblocking:
            for i in range(n):
                await js.publish_async(subs[i % k], bytes(data), headers=hdrs)
            await js.publish_async_completed()
        else:
            for i in range(n):
                await js.publish(subs[i % k], bytes(data), headers=hdrs)

    def work(state: dict[str, Any]) -> None:
        if client in MODULES:
            env.run(memphis_work(state["producer"]))
        elif client == "nats-py":
            env.run(nats_work(conn["nc"].jetstream(), state["subjects"], state["headers"]))
        elif nonblocking:
            state["counter"] = raw.publish_pipelined(state["raw"], state["frames"], n)
        else:
            c, frames = state["raw"], state["frames"]
            counter = raw.AckCounter(c)
            for i in range(n):
                c.sock.sendall(frames.chunk(i, 1))
                while counter.done <= i:
                    counter.read()
            state["counter"] = counter

    def verify(state: dict[str, Any]) -> None:
        if "raw" in state:
            state["raw"].close()
            assert state["counter"].errors == 0
        check_stored(env, state["station"], n)

    try:
        rounds(benchmark, env, f"{client}-produce", prepare, work, verify)
    finally:
        if "m" in conn:
            env.run(conn["m"].close())
        if "nc" in conn:
            env.run(conn["nc"].close())


def test_produce_batch(benchmark: Any, env: Env, report_rate: Callable[[int], None]) -> None:
    data = payload()
    m = env.run(memphis_connect(env, "memphis-fast"))
    n = MESSAGES

    def prepare(station: str) -> dict[str, Any]:
        return {"producer": env.run(m.producer(station_name=station, producer_name=rc.PRODUCER_NAME))}

    async def go(producer: Any) -> int:
        batch = [data] * 1000
        stored = 0
        for start in range(0, n, len(batch)):
            chunk = batch[: min(len(batch), n - start)]
            stored += sum(1 for r in await producer.produce_batch(chunk) if r.stored)
        return stored

    def work(state: dict[str, Any]) -> None:
        state["stored"] = env.run(go(state["producer"]))

    def verify(state: dict[str, Any]) -> None:
        assert state["stored"] == n
        check_stored(env, state["station"], n)

    try:
        rounds(benchmark, env, "batch", prepare, work, verify)
    finally:
        env.run(m.close())
    report_rate(n)


# -- consume ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "client,variant",
    [("memphis-fast", "consume"), ("memphis-fast", "fetch"), ("memphis-py", "fetch"), ("memphis-py", "consume"), ("nats-py", "fetch"), ("raw", "pull")],
)
def test_consume_ack(benchmark: Any, env: Env, report_rate: Callable[[int], None], client: str, variant: str) -> None:
    n = MESSAGES // 4 if client == "memphis-py" else MESSAGES
    b = env.broker
    conn: dict[str, Any] = {}
    if client in MODULES:
        conn["m"] = env.run(memphis_connect(env, client))
    elif client == "nats-py":
        conn["nc"] = env.run(nats_connect(env))

    def prepare(station: str) -> dict[str, Any]:
        env.run(env.control.create_consumer_group(station, CG))
        stored = raw.preload(b.host, b.port, station, PARTITIONS, n, rc.make_payload(PAYLOAD), user=b.nats_user, password=b.password)
        assert stored == n
        if client in MODULES:
            consumer = env.run(
                conn["m"].consumer(station_name=station, consumer_name="pb-consumer", consumer_group=CG, batch_size=1000, pull_interval_ms=1)
            )
            return {"consumer": consumer}
        if client == "nats-py":
            js = conn["nc"].jetstream()
            durable = rc.internal_name(CG)
            subs = [env.run(js.pull_subscribe_bind(durable=durable, stream=s)) for s in rc.stream_names(station, PARTITIONS)]
            return {"subs": subs}
        return {}

    async def memphis_work(consumer: Any) -> int:
        received = 0
        if variant == "consume":
            done = asyncio.Event()

            async def handler(msgs: list[Any], error: Any, context: Any) -> None:
                nonlocal received
                for msg in msgs:
                    msg.get_data()
                    await msg.ack()
                received += len(msgs)
                if received >= n:
                    done.set()

            consumer.consume(handler)
            await done.wait()
        else:
            while received < n:
                msgs = await consumer.fetch(batch_size=1000)
                for msg in msgs:
                    msg.get_data()
                    await msg.ack()
                received += len(msgs)
        await conn["m"].broker_manager.flush()
        return received

    async def nats_work(subs: list[Any]) -> int:
        received = 0
        i = 0
        while received < n:
            try:
                msgs = await subs[i % len(subs)].fetch(1000, timeout=5)
            except nats.errors.TimeoutError:
                msgs = []
            i += 1
            for msg in msgs:
                await msg.ack()
            received += len(msgs)
        await conn["nc"].flush()
        return received

    def work(state: dict[str, Any]) -> None:
        if client in MODULES:
            state["received"] = env.run(memphis_work(state["consumer"]))
        elif client == "nats-py":
            state["received"] = env.run(nats_work(state["subs"]))
        else:
            args = argparse.Namespace(
                host=b.host, port=b.port, token="", user=b.username, account_id=1, password=b.password,
                station=state["station"], partitions=PARTITIONS, batch=1000, messages=n, nats_pid=0,
                path="consume-ack", variant="", payload=PAYLOAD,
            )
            res = asyncio.run(raw.consume_ack(args))
            state["received"] = res["acked"]

    def verify(state: dict[str, Any]) -> None:
        consumer = state.get("consumer")
        if consumer is not None:
            if client == "memphis-fast":
                env.run(consumer.stop_consume())
            elif getattr(consumer, "t_consume", None) is not None:
                consumer.t_consume.cancel()
        assert state["received"] == n
        check_acked(env, state["station"], n)

    try:
        rounds(benchmark, env, f"{client}-consume", prepare, work, verify)
    finally:
        if "m" in conn:
            env.run(conn["m"].close())
        if "nc" in conn:
            env.run(conn["nc"].close())
    report_rate(n)


# -- latency, schema, connect, memory ---------------------------------------------------------
@pytest.mark.parametrize("client", ["memphis-fast", "memphis-py"])
def test_latency(benchmark: Any, env: Env, client: str) -> None:
    """n round trips produce -> consume callback, one message in flight (the time per round is
    n round trips; p50/p99 of single round trips go to extra_info)."""
    n = max(50, MESSAGES // 50)
    data = payload()
    m = env.run(memphis_connect(env, client))
    lat: list[int] = []

    def prepare(station: str) -> dict[str, Any]:
        producer = env.run(m.producer(station_name=station, producer_name=rc.PRODUCER_NAME))
        consumer = env.run(m.consumer(station_name=station, consumer_name="pb-lat", consumer_group=CG, batch_size=1, pull_interval_ms=1))
        got = asyncio.Event()
        box = {"t": 0, "n": 0}

        async def handler(msgs: list[Any], error: Any, context: Any) -> None:
            if msgs:
                box["t"] = time.perf_counter_ns()
                for msg in msgs:
                    await msg.ack()
                box["n"] += len(msgs)
                got.set()

        async def start() -> None:
            consumer.consume(handler)

        env.run(start())
        return {"producer": producer, "consumer": consumer, "got": got, "box": box}

    async def go(state: dict[str, Any]) -> None:
        got, box, producer = state["got"], state["box"], state["producer"]
        for _ in range(n):
            got.clear()
            t0 = time.perf_counter_ns()
            await producer.produce(data, nonblocking=True)
            await asyncio.wait_for(got.wait(), 30)
            lat.append(box["t"] - t0)

    def verify(state: dict[str, Any]) -> None:
        consumer = state["consumer"]
        if client == "memphis-fast":
            env.run(consumer.stop_consume())
        else:
            consumer.t_consume.cancel()
        assert state["box"]["n"] == n
        check_stored(env, state["station"], n)

    try:
        rounds(benchmark, env, f"{client}-latency", prepare, lambda s: env.run(go(s)), verify)
    finally:
        env.run(m.close())
    lat.sort()
    benchmark.extra_info["p50_us"] = rc.percentile(lat, 0.5) / 1000 if lat else None  # type: ignore[operator]
    benchmark.extra_info["p99_us"] = rc.percentile(lat, 0.99) / 1000 if lat else None  # type: ignore[operator]


@pytest.mark.parametrize("client", ["memphis-fast", "memphis-py"])
def test_schema_json(benchmark: Any, env: Env, report_rate: Callable[[int], None], client: str) -> None:
    n = max(100, MESSAGES // (100 if client == "memphis-py" else 10))
    env.run(env.control.create_schema(SCHEMA_NAME, "json", JSON_SCHEMA))
    m = env.run(memphis_connect(env, client))

    def prepare(station: str) -> dict[str, Any]:
        return {"producer": env.run(m.producer(station_name=station, producer_name=rc.PRODUCER_NAME))}

    async def go(producer: Any) -> None:
        msg = dict(SCHEMA_MESSAGE)
        for _ in range(n):
            await producer.produce(msg, nonblocking=True)
        while len(producer.background_tasks) > 0:
            await asyncio.sleep(0.001)

    try:
        rounds(
            benchmark, env, f"{client}-schema", prepare, lambda s: env.run(go(s["producer"])),
            lambda s: check_stored(env, s["station"], n), schema=SCHEMA_NAME,
        )
    finally:
        env.run(m.close())
    report_rate(n)


@pytest.mark.parametrize("client", ["memphis-fast", "memphis-py", "nats-py", "raw"])
def test_connect(benchmark: Any, env: Env, client: str) -> None:
    """Connect in password mode to host ``localhost`` (memphis-py sleeps 1 s there: 3 rounds)."""
    opened: list[Any] = []

    def connect() -> None:
        if client in MODULES:
            opened.append(env.run(memphis_connect(env, client, "localhost")))
        elif client == "nats-py":
            opened.append(env.run(nats_connect(env, "localhost")))
        else:
            b = env.broker
            opened.append(raw.RawClient("localhost", b.port, user=b.nats_user, password=b.password))

    def close(*_: Any) -> None:
        c = opened.pop()
        if isinstance(c, raw.RawClient):
            c.close()
        else:
            env.run(c.close())

    benchmark.pedantic(connect, teardown=close, rounds=3 if client == "memphis-py" else 20, iterations=1)


def test_memory_bound(benchmark: Any, env: Env) -> None:
    """nats-server SIGSTOPped under nonblocking produce: memphis-fast blocks at its window, RSS
    stays within baseline + window + 20 MB, and every message is stored after SIGCONT."""
    b = env.broker
    station = env.new_station("memory")
    args = argparse.Namespace(
        host=b.host, port=b.port, user=b.username, password=b.password, token="", account_id=1,
        station=station, payload=PAYLOAD, nats_pid=b.nats_pid, stop_seconds=2.0, path="memory-bound", variant="", partitions=PARTITIONS,
    )
    box: dict[str, Any] = {}

    def go() -> None:
        box["res"] = env.run(_memory_bound(Api("memphis-fast", memphis_fast), args))

    try:
        benchmark.pedantic(go, rounds=1, iterations=1)
        res = box["res"]
        benchmark.extra_info.update(res["extra"])
        assert res["ok"], res["error"]
        check_stored(env, station, res["extra"]["produced"] + res["extra"]["warmup"])
    finally:
        env.delete_station(station)
