"""kill -9 of the broker (its nats-server dies with it) and a restart on the same port and data
directory, while a producer keeps producing: sync, nonblocking and batch; with and without
msg_id; down for less and for more than the ack wait. Every message is acknowledged or
reported exactly once; nothing acknowledged is lost; nothing vanishes unreported; with msg_id
nothing is stored twice."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from faults_helpers import FAST_RECONNECT, AckMonitor, Events, Ledger, eventually, payload, read_station

from memphis_fast.broker import LocalBroker
from memphis_fast.exceptions import MemphisError

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

#: ack waits: "short" downtime stays well inside it, "long" downtime outlasts it
ACK_WAIT = {"short": 15, "long": 1}
#: seconds the broker stays dead before it is started again (plus its start-up time)
DEAD_FOR = {"short": 0.0, "long": 2.5}
SYNC_TASKS = 8
BATCH = 50
NONBLOCKING_RATE = 3000  # messages per second (bounded, so the stream stays readable)


async def _produce(mode: str, producer: Any, ledger: Ledger, ack_wait: int, stop: asyncio.Event) -> None:
    counter = iter(range(10**9))

    async def sync_worker() -> None:
        while not stop.is_set():
            i = next(counter)
            ledger.sent.append(i)
            try:
                await producer.produce(payload(ledger.run, i), ack_wait_sec=ack_wait, msg_id=ledger.msg_id(i))
            except MemphisError as err:
                ledger.report_error(i, err)
            else:
                ledger.ack(i)

    async def nonblocking() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            i = next(counter)
            ledger.sent.append(i)
            try:
                await producer.produce(
                    payload(ledger.run, i), ack_wait_sec=ack_wait, nonblocking=True, msg_id=ledger.msg_id(i)
                )
            except MemphisError as err:
                ledger.report_error(i, err)
            ahead = (i + 1) / NONBLOCKING_RATE - (time.monotonic() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def batches() -> None:
        while not stop.is_set():
            idx = [next(counter) for _ in range(BATCH)]
            ledger.sent.extend(idx)
            msg_ids = [ledger.msg_id(i) for i in idx] if ledger.with_msg_id else None
            try:
                res = await producer.produce_batch(
                    [payload(ledger.run, i) for i in idx], ack_wait_sec=ack_wait, msg_ids=msg_ids
                )
            except MemphisError as err:
                for i in idx:
                    ledger.report_error(i, err)
                continue
            assert len(res) == len(idx)
            for i, r in zip(idx, res, strict=True):
                if r.kind == "stored":
                    ledger.ack(i)
                else:
                    ledger.report(i, r.kind, r.reason)
            await asyncio.sleep(0.01)

    if mode == "sync":
        await asyncio.gather(*(sync_worker() for _ in range(SYNC_TASKS)))
    elif mode == "nonblocking":
        await nonblocking()
    else:
        await batches()


async def run_kill(
    broker: LocalBroker, connect: Any, uid: Any, *, mode: str, with_id: bool, down: str
) -> dict[str, Any]:
    events = Events()
    conn = await connect(broker, connection_event_callback=events, **FAST_RECONNECT)
    station = uid("kill")
    await conn.station(station)
    ledger = Ledger(run=secrets.token_hex(4), with_msg_id=with_id)

    def on_failure(f: Any) -> None:
        i = ledger.index_of_msg_id(f.msg_id) if with_id else f.index
        assert i is not None, f
        ledger.report(i, f.kind, f.reason)

    producer = await conn.producer(station, "p", failure_callback=on_failure)
    monitor = AckMonitor(producer).start()
    ack_wait = ACK_WAIT[down]
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_produce(mode, producer, ledger, ack_wait, stop))
    try:
        await eventually(
            lambda: monitor.stats()["acked"] >= 200 or task.done(), 20, what="200 acks before the kill"
        )
        sent_before = len(ledger.sent)
        t_kill = time.monotonic()
        await asyncio.to_thread(broker.kill)
        await events.wait("disconnected", timeout=10)
        if DEAD_FOR[down]:
            await asyncio.sleep(DEAD_FOR[down])
        await asyncio.to_thread(broker.start)
        t_ready = time.monotonic()
        downtime = t_ready - t_kill
        if down == "short":
            assert downtime < ack_wait, f"the broker was down {downtime:.1f} s, not less than the ack wait"
        else:
            assert downtime > ack_wait, f"the broker was down {downtime:.1f} s, not more than the ack wait"
        await events.wait("reconnected", timeout=20)
        await eventually(
            lambda: monitor.first_ack_after(t_ready) is not None or task.done(),
            20,
            what="an ack after the restart",
        )
        t_first_ack = monitor.first_ack_after(t_ready)
        acked_at_recovery = monitor.stats()["acked"]
        await eventually(
            lambda: monitor.stats()["acked"] >= acked_at_recovery + 200 or task.done(),
            20,
            what="200 acks after",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, ack_wait + 30)
        await monitor.stop()
    if mode == "nonblocking":
        await producer.flush(timeout=ack_wait + 30)
        ledger.finish_nonblocking()
    stats = monitor.stats()
    ledger.add_stored(await read_station(broker, station, producer._partitions))
    counts = ledger.check()
    if mode == "nonblocking":
        # The core's own counters agree with what was reported.
        assert stats["failed"] == counts["reported"] - len(ledger.raised), (stats, counts)
    # The client may reconnect before start() notices the broker is ready.
    reconnected = events.first_after("reconnected", t_kill)
    assert reconnected is not None
    return {
        **counts,
        "mode": mode,
        "msg_id": with_id,
        "ack_wait_s": ack_wait,
        "downtime_s": round(downtime, 3),
        "sent_before_kill": sent_before,
        "reconnected_after_kill_s": round(reconnected - t_kill, 3),
        "time_to_recover_s": round((t_first_ack or t_ready) - t_ready, 3),
        "outage_s": round((t_first_ack or t_ready) - t_kill, 3),
        "retried": stats.get("retried", 0),
    }


@pytest.mark.parametrize("down", ["short", "long"], ids=["down-lt-ackwait", "down-gt-ackwait"])
@pytest.mark.parametrize("with_id", [False, True], ids=["no-msg-id", "msg-id"])
@pytest.mark.parametrize("mode", ["sync", "nonblocking", "batch"])
async def test_kill_and_restart_mid_stream(
    fresh_broker: LocalBroker, connect: Any, uid: Any, results: Any, mode: str, with_id: bool, down: str
) -> None:
    figures = await run_kill(fresh_broker, connect, uid, mode=mode, with_id=with_id, down=down)
    results(figures)
    if down == "short" and with_id:
        # Down for less than the ack wait, with msg_id: nothing needs to be reported at all;
        # what was in flight is re-sent after the reconnect and de-duplicated.
        assert figures["reported"] == 0, figures
        assert figures["acknowledged"] == figures["sent"] == figures["stored"], figures
