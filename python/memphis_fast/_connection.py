"""The NATS connection: connect, authenticate, TLS, keepalive, reconnect, requests, publishes.

One :class:`NatsConnection` owns one Rust :class:`~memphis_fast._core.Core` across every TCP
connection it makes (so subscriptions, in-flight publishes and buffered writes survive a
reconnect) and one :class:`~memphis_fast._protocol.NatsProtocol` per TCP connection.

Concurrency model: everything runs on one event loop. Incoming data is parsed by the core in
``buffer_updated``; subscription handlers are called synchronously from there with a list of
messages (they must not block; the client layer hands work to tasks). Requests and awaited
publishes are futures keyed by inbox token / message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _core
from ._protocol import NatsProtocol
from .exceptions import (
    MemphisConnectError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisNoRespondersError,
    MemphisTimeoutError,
)

__all__ = ["ConnectOptions", "NatsConnection", "Server", "parse_servers"]

log = logging.getLogger("memphis_fast.connection")

_core_version = _core.VERSION
F_MSGS = _core.F_MSGS
F_OUTCOMES = _core.F_OUTCOMES
F_FAILURES = _core.F_FAILURES
F_PROGRESS = _core.F_PROGRESS
F_EVENTS = _core.F_EVENTS
F_WRITE = _core.F_WRITE
EV_INFO = _core.EV_INFO
EV_ERR = _core.EV_ERR
EV_PONG = _core.EV_PONG
EV_BATCH = _core.EV_BATCH
EV_PULL_END = _core.EV_PULL_END

STATE_DISCONNECTED, STATE_HANDSHAKING, STATE_CONNECTED, STATE_CLOSED = 0, 1, 2, 3

#: Callback type for connection events: ``cb(event_name, detail)``.
EventCallback = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(hosts: str | Sequence[str], default_port: int) -> list[Server]:
    """``host``, ``host:port``, ``http(s)://host``, ``nats://host:port``, ``[::1]:port``."""
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h.strip()]
    out: list[Server] = []
    for raw in hosts:
        h = raw.strip()
        for prefix in ("https://", "http://", "nats://", "tls://"):
            if h.lower().startswith(prefix):
                h = h[len(prefix) :]
                break
        h = h.rstrip("/")
        port = default_port
        if h.startswith("["):
            end = h.find("]")
            if end < 0:
                raise MemphisConnectError(f"invalid host {raw!r}")
            host = h[1:end]
            rest = h[end + 1 :]
            if rest.startswith(":"):
                port = _port(rest[1:], raw)
        elif h.count(":") == 1:
            host, p = h.split(":")
            port = _port(p, raw)
        else:
            host = h
        if not host:
            raise MemphisConnectError(f"invalid host {raw!r}")
        out.append(Server(host, port))
    if not out:
        raise MemphisConnectError("no host given")
    return out


def _port(text: str, raw: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise MemphisConnectError(f"invalid port in {raw!r}") from None
    if not 0 < port < 65536:
        raise MemphisConnectError(f"invalid port in {raw!r}")
    return port


@dataclass
class ConnectOptions:
    servers: list[Server]
    name: str = ""
    user: str = ""
    password: str = ""
    #: tried once, with a fresh connection, when the server answers "authorization violation"
    #: for ``user`` (memphis: ``root$1`` -> ``root``).
    fallback_user: str = ""
    token: str = ""
    tls: ssl.SSLContext | None = None
    tls_hostname: str | None = None
    connect_timeout: float = 2.0
    allow_reconnect: bool = True
    #: -1 = forever, 0 = never; counted across all servers.
    max_reconnect: int = -1
    reconnect_wait: float = 1.5
    reconnect_jitter: float = 0.1
    ping_interval: float = 20.0
    max_outstanding_pings: int = 2
    #: bytes of publishes/acks buffered while disconnected
    pending_limit: int = 8 * 1024 * 1024
    drain_timeout: float = 10.0
    on_event: EventCallback | None = None
    inbox_prefix: str = field(default_factory=lambda: "_INBOX." + uuid.uuid4().hex)


class _Handshake:
    __slots__ = ("pong", "err")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pong: asyncio.Future[None] = loop.create_future()
        self.err: str | None = None


class NatsConnection:
    """A NATS client connection on the Rust core. Create with :meth:`connect`."""

    def __init__(self, opts: ConnectOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.opts = opts
        self._loop = loop
        self.core = _core.Core(opts.inbox_prefix, opts.pending_limit)
        self._prefix = self.core.inbox_prefix
        self._mux_sid = self.core.mux_sid
        self._protocol: NatsProtocol | None = None
        self._servers: list[Server] = list(opts.servers)
        self._server: Server | None = None
        self.server_info: dict[str, Any] = {}
        self._handlers: dict[int, Callable[[list[_core.Msg]], None]] = {}
        self._pull_end_handlers: dict[int, Callable[[int, int, str, int], None]] = {}
        self._requests: dict[str, asyncio.Future[_core.Msg]] = {}
        self._req_ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._batches: dict[int, asyncio.Future[list[Any]]] = {}
        self._failure_handlers: dict[int, Callable[[tuple[Any, ...], str | None], None]] = {}
        self._progress: list[asyncio.Future[None]] = []
        self._pings: deque[asyncio.Future[None] | _Handshake] = deque()
        self._handshake: _Handshake | None = None
        self._write_resumed: asyncio.Future[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        #: the ack wait (ms) of the last unawaited publish that checked the sweep timer; a
        #: publish with the same ack wait cannot have an earlier deadline, so it skips the check
        self.swept_ack_ms = -1
        self._closing = False
        self._closed = False
        self._close_error: BaseException | None = None
        self._groups = itertools.count(1)
        self._user = opts.user
        self._connecting = False
        self._info_waiter: asyncio.Future[dict[str, Any]] | None = None
        self.last_error: str | None = None
        self.reconnects = 0

    # -- state -------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.core.state == STATE_CONNECTED and self._protocol is not None

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_reconnecting(self) -> bool:
        return self._reconnect_task is not None and not self._reconnect_task.done()

    @property
    def max_payload(self) -> int:
        return int(self.core.max_payload)

    @property
    def inbox_prefix(self) -> str:
        return str(self._prefix)

    def new_inbox(self) -> str:
        return f"{self._prefix}i{next(self._req_ids)}"

    @property
    def connected_server(self) -> Server | None:
        return self._server if self.is_connected else None

    def _event(self, name: str, detail: Any = None) -> None:
        level = logging.INFO if name in ("connected", "reconnected", "closed") else logging.WARNING
        if name == "lame_duck":
            level = logging.WARNING
        log.log(level, "memphis connection %s%s", name, f": {detail}" if detail else "")
        cb = self.opts.on_event
        if cb is not None:
            try:
                res = cb(name, detail)
                if asyncio.iscoroutine(res):
                    self._loop.create_task(res)
            except Exception:
                log.exception("connection event callback failed")

    # -- connecting --------------------------------------------------------------------------
    @classmethod
    async def connect(cls, opts: ConnectOptions) -> NatsConnection:
        """Connect to the first server that answers; raises :class:`MemphisConnectError`."""
        conn = cls(opts, asyncio.get_running_loop())
        errors: list[str] = []
        for server in list(conn._servers):
            try:
                await conn._connect_once(server)
            except MemphisConnectError as exc:
                errors.append(exc.message if str(server) in exc.message else f"{server}: {exc.message}")
                if getattr(exc, "auth", False):
                    break  # wrong credentials: another server will not help
                continue
            conn._start_timers()
            conn._event("connected", str(server))
            return conn
        conn._closed = True
        conn.core.close()
        raise MemphisConnectError("; ".join(errors) if errors else "could not connect")

    async def _connect_once(self, server: Server) -> None:
        try:
            await self._connect_user(server, self._user)
        except MemphisConnectError as exc:
            fb = self.opts.fallback_user
            if (
                getattr(exc, "auth", False)
                and fb
                and self._user != fb
                and "authorization violation" in exc.message.lower()
            ):
                log.info("user %r refused, retrying as %r", self._user, fb)
                await self._connect_user(server, fb)
                self._user = fb
            else:
                raise

    async def _connect_user(self, server: Server, user: str) -> None:
        loop = self._loop
        opts = self.opts
        protocol = NatsProtocol(self, self.core, loop)
        self._handshake = None
        self._connecting = True
        self.last_error = None
        deadline = opts.connect_timeout
        # Ready for INFO (and for the connection being lost) before the transport exists:
        # an event loop may deliver the server's first bytes before create_connection's
        # caller resumes (uvloop does), and an INFO nobody waits for would be lost.
        info_fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._info_waiter = info_fut
        self._protocol = protocol
        try:
            async with asyncio.timeout(deadline):
                try:
                    await loop.create_connection(lambda: protocol, server.host, server.port)
                except OSError as exc:
                    raise MemphisConnectError(
                        f"can not connect to {server}: {exc.strerror or exc}"
                    ) from exc
                info = await info_fut
                if info.get("tls_required") or opts.tls is not None:
                    if opts.tls is None:
                        raise MemphisConnectError(
                            f"{server} requires TLS: give cert_file, key_file and ca_file"
                        )
                    if not info.get("tls_required") and not info.get("tls_available"):
                        raise MemphisConnectError(f"{server} does not offer TLS")
                    transport = protocol.transport
                    assert transport is not None
                    protocol.tls = True  # before any TLS read reaches get_buffer
                    try:
                        new_transport = await loop.start_tls(
                            transport,
                            protocol,
                            opts.tls,
                            server_hostname=opts.tls_hostname or server.host,
                        )
                    except (ssl.SSLError, OSError) as exc:
                        raise MemphisConnectError(f"TLS handshake with {server} failed: {exc}") from exc
                    if new_transport is None:
                        raise MemphisConnectError(f"TLS handshake with {server} failed")
                    protocol.transport = new_transport  # type: ignore[assignment]
                hs = _Handshake(loop)
                self._handshake = hs
                self.core.start_session(self._connect_json(user, info))
                self._pings.append(hs)
                protocol.flush_now()
                await hs.pong
        except TimeoutError:
            self._abandon(protocol)
            raise MemphisConnectError(
                f"timed out connecting to {server} after {int(deadline * 1000)} ms"
            ) from None
        except MemphisConnectError:
            self._abandon(protocol)
            raise
        except BaseException:
            self._abandon(protocol)
            raise
        finally:
            self._handshake = None
            self._info_waiter = None
            self._connecting = False
        self._server = server
        self.core.session_ready()
        protocol.flush_now()

    def _abandon(self, protocol: NatsProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None
        protocol.abort()
        if self.core.state in (STATE_HANDSHAKING, STATE_CONNECTED):
            self._on_flags(self.core.disconnected())
        self._fail_pings(MemphisConnectError("connection lost"))

    def _connect_json(self, user: str, info: dict[str, Any]) -> str:
        o = self.opts
        c: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "tls_required": o.tls is not None,
            "lang": "python3",
            "version": f"memphis-fast-{_core_version}",
            "protocol": 1,
            "headers": True,
            "no_responders": True,
            "echo": True,
        }
        if o.name:
            c["name"] = o.name
        if o.token:
            c["auth_token"] = o.token
        elif user or o.password:
            c["user"] = user
            c["pass"] = o.password
        return json.dumps(c, separators=(",", ":"))

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
            self.core.max_payload = mp
        if info.get("headers") is False:
            log.error("server %s does not support headers; Memphis needs them", self._server)
        urls = info.get("connect_urls") or []
        for u in urls:
            try:
                for s in parse_servers([str(u)], 4222):
                    if s not in self._servers:
                        self._servers.append(s)
            except MemphisError:
                continue
        if info.get("ldm"):
            self._event("lame_duck", str(self._server))
        waiter = self._info_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(info)

    # -- incoming ----------------------------------------------------------------------------
    def _on_flags(self, flags: int) -> None:
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
                    sid, token, code, desc, undelivered = value
                    h = self._pull_end_handlers.get(sid)
                    if h is not None:
                        try:
                            h(token, code, desc, undelivered)
                        except Exception:
                            log.exception("pull-end handler for sid %s failed", sid)
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
            for t in core.take_outcomes():
                wfut = waiters.pop(t[0], None)
                if wfut is not None and not wfut.done():
                    wfut.set_result(t)
        if flags & F_FAILURES:
            for group, t, msg_id in core.take_failures():
                handler_f = self._failure_handlers.get(group)
                if handler_f is None:
                    log.error("publish %s failed: %s", t[0], t[3])
                    continue
                try:
                    handler_f(t, msg_id)
                except Exception:
                    log.exception("publish failure handler failed")
        if flags & F_PROGRESS and self._progress:
            waiting, self._progress = self._progress, []
            for f in waiting:
                if not f.done():
                    f.set_result(None)
        # Always schedule the tick's flush now, after the wake-ups above: a task woken by a reply
        # or an ack usually publishes (the next sync produce, an ack) in its next step, and this
        # flush, queued behind that step, writes it in the same loop iteration instead of one
        # iteration later. Still one write per tick (the flag in _schedule_flush).
        self._schedule_flush()

    def _on_replies(self, msgs: list[_core.Msg]) -> None:
        plen = len(self._prefix)
        for m in msgs:
            fut = self._requests.pop(m.subject[plen:], None)
            if fut is not None and not fut.done():
                fut.set_result(m)

    def _on_pong(self) -> None:
        if not self._pings:
            return
        p = self._pings.popleft()
        if isinstance(p, _Handshake):
            if not p.pong.done():
                p.pong.set_result(None)
        elif not p.done():
            p.set_result(None)

    def _on_server_error(self, text: str) -> None:
        self.last_error = text
        hs = self._handshake
        if hs is not None and not hs.pong.done():
            exc = MemphisConnectError(f"server refused the connection: {text}")
            exc.auth = "authoriz" in text.lower() or "authentic" in text.lower()  # type: ignore[attr-defined]
            hs.pong.set_exception(exc)
            return
        self._event("server_error", text)

    def _protocol_error(self, protocol: NatsProtocol, exc: Exception) -> None:
        log.error("protocol error from %s: %s; reconnecting", self._server, exc)
        self.last_error = str(exc)
        protocol.abort()

    def _connection_lost(self, protocol: NatsProtocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        hs = self._handshake
        if hs is not None and not hs.pong.done():
            reason = self.last_error or (str(exc) if exc else "connection closed by the server")
            err = MemphisConnectError(f"server closed the connection during the handshake: {reason}")
            err.auth = "authoriz" in reason.lower()  # type: ignore[attr-defined]
            hs.pong.set_exception(err)
        waiter = self._info_waiter
        if waiter is not None and not waiter.done():
            reason = self.last_error or (str(exc) if exc else "closed by the server")
            waiter.set_exception(MemphisConnectError(f"connection lost before INFO: {reason}"))
        if self.core.state in (STATE_HANDSHAKING, STATE_CONNECTED):
            flags = self.core.disconnected()
            self._on_flags(flags)
        self._fail_pings(MemphisConnectError("connection lost"))
        self._wake_writers()
        if self._connecting or self._closing or self._closed:
            return
        # The reason: the transport's error, or why we aborted it ("stale connection", a
        # protocol error), or None when the server closed the connection.
        self._event("disconnected", str(exc) if exc else self.last_error)
        if self.opts.allow_reconnect and self.opts.max_reconnect != 0:
            self._reconnect_task = self._loop.create_task(self._reconnect_loop())
        else:
            self._loop.create_task(self._shutdown(MemphisConnectionClosedError("connection lost")))

    def _fail_pings(self, exc: BaseException) -> None:
        pings, self._pings = self._pings, deque()
        for p in pings:
            f = p.pong if isinstance(p, _Handshake) else p
            if not f.done():
                f.set_exception(exc)
                f.exception()  # mark retrieved: flush() callers may be gone

    async def _reconnect_loop(self) -> None:
        opts = self.opts
        attempts = 0
        last = self._server
        while not self._closing and not self._closed:
            servers = list(self._servers)
            # Start with the server after the one that failed.
            if last in servers:
                i = servers.index(last)
                servers = servers[i + 1 :] + servers[: i + 1]
            for server in servers:
                if opts.max_reconnect >= 0 and attempts >= opts.max_reconnect:
                    await self._shutdown(
                        MemphisConnectionClosedError(
                            f"gave up reconnecting after {attempts} attempts"
                        )
                    )
                    return
                if server == last or len(servers) == 1:
                    jitter = random.uniform(0, opts.reconnect_jitter) if opts.reconnect_jitter else 0
                    await asyncio.sleep(opts.reconnect_wait + jitter)
                if self._closing or self._closed:
                    return
                attempts += 1
                try:
                    await self._connect_once(server)
                except MemphisConnectError as exc:
                    log.info("reconnect attempt %d to %s failed: %s", attempts, server, exc.message)
                    last = server
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconnect attempt to %s failed", server)
                    last = server
                    continue
                self.reconnects += 1
                self._start_timers()
                self._event("reconnected", str(server))
                return

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
                    self._server,
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
        if self._sweeper is not None or self._closed:
            return
        delay = self.core.next_deadline()
        if delay is None:
            return
        self._sweeper = self._loop.call_later(max(delay, 0.005) + 0.001, self._sweep)

    def _sweep_within(self, seconds: float) -> None:
        """A deadline was added ``seconds`` from now: make sure a sweep runs by then (one
        timer for every ack wait and pull expiry, re-armed earlier when needed)."""
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
        # Deadlines added from now on must check the timer again (see Producer.produce).
        self.swept_ack_ms = -1
        flags = self.core.sweep()
        if flags:
            self._on_flags(flags)
        self._arm_sweeper()

    # -- writing -----------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        p = self._protocol
        if p is not None and not p._flush_scheduled:
            p._flush_scheduled = True
            self._loop.call_soon(p._flush)

    def _writing_paused(self) -> None:
        if self._write_resumed is None:
            self._write_resumed = self._loop.create_future()

    def _writing_resumed(self) -> None:
        self._wake_writers()

    def _wake_writers(self) -> None:
        f = self._write_resumed
        self._write_resumed = None
        if f is not None and not f.done():
            f.set_result(None)

    async def wait_writable(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self._write_resumed is not None and not self._closed:
            await self._write_resumed

    # -- subscriptions -----------------------------------------------------------------------
    def subscribe(
        self,
        subject: str,
        handler: Callable[[list[_core.Msg]], None],
        queue: str | None = None,
    ) -> int:
        """Subscribe; ``handler`` gets a list of messages each time some arrive."""
        self._check_open()
        sid = self.core.subscribe(subject, queue)
        self._handlers[sid] = handler
        self._schedule_flush()
        return int(sid)

    def unsubscribe(self, sid: int, max_msgs: int | None = None) -> None:
        if self._closed:
            return
        self.core.unsubscribe(sid, max_msgs)
        if max_msgs is None:
            self._handlers.pop(sid, None)
            self._pull_end_handlers.pop(sid, None)
        self._schedule_flush()

    def pull_subscribe(
        self,
        on_msgs: Callable[[list[_core.Msg]], None],
        on_end: Callable[[int, int, str, int], None],
    ) -> int:
        """An inbox for JetStream pull requests. ``on_msgs`` gets delivered messages,
        ``on_end(token, code, description, undelivered)`` a pull that ended short (status
        404/408/409, local expiry, lost heartbeats, or code 0 on a lost connection)."""
        self._check_open()
        sid = int(self.core.pull_subscribe())
        self._handlers[sid] = on_msgs
        self._pull_end_handlers[sid] = on_end
        self._schedule_flush()
        return sid

    def pull(
        self,
        sid: int,
        api_subject: str,
        batch: int,
        max_bytes: int = 0,
        expires_ms: int = 0,
        heartbeat_ms: int = 0,
        no_wait: bool = False,
    ) -> int:
        """Send a pull request on pull subscription ``sid``; returns its token."""
        self._check_open()
        token = int(self.core.pull(sid, api_subject, batch, max_bytes, expires_ms, heartbeat_ms, no_wait))
        self._schedule_flush()
        # The core ends a pull 2 s after its expiry, or when 2 heartbeats + 1 s pass silently.
        within = (expires_ms if expires_ms > 0 else 30_000) / 1000 + 2.0
        if heartbeat_ms > 0:
            within = min(within, 2 * heartbeat_ms / 1000 + 1.0)
        self._sweep_within(within)
        return token

    def pull_outstanding(self, sid: int) -> tuple[int, int]:
        """``(pulls, messages)`` requested on ``sid`` and not yet delivered."""
        pulls, msgs = self.core.pull_outstanding(sid)
        return int(pulls), int(msgs)

    # -- publishing --------------------------------------------------------------------------
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
        token = f"r{next(self._req_ids)}"
        fut: asyncio.Future[_core.Msg] = self._loop.create_future()
        self._requests[token] = fut
        try:
            self.core.publish(subject, payload, self._prefix + token, headers)
            self._schedule_flush()
            try:
                async with asyncio.timeout(timeout):
                    msg = await fut
            except TimeoutError:
                raise MemphisTimeoutError(
                    f"timeout: no reply on {subject} within {timeout:g} s"
                ) from None
        finally:
            self._requests.pop(token, None)
        if msg.status == 503:
            raise MemphisNoRespondersError(f"no responders on {subject}")
        return msg

    def new_group(self) -> int:
        return next(self._groups)

    def set_failure_handler(
        self, group: int, handler: Callable[[tuple[Any, ...], str | None], None] | None
    ) -> None:
        if handler is None:
            self._failure_handlers.pop(group, None)
        else:
            self._failure_handlers[group] = handler

    def js_publish(
        self,
        subject: str,
        payload: Any,
        group: int,
        tag: int,
        ack_wait: float,
        header_lines: bytes | None = None,
        headers: Any = None,
        msg_id: str | None = None,
    ) -> int:
        """Unawaited JetStream publish: returns its id; failures go to the group's handler."""
        self._check_open()
        mid = self.core.js_publish(
            subject, payload, group, tag, int(ack_wait * 1000), False, header_lines, headers, msg_id
        )
        self._schedule_flush()
        self._sweep_within(ack_wait)
        return int(mid)

    async def js_publish_wait(
        self,
        subject: str,
        payload: Any,
        group: int,
        tag: int,
        ack_wait: float,
        header_lines: bytes | None = None,
        headers: Any = None,
        msg_id: str | None = None,
    ) -> tuple[Any, ...]:
        """JetStream publish and wait for its outcome tuple
        ``(id, tag, kind, stream_or_reason, seq, duplicate, code, err_code)``."""
        self._check_open()
        mid = self.core.js_publish(
            subject, payload, group, tag, int(ack_wait * 1000), True, header_lines, headers, msg_id
        )
        fut: asyncio.Future[tuple[Any, ...]] = self._loop.create_future()
        self._waiters[mid] = fut
        self._schedule_flush()
        self._sweep_within(ack_wait)
        # Every publish ends in exactly one outcome, which removes the waiter (also when this
        # await was cancelled: the outcome is then dropped).
        return await fut

    async def js_publish_batch(
        self,
        subject: str,
        payloads: Sequence[Any],
        group: int,
        ack_wait: float,
        header_lines: bytes | None = None,
        msg_ids: Sequence[str | None] | None = None,
        base_index: int = 0,
        indexes: Sequence[int] | None = None,
    ) -> list[_core.ProduceResult]:
        """Publish many messages in one call and one write; returns one
        :class:`~memphis_fast._core.ProduceResult` per message (those refused before sending
        have kind ``"rejected"``)."""
        self._check_open()
        batch_id, results = self.core.js_publish_batch(
            subject,
            payloads,
            group,
            int(ack_wait * 1000),
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
        self._sweep_within(ack_wait)
        try:
            return await fut
        finally:
            if self._batches.pop(batch_id, None) is not None:
                self.core.discard_batch(batch_id)

    def group_inflight(self, group: int) -> tuple[int, int]:
        count, nbytes = self.core.group_inflight(group)
        return int(count), int(nbytes)

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
    def ack(self, msg: _core.Msg, kind: int = 0, delay_ns: int = 0) -> None:
        self._check_open()
        self.core.ack(msg, kind, delay_ns)
        self._schedule_flush()

    def ack_many(self, msgs: Sequence[_core.Msg], kind: int = 0, delay_ns: int = 0) -> int:
        self._check_open()
        n = self.core.ack_many(msgs, kind, delay_ns)
        self._schedule_flush()
        return int(n)

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
                            fut: asyncio.Future[None] = self._loop.create_future()
                            if self.core.ping():
                                self._pings.append(fut)
                                self._schedule_flush()
                                await fut
        finally:
            await self._shutdown(MemphisConnectionClosedError("the connection is closed"))

    async def _shutdown(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._close_error = exc
        for h in (self._keepalive, self._sweeper):
            if h is not None:
                h.cancel()
        self._keepalive = self._sweeper = None
        task = self._reconnect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        flags = self.core.close()
        self._on_flags(flags)
        for fut in list(self._requests.values()):
            if not fut.done():
                fut.set_exception(MemphisConnectionClosedError("the connection was closed"))
                fut.exception()
        self._requests.clear()
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
        self._event("closed", None if isinstance(exc, MemphisConnectionClosedError) and
                    exc.message == "the connection is closed" else str(exc))

    def stats(self) -> dict[str, int]:
        s: dict[str, int] = dict(self.core.stats())
        s["reconnects"] = self.reconnects
        return s

