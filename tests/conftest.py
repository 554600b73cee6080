"""Shared fixtures: a real nats-server per test (free loopback port, temporary store), and a
check that the compiled Rust core is what gets tested."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import memphis_fast._core as core_module
from memphis_fast._server import NatsServer


def pytest_configure(config: pytest.Config) -> None:
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


@pytest.fixture
def uvloop_policy() -> Iterator[None]:
    yield


def pytest_report_header(config: pytest.Config) -> str:
    return f"memphis_fast._core {core_module.VERSION} from {core_module.__file__}; pid {os.getpid()}"
