"""Fixtures for the memphis_fast client tests (the session broker, fresh brokers, clients of both
libraries and unique names come from tests/conftest.py): a raw nats-py connection in the
Memphis account.

memphis-py is used with host ``127.0.0.1`` (``localhost`` sleeps 1 s) and
``timeout_retries=0`` (a lost reply would otherwise cost up to 120 s)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from memphis_fast.broker import LocalBroker


@pytest.fixture
async def nc(broker: LocalBroker) -> AsyncIterator[Any]:
    """A plain nats-py client in the Memphis account of the session broker."""
    conn = await nats.connect(**broker.nats_kwargs())
    yield conn
    await conn.close()
