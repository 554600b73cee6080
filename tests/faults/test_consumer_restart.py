"""A consumer group (two consumers on two connections) across a kill -9 and restart of the
broker: every stored message is delivered to the group at least once, the acks after the
restart count (nothing stays pending), and nothing that was not produced shows up.

Redeliveries are expected and measured: a message whose ack was in flight comes again after
``max_ack_time_ms``, and nats-server writes a consumer's ack state to disk asynchronously, so a
kill -9 can also forget acks it had received (messages acknowledged shortly before the crash
are delivered again)."""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from typing import Any

import nats
import pytest
from faults_helpers import FAST_RECONNECT, Events, Ledger, eventually, payload, read_station

from memphis_fast import _subjects as subjects
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

N = 3000


async def test_consumer_group_across_a_broker_restart(
    fresh_broker: LocalBroker, connect: Any, uid: Any, results: Any
) -> None:
    station, group = uid("group"), "workers"
    producing = await connect(fresh_broker, **FAST_RECONNECT)
    await producing.station(station)
    producer = await producing.producer(station, "p")
    ledger = Ledger(secrets.token_hex(4), with_msg_id=True)
    for start in range(0, N, 500):
        idx = list(range(start, start + 500))
        ledger.sent.extend(idx)
        res = await producer.produce_batch(
            [payload(ledger.run, i) for i in idx], msg_ids=[ledger.msg_id(i) for i in idx]
        )
        for i, r in zip(idx, res, strict=True):
            assert r.kind == "stored", r
            ledger.ack(i)

    deliveries: collections.Counter[int] = collections.Counter()
    per_consumer: collections.Counter[str] = collections.Counter()
    delivered_at: list[float] = []
    errors: list[Any] = []

    def handler(name: str) -> Any:
        async def handle(msgs: list[Any], error: Any, context: Any) -> None:
            if error is not None:
                errors.append(error)
            for m in msgs:
                data = bytes(m.get_data())
                i = int(data.split(b":")[1]) if data.startswith(ledger.run.encode()) else -1
                deliveries[i] += 1
                per_consumer[name] += 1
                delivered_at.append(time.monotonic())
                await m.ack()
            # A worker that takes its time (about 400 messages/s each), so the crash lands
            # in the middle of the run.
            await asyncio.sleep(0.05)

        return handle

    events = [Events(), Events()]
    consumers = []
    for k in range(2):
        c = await connect(fresh_broker, connection_event_callback=events[k], **FAST_RECONNECT)
        consumer = await c.consumer(
            station,
            f"worker-{k}",
            consumer_group=group,
            batch_size=20,
            pull_interval_ms=20,
            batch_max_time_to_wait_ms=200,
            max_ack_time_ms=3000,
            max_msg_deliveries=10,
        )
        consumer.consume(handler(f"worker-{k}"))
        consumers.append(consumer)

    await eventually(lambda: len(deliveries) >= N // 3, 30, what="a third delivered before the kill")
    stream = subjects.stream_name(station, producer._partitions[0]) if producer._partitions else station
    # What the broker knew just before the crash: how far the group's acks had got.
    nc = await nats.connect(**fresh_broker.nats_kwargs(), allow_reconnect=False)
    try:
        info = await nc.jetstream().consumer_info(stream, subjects.durable_name(group))
        ack_floor_before_kill = info.ack_floor.stream_seq if info.ack_floor else 0
    finally:
        await nc.close()
    before_kill = len(deliveries)
    t_kill = time.monotonic()
    await asyncio.to_thread(fresh_broker.kill)
    when_killed = sum(deliveries.values())
    for e in events:
        await e.wait("disconnected", timeout=10)
    await asyncio.to_thread(fresh_broker.start)
    t_ready = time.monotonic()
    await eventually(lambda: len(deliveries) >= N, 60, what=f"all {N} delivered to the group")
    first_after = next((t for t in delivered_at if t >= t_ready), None)
    t_all = time.monotonic()
    for consumer in consumers:
        await consumer.stop_consume()

    # Every ack reached the broker: the group's durable has nothing pending.
    nc = await nats.connect(**fresh_broker.nats_kwargs(), allow_reconnect=False)
    try:
        js = nc.jetstream()

        async def settled() -> bool:
            info = await js.consumer_info(stream, subjects.durable_name(group))
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(settled, 20, what="no message pending for the group")
    finally:
        await nc.close()

    ledger.add_stored(await read_station(fresh_broker, station, producer._partitions))
    counts = ledger.check()
    redelivered = sum(n - 1 for n in deliveries.values())
    figures = {
        **counts,
        "delivered_unique": len([i for i in deliveries if i >= 0]),
        "delivered_total": sum(deliveries.values()),
        "redelivered": redelivered,
        "delivered_before_kill": before_kill,
        "delivered_when_killed": when_killed,
        "server_ack_floor_before_kill": ack_floor_before_kill,
        "per_consumer": dict(per_consumer),
        "downtime_s": round(t_ready - t_kill, 3),
        "time_to_recover_s": round((first_after or t_ready) - t_ready, 3),
        "all_delivered_after_ready_s": round(t_all - t_ready, 3),
        "consumer_errors": len(errors),
    }
    results(figures)
    assert -1 not in deliveries, "a message that was not produced was delivered"
    assert set(deliveries) == set(range(N)), figures
    assert counts["stored"] == N and counts["duplicates"] == 0, counts
