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
import time
from typing import Any

from nats.aio.client import Client as NATS

from .jsapi import JsApi

__all__ = ["MetadataStore"]

log = logging.getLogger("memphis_fast.broker.store")

BUCKET = "memphis_broker"


class MetadataStore:
    def __init__(
        self,
        nc: NATS,
        js: JsApi,
        *,
        bucket: str = BUCKET,
        storage: str = "file",
        replicas: int = 1,
        max_bytes: int | None = None,
        retry_for: float = 0.0,
    ) -> None:
        self.nc = nc
        self.js = js
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."
        self.storage = storage
        self.replicas = replicas
        self.max_bytes = -1 if max_bytes is None else max_bytes
        self.retry_for = retry_for
        self._queue: asyncio.Queue[tuple[str, bytes | None, asyncio.Future[None]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the bucket if needed (the same stream layout as a ``nats kv add`` bucket).

        Its ``max_bytes`` reserves room in JetStream, apart from the Memphis account's limit on
        user data (see :meth:`BrokerConfig.nats_config`), so stations filling the store cannot
        starve the broker's metadata; a bucket from before gets the reservation added."""
        info = await self.js.stream_info(self.stream)
        if info is not None:
            config = dict(info.get("config") or {})
            if config.get("max_bytes", -1) != self.max_bytes:
                config["max_bytes"] = self.max_bytes
                try:
                    await self.js.stream_update(config)
                except Exception as exc:
                    log.warning("cannot set the metadata bucket's reservation: %s", exc)
        else:
            await self.js.stream_create(
                {
                    "name": self.stream,
                    "subjects": [f"{self.prefix}>"],
                    "retention": "limits",
                    "max_consumers": -1,
                    "max_msgs": -1,
                    "max_bytes": self.max_bytes,
                    "max_age": 0,
                    "max_msgs_per_subject": 1,
                    "max_msg_size": -1,
                    "discard": "new",
                    "storage": self.storage,
                    "num_replicas": self.replicas,
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
        """One KV write, retried: 5 quick attempts, or (a cluster) until ``retry_for`` has passed
        while the bucket's leader is being elected."""
        subject = self.prefix + key
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            attempt += 1
            try:
                timeout = 5.0 if self.retry_for <= 0 else max(0.5, min(2.0, deadline - time.monotonic()))
                if data is None:
                    headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
                    resp = await self.nc.request(subject, b"", timeout=timeout, headers=headers)
                else:
                    resp = await self.nc.request(subject, data, timeout=timeout)
                ack = json.loads(resp.data)
                if "error" in ack:
                    raise RuntimeError(ack["error"].get("description", str(ack["error"])))
                return
            except Exception:
                delay = min(0.05 * attempt, 0.5)
                if self.retry_for <= 0:
                    if attempt >= 5:
                        raise
                elif time.monotonic() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)

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
