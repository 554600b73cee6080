"""Core NATS against a real nats-server: pub/sub with and without headers, queue groups,
request/reply, 503 no responders, limits enforced before sending, connect latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from wire_helpers import Connect, Events, ms

from memphis_fast import _core
from memphis_fast._connect import Server
from memphis_fast._server import NatsServer
from memphis_fast.exceptions import (
    MemphisConnectError,
    MemphisError,
    MemphisNoRespondersError,
    MemphisPayloadTooLargeError,
    MemphisTimeoutError,
)

pytestmark = pytest.mark.timeout(30)


class Inbox:
    """A subscription handler that collects messages and can wait for a count."""

    def __init__(self) -> None:
        self.msgs: list[_core.Msg] = []
        self._event = asyncio.Event()
        self._want = 0

    def __call__(self, msgs: list[_core.Msg]) -> None:
        self.msgs.extend(msgs)
        if len(self.msgs) >= self._want:
            self._event.set()

    async def wait(self, n: int, timeout: float = 5.0) -> list[_core.Msg]:
        self._want = n
        if len(self.msgs) < n:
            self._event.clear()
            async with asyncio.timeout(timeout):
                while len(self.msgs) < n:
                    self._event.clear()
                    await self._event.wait()
        return self.msgs


async def test_pub_sub_without_headers(nats_server: NatsServer, connect: Connect) -> None:
    sub_conn = await connect(nats_server)
    pub_conn = await connect(nats_server)
    inbox = Inbox()
    sid = sub_conn.subscribe("orders.*", inbox)
    await sub_conn.flush()
    payloads = [b"", b"x", bytes(range(256)) * 4, b"\r\nMSG fake 1 2\r\n"]
    for i, p in enumerate(payloads):
        pub_conn.publish(f"orders.{i}", p)
    pub_conn.publish("other", b"not for us")
    msgs = await inbox.wait(len(payloads))
    assert [m.data for m in msgs] == payloads
    assert [m.subject for m in msgs] == [f"orders.{i}" for i in range(len(payloads))]
    assert all(m.sid == sid and m.reply is None and m.headers is None for m in msgs)
    assert all(m.header_block_bytes is None and m.status == 0 for m in msgs)
    # Payload types: bytes, bytearray and memoryview go out unchanged; str is refused.
    pub_conn.publish("orders.t", bytearray(b"ba"))
    pub_conn.publish("orders.t", memoryview(b"--mv--")[2:4])
    with pytest.raises(TypeError):
        pub_conn.publish("orders.t", "text")  # type: ignore[arg-type]
    msgs = await inbox.wait(len(payloads) + 2)
    assert [m.data for m in msgs[-2:]] == [b"ba", b"mv"]


async def test_pub_sub_with_headers(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    inbox = Inbox()
    conn.subscribe("h", inbox)
    headers = {"$memphis_producedBy": "p1", "$memphis_connectionId": "c-1", "Key": "a value: with colon"}
    conn.publish("h", b"payload", headers=headers)
    conn.publish("h", b"multi", headers=[("X", "1"), ("X", "2"), ("Y", "3")])
    conn.publish("h", b"", headers={})
    m1, m2, m3 = await inbox.wait(3)
    assert m1.data == b"payload"
    assert m1.headers == headers
    assert m1.header_block_bytes == (
        b"NATS/1.0\r\n$memphis_producedBy: p1\r\n$memphis_connectionId: c-1\r\n"
        b"Key: a value: with colon\r\n\r\n"
    )
    assert m2.headers_multi == {"X": ["1", "2"], "Y": ["3"]}
    assert m2.headers == {"X": "2", "Y": "3"}, "last value wins in the flat view"
    assert m3.headers == {} and m3.data == b""
    # Invalid headers are refused before anything is sent, and the connection stays usable.
    for bad in ({"bad key": "v"}, {"k": "line\r\nbreak"}, {"a:b": "v"}):
        with pytest.raises(MemphisError):
            conn.publish("h", b"x", headers=bad)
    await conn.flush()
    assert conn.is_connected


async def test_queue_groups_split_messages(nats_server: NatsServer, connect: Connect) -> None:
    pub = await connect(nats_server)
    workers = [await connect(nats_server) for _ in range(3)]
    boxes = [Inbox() for _ in workers]
    plain = Inbox()
    for w, box in zip(workers, boxes, strict=True):
        w.subscribe("jobs", box, queue="workers")
        await w.flush()
    workers[0].subscribe("jobs", plain)  # not in the group: sees everything
    await workers[0].flush()
    n = 300
    for i in range(n):
        pub.publish("jobs", str(i).encode())
    await plain.wait(n)
    await pub.flush()
    async with asyncio.timeout(5):
        while sum(len(b.msgs) for b in boxes) < n:
            await asyncio.sleep(0.01)
    got = sorted(int(m.data) for b in boxes for m in b.msgs)
    assert got == list(range(n)), "each message reaches exactly one group member"
    assert sum(1 for b in boxes if b.msgs) >= 2, "the group spreads the load"


async def test_request_reply_and_no_responders(nats_server: NatsServer, connect: Connect) -> None:
    service = await connect(nats_server)
    client = await connect(nats_server)

    def echo(msgs: list[_core.Msg]) -> None:
        for m in msgs:
            assert m.reply is not None
            service.publish(m.reply, m.data[::-1], headers={"Echo": m.subject})

    service.subscribe("svc.echo", echo)
    await service.flush()
    replies = await asyncio.gather(*(client.request("svc.echo", f"req{i}".encode(), 5) for i in range(50)))
    assert [r.data for r in replies] == [f"req{i}".encode()[::-1] for i in range(50)]
    assert all(r.headers == {"Echo": "svc.echo"} for r in replies)

    with pytest.raises(MemphisNoRespondersError):
        await client.request("svc.nobody", b"x", 5)
    # A subscriber that never answers: a timeout, not a 503.
    service.subscribe("svc.silent", lambda msgs: None)
    await service.flush()
    t0 = time.monotonic()
    with pytest.raises(MemphisTimeoutError) as ei:
        await client.request("svc.silent", b"x", 0.2)
    assert isinstance(ei.value, TimeoutError)
    assert time.monotonic() - t0 < 2
    assert client._requests == {}, "finished requests leave no futures behind"


async def test_unsubscribe_and_auto_unsubscribe(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    a, b = Inbox(), Inbox()
    sid_a = conn.subscribe("u", a)
    sid_b = conn.subscribe("u", b)
    conn.unsubscribe(sid_b, max_msgs=2)
    await conn.flush()
    for i in range(5):
        conn.publish("u", str(i).encode())
    await a.wait(5)
    await conn.flush()
    assert [m.data for m in b.msgs] == [b"0", b"1"]
    conn.unsubscribe(sid_a)
    conn.publish("u", b"after")
    await conn.flush()
    assert len(a.msgs) == 5
    assert not conn.core.is_subscribed(sid_a) and not conn.core.is_subscribed(sid_b)


async def test_oversized_publish_is_rejected_before_sending(
    nats_server_factory: Callable[..., NatsServer], connect: Connect
) -> None:
    srv = nats_server_factory("max_payload: 1024")
    events = Events()
    conn = await connect(srv, on_event=events)
    watcher = await connect(srv)
    inbox = Inbox()
    watcher.subscribe(">", inbox)
    await watcher.flush()
    assert conn.max_payload == 1024
    before = conn.stats()["bytes_out"]
    with pytest.raises(MemphisPayloadTooLargeError) as ei:
        conn.publish("big", b"x" * 1025)
    assert (ei.value.size, ei.value.limit) == (1025, 1024)  # type: ignore[attr-defined]
    # Headers count against max_payload too.
    with pytest.raises(MemphisPayloadTooLargeError):
        conn.publish("big", b"x" * 1000, headers={"k": "v" * 30})
    g = conn.new_group()
    with pytest.raises(MemphisPayloadTooLargeError):
        conn.publish_windowed("big", b"x" * 2000, g, 0, ms(5), None, None, None, 0, 0)
    with pytest.raises(MemphisPayloadTooLargeError):
        conn.publish_awaited("big", b"x" * 2000, g, 1, ms(5))
    assert conn.core.inflight == 0 and conn.group_inflight(g) == 0
    conn.publish("small", b"x" * 1024)
    await conn.flush()
    await inbox.wait(1)
    assert [m.subject for m in inbox.msgs] == ["small"]
    # Had the big frames gone out the server would have closed the connection with
    # "Maximum Payload Violation"; it did not, and only the small frame (plus PING) left.
    assert conn.is_connected and events.count("disconnected") == 0
    assert conn.stats()["bytes_out"] - before < 1200
    assert conn.last_error is None


async def test_connect_to_localhost_has_no_sleep(nats_server: NatsServer, connect: Connect) -> None:
    # memphis-py sleeps 1 s before connecting when the host contains "localhost" (spec 2.1).
    t0 = time.perf_counter()
    conn = await connect(Server("localhost", nats_server.port))
    elapsed = time.perf_counter() - t0
    assert conn.is_connected
    assert conn.server_info["port"] == nats_server.port
    assert elapsed < 0.9, f"connecting took {elapsed:.3f} s (memphis-py's sleep is 1 s)"


async def test_connect_failures(nats_server: NatsServer, connect: Connect) -> None:
    port = nats_server.port
    nats_server.stop()
    with pytest.raises(MemphisConnectError, match="can not connect"):
        await connect(port, connect_timeout=1)
    # Several servers: the error names each one.
    with pytest.raises(MemphisConnectError) as ei:
        await connect(port, Server("127.0.0.1", 1), connect_timeout=1)
    assert f"127.0.0.1:{port}" in str(ei.value) and "127.0.0.1:1" in str(ei.value)


async def test_closed_connection_refuses_work(nats_server: NatsServer, connect: Connect) -> None:
    events = Events()
    conn = await connect(nats_server, on_event=events)
    await conn.close()
    assert conn.is_closed and events.names() == ["connected", "closed"]
    with pytest.raises(MemphisConnectError):
        conn.publish("x", b"")
    with pytest.raises(MemphisConnectError):
        await conn.request("x", b"", 1)
    await conn.close()  # idempotent
    assert events.names() == ["connected", "closed"]
