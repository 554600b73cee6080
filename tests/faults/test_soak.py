"""A soak: a nonblocking producer (with msg_id) and a consumer at a steady rate for a while,
sampling the process's RSS. Memory stays flat after warm-up; every message is acknowledged,
stored once and consumed. The test's own book-keeping is preallocated (a bytearray of
delivery marks, counters), so what grows is the client.

CI runs 15 s; ``MEMPHIS_FAST_FULL=1`` runs the full 60 s
(``MEMPHIS_FAST_FULL=1 .venv/bin/python -m pytest -m soak tests/faults``)."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from typing import Any

import nats
import pytest
from faults_helpers import FAST_RECONNECT, FULL, AckMonitor, eventually, payload, rss_bytes

from memphis_fast import _subjects as subjects
from memphis_fast.broker import LocalBroker

DURATION = 60.0 if FULL else 15.0
RATE = 3000  # messages per second
pytestmark = [pytest.mark.faults, pytest.mark.soak, pytest.mark.timeout(int(DURATION) + 90)]

#: allowed RSS growth between the end of warm-up and the end of the run
GROWTH_BUDGET = 4 * 1024 * 1024


async def test_soak_memory_stays_flat(broker: LocalBroker, connect: Any, uid: Any, results: Any) -> None:
    conn = await connect(broker, **FAST_RECONNECT)
    station = uid("soak")
    run = secrets.token_hex(4)
    capacity = int(RATE * DURATION * 1.5) + 1000
    marks = bytearray(capacity)  # deliveries per message index (saturating at 255)
    counters = {"consumed": 0, "foreign": 0}
    failures: list[Any] = []
    prefix = run.encode() + b":"

    async def handle(msgs: list[Any], error: Any, context: Any) -> None:
        for m in msgs:
            data = bytes(m.get_data())
            if not data.startswith(prefix):
                counters["foreign"] += 1
            else:
                i = int(data.split(b":")[1])
                marks[i] = min(255, marks[i] + 1)
            counters["consumed"] += 1
            await m.ack()

    await conn.station(station)
    consumer = await conn.consumer(
        station, "soak-reader", batch_size=500, pull_interval_ms=20, batch_max_time_to_wait_ms=100
    )
    consumer.consume(handle)
    producer = await conn.producer(station, "p", failure_callback=failures.append)
    monitor = AckMonitor(producer)
    samples: list[tuple[float, int]] = []
    sent = 0
    t0 = time.monotonic()
    next_sample = t0
    while True:
        now = time.monotonic()
        if now - t0 >= DURATION or sent >= capacity:
            break
        if now >= next_sample:
            samples.append((now - t0, rss_bytes()))
            next_sample += 0.5
        await producer.produce(payload(run, sent), nonblocking=True, msg_id=f"{run}-{sent}")
        sent += 1
        ahead = sent / RATE - (time.monotonic() - t0)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await producer.flush(timeout=30)
    acked = monitor.stats()["acked"]
    await eventually(lambda: counters["consumed"] >= sent, 30, what="everything consumed")
    await consumer.stop_consume()
    nc = await nats.connect(**broker.nats_kwargs(), allow_reconnect=False)
    try:
        streams = subjects.station_streams(station, producer._partitions)
        stored = 0
        for s in streams:
            stored += (await nc.jetstream().stream_info(s)).state.messages
    finally:
        await nc.close()

    consumed_unique = sum(1 for i in range(sent) if marks[i])
    redelivered = sum(marks[i] - 1 for i in range(sent) if marks[i] > 1)
    warm = DURATION * 0.25
    after = [r for t, r in samples if t >= warm]
    quarter = max(1, len(after) // 4)
    growth = statistics.median(after[-quarter:]) - statistics.median(after[:quarter])
    figures = {
        "sent": sent,
        "acknowledged": acked,
        "reported": len(failures),
        "stored": stored,
        "lost": max(0, acked - stored),
        "unreported": max(0, sent - acked - len(failures)),
        "duplicates": max(0, stored - sent),
        "consumed_unique": consumed_unique,
        "consumed_total": counters["consumed"],
        "redelivered": redelivered,
        "duration_s": DURATION,
        "rate_per_s": RATE,
        "rss_start_bytes": samples[0][1],
        "rss_after_warmup_bytes": after[0],
        "rss_end_bytes": samples[-1][1],
        "rss_max_bytes": max(r for _, r in samples),
        "rss_growth_after_warmup_bytes": int(growth),
        "rss_samples": len(samples),
    }
    results(figures)
    assert not failures, failures[:3]
    assert counters["foreign"] == 0
    assert acked == sent == stored, figures
    assert consumed_unique == sent, figures
    assert sent > RATE * DURATION * 0.5, figures
    assert growth < GROWTH_BUDGET, f"RSS grew {growth / 2**20:.1f} MiB after warm-up"
