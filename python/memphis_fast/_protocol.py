"""The asyncio protocol: the only code that touches the transport (tier 2 of docs/protocol.md,
Appendix A).

Reads go straight into the Rust core's receive buffer (``asyncio.BufferedProtocol``: the
core exports its buffer, the event loop ``recv_into``s it, ``buffer_updated`` makes the core
parse in place). Writes: :meth:`NatsProtocol.flush_now` hands everything the core encoded to
the transport in one ``transport.write``; the connection decides when (once per event-loop
tick). ``pause_writing`` keeps further bytes in the core (bounded by the producers' windows)
and tells the connection, which blocks its callers.

This module does not import the connection: the protocol talks to its owner through the
:class:`ProtocolOwner` interface below, and the connection talks to the protocol through its
public methods (``flush_now``, ``abort``, ``close``, ``transport``, ``lost``).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Protocol

from . import _core

__all__ = ["NatsProtocol", "ProtocolOwner"]


class ProtocolOwner(Protocol):
    """What the protocol calls on the connection that owns it."""

    def on_flags(self, flags: int) -> None:
        """The core parsed bytes and has results ready (``F_*`` flags)."""

    def on_protocol_error(self, protocol: NatsProtocol, exc: Exception) -> None:
        """The server's bytes are not NATS protocol; the transport must be dropped."""

    def on_connection_lost(self, protocol: NatsProtocol, exc: Exception | None) -> None:
        """The transport is gone."""

    def on_writing_paused(self) -> None:
        """The transport's write buffer is above its high-water mark."""

    def on_writing_resumed(self) -> None:
        """The transport's write buffer drained below its low-water mark."""


class NatsProtocol(asyncio.BufferedProtocol):
    __slots__ = ("_owner", "_core", "transport", "paused", "lost", "tls")

    def __init__(self, owner: ProtocolOwner, core: _core.Core, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self._core = core
        self.transport: asyncio.Transport | None = None
        self.paused = False
        #: set once the transport is TLS (see get_buffer)
        self.tls = False
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- transport callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
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
            self._owner.on_protocol_error(self, exc)
            return
        if flags:
            self._owner.on_flags(flags)

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        self._owner.on_connection_lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True
        self._owner.on_writing_paused()

    def resume_writing(self) -> None:
        self.paused = False
        self.flush_now()
        self._owner.on_writing_resumed()

    # -- writing ------------------------------------------------------------------------------
    def flush_now(self) -> None:
        """Write everything the core encoded (unless paused or gone)."""
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
