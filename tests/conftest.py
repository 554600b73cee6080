"""Shared fixtures: a real nats-server per test (free loopback port, temporary store), one local
Memphis broker for the session (and fresh ones on demand), memphis_fast and memphis-py clients
connected to it, unique names, and a check that the compiled Rust core is what gets tested."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from support import shutdown_memphis_py

import memphis_fast._core as core_module
from memphis_fast._server import NatsServer
from memphis_fast.broker import LocalBroker

# Property tests: CI's case counts by default, 10x with MEMPHIS_FAST_FULL=1 (the longer run,
# documented in docs/RELIABILITY.md); tests scale their own counts with support.examples(n).
settings.register_profile("ci", deadline=None)
settings.register_profile("full", deadline=None, max_examples=1000)
settings.load_profile("full" if os.environ.get("MEMPHIS_FAST_FULL") == "1" else "ci")


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "cluster: starts a JetStream cluster of local nats-servers (CI runs a short variant; "
        "MEMPHIS_FAST_FULL=1 for the full length)",
        "faults: injects faults (kill -9, stalled links, hostile servers) into real nats-server runs",
        "soak: a long-running test with a CI-sized default (MEMPHIS_FAST_FULL=1 for the full length)",
        "go: needs the Go toolchain (skipped, with the reason, when go is not on PATH)",
        "cli: runs the memphis-fast command line as processes",
    ):
        config.addinivalue_line("markers", marker)
    # Like aiokafka: never silently test without the extension. The core must be the
    # compiled module built from this checkout.
    path = Path(core_module.__file__ or "")
    assert path.suffix == ".so", f"memphis_fast._core is not the compiled extension: {path}"
    assert hasattr(core_module, "Core")


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[Callable[..., NatsServer]]:
    """Start nats-server processes with extra config; all are stopped at teardown."""
    servers: list[NatsServer] = []

    def start(config: str = "", *, jetstream: bool = True, **kw: object) -> NatsServer:
        store = tmp_path / f"js{len(servers)}"
        srv = NatsServer(config=config, jetstream=jetstream, store_dir=store, **kw)  # type: ignore[arg-type]
        servers.append(srv)
        srv.start()
        return srv

    try:
        yield start
    finally:
        for s in servers:
            s.cleanup()


@pytest.fixture
def nats_server(nats_server_factory: Callable[..., NatsServer]) -> NatsServer:
    """A JetStream-enabled nats-server without authentication."""
    return nats_server_factory()


@pytest.fixture(scope="session", autouse=True)
def _expected_protobuf() -> None:
    """scripts/test-protobuf7.sh sets MEMPHIS_FAST_EXPECT_PROTOBUF: prove the run really uses
    the protobuf it asked for."""
    expected = os.environ.get("MEMPHIS_FAST_EXPECT_PROTOBUF")
    if expected:
        import google.protobuf

        if google.protobuf.__version__ != expected:
            pytest.exit(
                f"expected protobuf {expected}, but {google.protobuf.__version__} is loaded "
                f"from {google.protobuf.__file__}",
                returncode=3,
            )


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """One password-mode local broker for the session (unique names keep tests apart)."""
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
    import memphis_fast

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


def pytest_report_header(config: pytest.Config) -> str:
    return f"memphis_fast._core {core_module.VERSION} from {core_module.__file__}; pid {os.getpid()}"
