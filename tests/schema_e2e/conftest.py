"""Fixtures for the end-to-end Schemaverse tests: one local broker for the session (tests keep
apart through unique station and schema names), connected clients of both libraries, a raw
nats-py connection in the Memphis account, and schema files written to the test's tmp_path.

memphis-py is used with host ``127.0.0.1`` and ``timeout_retries=0``, and never fetches from an
empty station (each such fetch waits 5 s).

``scripts/test-protobuf7.sh`` runs these tests under protobuf 7 too; it sets
``MEMPHIS_FAST_EXPECT_PROTOBUF`` and the session stops at once if another version is loaded."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import google.protobuf
import nats
import pytest

# The tests import schema_e2e_helpers by name, whatever pytest's import mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from schema_e2e_helpers import shutdown_memphis_py  # noqa: E402

import memphis_fast  # noqa: E402
from memphis_fast.broker import LocalBroker  # noqa: E402


def pytest_report_header() -> str:
    return f"schemaverse end-to-end: protobuf {google.protobuf.__version__}"


@pytest.fixture(scope="session", autouse=True)
def _expected_protobuf() -> None:
    expected = os.environ.get("MEMPHIS_FAST_EXPECT_PROTOBUF")
    if expected and google.protobuf.__version__ != expected:
        pytest.exit(
            f"expected protobuf {expected}, but {google.protobuf.__version__} is loaded "
            f"from {google.protobuf.__file__}",
            returncode=3,
        )


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
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


@pytest.fixture
def schema_file(tmp_path: Path) -> Callable[[str], str]:
    """``schema_file(text)`` -> the path of a new file in tmp_path holding ``text`` (UTF-8)."""
    counter = itertools.count(1)

    def write(text: str) -> str:
        path = tmp_path / f"schema-{next(counter)}.txt"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


Connector = Callable[..., Awaitable[Any]]


@pytest.fixture
async def connect(broker: LocalBroker) -> AsyncIterator[Connector]:
    """``await connect(**overrides)`` -> a connected memphis_fast client; closed at teardown."""
    opened: list[memphis_fast.Memphis] = []

    async def _connect(**overrides: Any) -> memphis_fast.Memphis:
        kwargs = broker.connect_kwargs()
        kwargs.update(overrides)
        conn = memphis_fast.Memphis()
        await conn.connect(**kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in reversed(opened):
        with contextlib.suppress(memphis_fast.MemphisError):
            await conn.close()


@pytest.fixture
async def connect_py(broker: LocalBroker) -> AsyncIterator[Connector]:
    """``await connect_py()`` -> a connected memphis-py client; shut down at teardown."""
    import memphis

    opened: list[Any] = []

    async def _connect(**overrides: Any) -> Any:
        kwargs = broker.connect_kwargs()
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
    """A plain nats-py client in the Memphis account (raw protocol access)."""
    events: list[str] = []

    async def on_error(exc: Exception) -> None:
        events.append(f"error: {exc!r}")

    async def on_disconnect() -> None:
        events.append("disconnected")

    conn = await nats.connect(**broker.nats_kwargs(), error_cb=on_error, disconnected_cb=on_disconnect)
    conn.events = events  # type: ignore[attr-defined]  # shown by tests when a message is missing
    yield conn
    await conn.close()
