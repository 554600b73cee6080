"""Helpers for the end-to-end Schemaverse tests (imported as a plain module)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import google.protobuf
from support import eventually, js_api, shutdown_memphis_py, stream_info  # noqa: F401  (re-exported)

from memphis_fast.testing.natspy import settle  # noqa: F401  (re-exported)

R = 0  # memphis-py's timeout_retries: a lost reply must fail fast, not retry for 120 s

VALIDATION_PREFIX = "Schema validation has failed: "
DESERIALIZATION_PREFIX = (
    "Deserialization has been failed since the message format does not align with the currently "
    "attached schema: "
)

#: memphis-py's protobuf path calls MessageFactory.GetPrototype: deprecated in protobuf 5,
#: removed in 6.30 (feature matrix B19).
MESSAGE_FACTORY_WARNINGS = [
    "ignore:MessageFactory class is deprecated:UserWarning",
    "ignore:MessageFactory class is deprecated:DeprecationWarning",
]


def protobuf_version() -> tuple[int, int]:
    major, minor = (int(x) for x in google.protobuf.__version__.split(".")[:2])
    return major, minor


def memphis_py_protobuf_broken() -> bool:
    """memphis-py cannot build protobuf messages on protobuf >= 6.30 (B19)."""
    return protobuf_version() >= (6, 30)


async def synced(*conns: Any) -> None:
    """Make every update the broker published before this call visible to these memphis_fast
    connections. The broker publishes a schema broadcast (or client update) before it replies to
    the request that caused it, so once that reply arrived the broadcast is queued at the server
    for every subscriber; a PING/PONG round trip on a connection then delivers it, and the
    client runs its subscription handlers before the PONG's waiter resumes."""
    for conn in conns:
        await conn.broker_manager.flush()


def internal(station: str) -> str:
    """The internal name of a station (``orders.eu`` -> ``orders#eu``, docs/protocol.md §3.2)."""
    return station.lower().replace(".", "#")


async def stream_count(nc: Any, station: str, partition: int = 1) -> int:
    """Messages stored in a station's partition stream (``<internal station>$<p>``)."""
    info = await stream_info(nc, f"{internal(station)}${partition}")
    return int(info["state"]["messages"])


async def stored_payload(nc: Any, station: str, seq: int, partition: int = 1) -> bytes:
    """A stored message's payload, read with nats-py (no Memphis client in between)."""
    msg = await nc.jetstream().get_msg(f"{internal(station)}${partition}", seq)
    return bytes(msg.data or b"")


async def fetch_exactly(consumer: Any, n: int, **kw: Any) -> list[Any]:
    """Fetch (and ack) until ``n`` messages arrived; never fetches once all are in
    (memphis-py's fetch on an empty station waits 5 s)."""
    got: list[Any] = []
    for _ in range(50):
        if len(got) >= n:
            break
        for msg in await consumer.fetch(batch_size=n - len(got), **kw):
            got.append(msg)
            await msg.ack()
    assert len(got) == n, [bytes(m.get_data()) for m in got]
    return got


class Inbox:
    """A raw subscription that collects decoded JSON bodies (``$memphis_schemaverse_dls``,
    ``$memphis_notifications``, ``$memphis_schema_updates_<station>``)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.sub: Any = None
        self.events: list[str] = []

    @classmethod
    async def open(cls, nc: Any, subject: str) -> Inbox:
        inbox = cls()
        inbox.events = getattr(nc, "events", [])

        async def on_msg(msg: Any) -> None:
            inbox.items.append(json.loads(msg.data))

        inbox.sub = await nc.subscribe(subject, cb=on_msg)
        await settle(nc)
        return inbox

    async def next(self, predicate: Callable[[Any], bool] = lambda _: True) -> Any:
        return await eventually(lambda: next((x for x in self.items if predicate(x)), None))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()


class Wiretap:
    """One raw subscription to every single-token subject (``$memphis_schemaverse_dls``,
    ``$memphis_notifications``, ...), keeping the JSON bodies of ``subjects`` in arrival order.

    One subscription, so the order is the order the server delivered them in: messages one
    client publishes reach it in publish order, whatever their subjects. That makes absence
    checkable without waiting: once a later message from the same client has arrived, an
    earlier one that is not here was never sent."""

    def __init__(self, subjects: set[str]) -> None:
        self.subjects = subjects
        self.items: list[tuple[str, Any]] = []
        self.sub: Any = None
        self.events: list[str] = []

    @classmethod
    async def open(cls, nc: Any, *subjects: str) -> Wiretap:
        tap = cls(set(subjects))
        tap.events = getattr(nc, "events", [])

        async def on_msg(msg: Any) -> None:
            if msg.subject in tap.subjects:
                tap.items.append((msg.subject, json.loads(msg.data)))

        tap.sub = await nc.subscribe("*", cb=on_msg)
        await settle(nc)
        return tap

    def of(self, subject: str) -> list[Any]:
        return [body for s, body in self.items if s == subject]

    async def wait_for(self, subject: str, predicate: Callable[[Any], bool]) -> list[tuple[str, Any]]:
        """Wait for a matching message; returns everything received up to and including it."""

        def seen() -> int | None:
            for i, (s, body) in enumerate(self.items):
                if s == subject and predicate(body):
                    return i + 1
            return None

        try:
            n = await eventually(seen)
        except AssertionError:
            raise AssertionError(
                f"no matching {subject} message; received: {self.items!r}; nc events: {self.events!r}"
            ) from None
        return self.items[:n]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()
