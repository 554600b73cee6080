"""Broker metadata persisted in a JetStream KV bucket (in the broker's data directory).

The control plane keeps the authoritative state in memory and writes every change through to
the bucket, so a restart on the same data directory loses nothing. Writes go through one
writer task, in the order the changes were made on the event loop: two concurrent handlers
touching the same record can never have an older snapshot land after a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from nats.aio.client import Client as NATS

from .jsapi import JsApi

__all__ = ["MetadataStore"]

log = logging.getLogger("memphis_fast.broker.store")

BUCKET = "memphis_broker"


class MetadataStore:
    def __init__(self, nc: NATS, js: JsApi, *, bucket: str = BUCKET, storage: str = "file") -> None:
        self.nc = nc
        self.js = js
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."
        self.storage = storage
        self._queue: asyncio.Queue[tuple[str, bytes | None, asyncio.Future[None]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the bucket if needed (the same stream layout as a ``nats kv add`` bucket)."""
        if await self.js.stream_info(self.stream) is None:
            await self.js.stream_create(
                {
                    "name": self.stream,
                    "subjects": [f"{self.prefix}>"],
                    "retention": "limits",
                    "max_consumers": -1,
                    "max_msgs": -1,
                    "max_bytes": -1,
                    "max_age": 0,
                    "max_msgs_per_subject": 1,
                    "max_msg_size": -1,
                    "discard": "new",
                    "storage": self.storage,
                    "num_replicas": 1,
                    "duplicate_window": 120_000_000_000,
                    "allow_rollup_hdrs": True,
                    "deny_delete": True,
                    "allow_direct": True,
                }
            )
        self._writer = asyncio.create_task(self._write_loop(), name="memphis-broker-store-writer")

    async def load(self) -> dict[str, Any]:
        """Every live key with its decoded JSON value."""
        values: dict[str, Any] = {}
        seq = 1
        while True:
            msg = await self.js.msg_get(self.stream, seq=seq, next_by_subj=f"{self.prefix}>")
            if msg is None:
                return values
            seq = msg.seq + 1
            key = msg.subject[len(self.prefix) :]
            op = msg.headers.get("KV-Operation")
            if op in ("DEL", "PURGE") or not msg.data:
                values.pop(key, None)
                continue
            try:
                values[key] = json.loads(msg.data)
            except ValueError:
                log.error("ignoring unreadable metadata record %s", key)

    def put(self, key: str, value: Any) -> asyncio.Future[None]:
        """Queue a write; the snapshot is taken now. Await the result to know it is durable."""
        return self._enqueue(key, json.dumps(value, separators=(",", ":")).encode())

    def delete(self, key: str) -> asyncio.Future[None]:
        return self._enqueue(key, None)

    def _enqueue(self, key: str, data: bytes | None) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Fire-and-forget callers never look at the result; the writer already logged failures.
        fut.add_done_callback(_retrieve)
        self._queue.put_nowait((key, data, fut))
        return fut

    async def flush(self) -> None:
        """Wait until every queued write is stored."""
        await self._enqueue("", b"")  # a marker: the writer skips empty keys

    async def _write_loop(self) -> None:
        while True:
            key, data, fut = await self._queue.get()
            try:
                if key:
                    await self._write(key, data)
                if not fut.done():
                    fut.set_result(None)
            except Exception as exc:  # keep writing; the caller sees its own failure
                log.error("metadata write of %s failed: %s", key, exc)
                if not fut.done():
                    fut.set_exception(exc)

    async def _write(self, key: str, data: bytes | None) -> None:
        subject = self.prefix + key
        for attempt in range(5):
            try:
                if data is None:
                    headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
                    resp = await self.nc.request(subject, b"", timeout=5, headers=headers)
                else:
                    resp = await self.nc.request(subject, data, timeout=5)
                ack = json.loads(resp.data)
                if "error" in ack:
                    raise RuntimeError(ack["error"].get("description", str(ack["error"])))
                return
            except Exception:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def close(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=10)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
