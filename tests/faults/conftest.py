"""Fixtures of the fault suite: fault-injecting proxies and hostile servers that are always
closed, a fresh broker per test for the tests that kill it, and the recorder of each test's
figures (``tests/faults/results/<test>.json``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from faults_helpers import record

from memphis_fast.testing import HostileServer, TcpProxy
from memphis_fast.testing.fakeserver import Behaviour

ProxyFactory = Callable[..., Awaitable[TcpProxy]]
HostileFactory = Callable[..., Awaitable[HostileServer]]
Recorder = Callable[[dict[str, Any]], None]


@pytest.fixture
async def proxy_factory() -> AsyncIterator[ProxyFactory]:
    """``await proxy_factory(port)`` -> a started :class:`TcpProxy` to ``127.0.0.1:port``."""
    proxies: list[TcpProxy] = []

    async def make(port: int, **kw: Any) -> TcpProxy:
        p = await TcpProxy("127.0.0.1", port, **kw).start()
        proxies.append(p)
        return p

    try:
        yield make
    finally:
        for p in proxies:
            await p.close()


@pytest.fixture
async def hostile() -> AsyncIterator[HostileFactory]:
    """``await hostile("garbage", **kw)`` -> a started :class:`HostileServer`."""
    servers: list[HostileServer] = []

    async def make(behaviour: Behaviour, **kw: Any) -> HostileServer:
        s = await HostileServer(behaviour, **kw).start()
        servers.append(s)
        return s

    try:
        yield make
    finally:
        for s in servers:
            await s.close()


@pytest.fixture
def results(request: pytest.FixtureRequest) -> Recorder:
    """``results({...})`` writes the test's measured figures as JSON."""
    name = request.node.nodeid.split("::", 1)[-1]
    module = request.node.module.__name__.removeprefix("test_")
    return lambda figures: None if record(f"{module}.{name}", figures) is None else None
