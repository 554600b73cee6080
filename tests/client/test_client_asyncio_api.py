"""Issue 12, the API asyncio users expect: ``async for`` over a consumer and
``consumer.messages()``, batch ack/nack, the delivery callback, ``async with`` on a producer,
the one-step ``memphis_fast.connect()``, plain-function callbacks, destroyed producers, header
values, fetch() on a trickle, and the Memphis 1.4.4 ``last_messages`` durable workaround."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from client_helpers import consumer_info, eventually, fetch_exactly, stream_count
from support import js_api

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


async def _fill(conn: Any, name: str, n: int, **station_kw: Any) -> Any:
    await conn.station(name, **station_kw)
    producer = await conn.producer(name, "p")
    for i in range(n):
        await producer.produce(f"m{i}".encode(), nonblocking=True)
    await producer.flush()
    return producer


# -- async for ----------------------------------------------------------------------------------
async def test_async_for_gets_every_message_once_and_stops_on_stop_consume(connect: Any, nc: Any, uid: Any) -> None:
    name = uid("aiter")
    conn = await connect()
    await _fill(conn, name, 50, partitions_number=3)
    consumer = await conn.consumer(name, "c", batch_size=7)
    got: list[bytes] = []
    async for msg in consumer:
        got.append(msg.data)
        await msg.ack()
        if len(got) == 50:
            await consumer.stop_consume()  # ends the loop: no further message is handed out
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(50))
    await eventually(lambda: _ack_pending(nc, name, 3, "c", 0))
    # consume() may follow an iteration that ended.
    consumer.consume(lambda msgs, err, ctx: None)
    await consumer.stop_consume()


async def _ack_pending(nc: Any, station: str, partitions: int, group: str, want: int) -> bool:
    total = 0
    for p in range(1, partitions + 1):
        info = await consumer_info(nc, f"{station}${p}", group)
        total += info["num_ack_pending"] + info["num_pending"]
    return total == want


async def test_messages_batch_size_bounds_the_prefetch(connect: Any, uid: Any) -> None:
    """consume()'s flow control: at most two pulls of batch_size per partition, so never more
    than 2 * batch_size messages buffered or on their way."""
    name = uid("aiter-bound")
    conn = await connect()
    await _fill(conn, name, 300)
    consumer = await conn.consumer(name, "c", batch_size=50)
    seen = 0
    worst = 0
    async for msg in consumer.messages(batch_size=8):
        for f in consumer._fetchers.values():
            pulls, outstanding = f.outstanding()
            assert pulls <= 2
            worst = max(worst, f.buffered + outstanding)
        await msg.ack()
        seen += 1
        if seen == 300:
            break
    assert worst <= 16, worst
    assert consumer.batch_size == 50  # messages(batch_size=) does not change the consumer


async def test_async_for_ends_on_destroy_and_on_close(connect: Any, uid: Any) -> None:
    name = uid("aiter-end")
    conn = await connect()
    await conn.station(name)
    for how in ("destroy", "close"):
        c = conn if how == "destroy" else await connect()
        consumer = await c.consumer(name, f"c-{how}")
        entered = asyncio.Event()
        got: list[Any] = []

        async def run(consumer: Any = consumer, entered: asyncio.Event = entered, got: list[Any] = got) -> str:
            entered.set()
            async for msg in consumer:
                got.append(msg)
            return "ended"

        task = asyncio.create_task(run())
        await entered.wait()
        await eventually(lambda consumer=consumer: any(f.outstanding()[0] for f in consumer._fetchers.values()))
        if how == "destroy":
            await consumer.destroy()
        else:
            await c.close()
        assert await asyncio.wait_for(task, 5) == "ended"
        assert got == []


async def test_break_gives_the_untaken_messages_back_at_once(connect: Any, uid: Any) -> None:
    """Leaving the loop stops consuming like stop_consume(): what was pulled but not handed
    out is nacked, so the group gets it again at once (not after the 30 s ack wait)."""
    name = uid("aiter-break")
    conn = await connect()
    await _fill(conn, name, 10)
    consumer = await conn.consumer(name, "c", consumer_group="g", batch_size=10)
    taken = []
    async for msg in consumer:
        await msg.ack()
        taken.append(msg.data)
        if len(taken) == 2:
            break
    other = await conn.consumer(name, "c2", consumer_group="g", batch_size=10, batch_max_time_to_wait_ms=500)
    rest = await fetch_exactly(other, 8)
    assert sorted(m.data for m in rest) == sorted(f"m{i}".encode() for i in range(10) if f"m{i}".encode() not in taken)
    # Iterating again works after a break.
    await conn.producer(name, "p")
    await (await conn.producer(name, "p")).produce(b"late")
    async for msg in consumer:
        assert msg.data == b"late"
        await msg.ack()
        break


async def test_held_messages_get_in_progress_acks_while_iterating(connect: Any, nc: Any, uid: Any) -> None:
    name = uid("aiter-held")
    conn = await connect()
    await _fill(conn, name, 3)
    consumer = await conn.consumer(name, "c", max_ack_time_ms=1000, batch_size=3)
    deliveries: list[int | None] = []
    async for msg in consumer:
        deliveries.append(msg.get_delivery_count())
        if len(deliveries) == 1:
            # Held 2.5 ack waits by "our" slow loop; the other two wait in the iterator.
            await eventually(lambda: consumer.stats["in_progress_acks"] >= 6, timeout=10)
        await msg.ack()
        if len(deliveries) == 3:
            break
    assert deliveries == [1, 1, 1]
    await eventually(lambda: _ack_pending(nc, name, 1, "c", 0))


async def test_one_iteration_at_a_time(connect: Any, uid: Any) -> None:
    """A new iteration (or consume()) ends the previous one; consume() running refuses a new
    iteration; stop_consume() ends an iterator that never ran."""
    name = uid("aiter-excl")
    conn = await connect()
    await _fill(conn, name, 6)
    consumer = await conn.consumer(name, "c", batch_size=6)
    first = consumer.messages()
    got = [await first.__anext__()]
    second = consumer.messages()  # ends `first`: its next step stops it
    with pytest.raises(StopAsyncIteration):
        await first.__anext__()
    async for msg in second:
        got.append(msg)
        if len(got) == 6:
            break
    assert sorted(m.data for m in got) == sorted(f"m{i}".encode() for i in range(6))
    await consumer.ack(got)
    # break, then a new loop at once (the first generator is finalized only later)
    await (await conn.producer(name, "p")).produce_batch([b"a", b"b"])
    async for msg in consumer:
        await msg.ack()
        break
    async for msg in consumer:
        assert msg.data in (b"a", b"b")
        await msg.ack()
        break
    consumer.consume(lambda msgs, err, ctx: None)
    with pytest.raises(mf.MemphisError, match="already consuming"):
        consumer.messages()
    await consumer.stop_consume()
    it = consumer.messages()
    await consumer.stop_consume()
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()
    with pytest.raises(mf.MemphisArgumentError):
        consumer.messages(batch_size=0)


# -- batch ack / nack ---------------------------------------------------------------------------
async def test_batch_ack_and_nack(connect: Any, nc: Any, uid: Any) -> None:
    name = uid("batch-ack")
    conn = await connect()
    await _fill(conn, name, 20)
    consumer = await conn.consumer(name, "c", batch_size=20, batch_max_time_to_wait_ms=500)
    msgs = await fetch_exactly(consumer, 20, ack=False)
    await consumer.nack(msgs[10:])
    again = await fetch_exactly(consumer, 10, ack=False)
    assert sorted(m.data for m in again) == sorted(m.data for m in msgs[10:])
    assert {m.get_delivery_count() for m in again} == {2}
    await consumer.ack(msgs[:10] + again)
    assert all(m._done for m in msgs[:10] + again)
    await eventually(lambda: _ack_pending(nc, name, 1, "c", 0))
    info = await consumer_info(nc, f"{name}$1", "c")
    assert info["ack_floor"]["stream_seq"] == 20
    await consumer.ack([])  # nothing to do
    with pytest.raises(mf.MemphisArgumentTypeError):
        await consumer.ack([b"not a message"])  # type: ignore[list-item]
    with pytest.raises(mf.MemphisArgumentTypeError):
        await consumer.nack(None)  # type: ignore[arg-type]


async def test_batch_ack_of_resent_dls_messages(connect: Any, nc: Any, uid: Any) -> None:
    """A resent DLS message in the list is acked through ``$memphis_pm_acks`` (it has no
    JetStream reply); nack skips it, as Message.nack() does."""
    name = uid("batch-dls")
    conn = await connect()
    await _fill(conn, name, 1)
    consumer = await conn.consumer(name, "c", consumer_group="g", batch_max_time_to_wait_ms=500)
    acks: list[dict[str, Any]] = []

    async def on_ack(msg: Any) -> None:
        acks.append(json.loads(msg.data))

    sub = await nc.subscribe("$memphis_pm_acks", cb=on_ack)
    await nc.flush()
    try:
        headers = {"$memphis_pm_id": "7", "$memphis_pm_cg_name": "g", "$memphis_producedBy": "$memphis_dls"}
        await nc.publish(f"$memphis_dls_{name}.g", b"resent", headers=headers)
        (dls,) = await eventually(lambda: list(consumer.dls_messages))
        consumer.dls_messages.clear()
        (js,) = await fetch_exactly(consumer, 1, ack=False)
        await consumer.nack([dls])  # a no-op for the DLS message
        await consumer.ack([dls, js])
        await eventually(lambda: acks)
        assert acks == [{"id": 7, "cg_name": "g"}]
        await eventually(lambda: _ack_pending(nc, name, 1, "g", 0))
    finally:
        await sub.unsubscribe()


# -- produce results and the delivery callback ---------------------------------------------------
async def test_delivery_callback_for_awaited_and_batch_produces(connect: Any, uid: Any) -> None:
    name = uid("dcb")
    conn = await connect()
    await conn.station(name)
    seen: list[Any] = []
    producer = await conn.producer(name, "p", delivery_callback=seen.append)
    r = await producer.produce(b"one")
    assert r is not None and r.stored and r.sequence == 1 and r.stream == f"{name}$1"
    results = await producer.produce_batch([b"a", b"b", b"c"])
    assert seen == [r, *results]
    assert [x.sequence for x in seen] == [1, 2, 3, 4]
    assert all(x.kind == "stored" for x in seen)


async def test_delivery_callback_for_nonblocking_produces(connect: Any, uid: Any) -> None:
    name = uid("dcb-nb")
    conn = await connect()
    await conn.station(name)
    seen: list[Any] = []
    producer = await conn.producer(name, "p", delivery_callback=seen.append)
    for i in range(200):
        await producer.produce(f"{i}".encode(), nonblocking=True)
    await producer.flush()
    assert [r.index for r in seen] == list(range(200))
    assert [r.sequence for r in seen] == list(range(1, 201))


async def test_failures_given_to_the_delivery_callback_are_not_raised_again(connect: Any, uid: Any) -> None:
    name = uid("dcb-fail")
    conn = await connect()
    await conn.station(name)
    seen: list[Any] = []
    producer = await conn.producer(name, "p", delivery_callback=seen.append)
    await conn.station(name)  # exists
    await (await conn.station(name)).destroy()
    with pytest.raises(mf.MemphisProduceError):
        await producer.produce(b"gone", ack_wait_sec=2)  # awaited: raised and called back
    assert [r.kind for r in seen] == ["not_stored"]
    await producer.produce(b"gone too", nonblocking=True, ack_wait_sec=2)
    await eventually(lambda: len(seen) == 2)
    await producer.flush()  # reported to the callback: not raised


# -- async with, one-step connect ---------------------------------------------------------------
async def test_async_with_producer_destroys_it(connect: Any, broker: LocalBroker, uid: Any) -> None:
    name = uid("with-prod")
    conn = await connect()
    await conn.station(name)
    async with await conn.producer(name, "p") as producer:
        await producer.produce(b"x", nonblocking=True)
        assert [c["name"] for c in (await broker.list_clients(name))["producers"]] == ["p"]
    assert producer._destroyed
    assert not conn.producers_map
    assert (await broker.list_clients(name))["producers"] == []
    with pytest.raises(mf.MemphisError, match="destroyed"):
        await producer.produce(b"y")


async def test_one_step_connect(broker: LocalBroker, uid: Any) -> None:
    name = uid("connect")
    async with await mf.connect(**broker.connect_kwargs()) as m:
        assert isinstance(m, mf.Memphis) and m.is_connected()
        await (await m.producer(name, "p")).produce(b"x")
    assert not m.is_connected()
    async with mf.connect(**broker.connect_kwargs()) as m2:
        assert m2.is_connected()
        (msg,) = await m2.fetch_messages(name, "c", batch_max_time_to_wait_ms=1000)
        assert msg.data == b"x"
    assert not m2.is_connected()
    m3 = await mf.connect(**broker.connect_kwargs())
    try:
        assert m3.is_connected()
    finally:
        await m3.close()
    with pytest.raises(mf.MemphisArgumentError, match="port"):
        await mf.connect(**{**broker.connect_kwargs(), "port": -1})


# -- consume() callbacks ------------------------------------------------------------------------
async def test_consume_takes_a_plain_function_and_refuses_none(connect: Any, nc: Any, uid: Any) -> None:
    name = uid("plain-cb")
    conn = await connect()
    await _fill(conn, name, 5)
    consumer = await conn.consumer(name, "c")
    with pytest.raises(mf.MemphisArgumentTypeError, match="callback"):
        consumer.consume(None)  # type: ignore[arg-type]
    with pytest.raises(mf.MemphisArgumentTypeError, match="callback"):
        consumer.consume("not callable")  # type: ignore[arg-type]
    got: list[Any] = []

    def handle(msgs: list[Any], error: Any, context: Any) -> None:  # not async
        got.extend(msgs)

    consumer.consume(handle)
    await eventually(lambda: len(got) == 5)
    await consumer.stop_consume()
    await consumer.ack(got)
    await eventually(lambda: _ack_pending(nc, name, 1, "c", 0))


# -- destroyed producers ------------------------------------------------------------------------
async def test_destroyed_producers_refuse_every_produce(connect: Any, nc: Any, uid: Any) -> None:
    a, b = uid("dst-a"), uid("dst-b")
    conn = await connect()
    producer = await conn.producer(a, "p")
    await producer.destroy()
    with pytest.raises(mf.MemphisError, match="destroyed"):
        await producer.produce_batch([b"x"])
    multi = await conn.producer([a, b], "mp")
    await multi.produce(b"1")
    await multi.destroy()
    with pytest.raises(mf.MemphisError, match="destroyed"):
        await multi.produce(b"2")
    assert not conn.producers_map  # not silently re-created
    assert await stream_count(nc, f"{a}$1") == 1
    assert await stream_count(nc, f"{b}$1") == 1


# -- headers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, 123, b"raw", 1.5])
async def test_header_values_must_be_str(connect: Any, nc: Any, uid: Any, value: Any) -> None:
    with pytest.raises(mf.MemphisHeaderError, match="must be a str"):
        mf.Headers().add("k", value)
    name = uid("hdr")
    conn = await connect()
    producer = await conn.producer(name, "p")
    with pytest.raises(mf.MemphisHeaderError, match="must be a str"):
        await producer.produce(b"x", headers={"k": value})
    with pytest.raises(mf.MemphisHeaderError, match="must be a str"):
        await producer.produce_batch([b"x"], headers={"k": value})
    assert await stream_count(nc, f"{name}$1") == 0


# -- fetch() on a trickle -----------------------------------------------------------------------
async def test_fetch_returns_what_is_there_without_waiting_the_whole_pull(connect: Any, uid: Any) -> None:
    """1 of 10 messages there, a 20 s pull: fetch() returns it after the 20 ms idle gap
    (it waited the whole pull before); a full batch still comes back whole."""
    name = uid("trickle")
    conn = await connect()
    await _fill(conn, name, 1)
    consumer = await conn.consumer(name, "c", batch_max_time_to_wait_ms=20_000)
    t0 = time.monotonic()
    msgs = await consumer.fetch(10)
    elapsed = time.monotonic() - t0
    assert [m.data for m in msgs] == [b"m0"]
    assert elapsed < 10, elapsed
    await consumer.ack(msgs)
    await _fill(conn, name, 100)
    full = await consumer.fetch(100)
    assert len(full) == 100
    await consumer.ack(full)


# -- the Memphis 1.4.4 last_messages bug --------------------------------------------------------
async def test_missing_durable_after_creation_is_created_like_the_broker_should(
    connect: Any, nc: Any, uid: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Memphis 1.4.4 answers a one-partition consumer creation with last_messages > 0 with
    success but creates no durable. Simulated here by deleting the durable right after the
    broker's reply; the client creates it (last 3 of 20) and says so in a WARNING."""
    name = uid("last-n")
    conn = await connect()
    await _fill(conn, name, 20)
    real_request = conn._request

    async def request_then_drop_durable(subject: str, payload: bytes, *a: Any, **kw: Any) -> Any:
        res = await real_request(subject, payload, *a, **kw)
        if subject == "$memphis_consumer_creations":
            reply = await js_api(nc, f"CONSUMER.DELETE.{name}$1.late")
            assert reply.get("success"), reply
        return res

    conn._request = request_then_drop_durable
    with caplog.at_level(logging.WARNING, logger="memphis_fast"):
        consumer = await conn.consumer(name, "late", last_messages=3, batch_max_time_to_wait_ms=500)
    assert any("created no durable consumer" in r.getMessage() for r in caplog.records)
    info = await consumer_info(nc, f"{name}$1", "late")
    cfg = info["config"]
    assert (cfg["deliver_policy"], cfg["opt_start_seq"], cfg["filter_subject"]) == (
        "by_start_sequence",
        18,
        f"{name}$1.final",
    )
    assert cfg["max_deliver"] == 2 and cfg["ack_wait"] == 30_000 * 1_000_000
    msgs = await fetch_exactly(consumer, 3)
    assert [m.data for m in msgs] == [b"m17", b"m18", b"m19"]
    assert await consumer.fetch(5) == []


# -- closed connections -------------------------------------------------------------------------
async def test_every_call_after_close_raises_connection_closed(connect: Any, uid: Any) -> None:
    name = uid("closed")
    conn = await connect()
    producer = await conn.producer(name, "p")
    consumer = await conn.consumer(name, "c")
    await conn.close()
    calls = [
        producer.produce(b"x"),
        producer.produce(b"x", nonblocking=True),
        producer.produce_batch([b"x"]),
        conn.producer(name, "p2"),
        conn.consumer(name, "c2"),
        conn.station(name),
        conn.produce(name, "p3", b"x"),
        conn.fetch_messages(name, "c3"),
        consumer.fetch(),
    ]
    for call in calls:
        with pytest.raises(mf.MemphisConnectionClosedError) as info:
            await asyncio.wait_for(call, 5)
        assert info.value.message == "the connection is closed"
    with pytest.raises(mf.MemphisConnectionClosedError, match="the connection is closed"):
        consumer.consume(lambda msgs, err, ctx: None)
    with pytest.raises(mf.MemphisConnectionClosedError, match="the connection is closed"):
        consumer.messages()


def test_connect_options_repr_hides_secrets() -> None:
    from memphis_fast._connect import ConnectOptions, parse_servers

    opts = ConnectOptions(servers=parse_servers("127.0.0.1", 6666), user="root$1", password="s3cret-pw", token="t0ken-x")
    assert "s3cret-pw" not in repr(opts) and "t0ken-x" not in repr(opts)
    assert "root$1" in repr(opts)


async def test_failed_nonblocking_messages_are_logged_at_most_once_a_second(
    connect: Any, uid: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 (noise): an outage used to log one WARNING per failed message. Now: one per
    second per producer with a count of the rest; DEBUG only when a callback gets them."""
    name = uid("noise")
    conn = await connect()
    await conn.station(name)
    producer = await conn.producer(name, "p")
    called: list[Any] = []
    quiet = await conn.producer(name, "q", failure_callback=called.append)
    await (await conn.station(name)).destroy()
    with caplog.at_level(logging.WARNING, logger="memphis_fast"):
        for i in range(100):
            await producer.produce(f"{i}".encode(), nonblocking=True, ack_wait_sec=2)
            await quiet.produce(f"{i}".encode(), nonblocking=True, ack_wait_sec=2)
        with pytest.raises(mf.MemphisProduceError) as info:
            await producer.flush()
        await quiet.flush()
    assert len(info.value.failures) == 100 and len(called) == 100
    lines = [r for r in caplog.records if "memphis producer" in r.getMessage()]
    assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]
    assert all("memphis producer p:" in r.getMessage() for r in lines)


async def test_an_early_fetch_return_ends_its_pull(connect: Any, nc: Any, uid: Any) -> None:
    """fetch() returned early (1 of 10) while its 3 s pull still waited at the server: the pull
    is ended, so a message produced right after goes to the group's next pull (another member
    here), not into a pull nobody waits for (where it would sit, or turn poison being
    redelivered into it)."""
    name = uid("leftover")
    conn = await connect()
    producer = await _fill(conn, name, 1)
    a = await conn.consumer(name, "a", consumer_group="g", batch_max_time_to_wait_ms=3000, max_ack_time_ms=1000)
    b = await conn.consumer(name, "b", consumer_group="g", batch_max_time_to_wait_ms=3000, max_ack_time_ms=1000)
    first = await a.fetch(10)
    assert [m.data for m in first] == [b"m0"]
    await a.ack(first)
    assert a._fetchers[1].outstanding() == (0, 0)
    await conn.broker_manager.flush()  # the UNSUB of the old inbox is processed
    await producer.produce(b"late")
    (late,) = await fetch_exactly(b, 1)
    assert late.data == b"late" and late.get_delivery_count() == 1
    assert a._fetchers[1].buffered == 0
    await eventually(lambda: _ack_pending(nc, name, 1, "g", 0))


async def test_prefetched_messages_are_still_held(connect: Any, nc: Any, uid: Any) -> None:
    """fetch(prefetch=True) keeps what it pulled ahead with in-progress acks (unchanged)."""
    name = uid("prefetch-held")
    conn = await connect()
    await _fill(conn, name, 4)
    c = await conn.consumer(name, "c", batch_max_time_to_wait_ms=500, max_ack_time_ms=1000)
    got = await c.fetch(2, prefetch=True)
    await c.ack(got)
    await eventually(lambda: c._fetchers[1].buffered == 2)
    await eventually(lambda: c.stats["in_progress_acks"] >= 4, timeout=10)
    rest = await c.fetch(2)
    assert [m.data for m in rest] == [b"m2", b"m3"] and {m.get_delivery_count() for m in rest} == {1}
    await c.ack(rest)
    await eventually(lambda: _ack_pending(nc, name, 1, "c", 0))


async def test_batches_iterates_batches_with_the_same_flow_control(connect: Any, nc: Any, uid: Any) -> None:
    name = uid("batches")
    conn = await connect()
    await _fill(conn, name, 120, partitions_number=2)
    consumer = await conn.consumer(name, "c", batch_size=50)
    seen: list[bytes] = []
    async for msgs in consumer.batches(batch_size=20):
        assert 1 <= len(msgs) <= 20
        assert len({m.partition for m in msgs}) == 1  # one partition per batch
        seen += [m.data for m in msgs]
        await consumer.ack(msgs)
        if len(seen) == 120:
            await consumer.stop_consume()
    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(120))
    await eventually(lambda: _ack_pending(nc, name, 2, "c", 0))
    with pytest.raises(mf.MemphisArgumentError):
        consumer.batches(batch_size=5001)


async def test_memphis_produce_returns_the_result(connect: Any, uid: Any) -> None:
    name = uid("m-produce")
    conn = await connect()
    r = await conn.produce(name, "p", b"x")
    assert r is not None and r.stored and (r.stream, r.sequence) == (f"{name}$1", 1)
    assert await conn.produce(name, "p", b"y", nonblocking=True) is None
