"""What every suite needs to run memphis-py 1.3.1 next to memphis-fast (importable from any test
directory: ``pythonpath = ["tests"]`` in the pytest configuration)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["shutdown_memphis_py"]


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
