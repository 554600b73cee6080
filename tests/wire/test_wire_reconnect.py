"""Reconnecting against real nats-servers: a server killed and restarted while the client
publishes (every message exactly one outcome, subscriptions keep receiving), publishes
buffered while disconnected (and the byte limit), message-id publishes re-sent and stored
once, ``max_reconnect`` counted exactly, server rotation, closing while disconnected."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from wire_helpers import Connect, Events, create_stream, ms, stream_info, stream_msg

from memphis_fast import _core
from memphis_fast._connection import NatsConnection, OutcomeKind, OutcomeReason, ProduceResult
from memphis_fast._server import NatsServer
from memphis_fast.exceptions import MemphisConnectError, MemphisConnectionClosedError
from memphis_fast.testing import TcpProxy

pytestmark = pytest.mark.timeout(60)

ProxyFactory = Callable[..., Awaitable[TcpProxy]]


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.005) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(step)


async def all_stream_msgs(conn: NatsConnection, stream: str) -> list[tuple[int, bytes, dict[str, str]]]:
    """``(seq, payload, headers)`` of every message in a stream."""
    last = (await stream_info(conn, stream))["state"]["last_seq"]
    replies = await asyncio.gather(*(stream_msg(conn, stream, s) for s in range(1, last + 1)))
    out = []
    for body in replies:
        m = body["message"]
        raw = base64.b64decode(m.get("hdrs", "")) if m.get("hdrs") else b""
        _, _, pairs = _core.parse_header_block(raw) if raw else (0, "", [])
        out.append((m["seq"], base64.b64decode(m.get("data", "")), dict(pairs)))
    return out


@pytest.mark.slow
async def test_kill_and_restart_while_publishing(nats_server: NatsServer, connect: Connect) -> None:
    srv = nats_server
    events = Events()
    conn = await connect(srv, on_event=events, reconnect_wait=0.05)
    other = await connect(srv)  # a second client, also cut off by the crash
    await create_stream(conn, "k$1", ["k$1.>"])
    ticks: list[bytes] = []
    conn.subscribe("ticks", lambda msgs: ticks.extend(m.data for m in msgs))
    await conn.flush()

    n = 3000
    kill_at, restart_at = n // 3, n // 2  # the kill itself comes 100 messages after the pause
    awaited: dict[int, ProduceResult] = {}
    failures: dict[int, ProduceResult] = {}
    g_wait, g_fire = conn.new_group(), conn.new_group()

    def on_failure(r: ProduceResult) -> None:
        tag = r.index
        assert tag not in failures, f"second outcome for {tag}"
        assert r.msg_id == (f"id-{tag}" if tag % 4 == 1 else None)
        failures[tag] = r

    conn.set_failure_handler(g_fire, on_failure)

    async def publish_wait(i: int, msg_id: str | None) -> None:
        out = await conn.publish_awaited("k$1.final", str(i).encode(), g_wait, i, ms(10), msg_id=msg_id)
        assert i not in awaited, f"second outcome for {i}"
        assert (out.index, out.msg_id) == (i, msg_id)
        awaited[i] = out

    chaos: asyncio.Future[NatsServer] | None = None
    tasks = []
    for i in range(n):
        msg_id = f"id-{i}" if i % 4 in (0, 1) else None
        if i % 2 == 0:
            tasks.append(asyncio.ensure_future(publish_wait(i, msg_id)))
        else:
            # As a nonblocking produce does: wait for room while the socket is backed up.
            while not conn.publish_windowed(
                "k$1.final", str(i).encode(), g_fire, i, ms(10), None, None, msg_id, 0, 0
            ):
                await conn.wait_room()
        if i == kill_at:
            # Freeze the server first, so that what is published next is written but never
            # acknowledged: those messages are in flight when it dies, whatever the speed of
            # the machine or the event loop.
            srv.pause()
        if i == kill_at + 100:
            await asyncio.to_thread(srv.kill)
        if i == restart_at:
            # Restart on the same port and store directory, while publishing goes on.
            chaos = asyncio.ensure_future(asyncio.to_thread(srv.start))
        if i % 25 == 0:
            await asyncio.sleep(0.001)
    assert chaos is not None
    await chaos
    await asyncio.gather(*tasks)
    assert await conn.wait_group_drained(g_fire, 20)
    await events.wait("reconnected")

    # Exactly one outcome each: awaited ones through their future, fire-and-forget ones
    # through the group's counters (stored) or the failure handler (everything else).
    assert sorted(awaited) == list(range(0, n, 2))
    fire = conn.core.group_stats(g_fire)
    assert fire["published"] == n // 2 and fire["inflight"] == 0
    assert fire["acked"] + fire["failed"] == n // 2
    assert fire["failed"] == len(failures)
    kinds = Counter(o.kind for o in awaited.values())
    assert set(kinds) <= {OutcomeKind.STORED, OutcomeKind.UNKNOWN}, kinds
    for i, out in awaited.items():
        if i % 4 == 0:
            # A message id makes the publish safe to re-send: it is never "unknown".
            assert out.kind == OutcomeKind.STORED, (i, out)
        if out.kind == OutcomeKind.UNKNOWN:
            assert out.reason in (OutcomeReason.CONNECTION_LOST, OutcomeReason.ACK_TIMEOUT), (i, out)
    for tag, out in failures.items():
        assert tag % 4 == 3 and out.kind == OutcomeKind.UNKNOWN, (tag, out)
    lost = sum(1 for o in awaited.values() if o.kind == OutcomeKind.UNKNOWN) + len(failures)
    assert lost < n // 2, "most messages survive"
    assert conn.core.group_stats(g_wait)["retried"] + fire["retried"] > 0, "something was re-sent"

    # The stream agrees: every stored outcome names the sequence holding that message, and
    # no message id is stored twice.
    stored = await all_stream_msgs(conn, "k$1")
    by_seq = {seq: data for seq, data, _ in stored}
    for i, out in awaited.items():
        if out.kind == OutcomeKind.STORED:
            assert out.sequence is not None and by_seq[out.sequence] == str(i).encode(), (i, out)
    ids = Counter(h["Nats-Msg-Id"] for _, _, h in stored if "Nats-Msg-Id" in h)
    assert ids and max(ids.values()) == 1
    assert set(ids) == {f"id-{i}" for i in range(n) if i % 4 in (0, 1)}, "every msg-id message is stored"

    # Subscriptions keep receiving after the restart (re-sent before any replayed publish).
    await wait_until(lambda: other.is_connected)
    for k in range(10):
        other.publish("ticks", f"t{k}".encode())
    await other.flush()
    await conn.flush()
    assert ticks == [f"t{k}".encode() for k in range(10)]
    assert conn.stats()["reconnects"] >= 1


async def test_publishes_buffered_while_disconnected(
    nats_server: NatsServer, connect: Connect, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(nats_server)
    events = Events()
    conn = await connect(proxy, on_event=events)
    watcher = await connect(nats_server)
    await create_stream(watcher, "buf", ["buf.js"], storage="memory")
    seen: list[_core.Msg] = []
    watcher.subscribe("buf.core", seen.extend)
    await watcher.flush()

    proxy.mode = "reject"
    proxy.cut()
    await events.wait("disconnected")
    assert not conn.is_connected
    for i in range(100):
        conn.publish("buf.core", f"c{i}".encode(), headers={"i": str(i)})
    g = conn.new_group()
    waits = [
        asyncio.ensure_future(conn.publish_awaited("buf.js", f"j{i}".encode(), g, i, ms(10)))
        for i in range(20)
    ]
    await asyncio.sleep(0.2)
    await watcher.flush()
    assert seen == [], "nothing leaves while disconnected"
    assert conn.stats()["pending_bytes"] > 100 * 10
    assert not any(w.done() for w in waits)

    proxy.mode = "forward"
    await events.wait("reconnected")
    outs = await asyncio.gather(*waits)
    assert [(o.index, o.kind, o.sequence) for o in outs] == [
        (i, OutcomeKind.STORED, i + 1) for i in range(20)
    ]
    await conn.flush()
    await watcher.flush()
    assert [m.data for m in seen] == [f"c{i}".encode() for i in range(100)], "in order, once each"
    assert [m.headers for m in seen] == [{"i": str(i)} for i in range(100)]
    assert conn.stats()["pending_bytes"] == 0


async def test_pending_byte_limit_refuses(
    nats_server: NatsServer, connect: Connect, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(nats_server)
    events = Events()
    conn = await connect(proxy, on_event=events, pending_limit=10_000)
    watcher = await connect(nats_server)
    seen: list[_core.Msg] = []
    watcher.subscribe("lim", seen.extend)
    await watcher.flush()
    proxy.mode = "reject"
    proxy.cut()
    await events.wait("disconnected")
    accepted = 0
    with pytest.raises(MemphisConnectError, match="full") as ei:
        for _ in range(100):
            conn.publish("lim", b"x" * 1000)
            accepted += 1
    assert not isinstance(ei.value, MemphisConnectionClosedError)
    assert 5 <= accepted < 10
    assert conn.stats()["pending_bytes"] <= 10_000
    g = conn.new_group()
    with pytest.raises(MemphisConnectError, match="full"):
        conn.publish_windowed("lim", b"x" * 1000, g, 0, ms(5), None, None, None, 0, 0)
    with pytest.raises(MemphisConnectError, match="full"):
        conn.publish_awaited("lim", b"x" * 1000, g, 1, ms(5))
    assert conn.group_inflight(g) == 0
    proxy.mode = "forward"
    await events.wait("reconnected")
    await conn.flush()
    await watcher.flush()
    assert len(seen) == accepted, "exactly the accepted messages went out"
    conn.publish("lim", b"x" * 1000)  # room again


async def test_msg_id_publish_resent_after_reconnect_is_stored_once(
    nats_server: NatsServer, connect: Connect, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(nats_server)
    events = Events()
    conn = await connect(proxy, on_event=events)
    direct = await connect(nats_server)
    await create_stream(direct, "once", ["once.>"])
    g = conn.new_group()
    # The server will store both messages, but its acknowledgements never come back.
    proxy.hold(downstream=True)
    with_id = asyncio.ensure_future(conn.publish_awaited("once.a", b"with id", g, 1, ms(10), msg_id="m-1"))
    without = asyncio.ensure_future(conn.publish_awaited("once.a", b"without", g, 2, ms(10)))
    async with asyncio.timeout(5):
        while (await stream_info(direct, "once"))["state"]["messages"] < 2:
            await asyncio.sleep(0.01)
    assert not with_id.done() and not without.done()
    proxy.cut()
    proxy.release()
    await events.wait("reconnected")
    a, b = await asyncio.gather(with_id, without)
    # Re-sent with the same Nats-Msg-Id: the server recognises it.
    assert (a.index, a.kind, a.sequence, a.duplicate, a.msg_id) == (1, OutcomeKind.STORED, 1, True, "m-1"), a
    # Without an id a re-send could duplicate it, so its fate is reported as unknown.
    assert (b.index, b.kind, b.reason) == (2, OutcomeKind.UNKNOWN, OutcomeReason.CONNECTION_LOST), b
    assert "lost" in (b.error or ""), b
    assert (await stream_info(direct, "once"))["state"]["messages"] == 2
    assert conn.core.group_stats(g)["retried"] == 1


@pytest.mark.parametrize("max_reconnect", [0, 1, 3])
async def test_max_reconnect_is_honoured_exactly(
    nats_server: NatsServer, connect: Connect, proxy_factory: ProxyFactory, max_reconnect: int
) -> None:
    proxy = await proxy_factory(nats_server)
    events = Events()
    conn = await connect(proxy, on_event=events, max_reconnect=max_reconnect, reconnect_wait=0.02)
    g = conn.new_group()
    assert proxy.accepted == 1
    proxy.mode = "reject"
    proxy.cut()
    await events.wait("closed")
    assert proxy.accepted - 1 == max_reconnect, "one connection attempt per allowed reconnect"
    assert conn.is_closed
    if max_reconnect:
        assert f"gave up reconnecting after {max_reconnect} attempts" in events.items[-1][1]
    with pytest.raises(MemphisConnectionClosedError):
        conn.publish("x", b"")
    with pytest.raises(MemphisConnectionClosedError):
        conn.publish_windowed("x", b"", g, 0, ms(1), None, None, None, 0, 0)
    with pytest.raises(MemphisConnectionClosedError):
        conn.publish_awaited("x", b"", g, 1, ms(1))
    with pytest.raises(MemphisConnectionClosedError):
        await conn.publish_batch("x", [b""], g, ms(1))
    await asyncio.sleep(0.1)
    assert proxy.accepted - 1 == max_reconnect, "no attempt after giving up"
    assert events.names() == ["connected", "disconnected", "closed"]


async def test_reconnect_rotates_to_the_next_server(
    nats_server_factory: Callable[..., NatsServer], connect: Connect
) -> None:
    a = nats_server_factory(jetstream=False)
    b = nats_server_factory(jetstream=False)
    events = Events()
    conn = await connect(a, b, on_event=events)
    got: list[bytes] = []
    conn.subscribe("rot", lambda msgs: got.extend(m.data for m in msgs))
    await conn.flush()
    assert events.items[0] == ("connected", f"127.0.0.1:{a.port}")
    a.kill()
    await events.wait("reconnected")
    assert events.items[-1] == ("reconnected", f"127.0.0.1:{b.port}")
    assert conn.connected_server is not None and conn.connected_server.port == b.port
    peer = await connect(b)
    peer.publish("rot", b"on b")
    await peer.flush()
    await conn.flush()
    assert got == [b"on b"], "the subscription was re-sent to the new server"
    # And back again when b dies and a returns.
    a.start()
    b.kill()
    await events.wait("reconnected", 2)
    assert events.items[-1] == ("reconnected", f"127.0.0.1:{a.port}")


async def test_close_while_disconnected_ends_everything(
    nats_server: NatsServer, connect: Connect, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(nats_server)
    events = Events()
    conn = await connect(proxy, on_event=events)
    direct = await connect(nats_server)
    await create_stream(direct, "c1", ["c1.>"], storage="memory")
    g = conn.new_group()
    proxy.hold(downstream=True)
    sent = asyncio.ensure_future(conn.publish_awaited("c1.a", b"sent", g, 1, ms(30), msg_id="s"))
    async with asyncio.timeout(5):
        while (await stream_info(direct, "c1"))["state"]["messages"] < 1:
            await asyncio.sleep(0.01)
    proxy.mode = "reject"
    proxy.cut()
    await events.wait("disconnected")
    buffered = asyncio.ensure_future(conn.publish_awaited("c1.a", b"buffered", g, 2, ms(30)))
    flushing = asyncio.ensure_future(conn.flush(timeout=30))
    request = asyncio.ensure_future(conn.request("svc", b"", 30))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(conn.close(timeout=0.5), 5)
    a, b = await asyncio.gather(sent, buffered)
    assert (a.index, a.kind, a.reason) == (1, OutcomeKind.UNKNOWN, OutcomeReason.CONNECTION_LOST), a
    assert (b.index, b.kind, b.reason) == (2, OutcomeKind.NOT_SENT, OutcomeReason.CLOSED_BEFORE_SENDING), b
    with pytest.raises(MemphisConnectionClosedError):
        await flushing
    with pytest.raises(MemphisConnectionClosedError):
        await request
    assert events.names()[-1] == "closed"
    accepted = proxy.accepted
    await asyncio.sleep(0.1)
    assert proxy.accepted == accepted, "no reconnect attempt after close"


async def test_request_in_flight_across_a_reconnect_is_sent_again(
    nats_server: NatsServer, connect: Connect
) -> None:
    """A request written to a connection that then dies is sent again on the new session (its
    reply died with the old one), so it is answered well within its timeout instead of
    waiting all of it."""
    responder = await connect(nats_server)
    client = await connect(nats_server)
    seen: list[bytes] = []

    def on_request(msgs: list[Any]) -> None:
        for m in msgs:
            seen.append(bytes(m.data))
            if len(seen) > 1 and m.reply:  # the first copy is "lost" with the server
                responder.publish(m.reply, b"answer " + bytes(m.data))

    responder.subscribe("svc.create", on_request)
    await responder.flush()
    await client.flush()
    req = asyncio.ensure_future(client.request("svc.create", b"station-1", 20))
    async with asyncio.timeout(5):
        while not seen:
            await asyncio.sleep(0.01)
    t0 = time.monotonic()
    await asyncio.to_thread(nats_server.kill)
    await asyncio.to_thread(nats_server.restart)
    reply = await asyncio.wait_for(req, 15)
    assert bytes(reply.data) == b"answer station-1"
    assert time.monotonic() - t0 < 10
    assert seen.count(b"station-1") >= 2
