"""Helpers shared by the broker tests (imported as a plain module: tests/ is not a package)."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nats
from support import eventually, js_api, shutdown_memphis_py, stream_info  # noqa: F401  (re-exported)

from memphis_fast.testing.natspy import settle


@dataclass
class ClientLib:
    """The public API of one Memphis client library."""

    name: str
    Memphis: Any
    Headers: Any
    MemphisError: Any
    MemphisConnectError: Any
    MemphisSchemaError: Any
    Retention: Any
    Storage: Any
    # memphis-py 1.3.1's dead_letter() sends +TERM and then fails before $memphis_nacked_dls
    # (feature matrix B13).
    dead_letter_works: bool

    async def shutdown(self, conn: Any) -> None:
        """Close a client, including the background tasks memphis-py's close() leaks (B1)."""
        if self.name == "memphis-py":
            await shutdown_memphis_py(conn)
        else:
            with contextlib.suppress(Exception):
                await conn.close()


def load_client(name: str) -> ClientLib:
    if name == "memphis-py":
        memphis = importlib.import_module("memphis")
        types = importlib.import_module("memphis.types")
        return ClientLib(
            name=name,
            Memphis=memphis.Memphis,
            Headers=memphis.Headers,
            MemphisError=memphis.MemphisError,
            MemphisConnectError=memphis.MemphisConnectError,
            MemphisSchemaError=memphis.MemphisSchemaError,
            Retention=types.Retention,
            Storage=types.Storage,
            dead_letter_works=False,
        )
    fast = importlib.import_module("memphis_fast")
    types = importlib.import_module("memphis_fast.types")
    return ClientLib(
        name=name,
        Memphis=fast.Memphis,
        Headers=fast.Headers,
        MemphisError=fast.MemphisError,
        MemphisConnectError=fast.MemphisConnectError,
        MemphisSchemaError=fast.MemphisSchemaError,
        Retention=types.Retention,
        Storage=types.Storage,
        dead_letter_works=True,
    )


async def request(nc: nats.aio.client.Client, subject: str, body: Any, timeout: float = 10) -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg = await nc.request(subject, payload, timeout=timeout)
    return bytes(msg.data)


R = 0  # timeout_retries=0 everywhere: a lost reply must fail fast, not retry for 120 s


async def stream_config(nc: Any, stream: str) -> dict[str, Any]:
    info = await stream_info(nc, stream)
    config: dict[str, Any] = info["config"]
    return config


async def consumer_config(nc: Any, stream: str, durable: str) -> dict[str, Any]:
    info = await js_api(nc, f"CONSUMER.INFO.{stream}.{durable}")
    assert "error" not in info, info
    config: dict[str, Any] = info["config"]
    return config


async def fetch_n(consumer: Any, n: int, *, ack: bool = True, rounds: int = 10, **kw: Any) -> list[Any]:
    """Fetch until ``n`` messages arrived (never fetching once everything is in: no 5 s waits)."""
    got: list[Any] = []
    for _ in range(rounds):
        if len(got) >= n:
            break
        for msg in await consumer.fetch(batch_size=n - len(got), **kw):
            got.append(msg)
            if ack:
                await msg.ack()
    assert len(got) == n, [m.get_data() for m in got]
    return got


def data(msgs: list[Any]) -> list[bytes]:
    return [bytes(m.get_data()) for m in msgs]


async def collect(nc: Any, subject: str) -> tuple[list[dict[str, Any]], Any]:
    """Subscribe to ``subject``; returns the list its JSON messages are appended to, and the sub."""
    box: list[dict[str, Any]] = []

    async def on_msg(msg: Any) -> None:
        box.append(json.loads(msg.data))

    sub = await nc.subscribe(subject, cb=on_msg)
    await settle(nc)
    return box, sub


def has(box: list[Any], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(box) >= n

    return check


@contextlib.contextmanager
def quiet_nats_log() -> Iterator[None]:
    """nats-py logs a refused connection with its traceback; pytest keeps log records (and so the
    refused socket, through the traceback's frames) until the session ends, where the socket
    then warns. Refused-connection tests run with nats-py's logger disabled."""
    logger = logging.getLogger("nats.aio.client")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was
