"""Misbehaving peers: a stalled server (SIGSTOP) found by keepalive, servers that send
garbage (protocol error, reconnect, never a crash or a hang), write backpressure reaching
callers, and the connection events delivered to the callback and to logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from wire_helpers import Connect, Events, ms

from memphis_fast import _core
from memphis_fast._server import NatsServer
from memphis_fast.exceptions import MemphisConnectError, MemphisProtocolError
from memphis_fast.testing import TcpProxy

pytestmark = pytest.mark.timeout(30)

ProxyFactory = Callable[..., Awaitable[TcpProxy]]
INFO = b'INFO {"server_id":"FAKE","version":"2.10.26","proto":1,"headers":true,"max_payload":1048576}\r\n'


async def test_stalled_server_is_found_by_keepalive(nats_server: NatsServer, connect: Connect) -> None:
    events = Events()
    conn = await connect(
        nats_server, on_event=events, ping_interval=0.1, max_outstanding_pings=2, connect_timeout=0.3
    )
    got: list[bytes] = []
    conn.subscribe("alive", lambda msgs: got.extend(m.data for m in msgs))
    await conn.flush()
    nats_server.pause()
    t0 = time.monotonic()
    try:
        await events.wait("disconnected", timeout=5)
        detected = time.monotonic() - t0
        assert conn.last_error == "stale connection"
        assert events.items[-1] == ("disconnected", "stale connection")
        # Two unanswered PINGs, one interval apart, then the check on the next tick.
        assert detected < 2.0, detected
        assert not conn.is_connected
        # While stopped the kernel still accepts TCP connections but nothing answers:
        # each attempt ends at the connect timeout instead of hanging.
        await asyncio.sleep(0.8)
        assert events.count("reconnected") == 0
    finally:
        nats_server.resume()
    await events.wait("reconnected", timeout=10)
    peer = await connect(nats_server)
    peer.publish("alive", b"again")
    await peer.flush()
    await conn.flush()
    assert got == [b"again"]


class FakeServer:
    """A tiny NATS impostor: sends INFO, answers the handshake PING, then misbehaves."""

    def __init__(self, after_info: bytes = b"", after_pong: bytes = b"", answer_ping: bool = True) -> None:
        self.after_info = after_info
        self.after_pong = after_pong
        self.answer_ping = answer_ping
        self.connections = 0
        self.received = bytearray()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> FakeServer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(w)
        try:
            w.write(INFO + self.after_info)
            await w.drain()
            buf = b""
            while b"PING\r\n" not in buf:
                chunk = await r.read(4096)
                if not chunk:
                    return
                buf += chunk
            self.received += buf
            if self.answer_ping:
                w.write(b"PONG\r\n")
                await w.drain()
                await asyncio.sleep(0.05)
                w.write(self.after_pong)
                await w.drain()
            while await r.read(4096):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            w.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.transport.abort()
        await asyncio.sleep(0)


@pytest.fixture
async def fake_server() -> asyncio.AsyncIterator[Callable[..., Awaitable[FakeServer]]]:  # type: ignore[name-defined]
    servers: list[FakeServer] = []

    async def make(**kw: bytes | bool) -> FakeServer:
        s = await FakeServer(**kw).start()  # type: ignore[arg-type]
        servers.append(s)
        return s

    yield make
    for s in servers:
        await s.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"FOO BAR\r\n",
        b"MSG a 1 99999999999\r\n",
        b"MSG a b c d e f\r\n",
        b"HMSG a 1 10 5\r\n",
        b"MSG a 1 3\r\nabcXY",
        b"X" * 70_000,
        bytes(range(256)),
    ],
    ids=["unknown-op", "huge-size", "bad-fields", "hdr-over-total", "no-crlf", "long-line", "binary"],
)
async def test_garbage_after_handshake_reconnects(
    fake_server: Callable[..., Awaitable[FakeServer]],
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    garbage: bytes,
) -> None:
    srv = await fake_server(after_pong=garbage)
    events = Events()
    with caplog.at_level(logging.ERROR, logger="memphis_fast.connection"):
        conn = await connect(srv.port, on_event=events, reconnect_wait=0.02, connect_timeout=1)
        await events.wait("disconnected")
        # It keeps reconnecting (and the impostor keeps misbehaving); nothing crashes.
        await events.wait("reconnected", 2)
    assert srv.connections >= 3
    reasons = [d for n, d in events.items if n == "disconnected"]
    assert all(d and "protocol error" in d for d in reasons), reasons
    assert any("protocol error" in r.getMessage() for r in caplog.records)
    assert b"CONNECT {" in srv.received
    await asyncio.wait_for(conn.close(), 5)
    assert conn.is_closed and events.names()[-1] == "closed"


@pytest.mark.parametrize(
    "garbage",
    [b"INFO not-json\r\n", b"GARBAGE\r\n", b"MSG x 1 9999999999999\r\n"],
    ids=["bad-info", "unknown-op", "huge-size"],
)
async def test_garbage_during_handshake_fails_fast(
    fake_server: Callable[..., Awaitable[FakeServer]], connect: Connect, garbage: bytes
) -> None:
    srv = await fake_server(after_info=garbage, answer_ping=False)
    t0 = time.monotonic()
    with pytest.raises(MemphisConnectError) as ei:
        await connect(srv.port, connect_timeout=30)
    assert time.monotonic() - t0 < 10, "a protocol error ends the attempt at once, not at the timeout"
    assert "protocol error" in str(ei.value)


async def test_garbage_before_info_fails_fast(connect: Connect) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        w.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await w.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(MemphisConnectError, match="protocol error"):
            await connect(port, connect_timeout=30)
        assert time.monotonic() - t0 < 10
    finally:
        server.close()
        for w in writers:
            w.transport.abort()


async def test_protocol_error_is_typed(nats_server: NatsServer) -> None:
    core = _core.Core("_INBOX.t")
    with pytest.raises(MemphisProtocolError):
        core.feed_bytes(b"NOPE\r\n")


async def test_write_backpressure_reaches_callers(
    nats_server: NatsServer, connect: Connect, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(nats_server)
    conn = await connect(proxy, ping_interval=0)
    watcher = await connect(nats_server)
    received = 0

    def count(msgs: list[_core.Msg]) -> None:
        nonlocal received
        received += sum(len(m.data) for m in msgs)

    watcher.subscribe("bp", count)
    await watcher.flush()
    await conn.flush()
    proxy.hold(upstream=True)  # the "server" stops reading
    chunk = b"z" * 512 * 1024
    sent = 0
    waiter: asyncio.Future[None] | None = None
    for _ in range(400):  # at most 200 MiB
        conn.publish("bp", chunk)
        sent += len(chunk)
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(conn.wait_writable())
        # The kernel's buffers can still grow (autotuning), which briefly resumes writing;
        # keep going until callers stay blocked.
        done, _ = await asyncio.wait([waiter], timeout=0.3)
        if not done:
            break
    assert waiter is not None and not waiter.done(), "the transport never paused for good"
    # What is published while paused stays in the core, not in the transport's buffer.
    assert conn.protocol is not None and conn.protocol.paused
    assert conn.write_blocked
    conn.publish("bp", chunk)
    sent += len(chunk)
    await asyncio.sleep(0.01)
    assert conn.core.out_len > len(chunk)
    # A windowed JetStream publish is refused (nothing encoded) while the socket is backed up.
    g = conn.new_group()
    out_len = conn.core.out_len
    assert not conn.publish_windowed("bp.js", b"w", g, 0, ms(5), None, None, None, 0, 0)
    assert conn.core.out_len == out_len and conn.group_inflight(g) == 0
    assert conn.core.group_stats(g)["published"] == 0
    proxy.release()
    await asyncio.wait_for(waiter, 10)
    await conn.flush(timeout=20)
    await watcher.flush()
    async with asyncio.timeout(10):
        while received < sent:
            await asyncio.sleep(0.01)
    assert received == sent


async def test_events_go_to_the_callback_and_to_logging(
    nats_server: NatsServer,
    connect: Connect,
    proxy_factory: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await proxy_factory(nats_server)
    events = Events()
    async_seen: list[str] = []

    async def async_cb(name: str, detail: object) -> None:
        events(name, detail)
        async_seen.append(name)

    with caplog.at_level(logging.INFO, logger="memphis_fast.connection"):
        conn = await connect(proxy, on_event=async_cb)
        proxy.cut()
        await events.wait("reconnected")
        await conn.close()
        await asyncio.sleep(0)
    assert events.names() == ["connected", "disconnected", "reconnected", "closed"]
    assert async_seen == events.names(), "coroutine callbacks are run as tasks"
    addr = f"127.0.0.1:{proxy.port}"
    assert events.items[0][1] == addr and events.items[2][1] == addr
    logged = [r.getMessage() for r in caplog.records if r.name == "memphis_fast.connection"]
    for name in ("connected", "disconnected", "reconnected", "closed"):
        assert any(f"memphis connection {name}" in m for m in logged), (name, logged)
    levels = {r.getMessage().split(":")[0]: r.levelno for r in caplog.records}
    assert levels.get("memphis connection disconnected") == logging.WARNING


async def test_a_failing_callback_does_not_break_the_connection(
    nats_server: NatsServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(name: str, detail: object) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="memphis_fast.connection"):
        conn = await connect(nats_server, on_event=bad)
        await conn.flush()
        with contextlib.suppress(Exception):
            await conn.close()
    assert conn.is_closed
    assert any("event callback failed" in r.getMessage() for r in caplog.records)


async def test_err_lines_are_rate_limited_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """A hostile server sending thousands of -ERR lines gets a handful of log lines plus one
    summary, not one line each."""
    import logging

    from memphis_fast._connect import ConnectOptions, Server
    from memphis_fast._connection import NatsConnection

    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"x","headers":true,"max_payload":1048576}\r\n')
        await reader.readline()  # CONNECT
        await reader.readline()  # PING
        writer.write(b"PONG\r\n")
        writer.write(b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n" * 5000)
        await writer.drain()
        await done.wait()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.WARNING, logger="memphis_fast.connection")
    try:
        conn = await NatsConnection.connect(ConnectOptions(servers=[Server("127.0.0.1", port)]))
        try:
            async with asyncio.timeout(10):
                while conn.last_error is None:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)
            lines = [r for r in caplog.records if "server_error" in r.getMessage()]
            assert 1 <= len(lines) <= 5, len(lines)
            conn._error_log.period = 0.0  # make the summary due now
            conn._error_log.allow()
            summary = [r for r in caplog.records if "were not logged" in r.getMessage()]
            assert len(summary) == 1 and summary[0].getMessage().startswith("4995 more"), summary
        finally:
            await conn.close(timeout=1)
    finally:
        done.set()
        server.close()
        await server.wait_closed()
