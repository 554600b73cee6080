"""Getting a connection: server lists, TLS contexts, the handshake, auth fallback, reconnecting.

Everything here happens before (or between) the live sessions that
:class:`~memphis_fast._connection.NatsConnection` runs its data plane on. The handshake and
the wire formats it uses are described in docs/protocol.md §2.

One :class:`Connector` belongs to one connection. It owns the server list (the given servers
plus the cluster's ``INFO.connect_urls``), the user name in use (``root$1`` falls back to
``root`` once, on the same attempt, when the server answers "authorization violation"), and
the reconnect loop. It talks to its connection through the :class:`Link` interface; the
connection forwards the handshake's INFO, ``-ERR``, PONG and transport loss to the
:class:`Handshake` in progress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import ssl
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _core
from ._protocol import NatsProtocol, ProtocolOwner
from .exceptions import MemphisConnectError, MemphisConnectionClosedError, MemphisError

__all__ = [
    "ConnectOptions",
    "Connector",
    "EventCallback",
    "Handshake",
    "Link",
    "Server",
    "parse_servers",
    "tls_context",
]

log = logging.getLogger("memphis_fast.connection")

#: Callback type for connection events: ``cb(event_name, detail)``.
EventCallback = Callable[[str, Any], Any]


_INBOX_CHARS = string.ascii_letters + string.digits


def new_inbox_prefix() -> str:
    """``_INBOX.`` and 16 random base62 characters (95 bits, from ``secrets``: more than the
    random part of nats.go's inboxes). Short on purpose: nats-server matches and copies the
    reply subject of every publish's PubAck, and with a token of 32 characters instead of 6 it
    spent 6-11 % more CPU per pipelined message in five experiments (22 characters: 5 %),
    ``benches/throughput/reply_length.py``."""
    return "_INBOX." + "".join(secrets.choice(_INBOX_CHARS) for _ in range(16))


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(hosts: str | Sequence[str], default_port: int) -> list[Server]:
    """``host``, ``host:port``, ``http(s)://host``, ``nats://host:port``, ``[::1]:port``; a
    comma-separated string or a list of them."""
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


def tls_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext | None:
    """The client's mutual-TLS context (all three files or none; ``None`` for none)."""
    if cert_file == "" and key_file == "" and ca_file == "":
        return None
    if cert_file == "":
        raise MemphisConnectError("Must provide a TLS cert file")
    if key_file == "":
        raise MemphisConnectError("Must provide a TLS key file")
    if ca_file == "":
        raise MemphisConnectError("Must provide a TLS ca file")
    try:
        ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise MemphisConnectError(f"can not load the TLS CA file {ca_file!r}: {exc}") from exc
    try:
        ctx.load_cert_chain(certfile=cert_file, keyfile=key_file)
    except (OSError, ssl.SSLError) as exc:
        raise MemphisConnectError(
            f"can not load the TLS certificate {cert_file!r} / key {key_file!r}: {exc}"
        ) from exc
    return ctx


@dataclass
class ConnectOptions:
    servers: list[Server]
    name: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    #: tried once, with a fresh connection, when the server answers "authorization violation"
    #: for ``user`` (memphis: ``root$1`` -> ``root``).
    fallback_user: str = ""
    token: str = field(default="", repr=False)
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
    pending_limit: int = _core.DEFAULT_PENDING_LIMIT
    drain_timeout: float = 10.0
    on_event: EventCallback | None = None
    inbox_prefix: str = field(default_factory=new_inbox_prefix)


class Link(ProtocolOwner, Protocol):
    """What the connector needs from its connection."""

    core: _core.Core
    server_info: dict[str, Any]

    @property
    def closing(self) -> bool:
        """close() was called (no more attempts)."""

    def attach(self, protocol: NatsProtocol, handshake: Handshake) -> None:
        """A transport attempt starts: route its events to ``protocol`` and ``handshake``."""

    def detach(self, protocol: NatsProtocol) -> None:
        """The attempt failed: forget ``protocol`` (the core leaves its session)."""

    def session_started(self, server: Server) -> None:
        """The handshake completed on ``server``: the data plane may run."""

    def event(self, name: str, detail: Any = None) -> None:
        """A connection event for the log and the user's callback."""

    async def shutdown(self, exc: BaseException) -> None:
        """Close for good."""


class Handshake:
    """One connection attempt: waits for the server's INFO, then for the PONG that answers
    CONNECT + PING (or the ``-ERR`` that refuses it)."""

    __slots__ = ("info", "pong", "last_error")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.info: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pong: asyncio.Future[None] = loop.create_future()
        self.last_error: str | None = None

    def on_info(self, info: dict[str, Any]) -> None:
        if not self.info.done():
            self.info.set_result(info)

    def on_error(self, text: str) -> bool:
        """``-ERR`` during the handshake: refuses the attempt. True if it was consumed."""
        self.last_error = text
        if self.pong.done() or not self.info.done():
            return False
        self.pong.set_exception(_refused(f"server refused the connection: {text}", text))
        return True

    def on_pong(self) -> bool:
        if self.pong.done():
            return False
        self.pong.set_result(None)
        return True

    def on_lost(self, exc: Exception | None) -> None:
        reason = self.last_error or (str(exc) if exc else "closed by the server")
        if not self.info.done():
            self.info.set_exception(MemphisConnectError(f"connection lost before INFO: {reason}"))
            self.info.exception()
        if not self.pong.done():
            self.pong.set_exception(
                _refused(f"server closed the connection during the handshake: {reason}", reason)
            )
            self.pong.exception()


def _refused(message: str, reason: str) -> MemphisConnectError:
    low = reason.lower()
    return MemphisConnectError(message, auth="authoriz" in low or "authentic" in low)


def connect_json(opts: ConnectOptions, user: str) -> str:
    """The CONNECT body (docs/protocol.md §2)."""
    c: dict[str, Any] = {
        "verbose": False,
        "pedantic": False,
        "tls_required": opts.tls is not None,
        "lang": "python3",
        "version": f"memphis-fast-{_core.VERSION}",
        "protocol": 1,
        "headers": True,
        "no_responders": True,
        "echo": True,
    }
    if opts.name:
        c["name"] = opts.name
    if opts.token:
        c["auth_token"] = opts.token
    elif user or opts.password:
        c["user"] = user
        c["pass"] = opts.password
    return json.dumps(c, separators=(",", ":"))


class Connector:
    """Servers, handshake and reconnect loop of one connection."""

    def __init__(self, opts: ConnectOptions, link: Link, loop: asyncio.AbstractEventLoop) -> None:
        self.opts = opts
        self._link = link
        self._loop = loop
        self.servers: list[Server] = list(opts.servers)
        self.server: Server | None = None
        self.user = opts.user
        self.reconnects = 0
        #: server -> loop time until which it is tried only when nothing else answers
        #: (it announced lame-duck mode)
        self._avoid: dict[Server, float] = {}

    def avoid(self, server: Server, seconds: float) -> None:
        """Try ``server`` last for ``seconds`` (it is shutting down)."""
        self._avoid[server] = self._loop.time() + seconds

    def add_connect_urls(self, urls: Sequence[Any]) -> None:
        """Servers the cluster announced in INFO (``connect_urls``)."""
        for u in urls:
            try:
                for s in parse_servers([str(u)], 4222):
                    if s not in self.servers:
                        self.servers.append(s)
            except MemphisError:
                continue

    async def connect_first(self) -> None:
        """Connect to the first server that answers; raises :class:`MemphisConnectError`."""
        errors: list[str] = []
        for server in list(self.servers):
            try:
                await self._connect_once(server)
            except MemphisConnectError as exc:
                errors.append(exc.message if str(server) in exc.message else f"{server}: {exc.message}")
                if getattr(exc, "auth", False):
                    break  # wrong credentials: another server will not help
                continue
            return
        raise MemphisConnectError("; ".join(errors) if errors else "could not connect")

    async def _connect_once(self, server: Server) -> None:
        try:
            await self._handshake(server, self.user)
        except MemphisConnectError as exc:
            fb = self.opts.fallback_user
            if (
                getattr(exc, "auth", False)
                and fb
                and self.user != fb
                and "authorization violation" in exc.message.lower()
            ):
                log.info("user %r refused, retrying as %r", self.user, fb)
                await self._handshake(server, fb)
                self.user = fb
            else:
                raise

    async def _handshake(self, server: Server, user: str) -> None:
        loop = self._loop
        opts = self.opts
        link = self._link
        protocol = NatsProtocol(link, link.core, loop)
        hs = Handshake(loop)
        # Ready for INFO (and for the connection being lost) before the transport exists: an
        # event loop may deliver the server's first bytes before create_connection's caller
        # resumes (uvloop does), and an INFO nobody waits for would be lost.
        link.attach(protocol, hs)
        deadline = opts.connect_timeout
        try:
            async with asyncio.timeout(deadline):
                try:
                    await loop.create_connection(lambda: protocol, server.host, server.port)
                except OSError as exc:
                    raise MemphisConnectError(
                        f"can not connect to {server}: {exc.strerror or exc}"
                    ) from exc
                info = await hs.info
                if info.get("tls_required") or opts.tls is not None:
                    await self._start_tls(server, protocol, info)
                link.core.start_session(connect_json(opts, user))
                protocol.flush_now()
                await hs.pong
        except TimeoutError:
            link.detach(protocol)
            raise MemphisConnectError(
                f"timed out connecting to {server} after {int(deadline * 1000)} ms"
            ) from None
        except BaseException:
            link.detach(protocol)
            raise
        self.server = server
        link.session_started(server)

    async def _start_tls(self, server: Server, protocol: NatsProtocol, info: dict[str, Any]) -> None:
        opts = self.opts
        if opts.tls is None:
            raise MemphisConnectError(f"{server} requires TLS: give cert_file, key_file and ca_file")
        if not info.get("tls_required") and not info.get("tls_available"):
            raise MemphisConnectError(f"{server} does not offer TLS")
        transport = protocol.transport
        if transport is None:
            raise MemphisConnectError(f"connection to {server} lost before TLS")
        protocol.tls = True  # before any TLS read reaches get_buffer
        try:
            new_transport = await self._loop.start_tls(
                transport, protocol, opts.tls, server_hostname=opts.tls_hostname or server.host
            )
        except (ssl.SSLError, OSError) as exc:
            raise MemphisConnectError(f"TLS handshake with {server} failed: {exc}") from exc
        if new_transport is None:
            raise MemphisConnectError(f"TLS handshake with {server} failed")
        protocol.transport = new_transport  # type: ignore[assignment]

    async def reconnect_loop(self) -> None:
        """Try the servers in turn (starting after the one that failed) until one answers,
        ``max_reconnect`` attempts are spent, or the connection is closed."""
        opts = self.opts
        link = self._link
        attempts = 0
        last = self.server
        while not link.closing:
            servers = list(self.servers)
            if last in servers:
                i = servers.index(last)
                servers = servers[i + 1 :] + servers[: i + 1]
            now = self._loop.time()
            avoided = [s for s in servers if self._avoid.get(s, 0.0) > now]
            if avoided and len(avoided) < len(servers):
                servers = [s for s in servers if s not in avoided] + avoided
            for server in servers:
                if opts.max_reconnect >= 0 and attempts >= opts.max_reconnect:
                    await link.shutdown(
                        MemphisConnectionClosedError(f"gave up reconnecting after {attempts} attempts")
                    )
                    return
                if server == last or len(servers) == 1:
                    jitter = random.uniform(0, opts.reconnect_jitter) if opts.reconnect_jitter else 0
                    await asyncio.sleep(opts.reconnect_wait + jitter)
                if link.closing:
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
                link.event("reconnected", str(server))
                return
