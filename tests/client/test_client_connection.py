"""Connection lifecycle: no sleep on localhost (P5), max_reconnect honoured (R1), close() cleans
up everything (B1), is_connected() before connect (R5), error texts (B15, B16, B20), station
destroy un-caching (B14). Where cheap, the same test shows memphis-py 1.3.1's old behaviour."""

from __future__ import annotations

import asyncio
from typing import Any

import memphis as mpy
import pytest
from client_helpers import Collector, R, TcpProxy, eventually

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


class SleepRecorder:
    """Replaces ``asyncio.sleep``: records every delay, sleeps at most 10 ms."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._orig = asyncio.sleep

    async def __call__(self, delay: float, result: Any = None) -> Any:
        self.delays.append(delay)
        return await self._orig(min(delay, 0.01), result)


async def test_connect_to_localhost_does_not_sleep(
    broker: LocalBroker, monkeypatch: pytest.MonkeyPatch, connect_py: Any
) -> None:
    """P5: memphis-py sleeps 1 s when the host contains "localhost"; memphis_fast never sleeps
    while connecting."""
    rec = SleepRecorder()
    monkeypatch.setattr(asyncio, "sleep", rec)
    conn = await mf.Memphis().__aenter__()
    try:
        await conn.connect(**{**broker.connect_kwargs(), "host": "localhost"})
        assert conn.is_connected()
        assert rec.delays == []
    finally:
        await conn.close()
    # The old behaviour, recorded (the recorder turns its 1 s into 10 ms).
    await connect_py(host="localhost")
    assert 1 in rec.delays


async def _reconnect_attempts(proxy: TcpProxy, closed: asyncio.Event) -> int:
    proxy.mode = "reject"
    before = proxy.accepted
    proxy.cut()
    await asyncio.wait_for(closed.wait(), 30)
    return proxy.accepted - before


async def test_max_reconnect_is_honoured_as_given(broker: LocalBroker) -> None:
    """R1: memphis-py lowers max_reconnect above 9 to 9; memphis_fast makes exactly the
    attempts asked for, then closes (each attempt is one connection the proxy accepts)."""
    proxy = await TcpProxy(broker.host, broker.port).start()
    try:
        closed = asyncio.Event()
        events: list[str] = []

        def on_event(name: str, detail: Any) -> None:
            events.append(name)
            if name == "closed":
                closed.set()

        conn = mf.Memphis()
        await conn.connect(
            **{**broker.connect_kwargs(), "port": proxy.port},
            max_reconnect=12,
            reconnect_interval_ms=10,
            connection_event_callback=on_event,
        )
        assert await _reconnect_attempts(proxy, closed) == 12
        assert events[:2] == ["connected", "disconnected"] and events[-1] == "closed"
        assert not conn.is_connected()
        with pytest.raises(mf.MemphisConnectError):
            await conn.station("after-close", timeout_retries=R)
        await conn.close()
    finally:
        await proxy.close()


# nats-py leaks the sockets of its failed reconnect attempts.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_memphis_py_clamps_max_reconnect(broker: LocalBroker, connect_py: Any) -> None:
    """R1, the old behaviour: 12 requested, clamped to 9 (nats-py then makes max + 1 = 10
    attempts); memphis_fast makes 12 (test above)."""
    proxy = await TcpProxy(broker.host, broker.port).start()
    try:
        py = await connect_py(port=proxy.port, max_reconnect=12, reconnect_interval_ms=10)
        assert py.max_reconnect == 9
        py_closed = asyncio.Event()

        async def py_closed_cb() -> None:
            py_closed.set()

        py.broker_manager._closed_cb = py_closed_cb
        assert await _reconnect_attempts(proxy, py_closed) == 10
    finally:
        await proxy.close()


async def test_close_cancels_every_task_and_clears_state(connect: Any, connect_py: Any, uid: Any) -> None:
    """B1: close() stops consumers (consume, ping, DLS), empties the caches and leaves no
    task behind. memphis-py's close() leaves its consumers and their ping tasks running."""
    before = set(asyncio.all_tasks())
    name = uid("close")
    conn = await connect()
    await conn.station(name)
    producer = await conn.producer(name, "p")
    consumer = await conn.consumer(name, "c", pull_interval_ms=10)
    collector = Collector()
    consumer.consume(collector)
    for i in range(20):
        await producer.produce(f"m{i}", nonblocking=True)
    await eventually(lambda: len(collector.msgs) == 20)
    assert consumer.t_consume is not None and consumer.t_ping is not None
    assert set(asyncio.all_tasks()) - before  # there is something to clean up
    await conn.close()
    assert set(asyncio.all_tasks()) == before
    assert conn.consumers_map == {} and conn.producers_map == {}
    assert consumer.t_consume is None and consumer.t_ping is None
    assert not conn.is_connected()
    await conn.close()  # idempotent

    py = await connect_py()
    await py.station(name, timeout_retries=R)
    py_consumer = await py.consumer(name, "c2", timeout_retries=R)
    await py.close()
    assert py.consumers_map  # still cached
    await asyncio.sleep(0)
    assert not py_consumer.t_ping.done()  # still running after close (the fixture cancels it)


async def test_is_connected_before_connect() -> None:
    """R5: False before connect() (memphis-py raises AttributeError)."""
    assert mf.Memphis().is_connected() is False
    with pytest.raises(AttributeError):
        mpy.Memphis().is_connected()


def test_error_text_is_not_rewritten() -> None:
    """B20: memphis-py rewrites every "nats" in an error, user data included; it also crashes
    on a non-str message (B15)."""
    err = mf.MemphisError("station natsorders: NATS says no")
    assert err.message == "station natsorders: NATS says no"
    assert str(err) == "memphis: station natsorders: NATS says no"
    assert mf.MemphisError({"error": "x"}).message == "{'error': 'x'}"
    assert mpy.MemphisError("station natsorders").message == "station memphisorders"
    with pytest.raises(AttributeError):
        mpy.MemphisError({"error": "x"})


async def test_create_schema_unknown_type_is_a_memphis_error(
    connect: Any, connect_py: Any, tmp_path: Any
) -> None:
    """B16: an unknown schema type raises MemphisError (memphis-py: TypeError)."""
    path = tmp_path / "s.json"
    path.write_text('{"type": "object"}')
    conn = await connect()
    with pytest.raises(mf.MemphisError, match="xml"):
        await conn.create_schema("bad-type", "xml", str(path))
    py = await connect_py()
    with pytest.raises(TypeError):
        await py.create_schema("bad-type", "xml", str(path), timeout_retries=R)


async def test_creation_error_carries_the_broker_text(connect: Any, uid: Any) -> None:
    """B15: the broker's error text reaches the user as it is (memphis-py masked JSON error
    replies with "'dict' object has no attribute 'replace'"). A bad name is now refused by the
    client before anything is sent, with the broker's wording and the argument named."""
    conn = await connect()
    with pytest.raises(mf.MemphisArgumentError) as info:
        await conn.consumer(uid("st"), "bad name!", timeout_retries=R)
    assert info.value.message.startswith("Only alphanumeric")
    assert "consumer_name='bad name!'" in info.value.message
    # Only the broker checks this one: its text comes back unchanged.
    with pytest.raises(mf.MemphisError) as info2:
        await conn.station(uid("st"), idempotency_window_ms=25 * 3600 * 1000, timeout_retries=R)
    assert info2.value.message == "idempotency window can not exceed 24 hours"


async def test_station_destroy_uncaches_only_that_station(connect: Any, connect_py: Any, uid: Any) -> None:
    """B14: destroying "orders" must not drop the cached producers of "orders-v2"
    (memphis-py matched cache keys by substring)."""
    base = uid("orders")
    for lib_connect, kw in ((connect, {}), (connect_py, {"timeout_retries": R})):
        conn = await lib_connect()
        station = await conn.station(base, **kw)
        await conn.station(base + "-v2", **kw)
        await conn.producer(base, "p", **kw)
        await conn.producer(base + "-v2", "p", **kw)
        await station.destroy(**kw)
        keys = list(conn.producers_map)
        if isinstance(conn, mf.Memphis):
            assert keys == [f"{base}-v2_p"]
            await (await conn.station(base + "-v2")).destroy()
        else:
            assert keys == []  # the -v2 producer is gone too


async def test_connect_takes_a_list_of_servers(broker: LocalBroker, uid: Any) -> None:
    """connect(host=[...]) (a cluster's server list) works like "h1:p1,h2:p2"; the first
    server that does not answer is skipped."""
    import socket

    import memphis_fast

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    kw = broker.connect_kwargs()
    kw["host"] = [f"127.0.0.1:{dead}", f"127.0.0.1:{broker.port}"]
    kw.pop("port", None)
    async with await memphis_fast.connect(**kw) as m:
        name = uid("hostlist")
        await m.station(name)
        p = await m.producer(name, "p")
        r = await p.produce(b"x")
        assert r is not None and r.stored
    with pytest.raises(memphis_fast.MemphisError):
        await memphis_fast.connect(**{**kw, "host": []})
