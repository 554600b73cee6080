"""Consuming: callback errors (B7), pull pacing (P1, B8), empty-pull errors, stop/restart,
reconnects (R1, go#83), the error handler, DLS delivery (B10), in-progress acks, redelivery
count, prefetch bounds (P7), destroy releasing subscriptions (R2), and the Message API (B9,
B13). Pacing is asserted on ``consumer.stats`` and on the pull requests seen on the wire,
never on elapsed time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import memphis as mpy
import pytest
from client_helpers import (
    Collector,
    R,
    TcpProxy,
    consumer_info,
    eventually,
    fetch_exactly,
    raw_subscription,
)

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


async def _station_with(conn: Any, name: str, n: int, **station_kw: Any) -> Any:
    await conn.station(name, **station_kw)
    producer = await conn.producer(name, "p")
    for i in range(n):
        await producer.produce(f"m{i}".encode(), nonblocking=True)
    await producer.flush()
    return producer


# -- callback errors ----------------------------------------------------------------------------
async def test_callback_exception_is_reported_and_consumption_goes_on(
    connect: Any, connect_py: Any, uid: Any
) -> None:
    """B7: an exception in the callback goes to the error handler and the next batches still
    arrive. memphis-py's consume task dies with it."""
    name = uid("cb-error")
    conn = await connect()
    producer = await _station_with(conn, name, 1)
    errors: list[Any] = []
    consumer = await conn.consumer(name, "c", batch_size=1, error_callback=errors.append)
    seen: list[bytes] = []

    async def callback(msgs: list[Any], error: Any, context: Any) -> None:
        for m in msgs:
            seen.append(m.data)
            await m.ack()
        if seen == [b"m0"]:
            raise ValueError("boom in the callback")

    consumer.consume(callback)
    await eventually(lambda: errors)
    assert isinstance(errors[0], mf.MemphisError) and "boom in the callback" in errors[0].message
    await producer.produce(b"after the error")
    await eventually(lambda: seen == [b"m0", b"after the error"])
    assert consumer.t_consume is not None and not consumer.t_consume.done()

    py = await connect_py()
    py_consumer = await py.consumer(name, "py-c", batch_size=1, timeout_retries=R)

    async def py_callback(msgs: list[Any], error: Any, context: Any) -> None:
        raise ValueError("boom")

    py_consumer.consume(py_callback)
    await eventually(lambda: py_consumer.t_consume.done())
    assert isinstance(py_consumer.t_consume.exception(), mpy.MemphisError)  # consumption is over


async def test_bad_partition_arguments_raise_in_consume(connect: Any, uid: Any) -> None:
    """B7: memphis-py raised these inside its background task, which died silently."""
    name = uid("parts")
    conn = await connect()
    await conn.station(name, partitions_number=3)
    consumer = await conn.consumer(name, "c")
    with pytest.raises(mf.MemphisError, match="both partition number and partition key"):
        consumer.consume(Collector(), consumer_partition_key="k", consumer_partition_number=1)
    with pytest.raises(mf.MemphisError, match="out of range"):
        consumer.consume(Collector(), consumer_partition_number=4)
    assert consumer.t_consume is None


# -- pacing -------------------------------------------------------------------------------------
async def test_pull_interval_applies_only_after_an_empty_pull(connect: Any, uid: Any) -> None:
    """P1: memphis-py slept ``pull_interval_ms`` after every batch (10 msg/s by default). Here
    a consumer with a 60 s interval drains 40 messages in batches of 5 without a single idle
    sleep, and pauses (once) only when a pull came back empty."""
    name = uid("pacing")
    conn = await connect()
    await _station_with(conn, name, 40)
    consumer = await conn.consumer(name, "c", batch_size=5, pull_interval_ms=60_000)
    at_last_message: dict[str, int] = {}
    got: list[bytes] = []
    windows: list[tuple[int, int]] = []  # (pulls waiting, messages buffered or on their way)

    async def callback(msgs: list[Any], error: Any, context: Any) -> None:
        (f,) = consumer._fetchers.values()
        pulls, outstanding = f.outstanding()
        windows.append((pulls, f.buffered + outstanding))
        for m in msgs:
            got.append(m.data)
            await m.ack()
        if len(got) == 40:
            at_last_message.update(consumer.stats)

    consumer.consume(callback)
    await eventually(lambda: at_last_message)
    assert got == [f"m{i}".encode() for i in range(40)]
    assert at_last_message["idle_sleeps"] == 0 and at_last_message["empty_pulls"] == 0
    # Every pull asks for a whole batch of 5: 8 pulls carried the 40 messages, and at most two
    # more (pipelined) are waiting, however the deliveries were split across socket reads.
    assert at_last_message["pulls"] <= 40 // 5 + 2
    assert all(p <= 2 and n <= 2 * 5 for p, n in windows), windows
    await eventually(lambda: consumer.stats["idle_sleeps"] == 1)
    assert consumer.stats["empty_pulls"] >= 1
    await consumer.stop_consume()


async def test_idle_consumer_pulls_once_per_interval(connect: Any, uid: Any) -> None:
    """On an empty station every idle sleep follows an empty pull, and each wake-up sends one
    pull: no busy loop, no pull storm."""
    name = uid("idle")
    conn = await connect()
    await conn.station(name)
    consumer = await conn.consumer(name, "c", pull_interval_ms=20)
    collector = Collector()
    consumer.consume(collector)
    await eventually(lambda: consumer.stats["idle_sleeps"] >= 5)
    await consumer.stop_consume()
    s = consumer.stats
    assert s["idle_sleeps"] <= s["empty_pulls"] <= s["pulls"] <= s["idle_sleeps"] + 2
    assert collector.calls == 0  # silent on empty pulls by default (like the Go client)


async def test_timeout_error_on_empty_restores_memphis_py_habit(connect: Any, uid: Any) -> None:
    """``consume(..., timeout_error_on_empty=True)``: the callback gets
    ``([], MemphisError("Memphis: TimeoutError"), context)`` after each empty pull."""
    name = uid("timeout-err")
    conn = await connect()
    await conn.station(name)
    consumer = await conn.consumer(name, "c", pull_interval_ms=20)
    consumer.set_context({"who": "me"})
    calls: list[tuple[list[Any], Any, Any]] = []

    async def callback(msgs: list[Any], error: Any, context: Any) -> None:
        calls.append((msgs, error, context))

    consumer.consume(callback, timeout_error_on_empty=True)
    await eventually(lambda: len(calls) >= 3)
    await consumer.stop_consume()
    for msgs, error, context in calls:
        assert msgs == [] and context == {"who": "me"}
        assert type(error) is mf.MemphisError and str(error) == "memphis: Memphis: TimeoutError"
    assert len(calls) <= consumer.stats["empty_pulls"]


async def test_batch_max_time_is_the_pull_expiry(connect: Any, connect_py: Any, nc: Any, uid: Any) -> None:
    """B8: ``batch_max_time_to_wait_ms`` is the pull request's ``expires`` (memphis-py always
    asked nats-py's default 5 s)."""
    name = uid("expires")
    conn = await connect()
    await _station_with(conn, name, 1)
    consumer = await conn.consumer(name, "c", batch_max_time_to_wait_ms=300)
    py = await connect_py()
    py_consumer = await py.consumer(name, "py-c", batch_max_time_to_wait_ms=300, timeout_retries=R)
    async with raw_subscription(nc, f"$JS.API.CONSUMER.MSG.NEXT.{name}$1.*") as requests:
        assert len(await consumer.fetch(batch_size=1)) == 1
        assert len(await py_consumer.fetch(batch_size=1)) == 1
        await eventually(lambda: len(requests) >= 2)
    by_durable = {r.subject.rsplit(".", 1)[1]: json.loads(r.data) for r in requests}
    assert by_durable["c"]["expires"] == 300_000_000
    assert by_durable["py-c"]["expires"] >= 4_000_000_000


# -- lifecycle ----------------------------------------------------------------------------------
async def test_stop_consume_then_consume_again(connect: Any, uid: Any) -> None:
    """R4 (Go ``StopConsume``): stop without destroying; messages produced meanwhile are
    waiting for the next consume() (buffered ones were nacked back to the group)."""
    name = uid("stop")
    conn = await connect()
    producer = await _station_with(conn, name, 3)
    consumer = await conn.consumer(name, "c", pull_interval_ms=20)
    first = Collector()
    consumer.consume(first)
    await eventually(lambda: len(first.msgs) == 3)
    with pytest.raises(mf.MemphisError, match="already consuming"):
        consumer.consume(Collector())
    await consumer.stop_consume()
    assert consumer.t_consume is None
    for i in range(3, 6):
        await producer.produce(f"m{i}".encode())
    second = Collector()
    consumer.consume(second)
    await eventually(lambda: len(second.msgs) == 3)
    assert first.data() == [b"m0", b"m1", b"m2"] and second.data() == [b"m3", b"m4", b"m5"]
    assert [m.get_delivery_count() for m in second.msgs] == [1, 1, 1]


@pytest.mark.parametrize("how", ["stop_consume", "destroy", "close"])
async def test_stopping_from_inside_the_callback(how: str, connect: Any, uid: Any) -> None:
    """A callback may stop its own consumer (or close the connection) and return normally."""
    name = uid("self-stop")
    conn = await connect()
    await _station_with(conn, name, 3)
    consumer = await conn.consumer(name, "c", batch_size=1)
    calls: list[str] = []

    async def callback(msgs: list[Any], error: Any, context: Any) -> None:
        for m in msgs:
            await m.ack()
        await {"stop_consume": consumer.stop_consume, "destroy": consumer.destroy, "close": conn.close}[how]()
        calls.append("returned")

    consumer.consume(callback)
    await eventually(lambda: calls)
    await eventually(lambda: consumer.t_consume is None)
    await asyncio.sleep(0)
    assert calls == ["returned"]


async def test_stop_consume_does_not_burn_deliveries(connect: Any, nc: Any, uid: Any) -> None:
    """Pulls still waiting at the server when consume() stops must not take new messages: the
    stopped consumer could only nack them, each nack costs a delivery, and with two pipelined
    pulls a message reached ``max_msg_deliveries`` (2) and went to the DLS without any callback
    seeing it."""
    name = uid("stop-burn")
    conn = await connect()
    producer = await _station_with(conn, name, 1)
    consumer = await conn.consumer(name, "c", batch_max_time_to_wait_ms=5000)
    first = Collector()
    consumer.consume(first)
    await eventually(lambda: len(first.msgs) == 1)
    await eventually(lambda: consumer.stats["pulls"] >= 2)  # the next pulls are waiting
    await consumer.stop_consume()
    await producer.produce(b"while stopped")
    await conn.broker_manager.flush()
    info = await consumer_info(nc, f"{name}$1", "c")
    assert (info["num_pending"], info["num_redelivered"], info["num_waiting"]) == (1, 0, 0)
    second = Collector()
    consumer.consume(second)
    await eventually(lambda: len(second.msgs) == 1)
    assert second.msgs[0].data == b"while stopped" and second.msgs[0].get_delivery_count() == 1


async def test_consumer_creation_sends_the_resolved_group(
    connect: Any, connect_py: Any, nc: Any, uid: Any
) -> None:
    """R5: without ``consumer_group`` the request names the group (the consumer's name), as the
    Go and JS clients do; memphis-py sent ``""`` and left it to the broker."""
    name = uid("group-name")
    async with raw_subscription(nc, "$memphis_consumer_creations") as requests:
        await (await connect()).consumer(name, "Worker.One")
        await (await connect_py()).consumer(name, "py-worker", timeout_retries=R)
        await eventually(lambda: len(requests) == 2)
    groups = {json.loads(r.data)["name"]: json.loads(r.data)["consumers_group"] for r in requests}
    assert groups == {"Worker.One": "Worker.One", "py-worker": ""}


async def test_station_create_producer_and_consumer(connect: Any, uid: Any) -> None:
    """R4 (Go ``station.CreateProducer`` / ``CreateConsumer``)."""
    name = uid("station-api")
    conn = await connect()
    station = await conn.station(name)
    producer = await station.create_producer("p")
    consumer = await station.create_consumer("c", consumer_group="g", batch_size=3)
    assert producer is conn.producers_map[f"{name}_p"]
    assert (consumer.consumer_group, consumer.batch_size) == ("g", 3)
    await producer.produce(b"via station")
    (msg,) = await fetch_exactly(consumer, 1)
    assert msg.data == b"via station"


async def test_error_callback_hears_a_deleted_station(connect: Any, uid: Any) -> None:
    """R4 (Go ``ConsumerErrorHandler``): ``consumer(error_callback=...)`` is told when the
    station (and so the group's durable consumer) disappears."""
    name = uid("unreachable")
    conn = await connect()
    await conn.station(name)
    errors: list[Any] = []
    consumer = await conn.consumer(name, "c", error_callback=errors.append, pull_interval_ms=20)
    consumer.ping_consumer_interval_ms = 50  # the liveness ping, every 30 s by default
    consumer.consume(Collector())
    other = await connect()
    await (await other.station(name)).destroy()
    await eventually(lambda: errors)
    assert all(isinstance(e, mf.MemphisError) for e in errors)
    assert any("not found" in e.message.lower() or "deleted" in e.message.lower() for e in errors), errors


async def test_failing_pulls_are_paced_like_empty_ones(connect: Any, uid: Any) -> None:
    """Once the station is gone every pull fails (409 consumer deleted, then 503). The loop
    must pause ``pull_interval_ms`` after a failed pull as after an empty one, not re-pull at
    once: that was thousands of pulls and error reports per second."""
    name = uid("failing-pulls")
    conn = await connect()
    await conn.station(name)
    errors: list[Any] = []
    consumer = await conn.consumer(name, "c", error_callback=errors.append, pull_interval_ms=50)
    consumer.consume(Collector())
    await eventually(lambda: consumer.stats["idle_sleeps"] >= 1)
    other = await connect()
    await (await other.station(name)).destroy()
    await eventually(lambda: len(errors) >= 5)
    before, reported = dict(consumer.stats), len(errors)
    await eventually(lambda: len(errors) >= reported + 5)
    await consumer.stop_consume()
    pulls = consumer.stats["pulls"] - before["pulls"]
    sleeps = consumer.stats["idle_sleeps"] - before["idle_sleeps"]
    assert pulls <= sleeps + 2, consumer.stats  # one pull per pause
    assert len(errors) <= consumer.stats["pulls"]


async def test_destroy_releases_subscriptions(connect: Any, uid: Any) -> None:
    """R2: memphis-py's destroy() left the pull and DLS subscriptions behind."""
    name = uid("destroy")
    conn = await connect()
    await conn.station(name, partitions_number=3)
    core = conn.broker_manager
    before = set(core._handlers)
    consumer = await conn.consumer(name, "c")
    added = set(core._handlers) - before
    assert len(added) >= 4  # three pull inboxes and the DLS subscription (plus schema updates)
    await consumer.destroy()
    assert set(core._handlers) == before
    assert conn.consumers_map == {}


# -- reconnects ---------------------------------------------------------------------------------
async def test_consumer_survives_a_broker_restart(fresh_broker: LocalBroker, connect: Any) -> None:
    """go#83 / R1: a consume() loop keeps working after the broker went away and came back;
    the application hears about it through ``connection_event_callback``."""
    events: list[str] = []
    conn = await connect(
        fresh_broker,
        reconnect_interval_ms=50,
        connection_event_callback=lambda name, detail: events.append(name),
    )
    producer = await _station_with(conn, "restart", 3)
    consumer = await conn.consumer("restart", "c", pull_interval_ms=20, batch_max_time_to_wait_ms=200)
    collector = Collector()
    consumer.consume(collector)
    await eventually(lambda: len(collector.msgs) == 3)
    await asyncio.to_thread(fresh_broker.restart)
    await eventually(lambda: "reconnected" in events)
    for i in range(3, 6):
        await producer.produce(f"m{i}".encode())
    await eventually(lambda: len(collector.msgs) == 6)
    assert collector.data() == [f"m{i}".encode() for i in range(6)]
    assert events[:3] == ["connected", "disconnected", "reconnected"]


async def test_consumer_survives_a_cut_link(broker: LocalBroker, connect: Any, uid: Any) -> None:
    """The TCP link is cut (no FIN from the broker's side, pulls in flight are lost): the
    client reconnects, re-issues its pulls and consumption goes on."""
    name = uid("cut")
    proxy = await TcpProxy(broker.host, broker.port).start()
    try:
        via_proxy = await connect(port=proxy.port, reconnect_interval_ms=20)
        direct = await connect()
        producer = await _station_with(direct, name, 2)
        consumer = await via_proxy.consumer(name, "c", pull_interval_ms=20, batch_max_time_to_wait_ms=5000)
        collector = Collector()
        consumer.consume(collector)
        await eventually(lambda: len(collector.msgs) == 2)
        for cuts in (1, 2):
            proxy.cut()
            await eventually(lambda cuts=cuts: via_proxy.stats()["reconnects"] == cuts)
        await producer.produce(b"after the cuts")
        await eventually(lambda: len(collector.msgs) == 3)
        assert collector.data()[-1] == b"after the cuts"
        assert via_proxy.stats()["reconnects"] == 2
    finally:
        await proxy.close()


# -- held messages and redelivery ---------------------------------------------------------------
async def test_in_progress_acks_keep_held_messages(connect: Any, nc: Any, uid: Any) -> None:
    """A callback running longer than ``max_ack_time_ms`` (and the messages waiting behind it
    in the prefetch buffer) gets in-progress acks, so nothing is redelivered meanwhile."""
    name = uid("wpi")
    conn = await connect()
    await _station_with(conn, name, 3)
    consumer = await conn.consumer(name, "c", batch_size=1, max_ack_time_ms=1000)
    got: list[Any] = []

    async def slow(msgs: list[Any], error: Any, context: Any) -> None:
        for m in msgs:
            got.append(m)
            if len(got) == 1:
                # Hold the first message for well over the 1 s ack wait: until the client has
                # sent in-progress acks three times for it.
                await eventually(lambda: consumer.stats["in_progress_acks"] >= 6, timeout=30)
            await m.ack()

    consumer.consume(slow)
    await eventually(lambda: len(got) == 3, timeout=30)
    assert [m.data for m in got] == [b"m0", b"m1", b"m2"]
    assert [m.get_delivery_count() for m in got] == [1, 1, 1]
    info = await consumer_info(nc, f"{name}$1", "c")
    assert info["num_redelivered"] == 0


async def test_redelivery_count(connect: Any, uid: Any) -> None:
    """memphis#1080: the delivery count of a message (memphis-py has none)."""
    name = uid("redeliver")
    conn = await connect()
    await _station_with(conn, name, 1)
    consumer = await conn.consumer(name, "c")
    (msg,) = await fetch_exactly(consumer, 1, ack=False)
    assert (msg.get_delivery_count(), msg.get_redelivery_count()) == (1, 0)
    await msg.nack()
    (again,) = await fetch_exactly(consumer, 1, ack=False)
    assert again.data == msg.data
    assert (again.get_delivery_count(), again.get_redelivery_count()) == (2, 1)
    await again.ack()


async def test_prefetch_is_bounded(connect: Any, nc: Any, uid: Any) -> None:
    """P7: ``fetch(prefetch=True)`` keeps at most one batch ahead, however often it is called
    (memphis-py started a new unbounded background fetch each time)."""
    name = uid("prefetch")
    conn = await connect()
    await _station_with(conn, name, 100)
    consumer = await conn.consumer(name, "c")
    for round_ in range(5):
        msgs = await consumer.fetch(batch_size=10, prefetch=True)
        assert [m.data for m in msgs] == [f"m{i}".encode() for i in range(10 * round_, 10 * round_ + 10)]
        for m in msgs:
            await m.ack()
        # The acks reached the server before the PONG (same connection), but nats-server 2.10
        # hands a consumer's acks to a queue that the consumer's own goroutine drains
        # (consumer.pushAck), so a CONSUMER.INFO on another connection can still count them as
        # pending: wait until the ack floor shows this round's acks applied, then count.
        await conn.broker_manager.flush()
        acked = 10 * (round_ + 1)
        info = await eventually(lambda acked=acked: _at_floor(nc, f"{name}$1", acked))
        assert info["ack_floor"]["stream_seq"] == acked
        # Only the prefetched batch is out: delivered at most one batch past the acked ones.
        assert info["delivered"]["stream_seq"] <= acked + 10, info
        assert info["num_ack_pending"] <= 10, info


async def _at_floor(nc: Any, stream: str, floor: int) -> dict[str, Any] | None:
    """Consumer ``c``'s info once its ack floor has reached ``floor`` (else ``None``): the
    server applies acks on the consumer's goroutine, after the PONG that follows them."""
    info = await consumer_info(nc, stream, "c")
    return info if info["ack_floor"]["stream_seq"] >= floor else None


async def _nothing_pending(nc: Any, stream: str, floor: int) -> bool:
    """Consumer ``c`` of ``stream`` has no ack pending and its ack floor is at ``floor``."""
    info = await consumer_info(nc, stream, "c")
    assert info["ack_floor"]["stream_seq"] <= floor, info
    return bool(info["num_ack_pending"] == 0 and info["ack_floor"]["stream_seq"] == floor)


def _pulls_and_acks(sent: bytes, stream: str) -> list[str]:
    """The pulls and acks of ``stream``'s consumers in the bytes a client wrote, in order:
    ``pull`` or the ack's body (``+ACK``, ``-NAK``, ...)."""
    out: list[str] = []
    pos = 0
    while (eol := sent.find(b"\r\n", pos)) >= 0:
        line = sent[pos:eol].split()
        pos = eol + 2
        if not line or line[0] not in (b"PUB", b"HPUB"):
            continue
        size = int(line[-1])
        body = sent[pos : pos + size]
        pos += size + 2
        if line[1].startswith(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.".encode()):
            out.append("pull")
        elif line[1].startswith(f"$JS.ACK.{stream}.".encode()):
            out.append(body.decode())
    return out


async def test_a_fetch_pull_goes_ahead_of_the_acks_before_it(
    broker: LocalBroker, connect: Any, nc: Any, uid: Any
) -> None:
    """A fetch loop that acks a batch without yielding and fetches again: the next pull reaches
    the server ahead of those acks (it starts gathering the batch at once), and every ack still
    arrives. A NAK keeps its place, and so do the acks before it: the pull after a NAK may be
    there for the redelivery. The order is read off the bytes the client wrote (through a
    proxy): a subscriber's copies of the pulls are no witness, nats-server missed one in ~60
    runs."""
    name = uid("pull-ahead")
    proxy = await TcpProxy(broker.host, broker.port).start()
    try:
        conn = await connect(port=proxy.port)
        await _station_with(conn, name, 20)
        consumer = await conn.consumer(name, "c", batch_size=5)
        proxy.sent.clear()
        first = await consumer.fetch(batch_size=5)
        for m in first:
            await m.ack()
        second = await consumer.fetch(batch_size=5)
        assert [m.data for m in first + second] == [f"m{i}".encode() for i in range(10)]
        for m in second[:4]:
            await m.ack()
        await second[4].nack()
        third = await consumer.fetch(batch_size=1)  # m9 again or m10: the server's race
        assert len(third) == 1
        await third[0].ack()
        await conn.broker_manager.flush()  # everything written has reached the server
        kinds = _pulls_and_acks(bytes(proxy.sent), f"{name}$1")
        assert kinds == ["pull", "pull"] + ["+ACK"] * 5 + ["+ACK"] * 4 + ["-NAK", "pull", "+ACK"]
        # The server applies a consumer's acks on the consumer's goroutine, after the PONG:
        # wait for the floor rather than read it once.
        floor = 10 if third[0].data == b"m9" else 9  # m9 redelivered and acked: the floor passes it
        info = await eventually(lambda: _at_floor(nc, f"{name}$1", floor))
        assert info["ack_floor"]["stream_seq"] == floor, info
    finally:
        await proxy.close()


async def test_a_fetch_holds_the_acks_before_its_pull_until_its_batch_is_in(
    connect: Any, nc: Any, uid: Any
) -> None:
    """The acks of the batch before a fetch() stay out of the socket while its pull gathers
    the next batch (the server works through them while the caller handles that batch), and
    reach the server once the batch is in, or after ACK_HOLD_MAX_S when the pull waits on an
    empty station, or when the connection closes: never held for the pull's whole wait."""
    from memphis_fast._connection import ACK_HOLD_MAX_S

    name = uid("ack-hold")
    conn = await connect()
    await _station_with(conn, name, 10)
    consumer = await conn.consumer(name, "c", batch_size=5, batch_max_time_to_wait_ms=1500)
    acks: list[float] = []

    async def cb(msg: Any) -> None:
        acks.append(time.monotonic())

    sub = await nc.subscribe(f"$JS.ACK.{name}$1.>", cb=cb)
    await nc.flush()
    core = conn._conn.core
    loop = asyncio.get_running_loop()
    held: list[int] = []
    for m in await consumer.fetch(batch_size=5):
        await m.ack()
    loop.call_soon(lambda: held.append(core.held_acks))  # runs once fetch() waits
    second = await consumer.fetch(batch_size=5)
    assert [m.data for m in second] == [f"m{i}".encode() for i in range(5, 10)]
    assert held[0] > 0, "the five acks waited behind the pull"
    assert core.held_acks == 0, "and went out once the batch was in"
    await eventually(lambda: len(acks) == 5)
    # Nothing more on the station: the pull waits 1.5 s, the acks do not.
    for m in second:
        await m.ack()
    loop.call_soon(lambda: held.append(core.held_acks))
    t0 = time.monotonic()
    assert await consumer.fetch(batch_size=5) == []
    waited = time.monotonic() - t0
    assert held[1] > 0
    await eventually(lambda: len(acks) == 10)
    assert waited >= 1.4 and acks[-1] - t0 < 1.0, (
        f"acks out after {acks[-1] - t0:.3f} s (bound {ACK_HOLD_MAX_S} s), fetch() waited {waited:.3f} s"
    )
    # A subscriber saw the acks; the consumer applies them on its own goroutine, soon after.
    await eventually(lambda: _nothing_pending(nc, f"{name}$1", 10))
    # Held when the connection closes: close() writes them.
    await _station_with(conn, name, 5)
    for m in await consumer.fetch(batch_size=5):
        await m.ack()
    closing: list[Any] = []
    loop.call_soon(lambda: held.append(core.held_acks))
    loop.call_soon(lambda: closing.append(asyncio.ensure_future(conn.close())))
    with contextlib.suppress(mf.MemphisError):
        await consumer.fetch(batch_size=5)
    await closing[0]
    assert held[2] > 0
    await eventually(lambda: len(acks) == 15)
    await eventually(lambda: _nothing_pending(nc, f"{name}$1", 15))
    await sub.unsubscribe()


# -- DLS ----------------------------------------------------------------------------------------
async def _poison(conn: Any, name: str, broker: LocalBroker) -> Any:
    """Produce one message and nack it until max_msg_deliveries (2) is reached; returns the
    consumer once the broker has the DLS record."""
    await conn.station(name)
    producer = await conn.producer(name, "p")
    await producer.produce(b"poison", headers={"trace": "t-1"})
    consumer = await conn.consumer(name, "c", consumer_group="g", max_msg_deliveries=2, pull_interval_ms=20)
    for _ in range(2):
        (msg,) = await fetch_exactly(consumer, 1, ack=False)
        await msg.nack()
    # The max-deliveries advisory is raised at the next redelivery attempt (docs/protocol.md §9.1).
    assert await consumer.fetch(batch_size=1) == []
    await eventually(lambda: broker.list_dls(name))
    return consumer


async def test_dls_message_is_delivered_once_to_a_running_consume(
    broker: LocalBroker, connect: Any, uid: Any
) -> None:
    """B10: a resent poison message reaches the consume callback once, is not also kept for
    fetch(), and its ack removes the DLS record ($memphis_pm_acks)."""
    name = uid("dls-consume")
    conn = await connect()
    consumer = await _poison(conn, name, broker)
    collector = Collector()
    consumer.consume(collector)
    assert await broker.resend_dls(name) == 1
    await eventually(lambda: collector.msgs)
    (msg,) = collector.msgs
    headers = msg.get_headers()
    assert (msg.data, headers["trace"], headers["$memphis_producedBy"]) == (b"poison", "t-1", "$memphis_dls")
    assert msg.get_sequence_number() is None and msg.get_timesent() is None
    await eventually(lambda: _no_dls(broker, name))
    await consumer.stop_consume()
    assert list(consumer.dls_messages) == []
    assert await consumer.fetch(batch_size=5) == []


async def _no_dls(broker: LocalBroker, name: str) -> bool:
    return await broker.list_dls(name) == []


async def test_dls_message_is_buffered_for_fetch_once(broker: LocalBroker, connect: Any, uid: Any) -> None:
    """Without consume(), a resent message waits in the buffer; fetch() returns it first, once,
    and the prefetched messages behind it are kept (memphis-py dropped them, B10)."""
    name = uid("dls-fetch")
    conn = await connect()
    consumer = await _poison(conn, name, broker)
    producer = await conn.producer(name, "p")
    for i in range(4):
        await producer.produce(f"n{i}".encode())
    first = await consumer.fetch(batch_size=2, prefetch=True)  # n2, n3 get prefetched
    assert [m.data for m in first] == [b"n0", b"n1"]
    assert await broker.resend_dls(name) == 1
    await eventually(lambda: len(consumer.dls_messages) == 1)
    (dls,) = await consumer.fetch(batch_size=5)
    assert dls.data == b"poison"
    await dls.ack()
    rest = await consumer.fetch(batch_size=5)
    assert [m.data for m in rest] == [b"n2", b"n3"]
    for m in first + rest:
        await m.ack()
    await eventually(lambda: _no_dls(broker, name))


async def test_dls_buffer_is_bounded(connect: Any, connect_py: Any, nc: Any, uid: Any) -> None:
    """B10: 10 005 resent messages while nobody consumes: the buffer keeps the newest 10 000.
    memphis-py's list keeps every one of them."""

    async def flood(subject: str) -> None:
        for i in range(10_005):
            await nc.publish(subject, b"dls", headers={"$memphis_pm_id": str(i), "$memphis_pm_cg_name": "g"})
        await nc.flush()

    def last_id(buffer: Any) -> str | None:
        return buffer[-1].get_headers()["$memphis_pm_id"] if buffer else None

    name = uid("dls-bound")
    conn = await connect()
    consumer = await conn.consumer(name, "c", consumer_group="g")
    await conn.broker_manager.flush()  # the DLS subscription is in place
    await flood(f"$memphis_dls_{name}.g")
    await eventually(lambda: last_id(consumer.dls_messages) == "10004")
    assert len(consumer.dls_messages) == 10_000
    assert consumer.dls_messages[0].get_headers()["$memphis_pm_id"] == "5"  # the oldest dropped

    py_name = uid("dls-bound-py")
    py = await connect_py()
    py_consumer = await py.consumer(py_name, "c", consumer_group="g", timeout_retries=R)
    await eventually(lambda: getattr(py_consumer, "consumer_dls", None) is not None)
    await py.broker_manager.flush()
    await flood(f"$memphis_dls_{py_name}.g")
    await eventually(lambda: len(py_consumer.dls_messages) == 10_005)


async def test_memphis_py_delivers_dls_messages_twice(connect_py: Any, nc: Any, uid: Any) -> None:
    """B10, the old behaviour: a DLS message handed to the running consume callback is also
    kept in ``dls_messages``, so the next fetch() returns it again (memphis_fast: see
    test_dls_message_is_delivered_once_to_a_running_consume)."""
    name = uid("dls-twice-py")
    py = await connect_py()
    py_consumer = await py.consumer(name, "c", consumer_group="g", timeout_retries=R)
    await eventually(lambda: getattr(py_consumer, "consumer_dls", None) is not None)
    await py.broker_manager.flush()
    seen: list[Any] = []

    async def callback(msgs: list[Any], error: Any, context: Any) -> None:
        seen.extend(msgs)

    py_consumer.consume(callback)
    await nc.publish(
        f"$memphis_dls_{name}.g", b"dls", headers={"$memphis_pm_id": "1", "$memphis_pm_cg_name": "g"}
    )
    await eventually(lambda: seen)
    assert len(py_consumer.dls_messages) == 1  # and fetch() would return it again
