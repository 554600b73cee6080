"""Fixtures for the local broker's tests.

The scenario tests run the official memphis-py client (and, once it exists, memphis_fast, which
has the same API) against a real local broker. ``client_lib`` yields the client's namespace;
add ``"memphis-fast"`` to ``CLIENTS`` to run every scenario with both.

memphis-py is slow and fragile by design, so: host ``127.0.0.1`` (``localhost`` sleeps 1 s),
``timeout_retries=0`` (a lost reply would otherwise cost up to 120 s), per-test timeouts, and
no fetches on empty stations (each waits 5 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from broker_helpers import ClientLib, load_client

from memphis_fast.broker import LocalBroker

CLIENTS = ["memphis-py", "memphis-fast"]


@pytest.fixture(params=CLIENTS)
def client_lib(request: pytest.FixtureRequest) -> ClientLib:
    return load_client(request.param)


Connector = Callable[..., Awaitable[Any]]


@pytest.fixture
async def connect(broker: LocalBroker, client_lib: ClientLib) -> AsyncIterator[Connector]:
    """``await connect()`` -> a connected Memphis client of ``client_lib``; closed at teardown."""
    opened: list[Any] = []

    async def _connect(target: LocalBroker | None = None, **overrides: Any) -> Any:
        b = target or broker
        kwargs = b.connect_kwargs()
        kwargs.update(overrides)
        conn = client_lib.Memphis()
        await conn.connect(**kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in reversed(opened):
        await client_lib.shutdown(conn)


@pytest.fixture
async def nc(broker: LocalBroker) -> AsyncIterator[nats.aio.client.Client]:
    """A plain NATS client in the Memphis account (raw protocol access)."""
    conn = await nats.connect(**broker.nats_kwargs())
    yield conn
    await conn.close()
