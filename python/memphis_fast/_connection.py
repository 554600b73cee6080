"""The live connection's data plane: :class:`NatsConnection` (docs/protocol.md, Appendix A).

One :class:`NatsConnection` owns one Rust :class:`~memphis_fast._core.Core` across every TCP
connection it makes (so subscriptions, in-flight publishes and buffered writes survive a
reconnect), one :class:`~memphis_fast._protocol.NatsProtocol` per TCP connection, and one
:class:`~memphis_fast._connect.Connector` that gets those TCP connections (servers, TLS,
handshake, auth fallback, reconnect loop).

The public classes (``Producer``, ``Consumer``, ``Message``, ``Memphis``) drive the core only
through the methods below:

* publishing: :meth:`~NatsConnection.publish_awaited` (a future of the message's
  :class:`ProduceResult`), :meth:`~NatsConnection.publish_windowed` (no future; failures go
  to the group's failure handler), :meth:`~NatsConnection.publish_batch`; groups
  (:meth:`~NatsConnection.new_group`) are producers' windows and counters;
* acknowledging: :meth:`~NatsConnection.ack`, :meth:`~NatsConnection.ack_many`;
* pulling: :meth:`~NatsConnection.pull_subscription` gives a :class:`PullSubscription`, the
  one owner of a pull inbox's bookkeeping (the core counts deliveries against pulls; a pull
  that ends short arrives as one :class:`PullEnd`, whose status the core interpreted);
* core NATS: :meth:`~NatsConnection.subscribe`, :meth:`~NatsConnection.publish`,
  :meth:`~NatsConnection.request`; :meth:`~NatsConnection.flush`,
  :meth:`~NatsConnection.close`.

Concurrency model: everything runs on one event loop. Incoming data is parsed by the core in
``buffer_updated``; subscription handlers are called synchronously from there with a list of
messages (they must not block). Everything the core encodes during one loop tick goes out in
one write, scheduled by the first operation of the tick; two things are written at once
instead: an awaited publish (its latency), and acks once ~32 KiB of output is waiting (a
handler acking a whole batch without yielding hands the server its acks as it goes), as is a
prefetch pull (``PullSubscription.pull(now=True)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from . import _core
from ._connect import ConnectOptions, Connector, EventCallback, Handshake, Server, parse_servers, tls_context
from ._protocol import NatsProtocol
from .exceptions import (
    MemphisConnectError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisNoRespondersError,
    MemphisTimeoutError,
)

__all__ = [
    "ConnectOptions",
    "EventCallback",
    "Msg",
    "NatsConnection",
    "OutcomeKind",
    "OutcomeReason",
    "Partitioner",
    "ProduceResult",
    "PullEnd",
    "PullSubscription",
    "Server",
    "encode_header_lines",
    "payload_kinds",
    "parse_servers",
    "tls_context",
    "ACK",
    "NAK",
    "NAK_DELAY",
    "IN_PROGRESS",
    "TERM",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "PAYLOADS_BYTES",
    "PAYLOADS_NONE",
]

log = logging.getLogger("memphis_fast.connection")

# What the public tier needs of the core, re-exported so that it never imports ``_core``.
Msg = _core.Msg
ProduceResult = _core.ProduceResult
OutcomeKind = _core.OutcomeKind
OutcomeReason = _core.OutcomeReason
PullEnd = _core.PullEnd
Partitioner = _core.Partitioner
encode_header_lines = _core.encode_header_lines
payload_kinds = _core.payload_kinds
PAYLOADS_BYTES = _core.PAYLOADS_BYTES
PAYLOADS_NONE = _core.PAYLOADS_NONE
ACK = _core.ACK
NAK = _core.NAK
NAK_DELAY = _core.NAK_DELAY
IN_PROGRESS = _core.IN_PROGRESS
TERM = _core.TERM
DEFAULT_MAX_INFLIGHT = _core.DEFAULT_MAX_INFLIGHT
DEFAULT_MAX_INFLIGHT_BYTES = _core.DEFAULT_MAX_INFLIGHT_BYTES

F_MSGS = _core.F_MSGS
F_OUTCOMES = _core.F_OUTCOMES
F_FAILURES = _core.F_FAILURES
F_PROGRESS = _core.F_PROGRESS
F_EVENTS = _core.F_EVENTS
F_TIMER = _core.F_TIMER
#: the longest a fetch() keeps the acks of the batch before out of the socket (see
#: :meth:`NatsConnection.hold_acks`): a pull that waits on an empty station holds them no longer
ACK_HOLD_MAX_S = 0.02
#: feed results after which the tick's flush is scheduled at once (see on_flags)
_FLUSH_AFTER = F_MSGS | F_EVENTS | F_FAILURES | _core.F_WRITE
EV_INFO = _core.EV_INFO
EV_ERR = _core.EV_ERR
EV_PONG = _core.EV_PONG
EV_BATCH = _core.EV_BATCH
EV_PULL_END = _core.EV_PULL_END
STATE_HANDSHAKING = _core.STATE_HANDSHAKING
STATE_CONNECTED = _core.STATE_CONNECTED

#: nats-server refuses a max_payload above 64 MiB; a server announcing more is not believed
MAX_PAYLOAD_CAP = 64 * 1024 * 1024
#: the C future directly (loop.create_future() is a Python-level call per awaited publish)
_Future = asyncio.Future

MsgHandler = Callable[[list[_core.Msg]], None]
FailureHandler = Callable[[_core.ProduceResult], None]
PullEndHandler = Callable[[_core.PullEnd], None]


class _RateLimit:
    """At most ``burst`` log lines per ``period`` seconds; what was held back is summarised
    in one line when the next period starts."""

    __slots__ = ("_loop", "burst", "period", "what", "_start", "_count", "_dropped")

    def __init__(self, loop: asyncio.AbstractEventLoop, burst: int, period: float, what: str) -> None:
        self._loop = loop
        self.burst = burst
        self.period = period
        self.what = what
        self._start = -period
        self._count = 0
        self._dropped = 0

    def allow(self) -> bool:
        now = self._loop.time()
        if now - self._start >= self.period:
            self._summarise()
            self._start, self._count = now, 0
        self._count += 1
        if self._count <= self.burst:
            return True
        if not self._dropped:
            self._loop.call_at(self._start + self.period, self._summarise)
        self._dropped += 1
        return False

    def _summarise(self) -> None:
        if self._dropped:
            log.warning("%d more %s in the last %g s were not logged", self._dropped, self.what, self.period)
            self._dropped = 0


class PullSubscription:
    """A JetStream pull inbox. The core counts deliveries against the pulls in wire order and
    ends a pull that expired, lost its heartbeats or died with the connection; this object is
    the only way the client issues pulls and reads their bookkeeping."""

    __slots__ = ("_conn", "sid", "api_subject")

    def __init__(self, conn: NatsConnection, sid: int, api_subject: str) -> None:
        self._conn = conn
        self.sid = sid
        self.api_subject = api_subject

    def pull(
        self,
        batch: int,
        max_bytes: int,
        expires_ms: int,
        heartbeat_ms: int = 0,
        now: bool = False,
        ahead_of_acks: bool = False,
    ) -> int:
        """Ask for ``batch`` messages; returns the pull's token. The request goes out with the
        tick's write, or with ``now`` at once (a prefetch: the caller goes on working without
        yielding, and the server should deliver meanwhile). ``ahead_of_acks`` (a fetch's pull):
        in front of the acks written last in this tick (the batch before), so the server
        gathers the next batch before it works through them."""
        return self._conn._pull(
            self.sid, self.api_subject, batch, max_bytes, expires_ms, heartbeat_ms, now, ahead_of_acks
        )

    def outstanding(self) -> tuple[int, int]:
        """``(pulls, messages)`` asked for and not yet delivered or ended."""
        pulls, msgs = self._conn.core.pull_outstanding(self.sid)
        return int(pulls), int(msgs)

    def close(self) -> None:
        """Unsubscribe (the server forgets pulls whose inbox lost its interest)."""
        self._conn.unsubscribe(self.sid)


class NatsConnection:
    """A NATS client connection on the Rust core. Create with :meth:`connect`."""

    def __init__(self, opts: ConnectOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.opts = opts
        self._loop = loop
        self.core = _core.Core(opts.inbox_prefix, opts.pending_limit)
        #: bound once: the publish paths call it per message
        self._js_publish = self.core.js_publish
        self._prefix: str = self.core.inbox_prefix
        self._mux_sid = self.core.mux_sid
        self._connector = Connector(opts, self, loop)
        self._protocol: NatsProtocol | None = None
        self._handshake: Handshake | None = None
        self._connecting = False
        self.server_info: dict[str, Any] = {}
        self.last_error: str | None = None
        self._handlers: dict[int, MsgHandler] = {}
        self._pull_end_handlers: dict[int, PullEndHandler] = {}
        self._requests: dict[str, asyncio.Future[_core.Msg]] = {}
        #: token -> (session it was written in, subject, payload, headers) of requests waiting
        #: for their reply: re-sent when a new session starts (the reply may have died with
        #: the old one; control-plane requests are idempotent, a late duplicate reply is
        #: dropped)
        self._request_sends: dict[str, tuple[int, str, bytes | bytearray | memoryview, Any]] = {}
        self._session = 0
        self._req_ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[_core.ProduceResult]] = {}
        self._batches: dict[int, asyncio.Future[list[Any]]] = {}
        self._failure_handlers: dict[int, FailureHandler] = {}
        self._progress: list[asyncio.Future[None]] = []
        self._pings: deque[asyncio.Future[None]] = deque()
        self._write_resumed: asyncio.Future[None] | None = None
        self._flush_scheduled = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        #: releases acks held by hold_acks() after ACK_HOLD_MAX_S
        self._ack_release: asyncio.TimerHandle | None = None
        #: the ack wait (ms) of the last publish that checked the sweep timer; a publish with
        #: the same ack wait cannot have an earlier deadline, so it skips the check
        self._swept_ack_ms = -1
        self._closing = False
        self._closed = False
        #: closed for good (a plain attribute: the produce path reads it per message)
        self.is_closed = False
        self._leaving: asyncio.Task[None] | None = None
        #: ``-ERR`` lines are logged at most this often (a hostile server may send thousands)
        self._error_log = _RateLimit(loop, burst=5, period=10.0, what="-ERR lines from the server")
        #: the transport whose server announced lame-duck mode
        self._lame_duck: NatsProtocol | None = None

    # -- state -------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.core.state == STATE_CONNECTED and self._protocol is not None

    @property
    def closing(self) -> bool:
        return self._closing or self._closed

    @property
    def is_reconnecting(self) -> bool:
        return self._reconnect_task is not None and not self._reconnect_task.done()

    @property
    def max_payload(self) -> int:
        return int(self.core.max_payload)

    @property
    def inbox_prefix(self) -> str:
        return self._prefix

    @property
    def protocol(self) -> NatsProtocol | None:
        """The current transport's protocol (``None`` while disconnected)."""
        return self._protocol

    @property
    def user(self) -> str:
        """The user name in use (after the ``root$1`` -> ``root`` fallback, if it happened)."""
        return self._connector.user

    @property
    def servers(self) -> list[Server]:
        return list(self._connector.servers)

    @property
    def reconnects(self) -> int:
        return self._connector.reconnects

    @property
    def connected_server(self) -> Server | None:
        return self._connector.server if self.is_connected else None

    def new_inbox(self) -> str:
        return f"{self._prefix}i{next(self._req_ids)}"

    def event(self, name: str, detail: Any = None) -> None:
        level = logging.INFO if name in ("connected", "reconnected", "closed") else logging.WARNING
        if name != "server_error" or self._error_log.allow():
            log.log(level, "memphis connection %s%s", name, f": {detail}" if detail else "")
        cb = self.opts.on_event
        if cb is not None:
            try:
                res = cb(name, detail)
                if asyncio.iscoroutine(res):
                    self._loop.create_task(res)
            except Exception:
                log.exception("connection event callback failed")

    # -- connecting (the Connector's Link) ---------------------------------------------------
    @classmethod
    async def connect(cls, opts: ConnectOptions) -> NatsConnection:
        """Connect to the first server that answers; raises :class:`MemphisConnectError`."""
        conn = cls(opts, asyncio.get_running_loop())
        try:
            await conn._connector.connect_first()
        except BaseException:
            conn._closed = conn.is_closed = True
            conn.core.close()
            raise
        conn.event("connected", str(conn._connector.server))
        return conn

    def attach(self, protocol: NatsProtocol, handshake: Handshake) -> None:
        self._protocol = protocol
        self._handshake = handshake
        self._connecting = True
        self.last_error = None

    def detach(self, protocol: NatsProtocol) -> None:
        self._handshake = None
        self._connecting = False
        if self._protocol is protocol:
            self._protocol = None
        protocol.abort()
        if self.core.state in (STATE_HANDSHAKING, STATE_CONNECTED):
            self.on_flags(self.core.disconnected())
        self._fail_pings(MemphisConnectError("connection lost"))

    def session_started(self, server: Server) -> None:
        self._handshake = None
        self._connecting = False
        self.core.session_ready()
        self._session += 1
        for token, (session, subject, payload, headers) in list(self._request_sends.items()):
            if session < self._session:
                log.info("re-sending the request on %s after the reconnect", subject)
                self.core.publish(subject, payload, self._prefix + token, headers)
                self._request_sends[token] = (self._session, subject, payload, headers)
        if self._protocol is not None:
            self._protocol.flush_now()
        self._start_timers()

    async def shutdown(self, exc: BaseException) -> None:
        await self._shutdown(exc)

    def _handle_info(self, raw: bytes) -> None:
        try:
            info = json.loads(raw)
        except ValueError:
            log.warning("ignoring malformed INFO: %r", raw[:200])
            return
        if not isinstance(info, dict):
            return
        self.server_info = info
        mp = info.get("max_payload")
        if isinstance(mp, int) and mp > 0:
            if mp > MAX_PAYLOAD_CAP:
                log.warning(
                    "server %s announces max_payload %d; capped at %d (nats-server's own limit)",
                    self._connector.server,
                    mp,
                    MAX_PAYLOAD_CAP,
                )
            self.core.max_payload = min(mp, MAX_PAYLOAD_CAP)
        if info.get("headers") is False:
            log.error("server %s does not support headers; Memphis needs them", self._connector.server)
        self._connector.add_connect_urls(info.get("connect_urls") or [])
        # A clustered server answers "no responders" while a stream leader is being elected:
        # publishes are then retried until their ack wait runs out (docs/protocol.md §7.7).
        self.core.retry_unavailable = bool(info.get("cluster"))
        if info.get("ldm"):
            protocol = self._protocol
            server = self._connector.server
            if protocol is not None and server is not None and self._lame_duck is not protocol:
                self._lame_duck = protocol
                self.event("lame_duck", str(server))
                # Do not come back to it while it shuts down (unless nothing else answers).
                self._connector.avoid(server, 120.0)
                if self._handshake is None and not self.closing:
                    self._leaving = self._loop.create_task(self._leave_lame_duck(protocol))
        hs = self._handshake
        if hs is not None:
            hs.on_info(info)

    async def _leave_lame_duck(self, protocol: NatsProtocol) -> None:
        """The server announced it is shutting down (lame-duck mode): let what is in flight
        finish on it (bounded), then move to another server before it goes away."""
        try:
            if len(self._connector.servers) < 2:
                return  # nowhere else to go: stay until the server closes the connection
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.opts.drain_timeout, 5.0)):
                    while self.core.inflight > 0 and self._protocol is protocol and not self.closing:
                        await self.wait_progress()
            if self._protocol is protocol and not self.closing:
                log.info("leaving %s (lame-duck mode) for another server", self._connector.server)
                self.last_error = "the server entered lame-duck mode"
                protocol.close()
        finally:
            self._leaving = None

    # -- incoming (the protocol's owner) -----------------------------------------------------
    def on_flags(self, flags: int) -> None:
        core = self.core
        if flags & F_EVENTS:
            for kind, value in core.take_events():
                if kind == EV_PONG:
                    self._on_pong()
                elif kind == EV_INFO:
                    self._handle_info(value)
                elif kind == EV_ERR:
                    self._on_server_error(value)
                elif kind == EV_PULL_END:
                    h = self._pull_end_handlers.get(value.sid)
                    if h is not None:
                        try:
                            h(value)
                        except Exception:
                            log.exception("pull-end handler for sid %s failed", value.sid)
                elif kind == EV_BATCH:
                    bfut = self._batches.pop(value, None)
                    results = core.take_batch(value)
                    if bfut is not None and not bfut.done():
                        bfut.set_result(results or [])
        if flags & F_MSGS:
            for sid, msgs in core.take_msgs():
                if sid == self._mux_sid:
                    self._on_replies(msgs)
                    continue
                handler = self._handlers.get(sid)
                if handler is None:
                    continue
                try:
                    handler(msgs)
                except Exception:
                    log.exception("subscription handler for sid %s failed", sid)
        if flags & F_OUTCOMES:
            waiters = self._waiters
            for mid, result in core.take_outcomes():
                wfut = waiters.pop(mid, None)
                if wfut is not None and not wfut.done():
                    wfut.set_result(result)
        if flags & F_FAILURES:
            for group, result in core.take_failures():
                handler_f = self._failure_handlers.get(group)
                if handler_f is None:
                    log.error("publish %s failed: %s", result.index, result.error)
                    continue
                try:
                    handler_f(result)
                except Exception:
                    log.exception("publish failure handler failed")
        if flags & F_TIMER:
            self._arm_sweeper()
        if flags & F_PROGRESS and self._progress:
            waiting, self._progress = self._progress, []
            for f in waiting:
                if not f.done():
                    f.set_result(None)
        # Schedule the tick's flush now, after the wake-ups above: a task woken by messages
        # or a reply usually writes (acks, the next publish) in its next step, and this flush,
        # queued behind that step, writes it in the same loop iteration instead of one
        # iteration later. Still one write per tick. Not for publish outcomes alone: a woken
        # awaited publish writes at once itself (publish_awaited).
        if flags & _FLUSH_AFTER and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _on_replies(self, msgs: list[_core.Msg]) -> None:
        plen = len(self._prefix)
        for m in msgs:
            fut = self._requests.pop(m.subject[plen:], None)
            if fut is not None and not fut.done():
                fut.set_result(m)

    def _on_pong(self) -> None:
        hs = self._handshake
        if hs is not None and hs.on_pong():
            return
        if not self._pings:
            return
        p = self._pings.popleft()
        if not p.done():
            p.set_result(None)

    def _on_server_error(self, text: str) -> None:
        self.last_error = text
        hs = self._handshake
        if hs is not None and hs.on_error(text):
            return
        self.event("server_error", text)

    def on_protocol_error(self, protocol: NatsProtocol, exc: Exception) -> None:
        log.error("protocol error from %s: %s; reconnecting", self._connector.server, exc)
        self.last_error = str(exc)
        protocol.abort()

    def on_connection_lost(self, protocol: NatsProtocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        hs = self._handshake
        if hs is not None:
            if self.last_error and hs.last_error is None:
                hs.last_error = self.last_error
            hs.on_lost(exc)
        if self.core.state in (STATE_HANDSHAKING, STATE_CONNECTED):
            self.on_flags(self.core.disconnected())
        self._fail_pings(MemphisConnectError("connection lost"))
        self._wake_writers()
        if self._connecting or self._closing or self._closed:
            return
        # The reason: the transport's error, or why we aborted it ("stale connection", a
        # protocol error), or that the server closed the connection.
        reason = str(exc) if exc else self.last_error
        if reason is None:
            reason = "connection closed by the server"
        self.event("disconnected", reason)
        if self.opts.allow_reconnect and self.opts.max_reconnect != 0:
            self._reconnect_task = self._loop.create_task(self._connector.reconnect_loop())
        else:
            self._loop.create_task(self._shutdown(MemphisConnectionClosedError("connection lost")))

    def on_writing_paused(self) -> None:
        if self._write_resumed is None:
            self._write_resumed = self._loop.create_future()

    def on_writing_resumed(self) -> None:
        self._wake_writers()

    def _fail_pings(self, exc: BaseException) -> None:
        pings, self._pings = self._pings, deque()
        for f in pings:
            if not f.done():
                f.set_exception(exc)
                f.exception()  # mark retrieved: flush() callers may be gone

    # -- timers ------------------------------------------------------------------------------
    def _start_timers(self) -> None:
        if self._keepalive is None and self.opts.ping_interval > 0:
            self._keepalive = self._loop.call_later(self.opts.ping_interval, self._keepalive_tick)
        self._arm_sweeper()

    def _keepalive_tick(self) -> None:
        self._keepalive = None
        if self._closed or self._closing:
            return
        if self.is_connected:
            if self.core.pings_outstanding >= self.opts.max_outstanding_pings:
                log.warning(
                    "no PONG for %d pings: the server at %s is stalled; reconnecting",
                    self.core.pings_outstanding,
                    self._connector.server,
                )
                self.last_error = "stale connection"
                if self._protocol is not None:
                    self._protocol.abort()
            else:
                fut: asyncio.Future[None] = self._loop.create_future()
                if self.core.ping():
                    self._pings.append(fut)
                    self._schedule_flush()
        self._keepalive = self._loop.call_later(self.opts.ping_interval, self._keepalive_tick)

    def _arm_sweeper(self) -> None:
        """Make sure a sweep runs by the core's next deadline (ack waits, retries and pulls:
        one timer for all of them, re-armed earlier when needed)."""
        if self._closed:
            return
        delay = self.core.next_deadline()
        if delay is not None:
            self._sweep_within(delay)

    def _sweep_within(self, seconds: float) -> None:
        """A deadline was added ``seconds`` from now: make sure a sweep runs by then."""
        if self._closed:
            return
        at = self._loop.time() + max(seconds, 0.005) + 0.001
        h = self._sweeper
        if h is not None:
            if h.when() <= at:
                return
            h.cancel()
        self._sweeper = self._loop.call_at(at, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        # Deadlines added from now on must check the timer again (see publish_*).
        self._swept_ack_ms = -1
        flags = self.core.sweep()
        if flags:
            self.on_flags(flags)
        self._arm_sweeper()

    # -- writing -----------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        p = self._protocol
        if p is not None:
            p.flush_now()

    def _wake_writers(self) -> None:
        f = self._write_resumed
        self._write_resumed = None
        if f is not None and not f.done():
            f.set_result(None)

    @property
    def write_blocked(self) -> bool:
        """The transport's write buffer is above its high-water mark (see
        :meth:`wait_writable`)."""
        return self._write_resumed is not None

    async def wait_writable(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self._write_resumed is not None and not self._closed:
            await self._write_resumed

    # -- subscriptions -----------------------------------------------------------------------
    def subscribe(self, subject: str, handler: MsgHandler, queue: str | None = None) -> int:
        """Subscribe; ``handler`` gets a list of messages each time some arrive."""
        self._check_open()
        sid = int(self.core.subscribe(subject, queue))
        self._handlers[sid] = handler
        self._schedule_flush()
        return sid

    def unsubscribe(self, sid: int, max_msgs: int | None = None) -> None:
        if self._closed:
            return
        self.core.unsubscribe(sid, max_msgs)
        if max_msgs is None:
            self._handlers.pop(sid, None)
            self._pull_end_handlers.pop(sid, None)
        self._schedule_flush()

    def pull_subscription(self, api_subject: str, on_msgs: MsgHandler, on_end: PullEndHandler) -> PullSubscription:
        """A pull inbox for ``api_subject`` (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>``):
        ``on_msgs`` gets delivered messages, ``on_end`` each pull that ended short."""
        self._check_open()
        sid = int(self.core.pull_subscribe())
        self._handlers[sid] = on_msgs
        self._pull_end_handlers[sid] = on_end
        self._schedule_flush()
        return PullSubscription(self, sid, api_subject)

    def _pull(
        self,
        sid: int,
        api_subject: str,
        batch: int,
        max_bytes: int,
        expires_ms: int,
        heartbeat_ms: int,
        now: bool,
        ahead_of_acks: bool = False,
    ) -> int:
        self._check_open()
        token = int(
            self.core.pull(sid, api_subject, batch, max_bytes, expires_ms, heartbeat_ms, ahead_of_acks=ahead_of_acks)
        )
        if now and self._protocol is not None:
            self._protocol.flush_now()
        else:
            self._schedule_flush()
        self._arm_sweeper()  # the core knows when this pull counts as lost
        return token

    # -- core NATS ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise MemphisConnectionClosedError("the connection is closed")

    def publish(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview,
        reply: str | None = None,
        headers: Any = None,
    ) -> None:
        """Core NATS publish (fire and forget). Buffered while disconnected."""
        self._check_open()
        self.core.publish(subject, payload, reply, headers)
        self._schedule_flush()

    async def request(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview,
        timeout: float,
        headers: Any = None,
    ) -> _core.Msg:
        """Request/reply through the muxed inbox. Raises :class:`MemphisTimeoutError` or
        :class:`MemphisNoRespondersError` (503)."""
        self._check_open()
        loop = self._loop
        deadline = loop.time() + timeout
        first_session = self._session
        while True:
            token = f"r{next(self._req_ids)}"
            fut: asyncio.Future[_core.Msg] = loop.create_future()
            self._requests[token] = fut
            self._request_sends[token] = (self._session, subject, payload, headers)
            try:
                self.core.publish(subject, payload, self._prefix + token, headers)
                self._schedule_flush()
                try:
                    async with asyncio.timeout_at(deadline):
                        msg = await fut
                except TimeoutError:
                    raise MemphisTimeoutError(f"timeout: no reply on {subject} within {timeout:g} s") from None
            finally:
                self._requests.pop(token, None)
                self._request_sends.pop(token, None)
            # Right after a reconnect the responder may not have subscribed again yet: a
            # "no responders" answer then is retried (briefly) within the timeout.
            if msg.status == 503 and self._session != first_session and loop.time() + 0.05 < deadline:
                await asyncio.sleep(0.05)
                continue
            break
        if msg.status == 503:
            raise MemphisNoRespondersError(f"no responders on {subject}")
        return msg

    # -- JetStream publishing ----------------------------------------------------------------
    def new_group(self, label: str | None = None, report_stored: bool = False) -> int:
        """A producer's group: its window, counters and failure handler. ``label`` (the
        station) is copied into its results. With ``report_stored`` the handler set by
        :meth:`set_failure_handler` gets every outcome of the group's windowed publishes,
        stored ones included, in the order they are matched (a delivery callback); without
        it (the default, free) only failures."""
        return int(self.core.new_group(label, report_stored))

    def set_failure_handler(self, group: int, handler: FailureHandler | None) -> None:
        """Where the failures of the group's windowed publishes go."""
        if handler is None:
            self._failure_handlers.pop(group, None)
        else:
            self._failure_handlers[group] = handler

    def drop_group(self, group: int) -> None:
        self._failure_handlers.pop(group, None)
        self.core.drop_group(group)

    def group_inflight(self, group: int) -> int:
        """Messages of ``group`` sent and not yet finished."""
        return int(self.core.group_inflight(group)[0])

    def publish_awaited(
        self,
        subject: str,
        payload: Any,
        group: int,
        index: int,
        ack_wait_ms: int,
        header_lines: bytes | None = None,
        headers: Any = None,
        msg_id: str | None = None,
    ) -> asyncio.Future[_core.ProduceResult]:
        """JetStream publish; returns a future of its :class:`ProduceResult` (every publish
        ends in exactly one, which also removes the future: if the caller stops waiting, the
        result is dropped). Raises before sending for bad input or a closed connection."""
        mid = self._js_publish(subject, payload, group, index, ack_wait_ms, True, header_lines, headers, msg_id)
        fut: asyncio.Future[_core.ProduceResult] = _Future(loop=self._loop)
        self._waiters[mid] = fut
        # Written at once, not at the end of the tick: the round trip starts one loop
        # iteration earlier (measured: p50 83 -> 72 us, 7.3k -> 10.9k msg/s for one-at-a-time
        # awaited produce; benches/RESULTS.md). Pipelined paths keep one write per tick.
        p = self._protocol
        if p is not None:
            p.flush_now()
        if self._swept_ack_ms != ack_wait_ms:
            self._sweep_within(ack_wait_ms / 1000)
            self._swept_ack_ms = ack_wait_ms
        return fut

    def publish_windowed(
        self,
        subject: str,
        payload: Any,
        group: int,
        index: int,
        ack_wait_ms: int,
        header_lines: bytes | None,
        headers: Any,
        msg_id: str | None,
        max_inflight: int,
        max_inflight_bytes: int,
    ) -> bool:
        """JetStream publish without a future, within the group's window: False (and nothing
        sent) when the group already has ``max_inflight`` messages or ``max_inflight_bytes``
        in flight, or while the transport's write buffer is backed up (wait with
        :meth:`wait_room`). A failure goes to the group's failure handler, exactly once."""
        if self._write_resumed is not None or not self._js_publish(
            subject,
            payload,
            group,
            index,
            ack_wait_ms,
            False,
            header_lines,
            headers,
            msg_id,
            max_inflight,
            max_inflight_bytes,
        ):
            if self._closed:
                self._check_open()
            return False
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        if self._swept_ack_ms != ack_wait_ms:
            self._sweep_within(ack_wait_ms / 1000)
            self._swept_ack_ms = ack_wait_ms
        return True

    async def publish_batch(
        self,
        subject: str,
        payloads: Sequence[Any],
        group: int,
        ack_wait_ms: int,
        header_lines: bytes | None = None,
        msg_ids: Sequence[str | None] | None = None,
        base_index: int = 0,
        indexes: Sequence[int] | None = None,
    ) -> list[_core.ProduceResult]:
        """Publish many messages in one call and one write; returns one
        :class:`ProduceResult` per message (those refused before sending have kind
        ``REJECTED``)."""
        self._check_open()
        batch_id, results = self.core.js_publish_batch(
            subject,
            payloads,
            group,
            ack_wait_ms,
            header_lines,
            msg_ids,
            base_index,
            None if indexes is None else list(indexes),
        )
        if batch_id == 0:
            return results  # type: ignore[return-value]  # no None left when nothing was sent
        fut: asyncio.Future[list[Any]] = self._loop.create_future()
        self._batches[batch_id] = fut
        self._schedule_flush()
        self._sweep_within(ack_wait_ms / 1000)
        try:
            return await fut
        finally:
            if self._batches.pop(batch_id, None) is not None:
                self.core.discard_batch(batch_id)

    async def wait_room(self) -> None:
        """Wait until a refused :meth:`publish_windowed` may succeed: the transport accepts
        writes again, or some in-flight publish finished."""
        if self._write_resumed is not None:
            await self.wait_writable()
        else:
            await self.wait_progress()

    async def wait_progress(self) -> None:
        """Wait until some in-flight publish finishes (or the connection closes)."""
        if self._closed:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._progress.append(fut)
        await fut

    async def wait_group_drained(self, group: int, timeout: float | None) -> bool:
        """Wait until nothing of ``group`` is in flight; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self.core.group_inflight(group)[0] > 0 and not self._closed:
                    await self.wait_progress()
        except TimeoutError:
            return False
        return True

    # -- acks --------------------------------------------------------------------------------
    def ack(self, msg: _core.Msg, kind: int = ACK, delay_ns: int = 0) -> None:
        """Acknowledge a JetStream message (``ACK``, ``NAK``, ``NAK_DELAY``, ``IN_PROGRESS``,
        ``TERM``); acks of one tick go out in one write, or every ~32 KiB (see ``Core.ack``)."""
        if self.core.ack(msg, kind, delay_ns):
            # ~32 KiB of acks (a few hundred) encoded in this tick: the server gets them now, while the handler goes
            # on (a batch acked without yielding would otherwise reach it all at once, late).
            p = self._protocol
            if p is not None:
                p.flush_now()
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def ack_many(self, msgs: Sequence[_core.Msg], kind: int = ACK, delay_ns: int = 0) -> int:
        """Acknowledge many messages alike in one call; returns how many had a reply."""
        n = int(self.core.ack_many(msgs, kind, delay_ns))
        self._schedule_flush()
        return n

    def hold_acks(self) -> bool:
        """Keep the positive acks a pull just went in front of (``ahead_of_acks``: the acks of
        the batch before a fetch) out of the socket until :meth:`release_acks`, at most
        ``ACK_HOLD_MAX_S``: the pull goes out alone, the server delivers the next batch at
        once and works through those acks while the caller handles it (nats-server serializes
        a consumer's acks and deliveries: acks first, the batch would wait). Returns whether
        any were held."""
        if self.core.hold_acks() == 0:
            return False
        if self._ack_release is None:
            self._ack_release = self._loop.call_later(ACK_HOLD_MAX_S, self.release_acks)
        return True

    def release_acks(self) -> None:
        """Write the acks :meth:`hold_acks` kept back, now."""
        h, self._ack_release = self._ack_release, None
        if h is not None:
            h.cancel()
        # (Not connected, the core holds nothing: a disconnect moved them to the next session.)
        if self.core.release_acks() and self._protocol is not None:
            self._protocol.flush_now()

    # -- flush / close -----------------------------------------------------------------------
    async def flush(self, timeout: float = 10.0) -> None:
        """Write everything and wait until the server has processed it (PING/PONG)."""
        self._check_open()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if not self.is_connected:
                        await self._wait_connected()
                        continue
                    fut: asyncio.Future[None] = self._loop.create_future()
                    if not self.core.ping():
                        await asyncio.sleep(0.001)
                        continue
                    self._pings.append(fut)
                    self._schedule_flush()
                    try:
                        await fut
                        return
                    except MemphisConnectError:
                        continue
        except TimeoutError:
            raise MemphisTimeoutError(f"timeout: flush did not complete within {timeout:g} s") from None

    async def _wait_connected(self) -> None:
        while not self.is_connected:
            if self._closed:
                raise MemphisConnectionClosedError("the connection is closed")
            task = self._reconnect_task
            if task is not None and not task.done():
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    # close() cancelled the reconnect task: report the close, not a
                    # cancellation; re-raise only when this caller itself is cancelled.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
            else:
                await asyncio.sleep(0.01)

    async def close(self, timeout: float | None = None) -> None:
        """Drain and close: flush, wait (bounded) for in-flight publishes and requests, close.
        Whatever is still in flight afterwards ends with an "unknown"/"not sent" outcome."""
        if self._closed or self._closing:
            return
        self.release_acks()
        self._closing = True
        timeout = self.opts.drain_timeout if timeout is None else timeout
        try:
            if self.is_connected:
                with contextlib.suppress(TimeoutError, MemphisError):
                    async with asyncio.timeout(timeout):
                        while self.core.inflight > 0 or self._requests:
                            if not self.is_connected:
                                break
                            if self._requests:
                                await asyncio.sleep(0.005)
                            else:
                                await self.wait_progress()
                        if self.is_connected:
                            # The last PING proves the server processed everything; a stalled
                            # server would otherwise hold close() for the whole drain timeout
                            # (keepalive is off while closing): bound it like keepalive would.
                            fut: asyncio.Future[None] = self._loop.create_future()
                            if self.core.ping():
                                self._pings.append(fut)
                                self._schedule_flush()
                                bound = self.opts.ping_interval * max(self.opts.max_outstanding_pings, 1)
                                async with asyncio.timeout(min(bound, 5.0) if bound > 0 else 5.0):
                                    await fut
        finally:
            await self._shutdown(MemphisConnectionClosedError("the connection is closed"))

    async def _shutdown(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._closed = self.is_closed = True
        self._closing = True
        for h in (self._keepalive, self._sweeper, self._ack_release):
            if h is not None:
                h.cancel()
        self._keepalive = self._sweeper = self._ack_release = None
        leaving = self._leaving
        if leaving is not None and leaving is not asyncio.current_task():
            leaving.cancel()
        task = self._reconnect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.on_flags(self.core.close())
        for fut in list(self._requests.values()):
            if not fut.done():
                fut.set_exception(MemphisConnectionClosedError("the connection was closed"))
                fut.exception()
        self._requests.clear()
        self._request_sends.clear()
        self._fail_pings(MemphisConnectionClosedError("the connection was closed"))
        for bf in self._batches.values():
            if not bf.done():
                bf.set_exception(MemphisConnectionClosedError("the connection was closed"))
                bf.exception()
        for wf in self._progress:
            if not wf.done():
                wf.set_result(None)
        self._progress = []
        self._wake_writers()
        protocol = self._protocol
        self._protocol = None
        if protocol is not None:
            protocol.close()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(2):
                    await asyncio.shield(protocol.lost)
        plain = isinstance(exc, MemphisConnectionClosedError) and exc.message == "the connection is closed"
        self.event("closed", None if plain else str(exc))

    def stats(self) -> dict[str, int]:
        s: dict[str, int] = dict(self.core.stats())
        s["reconnects"] = self.reconnects
        return s
