"""Helpers shared by the test suites (importable from any test directory:
``pythonpath = ["tests"]`` in the pytest configuration)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["eventually", "js_api", "shutdown_memphis_py", "stream_info"]


async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; returns that value.
    The timeout is a safety net only: tests assert on the condition, never on the time."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {result!r})")
        await asyncio.sleep(interval)


async def shutdown_memphis_py(conn: Any) -> None:
    """Close a memphis-py client including the tasks its close() leaks (defect B1)."""
    tasks: list[Any] = []
    for consumer in list(getattr(conn, "consumers_map", {}).values()):
        tasks += [consumer.t_ping, consumer.t_dls, consumer.t_consume]
    tasks += list(getattr(conn, "schema_tasks", {}).values())
    tasks += list(getattr(conn, "functions_tasks", {}).values())
    cfg = getattr(conn, "configuration_tasks", None)
    if isinstance(cfg, asyncio.Task):
        tasks.append(cfg)
    for t in tasks:
        if isinstance(t, asyncio.Task):
            t.cancel()
    with contextlib.suppress(Exception):
        await conn.close()
    nc = getattr(conn, "broker_manager", None)
    if nc is not None and not nc.is_closed:
        with contextlib.suppress(Exception):
            await nc.close()
    for t in tasks:
        if isinstance(t, asyncio.Task):
            with contextlib.suppress(BaseException):
                await t


async def js_api(nc: Any, api: str, body: Any = None) -> dict[str, Any]:
    """A JetStream API request (``$JS.API.<api>``) made with nats-py, no Memphis client between."""
    raw = b"" if body is None else json.dumps(body).encode()
    msg = await nc.request(f"$JS.API.{api}", raw, timeout=10)
    result: dict[str, Any] = json.loads(msg.data)
    return result


async def stream_info(nc: Any, stream: str) -> dict[str, Any]:
    """``STREAM.INFO`` of a JetStream stream; fails the test when the stream does not exist."""
    info = await js_api(nc, f"STREAM.INFO.{stream}")
    assert "error" not in info, info
    return info


def examples(n: int) -> int:
    """A property test's case count: ``n`` in CI, ``10 * n`` with MEMPHIS_FAST_FULL=1."""
    return n * 10 if os.environ.get("MEMPHIS_FAST_FULL") == "1" else n
