"""A hostile NATS server for fault tests: it speaks just enough of the protocol to look alive,
then misbehaves in one chosen way.

::

    async with HostileServer("garbage") as srv:   # a free loopback port
        proxy.retarget(srv.port)                   # or connect to srv.port directly
        ...
    srv.connections, srv.received, srv.sent        # what happened

Behaviours (:data:`Behaviour`):

``garbage``
    INFO, the handshake's PONG, then bytes that are not NATS protocol.
``endless_line``
    INFO, PONG, then a control line that never ends (``MSG`` and no CRLF), written until the
    client hangs up or ``endless_limit`` bytes were sent.
``absurd_size``
    INFO, PONG, then ``MSG`` announcing a 2 GiB payload, whose first bytes follow.
``absurd_info``
    An INFO announcing a ``max_payload`` of 2 GiB, PONG, then a ``MSG`` of 64 MiB announced
    (and never sent in full).
``no_info``
    Accept the connection and say nothing at all.
``close_mid_frame``
    INFO, PONG, then half of a ``MSG`` frame and a close.
``err_flood``
    INFO, PONG, then ``err_count`` ``-ERR`` lines, and the link kept open.
``silent_after_handshake``
    INFO, PONG, then nothing: PINGs are never answered (a stalled peer that keeps TCP up).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

__all__ = ["Behaviour", "HostileServer", "FAKE_INFO"]

log = logging.getLogger("memphis_fast.testing.fakeserver")

Behaviour = Literal[
    "garbage",
    "endless_line",
    "absurd_size",
    "absurd_info",
    "no_info",
    "close_mid_frame",
    "err_flood",
    "silent_after_handshake",
]

#: The INFO line the impostor introduces itself with (headers on, 1 MiB max_payload).
FAKE_INFO = (
    b'INFO {"server_id":"HOSTILE","server_name":"hostile","version":"2.10.26","proto":1,'
    b'"headers":true,"max_payload":1048576,"jetstream":true}\r\n'
)
_HUGE_INFO = (
    b'INFO {"server_id":"HOSTILE","server_name":"hostile","version":"2.10.26","proto":1,'
    b'"headers":true,"max_payload":2147483648,"jetstream":true}\r\n'
)
_GARBAGE = b"\x00\xffHTTP/1.1 200 OK\r\nMSG\r\n+OK -ERR\r\n\x1b[31m" + bytes(range(256))


class HostileServer:
    """An asyncio server on ``host:port`` (port 0: a free port) playing one :data:`Behaviour`
    on every connection it accepts."""

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        err_count: int = 10_000,
        endless_limit: int = 64 * 1024 * 1024,
    ) -> None:
        self.behaviour: Behaviour = behaviour
        self.host = host
        self.port = port
        self.err_count = err_count
        self.endless_limit = endless_limit
        #: connections accepted so far
        self.connections = 0
        #: connections whose handshake (CONNECT + PING) arrived
        self.handshakes = 0
        #: every byte received from clients (the first 1 MiB)
        self.received = bytearray()
        #: bytes written to clients
        self.sent = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> HostileServer:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0)

    async def __aenter__(self) -> HostileServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection --------------------------------------------------------------------
    async def _on_client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(w)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._play(r, w)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(w)
            if task is not None:
                self._tasks.discard(task)
            w.transport.abort()

    async def _send(self, w: asyncio.StreamWriter, data: bytes) -> None:
        w.write(data)
        self.sent += len(data)
        await w.drain()

    async def _handshake(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, info: bytes) -> bool:
        """INFO, then wait for the client's PING and answer PONG. False if it hung up."""
        await self._send(w, info)
        buf = b""
        while b"PING\r\n" not in buf:
            chunk = await r.read(65536)
            if not chunk:
                return False
            buf += chunk
            self._keep(chunk)
        self.handshakes += 1
        await self._send(w, b"PONG\r\n")
        return True

    def _keep(self, chunk: bytes) -> None:
        room = 1024 * 1024 - len(self.received)
        if room > 0:
            self.received += chunk[:room]

    async def _drain_reads(self, r: asyncio.StreamReader) -> None:
        """Read (and keep) what the client sends until it hangs up."""
        while True:
            chunk = await r.read(65536)
            if not chunk:
                return
            self._keep(chunk)

    async def _play(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        b = self.behaviour
        if b == "no_info":
            await self._drain_reads(r)
            return
        info = _HUGE_INFO if b == "absurd_info" else FAKE_INFO
        if not await self._handshake(r, w, info):
            return
        # Let the client finish its handshake before the fault arrives.
        await asyncio.sleep(0.05)
        if b == "garbage":
            await self._send(w, _GARBAGE)
        elif b == "endless_line":
            reader = asyncio.ensure_future(self._drain_reads(r))
            try:
                await self._send(w, b"MSG subject 1 ")
                block = b"7" * 65536
                while self.endless_limit <= 0 or self.sent < self.endless_limit:
                    if reader.done():
                        return
                    await self._send(w, block)
            finally:
                reader.cancel()
            return
        elif b == "absurd_size":
            await self._send(w, b"MSG subject 1 2147483648\r\n" + b"x" * 65536)
        elif b == "absurd_info":
            await self._send(w, b"MSG subject 1 67108864\r\n" + b"x" * 65536)
        elif b == "close_mid_frame":
            await self._send(w, b"MSG subject 1 100\r\n" + b"y" * 40)
            return
        elif b == "err_flood":
            line = b"-ERR 'hostile server says no'\r\n"
            left = self.err_count
            while left > 0:
                n = min(left, 1000)
                await self._send(w, line * n)
                left -= n
        elif b == "silent_after_handshake":
            pass
        await self._drain_reads(r)
