"""Fixtures for the end-to-end Schemaverse tests: one local broker for the session (tests keep
apart through unique station and schema names), connected clients of both libraries, a raw
nats-py connection in the Memphis account, and schema files written to the test's tmp_path.

memphis-py is used with host ``127.0.0.1`` and ``timeout_retries=0``, and never fetches from an
empty station (each such fetch waits 5 s).

``scripts/test-protobuf7.sh`` runs these tests under protobuf 7 too; it sets
``MEMPHIS_FAST_EXPECT_PROTOBUF`` and the session stops at once if another version is loaded."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import google.protobuf
import nats
import pytest

# The tests import schema_e2e_helpers by name, whatever pytest's import mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from memphis_fast.broker import LocalBroker  # noqa: E402


def pytest_report_header() -> str:
    return f"schemaverse end-to-end: protobuf {google.protobuf.__version__}"


@pytest.fixture
def schema_file(tmp_path: Path) -> Callable[[str], str]:
    """``schema_file(text)`` -> the path of a new file in tmp_path holding ``text`` (UTF-8)."""
    counter = itertools.count(1)

    def write(text: str) -> str:
        path = tmp_path / f"schema-{next(counter)}.txt"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


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
