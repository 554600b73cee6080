"""The asyncio protocol: the only code that touches the transport.

Reads go straight into the Rust core's receive buffer (``asyncio.BufferedProtocol``: the
core exports its buffer, the event loop ``recv_into``s it, ``buffer_updated`` makes the core
parse in place). Writes are coalesced: everything the core encodes during one event-loop tick
goes out in at most one ``transport.write``. ``pause_writing`` keeps further bytes in the core
(bounded by the producers' windows) and tells the connection, which blocks its callers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from ._connection import NatsConnection

log = logging.getLogger("memphis_fast.connection")


class NatsProtocol(asyncio.BufferedProtocol):
    __slots__ = ("_conn", "_core", "transport", "_flush_scheduled", "paused", "_loop", "lost", "tls")

    def __init__(self, conn: NatsConnection, core: _core.Core, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._core = core
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._flush_scheduled = False
        self.paused = False
        #: set once the transport is TLS (see get_buffer)
        self.tls = False
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- transport callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass

    def get_buffer(self, sizehint: int) -> Any:
        # Plain sockets recv_into the core itself (no allocation per read). asyncio's SSL
        # transport slices the buffer (``buf[offset:]`` in sslproto), which needs a memoryview.
        if self.tls:
            return memoryview(self._core.prepare_recv())
        return self._core.prepare_recv()

    def buffer_updated(self, nbytes: int) -> None:
        try:
            flags = self._core.feed(nbytes)
        except Exception as exc:  # a protocol error from the server's bytes
            self._conn._protocol_error(self, exc)
            return
        if flags:
            self._conn._on_flags(flags)

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        self._conn._connection_lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True
        self._conn._writing_paused()

    def resume_writing(self) -> None:
        self.paused = False
        self.flush_now()
        self._conn._writing_resumed()

    # -- writing ------------------------------------------------------------------------------
    def schedule_flush(self) -> None:
        """Write what the core encoded at the end of this loop tick (one write per tick)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.flush_now()

    def flush_now(self) -> None:
        transport = self.transport
        if transport is None or self.paused:
            return
        data = self._core.take_out()
        if data is not None:
            transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.flush_now()
            self.transport.close()
