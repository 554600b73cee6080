"""Producing: the bounded nonblocking window (P2, P4), exactly-once failure reporting (B2),
cancellation, close() draining, untouched Headers (B3, B18), payload types (B17), msg_id and
auto_msg_id, produce_batch outcomes, multi-station nonblocking (B11), the schema error split.

The broker's nats-server is paused with SIGSTOP where a test needs acks to stop coming; those
tests use a broker of their own."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import memphis as mpy
import pytest
from client_helpers import R, TcpProxy, eventually, paused, stored_msg, stream_count

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


async def _spin(n: int = 200) -> None:
    """Let the event loop run ``n`` times (a blocked coroutine stays blocked)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Sender:
    """Produces ``payloads`` nonblocking one after the other in a task, counting calls that
    returned."""

    def __init__(self, producer: Any, payloads: list[Any], **kw: Any) -> None:
        self.returned = 0
        self.task = asyncio.get_running_loop().create_task(self._run(producer, payloads, kw))

    async def _run(self, producer: Any, payloads: list[Any], kw: dict[str, Any]) -> None:
        for p in payloads:
            await producer.produce(p, nonblocking=True, **kw)
            self.returned += 1


# -- the window ---------------------------------------------------------------------------------
async def test_nonblocking_window_blocks_at_max_inflight_and_resumes(
    fresh_broker: LocalBroker, connect: Any, connect_py: Any
) -> None:
    """P2: with the broker stopped, nonblocking produce stops at ``max_inflight`` messages in
    flight and goes on when acks come back. memphis-py starts a task per message without
    bound."""
    conn = await connect(fresh_broker)
    await conn.station("win")
    producer = await conn.producer("win", "p", max_inflight=5)
    await producer.produce(b"warm-up")
    with paused(fresh_broker.nats_pid):
        sender = Sender(producer, [f"m{i}".encode() for i in range(20)])
        await eventually(lambda: sender.returned == 5)
        await _spin()
        assert (sender.returned, producer.inflight, sender.task.done()) == (5, 5, False)
        assert len(producer.background_tasks) == 5
    await asyncio.wait_for(sender.task, 30)
    await producer.flush()
    assert producer.inflight == 0
    nc = conn.broker_manager
    assert nc is not None

    py = await connect_py(fresh_broker)
    py_producer = await py.producer("win", "p", timeout_retries=R)
    with paused(fresh_broker.nats_pid):
        for i in range(20):
            await py_producer.produce(bytearray(b"x%d" % i), nonblocking=True)
        assert len(py_producer.background_tasks) == 20  # unbounded
    await eventually(lambda: len(py_producer.background_tasks) == 0)


async def test_nonblocking_window_counts_bytes(fresh_broker: LocalBroker, connect: Any) -> None:
    """The window is bounded in bytes too: 3000-byte messages (about 3.1 kB with headers)
    under a 10 000-byte window stop after the 4th message."""
    conn = await connect(fresh_broker)
    await conn.station("bytes")
    producer = await conn.producer("bytes", "p", max_inflight_bytes=10_000)
    await producer.produce(b"warm-up")
    with paused(fresh_broker.nats_pid):
        sender = Sender(producer, [b"x" * 3000] * 10)
        await eventually(lambda: sender.returned == 4)
        await _spin()
        assert (sender.returned, producer.inflight, sender.task.done()) == (4, 4, False)
    await asyncio.wait_for(sender.task, 30)
    await producer.flush()


async def test_concurrent_task_limit_waits_without_polling(
    fresh_broker: LocalBroker, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P4: ``concurrent_task_limit`` blocks at the limit and wakes on acks; memphis-py polled
    with ``sleep(0.1)``. No asyncio.sleep is called while blocked."""
    conn = await connect(fresh_broker)
    await conn.station("ctl")
    producer = await conn.producer("ctl", "p")
    await producer.produce(b"warm-up")
    sleeps: list[float] = []
    orig = asyncio.sleep

    async def counting_sleep(delay: float, result: Any = None) -> Any:
        sleeps.append(delay)
        return await orig(delay, result)

    with paused(fresh_broker.nats_pid):
        sender = Sender(producer, [b"m"] * 10, concurrent_task_limit=6)
        await eventually(lambda: sender.returned == 6)
        monkeypatch.setattr(asyncio, "sleep", counting_sleep)
        for _ in range(200):
            await orig(0)
        assert (sender.returned, sender.task.done(), sleeps) == (6, False, [])
        monkeypatch.undo()
    await asyncio.wait_for(sender.task, 30)
    await producer.flush()
    assert sender.returned == 10


async def test_multi_station_producer_keeps_nonblocking(fresh_broker: LocalBroker, connect: Any) -> None:
    """B11: memphis-py silently produced blocking on multi-station producers. Here a
    nonblocking produce returns with the broker stopped, one message in flight per station."""
    conn = await connect(fresh_broker)
    multi = await conn.producer(["ms-a", "ms-b"], "p", max_inflight=10)
    await multi.produce(b"warm-up")  # creates the per-station producers
    with paused(fresh_broker.nats_pid):
        await asyncio.wait_for(multi.produce(b"queued", nonblocking=True), 10)
        assert multi.inflight == 2
    await multi.flush()
    assert multi.inflight == 0
    nc = await _nats(fresh_broker)
    try:
        assert [await stream_count(nc, s) for s in ("ms-a$1", "ms-b$1")] == [2, 2]
    finally:
        await nc.close()


async def _nats(broker: LocalBroker) -> Any:
    import nats

    return await nats.connect(**broker.nats_kwargs())


# -- failures: every message one outcome, every failure reported once ---------------------------
async def _station_gone(connect: Any, uid: Any, **producer_kw: Any) -> tuple[Any, Any, str]:
    """A producer whose station was destroyed behind its back (by another client)."""
    name = uid("gone")
    conn = await connect()
    await conn.station(name)
    producer = await conn.producer(name, "p", **producer_kw)
    await producer.produce(b"stored")  # index 0
    other = await connect()
    await (await other.station(name)).destroy()
    return conn, producer, name


async def test_failures_are_raised_once_by_flush(connect: Any, uid: Any, connect_py: Any) -> None:
    """B2: nonblocking messages to a destroyed station end "not stored" (503). flush() raises
    them once, each tied to its message by index and msg_id; a second flush() has nothing to
    raise. memphis-py reports nothing."""
    conn, producer, name = await _station_gone(connect, uid)
    for mid in ("a", "b", "c"):
        await producer.produce(b"lost", nonblocking=True, msg_id=mid)
    with pytest.raises(mf.MemphisProduceError) as info:
        await producer.flush()
    failures = info.value.failures
    assert [(f.index, f.msg_id, f.kind, f.code) for f in failures] == [
        (1, "a", "not_stored", 503),
        (2, "b", "not_stored", 503),
        (3, "c", "not_stored", 503),
    ]
    assert all(f.station == name for f in failures)
    await producer.flush()  # reported already
    # A blocking produce raises its own failure at once.
    with pytest.raises(mf.MemphisProduceError) as info:
        await producer.produce(b"sync")
    assert [(f.index, f.code) for f in info.value.failures] == [(4, 503)]
    await conn.close()  # nothing left to report

    py = await connect_py()
    py_name = uid("py-gone")
    py_producer = await py.producer(py_name, "p", timeout_retries=R)
    await py_producer.produce(bytearray(b"stored"))
    await (await conn_other(connect, py_name)).destroy()
    await py_producer.produce(bytearray(b"lost"), nonblocking=True)
    await eventually(lambda: len(py_producer.background_tasks) == 0)
    # The failure went nowhere: the next nonblocking produce returns normally.
    await py_producer.produce(bytearray(b"lost too"), nonblocking=True)
    await eventually(lambda: len(py_producer.background_tasks) == 0)


async def conn_other(connect: Any, name: str) -> Any:
    other = await connect()
    return await other.station(name)


async def test_failure_is_raised_by_the_next_produce_before_it_sends(connect: Any, uid: Any) -> None:
    """An unreported failure is raised by the next produce, which then sends nothing: the
    message after it gets the next index."""
    conn, producer, _ = await _station_gone(connect, uid)
    await producer.produce(b"lost", nonblocking=True, msg_id="x")  # index 1
    await eventually(lambda: producer.inflight == 0)
    with pytest.raises(mf.MemphisProduceError) as info:
        await producer.produce(b"not sent", nonblocking=True)
    assert [(f.index, f.msg_id) for f in info.value.failures] == [(1, "x")]
    with pytest.raises(mf.MemphisProduceError) as info:
        await producer.produce(b"sync")
    assert [f.index for f in info.value.failures] == [2]


async def test_failure_callback_gets_each_failure_once(connect: Any, uid: Any) -> None:
    """With ``failure_callback`` (sync or async) failures go there, once each, and are not
    raised by flush() or close()."""
    seen: list[Any] = []
    seen_async: list[Any] = []

    async def acb(f: Any) -> None:
        seen_async.append(f)

    conn, producer, _ = await _station_gone(connect, uid, failure_callback=seen.append)
    for i in range(3):
        await producer.produce(b"lost", nonblocking=True, msg_id=f"s{i}")
    await producer.flush()
    assert [(f.index, f.msg_id, f.code) for f in seen] == [(1, "s0", 503), (2, "s1", 503), (3, "s2", 503)]

    conn2, producer2, _ = await _station_gone(connect, uid, failure_callback=acb)
    await producer2.produce(b"lost", nonblocking=True)
    await producer2.flush()
    await eventually(lambda: len(seen_async) == 1)
    assert seen_async[0].index == 1
    await conn.close()
    await conn2.close()
    assert len(seen) == 3 and len(seen_async) == 1


async def test_close_raises_unreported_failures(connect: Any, uid: Any) -> None:
    """Failures never reported otherwise are raised by close() (once)."""
    conn, producer, _ = await _station_gone(connect, uid)
    await producer.produce(b"lost", nonblocking=True, msg_id="last")
    with pytest.raises(mf.MemphisProduceError) as info:
        await conn.close()
    assert [(f.index, f.msg_id, f.code) for f in info.value.failures] == [(1, "last", 503)]
    await conn.close()


async def test_ack_timeout_is_an_unknown_outcome(fresh_broker: LocalBroker, connect: Any) -> None:
    """No ack within ``ack_wait_sec``: MemphisProduceTimeoutError (also a TimeoutError), kind
    "unknown": the message may still be stored."""
    conn = await connect(fresh_broker)
    await conn.station("ackwait")
    producer = await conn.producer("ackwait", "p")
    with paused(fresh_broker.nats_pid):
        with pytest.raises(mf.MemphisProduceTimeoutError) as info:
            await asyncio.wait_for(producer.produce(b"late", ack_wait_sec=1), 10)
    assert isinstance(info.value, TimeoutError)
    assert [(f.index, f.kind) for f in info.value.failures] == [(0, "unknown")]


async def test_short_ack_wait_after_a_longer_one(fresh_broker: LocalBroker, connect: Any) -> None:
    """A message's ack wait is honoured even when an earlier message had a longer one.

    Fails today: ``NatsConnection`` arms its deadline sweeper only when none is armed
    (``if self._sweeper is None: self._arm_sweeper()`` in ``js_publish``/``js_publish_wait``/
    ``pull``), so after a produce with the default 15 s ack wait the sweeper sleeps until that
    earlier deadline and a 1 s ack wait expires after about 15 s."""
    conn = await connect(fresh_broker)
    producer = await conn.producer("ackwait2", "p")
    await producer.produce(b"warm-up", ack_wait_sec=15)
    with paused(fresh_broker.nats_pid):
        with pytest.raises(mf.MemphisProduceTimeoutError):
            await asyncio.wait_for(producer.produce(b"late", ack_wait_sec=1), 10)


async def test_every_message_has_one_outcome_across_a_cut_link(
    broker: LocalBroker, connect: Any, nc: Any, uid: Any
) -> None:
    """The link is cut while 2000 nonblocking messages flow: each message is either stored or
    reported (once, as "unknown": it had left when the connection dropped); none is both
    missing and unreported, none is reported twice."""
    name = uid("one-outcome")
    proxy = await TcpProxy(broker.host, broker.port).start()
    try:
        conn = await connect(port=proxy.port, reconnect_interval_ms=20)
        await conn.station(name)
        failures: list[Any] = []
        producer = await conn.producer(name, "p", failure_callback=failures.append)
        for i in range(2000):
            await producer.produce(b"%d" % i, nonblocking=True)
            if i % 50 == 0:
                await asyncio.sleep(0.001)  # let some acks come back before the cut
            if i == 1000:
                proxy.cut()
        await producer.flush()
        assert conn.stats()["reconnects"] == 1
    finally:
        await proxy.close()
    failed = [f.index for f in failures]
    assert failed and len(failed) == len(set(failed))
    assert {f.kind for f in failures} == {"unknown"}
    stored = set()
    for seq in range(1, await stream_count(nc, f"{name}$1") + 1):
        stored.add(int((await stored_msg(nc, f"{name}$1", seq))[0]))
    assert set(range(2000)) - stored <= set(failed)


# -- cancellation and close ---------------------------------------------------------------------
async def test_cancelled_produce_may_still_be_stored(fresh_broker: LocalBroker, connect: Any) -> None:
    """producer.py: cancelling ``await produce()`` does not take the message back once it was
    handed to the connection: it is stored, and no failure is reported for it. A nonblocking
    call cancelled while waiting for room in the window sends nothing."""
    conn = await connect(fresh_broker)
    producer = await conn.producer("cancel", "p", max_inflight=1)
    await producer.produce(b"warm-up")
    with paused(fresh_broker.nats_pid):
        task = asyncio.get_running_loop().create_task(producer.produce(b"cancelled-after-send"))
        await eventually(lambda: producer.inflight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The window (1) is full: this one waits for room, and is cancelled there.
        waiting = asyncio.get_running_loop().create_task(producer.produce(b"never-sent", nonblocking=True))
        await _spin()
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    await producer.flush()  # no failure: the cancelled message was stored
    nc = await _nats(fresh_broker)
    try:
        assert await stream_count(nc, "cancel$1") == 2
        assert (await stored_msg(nc, "cancel$1", 2))[0] == b"cancelled-after-send"
    finally:
        await nc.close()


async def test_close_waits_for_inflight_produces(fresh_broker: LocalBroker, connect: Any) -> None:
    """close() waits for nonblocking messages still in flight (memphis-py closed the socket
    under them, B1/B2) and then leaves no task behind."""
    before = set(asyncio.all_tasks())
    conn = await connect(fresh_broker)
    producer = await conn.producer("drain", "p")
    await producer.produce(b"warm-up")
    with paused(fresh_broker.nats_pid):
        for i in range(50):
            await producer.produce(b"m%d" % i, nonblocking=True)
        closing = asyncio.get_running_loop().create_task(conn.close())
        await _spin()
        assert not closing.done() and producer.inflight == 50
    await asyncio.wait_for(closing, 30)
    assert set(asyncio.all_tasks()) == before
    nc = await _nats(fresh_broker)
    try:
        assert await stream_count(nc, "drain$1") == 51
    finally:
        await nc.close()


async def test_destroy_waits_then_unregisters(fresh_broker: LocalBroker, connect: Any) -> None:
    """B12: Producer.destroy() waits for its in-flight messages (no polling), unregisters the
    producer at the broker and drops it from the cache; afterwards produce() refuses."""
    conn = await connect(fresh_broker)
    producer = await conn.producer("destroy", "p")
    await producer.produce(b"warm-up")
    with paused(fresh_broker.nats_pid):
        await producer.produce(b"in flight", nonblocking=True)
        destroying = asyncio.get_running_loop().create_task(producer.destroy())
        await _spin()
        assert not destroying.done() and producer.inflight == 1
    await asyncio.wait_for(destroying, 30)
    assert (await fresh_broker.list_clients("destroy"))["producers"] == []
    assert conn.producers_map == {}
    with pytest.raises(mf.MemphisError, match="destroyed"):
        await producer.produce(b"after")
    nc = await _nats(fresh_broker)
    try:
        assert await stream_count(nc, "destroy$1") == 2
    finally:
        await nc.close()


async def test_destroy_raises_unreported_failures(connect: Any, uid: Any) -> None:
    conn, producer, _ = await _station_gone(connect, uid)
    await producer.produce(b"lost", nonblocking=True, msg_id="z")
    with pytest.raises(mf.MemphisProduceError) as info:
        await producer.destroy()
    assert [(f.index, f.msg_id) for f in info.value.failures] == [(1, "z")]
    assert conn.producers_map == {}


# -- headers and payloads -----------------------------------------------------------------------
async def test_headers_object_is_never_modified(connect: Any, connect_py: Any, nc: Any, uid: Any) -> None:
    """B3: memphis-py writes ``$memphis_*`` and ``msg-id`` into the caller's Headers, so reusing
    it re-sends the old msg-id. memphis_fast leaves it as it was."""
    name = uid("hdrs")
    conn = await connect()
    producer = await conn.producer(name, "p")
    headers = mf.Headers()
    headers.add("trace", "t1")
    await producer.produce(b"one", headers=headers, msg_id="id-1")
    await producer.produce(b"two", headers=headers)
    assert headers.headers == {"trace": "t1"}
    _, h2 = await stored_msg(nc, f"{name}$1", 2)
    assert h2["trace"] == "t1" and "msg-id" not in h2

    py = await connect_py()
    py_name = uid("hdrs-py")
    py_producer = await py.producer(py_name, "p", timeout_retries=R)
    py_headers = mpy.Headers()
    py_headers.add("trace", "t1")
    await py_producer.produce(bytearray(b"one"), headers=py_headers, msg_id="id-1")
    await py_producer.produce(bytearray(b"two"), headers=py_headers)
    assert py_headers.headers["msg-id"] == "id-1" and "$memphis_producedBy" in py_headers.headers
    _, py_h2 = await stored_msg(nc, f"{py_name}$1", 2)
    assert py_h2["msg-id"] == "id-1"  # leaked into the second message


async def test_header_dicts_and_reserved_keys(connect: Any, connect_py: Any, nc: Any, uid: Any) -> None:
    """B18: a dict of headers works (memphis-py's README shows one; memphis-py raises
    AttributeError). ``$memphis`` keys are refused either way."""
    name = uid("dict-hdrs")
    conn = await connect()
    producer = await conn.producer(name, "p")
    user = {"a": "1", "b": "2"}
    await producer.produce(b"x", headers=user)
    assert user == {"a": "1", "b": "2"}
    _, h = await stored_msg(nc, f"{name}$1", 1)
    assert (h["a"], h["b"], h["$memphis_producedBy"]) == ("1", "2", "p")
    with pytest.raises(mf.MemphisHeaderError):
        await producer.produce(b"x", headers={"$memphis_producedBy": "me"})
    with pytest.raises(mf.MemphisHeaderError):
        mf.Headers().add("$memphis_x", "1")

    py = await connect_py()
    py_producer = await py.producer(uid("dict-hdrs-py"), "p", timeout_retries=R)
    with pytest.raises(mpy.MemphisError, match="headers"):
        await py_producer.produce(bytearray(b"x"), headers={"a": "1"})


async def test_payload_types(connect: Any, connect_py: Any, nc: Any, uid: Any) -> None:
    """B17: bytes, bytearray, memoryview, str (UTF-8) and dict (JSON) are accepted; the
    first four are stored byte for byte. memphis-py rejects bytes and memoryview."""
    name = uid("payloads")
    conn = await connect()
    producer = await conn.producer(name, "p")
    payloads: list[Any] = [
        b"raw bytes",
        bytearray(b"a bytearray"),
        memoryview(b"--a memoryview slice--")[2:-2],
        "unicode \u00e9\u4e2d",
        {"id": 7, "tags": ["a", "b"]},
    ]
    expected = [
        b"raw bytes",
        b"a bytearray",
        b"a memoryview slice",
        "unicode \u00e9\u4e2d".encode(),
    ]
    for p in payloads:
        await producer.produce(p)
    stored = [(await stored_msg(nc, f"{name}$1", i + 1))[0] for i in range(5)]
    assert stored[:4] == expected
    # A dict is compact JSON (orjson); memphis-py's json.dumps puts spaces after ":" and ",".
    assert json.loads(stored[4]) == {"id": 7, "tags": ["a", "b"]}

    py = await connect_py()
    py_producer = await py.producer(uid("payloads-py"), "p", timeout_retries=R)
    for bad in (b"raw bytes", memoryview(b"mv")):
        with pytest.raises(mpy.MemphisSchemaError, match="Unsupported message type"):
            await py_producer.produce(bad)


# -- idempotency --------------------------------------------------------------------------------
async def test_msg_id_sends_both_headers_and_deduplicates(connect: Any, nc: Any, uid: Any) -> None:
    """docs/protocol.md §7.4: ``msg_id`` goes out as ``msg-id`` (the Memphis fork's header) and as
    ``Nats-Msg-Id`` (stock JetStream's), so the broker drops the second copy."""
    name = uid("msgid")
    conn = await connect()
    await conn.station(name, idempotency_window_ms=60_000)
    producer = await conn.producer(name, "p")
    await producer.produce(b"first", msg_id="order-1")
    await producer.produce(b"again", msg_id="order-1")
    await producer.produce(b"other", msg_id="order-2")
    assert await stream_count(nc, f"{name}$1") == 2
    data, headers = await stored_msg(nc, f"{name}$1", 1)
    assert data == b"first"
    assert headers["msg-id"] == headers["Nats-Msg-Id"] == "order-1"
    # produce_batch reports the duplicate.
    results = await producer.produce_batch([b"x", b"y"], msg_ids=["order-2", "order-3"])
    assert [(r.stored, r.duplicate, r.sequence) for r in results] == [(True, True, 2), (True, False, 3)]


async def test_auto_msg_id(connect: Any, nc: Any, uid: Any) -> None:
    """``auto_msg_id=True`` gives every message its own id (so a re-send after a reconnect is
    de-duplicated); an explicit msg_id wins."""
    name = uid("automsgid")
    conn = await connect()
    producer = await conn.producer(name, "p", auto_msg_id=True)
    await producer.produce(b"a")
    await producer.produce(b"b", nonblocking=True)
    await producer.produce(b"c", msg_id="mine")
    await producer.produce_batch([b"d", b"e"])
    await producer.flush()
    ids = []
    for seq in range(1, 6):
        _, h = await stored_msg(nc, f"{name}$1", seq)
        assert h["msg-id"] == h["Nats-Msg-Id"]
        ids.append(h["msg-id"])
    assert ids[2] == "mine"
    assert len(set(ids)) == 5
    plain = await conn.producer(name, "plain")
    await plain.produce(b"f")
    _, h = await stored_msg(nc, f"{name}$1", 6)
    assert "msg-id" not in h and "Nats-Msg-Id" not in h


# -- produce_batch ------------------------------------------------------------------------------
async def test_produce_batch_outcomes(connect: Any, nc: Any, uid: Any) -> None:
    """One result per message, in order: stored (with stream and sequence), rejected before
    sending (too large), duplicate; to a destroyed station every message is "not stored"."""
    name = uid("batch")
    conn = await connect()
    producer = await conn.producer(name, "p")
    results = await producer.produce_batch(
        [b"a", "b", {"c": 1}, b"x" * 2_000_000, b"e"], msg_ids=[None, "d", "d", None, None]
    )
    assert [(r.index, r.kind, r.sequence, r.duplicate) for r in results] == [
        (0, "stored", 1, False),
        (1, "stored", 2, False),
        (2, "stored", 2, True),
        (3, "rejected", None, False),
        (4, "stored", 3, False),
    ]
    assert results[0].stream == f"{name}$1"
    assert "max_payload" in (results[3].error or "")
    assert await stream_count(nc, f"{name}$1") == 3
    other = await connect()
    await (await other.station(name)).destroy()
    results = await producer.produce_batch([b"f", b"g"])
    assert [(r.index, r.stored, r.kind, r.code) for r in results] == [
        (5, False, "not_stored", 503),
        (6, False, "not_stored", 503),
    ]
    await producer.flush()  # batch outcomes are returned, not raised again


async def test_produce_batch_results_name_each_partitions_stream(connect: Any, nc: Any, uid: Any) -> None:
    """Round-robin over 3 partitions: each result names the stream its message went to (the
    core shares one name per stream across acks; names that are prefixes of each other, $1 and
    $10, must not be confused: 11 partitions)."""
    name = uid("batch-parts")
    conn = await connect()
    await conn.station(name, partitions_number=11)
    producer = await conn.producer(name, "p")
    results = await producer.produce_batch([f"m{i}".encode() for i in range(33)])
    assert all(r.stored for r in results)
    by_stream: dict[str, list[int]] = {}
    for r in results:
        assert r.stream is not None
        by_stream.setdefault(r.stream, []).append(r.sequence or 0)
    assert sorted(by_stream) == sorted(f"{name}${p}" for p in range(1, 12))
    assert all(seqs == [1, 2, 3] for seqs in by_stream.values()), by_stream
    for p in range(1, 12):
        assert await stream_count(nc, f"{name}${p}") == 3




async def test_produce_batch_spread_lands_where_single_produces_would(connect: Any, nc: Any, uid: Any) -> None:
    """A batch of bytes over several partitions (sent as one slice per partition) puts every
    message in the partition, and in the order, that the same produces one by one would, and
    leaves the round-robin where they would have: one station fed one message at a time, the
    other single, batch, single, batch; the partitions' contents must be equal. Results come
    in message order, each naming the stream and sequence it was stored at; msg_ids go with
    their messages (a duplicate is reported at its own position)."""
    conn = await connect()
    one, spread = uid("rr-one"), uid("rr-spread")
    for name in (one, spread):
        await conn.station(name, partitions_number=3)
    p_one = await conn.producer(one, "p")
    p_spread = await conn.producer(spread, "p")
    payloads = [f"m{i}".encode() for i in range(16)]
    for m in payloads:
        await p_one.produce(m)
    await p_spread.produce(payloads[0])
    results = await p_spread.produce_batch(payloads[1:8])  # 7 messages: not a multiple of 3
    await p_spread.produce(payloads[8])
    results += await p_spread.produce_batch(tuple(payloads[9:11]))  # fewer than the partitions
    results += await p_spread.produce_batch(payloads[11:16])
    assert [r.index for r in results] == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15]
    assert all(r.stored for r in results)
    for p in (1, 2, 3):
        n = await stream_count(nc, f"{one}${p}")
        assert await stream_count(nc, f"{spread}${p}") == n
        for seq in range(1, n + 1):
            want, _ = await stored_msg(nc, f"{one}${p}", seq)
            got, _ = await stored_msg(nc, f"{spread}${p}", seq)
            assert got == want, (p, seq)
    sent = payloads[1:8] + payloads[9:16]
    for r, m in zip(results, sent, strict=True):
        assert r.stream is not None and r.sequence is not None
        assert (await stored_msg(nc, r.stream, r.sequence))[0] == m
    # Positions 0 and 3 go to one partition (3 apart), 1 and 5 to two different ones.
    ids = ["a", "b", "c", "a", None, "b"]
    dup = await p_spread.produce_batch([b"x"] * 6, msg_ids=ids)
    assert [r.duplicate for r in dup] == [False, False, False, True, False, False]
    assert dup[3].stream == dup[0].stream and dup[5].stream != dup[1].stream
# -- schema errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("lib", ["memphis_fast", "memphis-py"])
async def test_schema_failure_error_types(
    lib: str, connect: Any, connect_py: Any, uid: Any, tmp_path: Any
) -> None:
    """Feature matrix 1.8: ``Producer.produce`` raises MemphisSchemaError for a message that
    fails validation, ``Memphis.produce`` a plain MemphisError (memphis-py re-wraps it); both
    clients, same split."""
    mod: Any = mf if lib == "memphis_fast" else mpy
    kw = {} if lib == "memphis_fast" else {"timeout_retries": R}
    conn = await (connect() if lib == "memphis_fast" else connect_py())
    schema_file = tmp_path / "order.json"
    schema_file.write_text(json.dumps({"type": "object", "required": ["id"]}))
    schema, name = uid("order-schema"), uid("schema-split")
    await conn.create_schema(schema, "json", str(schema_file), **kw)
    await conn.station(name, **kw)
    await conn.enforce_schema(schema, name, **kw)
    producer = await conn.producer(name, "p", **kw)
    await producer.produce({"id": 1})
    with pytest.raises(mod.MemphisSchemaError):
        await producer.produce({"no": "id"})
    with pytest.raises(mod.MemphisError) as info:
        await conn.produce(name, "p", {"no": "id"})
    assert type(info.value) is mod.MemphisError
