"""Fixtures of the wire tests: connections that are always closed, fault-injecting proxies,
and TLS material generated once per session."""

from __future__ import annotations

import asyncio
from asyncio import AbstractEventLoop
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest
from wire_helpers import Connect, TlsFiles, server_of, write_pki

from memphis_fast._connect import ConnectOptions, Server
from memphis_fast._connection import NatsConnection
from memphis_fast._server import NatsServer
from memphis_fast.testing import TcpProxy


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(server_or_proxy_or_port, ..., **ConnectOptions fields)``; every
    connection is closed at teardown. ``reconnect_wait`` defaults to 50 ms here."""
    conns: list[NatsConnection] = []

    async def make(*targets: NatsServer | TcpProxy | Server | int, **kw: Any) -> NatsConnection:
        kw.setdefault("reconnect_wait", 0.05)
        kw.setdefault("reconnect_jitter", 0.0)
        opts = ConnectOptions(servers=[server_of(t) for t in targets], **kw)
        conn = await NatsConnection.connect(opts)
        conns.append(conn)
        return conn

    try:
        yield make
    finally:
        for c in conns:
            await c.close(timeout=2)


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[..., Awaitable[TcpProxy]]]:
    proxies: list[TcpProxy] = []

    async def make(target: NatsServer | int, **kw: Any) -> TcpProxy:
        port = target if isinstance(target, int) else target.port
        p = await TcpProxy("127.0.0.1", port, **kw).start()
        proxies.append(p)
        return p

    try:
        yield make
    finally:
        for p in proxies:
            await p.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFiles]:
    yield write_pki(tmp_path_factory.mktemp("pki"))


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], AbstractEventLoop]]:
    """Every wire test runs on the standard event loop and, when it is installed, on uvloop
    (its transports call the BufferedProtocol and TLS paths differently)."""
    factories: dict[str, Callable[[], AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories
