"""A fault-injecting TCP proxy for reconnect tests (like asyncpg's ``_testbase`` proxy).

Put it between a client and a server and make the network misbehave on cue::

    proxy = await TcpProxy("127.0.0.1", server.port).start()
    conn = await NatsConnection.connect(ConnectOptions(servers=[Server("127.0.0.1", proxy.port)]))
    proxy.hold(downstream=True)   # bytes from the server stop reaching the client
    proxy.cut()                   # every link drops at once, held bytes are lost
    proxy.mode = "reject"         # new connections are accepted and closed at once
    proxy.mode = "forward"        # back to normal
    proxy.pause()                 # both directions held: a stalled link, no FIN, no RST
    proxy.blackhole()             # live links stay open; every byte is read and thrown away
    proxy.inject(b"GARBAGE\r\n")  # bytes written to every client as if the server sent them
    proxy.retarget(port)          # new links go to another server (a fake one, say)

Holding a direction stops *reading* from that side's socket, so the kernel buffers fill up and
the sender sees real TCP backpressure; nothing is dropped until :meth:`cut`. A blackhole keeps
reading, so the sender never feels backpressure and nothing ever arrives (a route that
silently drops packets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

__all__ = ["TcpProxy", "ProxyMode"]

log = logging.getLogger("memphis_fast.testing.proxy")

#: ``forward``: connect to the target and relay; ``reject``: accept and close immediately;
#: ``blackhole``: accept and never answer (a server that hangs before saying anything).
ProxyMode = Literal["forward", "reject", "blackhole"]


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: TcpProxy, client_w: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client_w = client_w
        self.server_w: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for w in (self.client_w, self.server_w):
            if w is not None:
                w.transport.abort()
        for t in self.tasks:
            t.cancel()


class TcpProxy:
    """An asyncio TCP proxy on ``host:port`` (port 0: a free port) relaying to a target."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk: int = 64 * 1024,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        self.mode: ProxyMode = "forward"
        #: connections accepted so far, in every mode
        self.accepted = 0
        #: bytes relayed client -> server and server -> client
        self.bytes_up = 0
        self.bytes_down = 0
        #: bytes read and thrown away by :meth:`blackhole`
        self.bytes_dropped = 0
        #: bytes written to clients by :meth:`inject`
        self.bytes_injected = 0
        self._dropping = False
        self._chunk = chunk
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self._up_open = asyncio.Event()
        self._down_open = asyncio.Event()
        self._up_open.set()
        self._down_open.set()
        self._accept_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and drop every link."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut()
        await asyncio.sleep(0)

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- faults --------------------------------------------------------------------------------
    def cut(self) -> None:
        """Drop every current link at once (both sockets reset); held bytes are lost."""
        links, self._links = self._links, set()
        for link in links:
            link.abort()

    def hold(self, *, upstream: bool = False, downstream: bool = False) -> None:
        """Stop relaying a direction (``upstream`` = client to server). Bytes stay in the
        kernel buffers, so the sender eventually feels backpressure."""
        if upstream:
            self._up_open.clear()
        if downstream:
            self._down_open.clear()

    def release(self) -> None:
        """Relay both directions again (ends :meth:`pause`, :meth:`hold` and :meth:`blackhole`)."""
        self._dropping = False
        self._up_open.set()
        self._down_open.set()

    def pause(self) -> None:
        """Hold both directions: the link stalls without a FIN or a reset (a frozen peer or a
        dead route); held bytes are relayed after :meth:`release`."""
        self.hold(upstream=True, downstream=True)

    def blackhole(self) -> None:
        """Keep every link open but throw away every byte read from either side from now on
        (a route that drops packets). New links are still made; :meth:`release` ends it."""
        self._dropping = True

    @property
    def dropping(self) -> bool:
        """True while :meth:`blackhole` is in force."""
        return self._dropping

    def inject(self, data: bytes) -> int:
        """Write ``data`` to every current client as if its server had sent it (a hostile
        byte stream inside a live link). Returns how many links it was written to."""
        n = 0
        for link in list(self._links):
            transport = link.client_w.transport
            if transport.is_closing():
                continue
            link.client_w.write(data)
            self.bytes_injected += len(data)
            n += 1
        return n

    def retarget(self, port: int, host: str | None = None) -> None:
        """Relay links made from now on to ``host:port``; current links stay where they are."""
        self.target_port = port
        if host is not None:
            self.target_host = host

    @property
    def links(self) -> int:
        """Links currently open."""
        return len(self._links)

    async def wait_accepted(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``accepted >= n``."""
        if self.accepted >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._accept_waiters.append((n, fut))
        async with asyncio.timeout(timeout):
            await fut

    # -- relaying ------------------------------------------------------------------------------
    async def _on_client(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        for n, fut in list(self._accept_waiters):
            if self.accepted >= n and not fut.done():
                fut.set_result(None)
                self._accept_waiters.remove((n, fut))
        mode = self.mode
        if mode == "reject":
            client_w.transport.abort()
            return
        link = _Link(self, client_w)
        self._links.add(link)
        if mode == "blackhole":
            return
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError as exc:
            log.debug("proxy could not reach %s:%s: %s", self.target_host, self.target_port, exc)
            self._links.discard(link)
            client_w.transport.abort()
            return
        if link not in self._links:  # cut while connecting
            server_w.transport.abort()
            return
        link.server_w = server_w
        loop = asyncio.get_running_loop()
        link.tasks = [
            loop.create_task(self._pump(link, client_r, server_w, self._up_open, True)),
            loop.create_task(self._pump(link, server_r, client_w, self._down_open, False)),
        ]

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        gate: asyncio.Event,
        up: bool,
    ) -> None:
        try:
            while True:
                await gate.wait()
                # While held nobody reads: the StreamReader fills to its limit, pauses its
                # transport, and the kernel buffers and then the sender fill up.
                data = await reader.read(self._chunk)
                if not data:
                    break
                await gate.wait()
                if self._dropping:
                    self.bytes_dropped += len(data)
                    continue
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            # One side closed: close the link (a half-open link would hide the failure).
            if link in self._links:
                self._links.discard(link)
                link.abort()
            with contextlib.suppress(Exception):
                writer.transport.abort()
