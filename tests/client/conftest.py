"""Fixtures for the memphis_fast client tests: one local broker for the session (tests keep
apart through unique station names), a fresh broker for tests that pause, restart or cut it,
connected clients of both libraries, and a raw nats-py connection in the Memphis account.

memphis-py is used with host ``127.0.0.1`` (``localhost`` sleeps 1 s) and
``timeout_retries=0`` (a lost reply would otherwise cost up to 120 s)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import nats
import pytest
from client_helpers import shutdown_memphis_py

import memphis_fast
from memphis_fast.broker import LocalBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    b = LocalBroker()
    b.start()
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def fresh_broker() -> Iterator[LocalBroker]:
    """A broker of the test's own, for tests that pause, restart or kill it."""
    b = LocalBroker()
    b.start()
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def uid() -> Callable[[str], str]:
    """Unique, valid Memphis names: ``uid("orders")`` -> ``orders-1a2b3c4d``."""
    return lambda base: f"{base}-{secrets.token_hex(4)}"


Connector = Callable[..., Awaitable[Any]]


@pytest.fixture
async def connect(broker: LocalBroker) -> AsyncIterator[Connector]:
    """``await connect(target=None, **overrides)`` -> a connected memphis_fast client."""
    opened: list[memphis_fast.Memphis] = []

    async def _connect(target: LocalBroker | None = None, **overrides: Any) -> memphis_fast.Memphis:
        kwargs = (target or broker).connect_kwargs()
        kwargs.update(overrides)
        conn = memphis_fast.Memphis()
        await conn.connect(**kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in reversed(opened):
        # A test may leave failures unreported on purpose; close() raises them.
        with contextlib.suppress(memphis_fast.MemphisError):
            await conn.close()


@pytest.fixture
async def connect_py(broker: LocalBroker) -> AsyncIterator[Connector]:
    """``await connect_py(target=None, **overrides)`` -> a connected memphis-py client."""
    import memphis

    opened: list[Any] = []

    async def _connect(target: LocalBroker | None = None, **overrides: Any) -> Any:
        kwargs = (target or broker).connect_kwargs()
        kwargs.update(overrides)
        conn = memphis.Memphis()
        await conn.connect(**kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in reversed(opened):
        await shutdown_memphis_py(conn)


@pytest.fixture
async def nc(broker: LocalBroker) -> AsyncIterator[Any]:
    """A plain nats-py client in the Memphis account of the session broker."""
    conn = await nats.connect(**broker.nats_kwargs())
    yield conn
    await conn.close()
