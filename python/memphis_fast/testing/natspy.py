"""A barrier for nats-py peers in tests.

``nats.aio.client.Client.flush()`` is not a barrier in nats-py 2.16: its PING is written
straight to the socket, ahead of SUBs still queued for the client's flusher task, so a
subscription made just before may not exist at the server yet when ``flush()`` returns, and a
message published next is missed (under load). A message published through a new subscription
of the same connection is queued behind those SUBs, so once it comes back they are in place.
"""

from __future__ import annotations

from typing import Any

__all__ = ["settle"]


async def settle(nc: Any, timeout: float = 15.0) -> None:
    """Return once nats-server has processed every command ``nc`` (nats-py) sent before."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(inbox, b"")
        await sub.next_msg(timeout=timeout)
    finally:
        await sub.unsubscribe()
