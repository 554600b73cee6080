"""A thin JetStream API client: raw JSON requests on ``$JS.API.*``.

The control plane sends exactly the stream and consumer configurations of docs/protocol.md §6,
field by field, so it talks to the API directly instead of going through nats-py's config
classes. The API subjects are :mod:`memphis_fast._subjects`'s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from .._subjects import (
    JS_STREAM_NAMES,
    js_consumer_create,
    js_consumer_delete,
    js_consumer_info,
    js_stream_create,
    js_stream_delete,
    js_stream_info,
    js_stream_msg_get,
    js_stream_update,
)

__all__ = ["JsApi", "JsApiError", "StoredMessage"]

# JetStream error codes we react to.
STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014
NO_MESSAGE_FOUND = 10037
REPLICAS_NOT_SUPPORTED = 10074  # "replicas > 1 not supported in non-clustered mode"
INSUFFICIENT_RESOURCES = 10023
STREAM_NAME_IN_USE = 10058  # "stream name already in use with a different configuration"
# Answers that mean "no leader right now" in a cluster (an election, a node going away): worth
# retrying for a while. 10008: JetStream system temporarily unavailable; 10009: cluster can not
# handle the request (not the leader); 10005: no suitable peers for placement (a node is down
# or still catching up); 10118: stream is offline.
RETRYABLE = frozenset({10008, 10009, 10005, 10118})

log = logging.getLogger("memphis_fast.broker")


class JsApiError(Exception):
    """An error answer from the JetStream API."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} ({err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description

    @property
    def text(self) -> str:
        """The form the real broker forwards to clients: ``<description> (<err_code>)``."""
        return f"{self.description} ({self.err_code})"


class StoredMessage:
    """A message read back from a stream by sequence."""

    __slots__ = ("subject", "seq", "data", "headers", "raw_headers", "time")

    def __init__(self, subject: str, seq: int, data: bytes, raw_headers: bytes, time: str) -> None:
        self.subject = subject
        self.seq = seq
        self.data = data
        self.raw_headers = raw_headers
        self.headers = parse_headers(raw_headers)
        self.time = time


def parse_headers(raw: bytes) -> dict[str, str]:
    """Parse a ``NATS/1.0`` header block; multi-valued headers are joined with a space."""
    headers: dict[str, str] = {}
    if not raw:
        return headers
    lines = raw.decode("utf-8", errors="replace").split("\r\n")
    for line in lines[1:]:
        if not line or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        value = value.strip()
        headers[key] = f"{headers[key]} {value}" if key in headers else value
    return headers


class JsApi:
    """JetStream API calls over one nats-py connection.

    ``retry_for`` (seconds; a cluster sets it) retries a call that found no leader (no
    responders, no answer, or one of :data:`RETRYABLE`) with a short backoff, each attempt
    bounded by ``attempt_timeout``; then the last error is raised. Every call the control plane
    makes is idempotent (creating an identical stream or consumer again succeeds), so a retry
    after an attempt whose answer was lost is safe.
    """

    def __init__(
        self, nc: NATS, timeout: float = 10.0, *, retry_for: float = 0.0, attempt_timeout: float = 2.0
    ) -> None:
        self.nc = nc
        self.timeout = timeout
        self.retry_for = retry_for
        self.attempt_timeout = attempt_timeout

    async def call(self, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request on a ``$JS.API.*`` subject; an error answer raises :class:`JsApiError`."""
        payload = b"" if body is None else json.dumps(body).encode()
        if self.retry_for <= 0:
            return self._decode(await self.nc.request(subject, payload, timeout=self.timeout))
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            left = deadline - time.monotonic()
            try:
                msg = await self.nc.request(subject, payload, timeout=max(0.2, min(self.attempt_timeout, left)))
                return self._decode(msg)
            except JsApiError as exc:
                if exc.err_code not in RETRYABLE or time.monotonic() + delay >= deadline:
                    raise
                reason: str = exc.text
            except (TimeoutError, NoRespondersError, NatsTimeoutError, ConnectionClosedError) as exc:
                if isinstance(exc, ConnectionClosedError) or time.monotonic() + delay >= deadline:
                    raise
                reason = type(exc).__name__
            log.debug("%s: %s; retrying", subject, reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    @staticmethod
    def _decode(msg: Any) -> dict[str, Any]:
        resp: dict[str, Any] = json.loads(msg.data) if msg.data else {}
        err = resp.get("error")
        if err:
            raise JsApiError(
                int(err.get("code", 0)), int(err.get("err_code", 0)), str(err.get("description", ""))
            )
        return resp

    # -- streams -----------------------------------------------------------------------------
    async def stream_create(self, config: dict[str, Any]) -> dict[str, Any]:
        return await self.call(js_stream_create(config["name"]), config)

    async def stream_update(self, config: dict[str, Any]) -> dict[str, Any]:
        return await self.call(js_stream_update(config["name"]), config)

    async def stream_info(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.call(js_stream_info(name))
        except JsApiError as exc:
            if exc.err_code == STREAM_NOT_FOUND:
                return None
            raise

    async def stream_delete(self, name: str) -> bool:
        try:
            await self.call(js_stream_delete(name))
            return True
        except JsApiError as exc:
            if exc.err_code == STREAM_NOT_FOUND:
                return False
            raise

    async def stream_names(self) -> list[str]:
        names: list[str] = []
        offset = 0
        while True:
            resp = await self.call(JS_STREAM_NAMES, {"offset": offset})
            batch = resp.get("streams") or []
            names.extend(batch)
            offset += len(batch)
            if not batch or offset >= int(resp.get("total", 0)):
                return names

    async def msg_get(
        self, stream: str, seq: int | None = None, next_by_subj: str | None = None
    ) -> StoredMessage | None:
        body: dict[str, Any] = {}
        if seq is not None:
            body["seq"] = seq
        if next_by_subj is not None:
            body["next_by_subj"] = next_by_subj
        try:
            resp = await self.call(js_stream_msg_get(stream), body)
        except JsApiError as exc:
            if exc.err_code in (NO_MESSAGE_FOUND, STREAM_NOT_FOUND) or exc.code == 404:
                return None
            raise
        m = resp["message"]
        return StoredMessage(
            subject=m["subject"],
            seq=int(m["seq"]),
            data=base64.b64decode(m.get("data") or ""),
            raw_headers=base64.b64decode(m.get("hdrs") or ""),
            time=str(m.get("time", "")),
        )

    # -- consumers ---------------------------------------------------------------------------
    async def consumer_create(self, stream: str, config: dict[str, Any]) -> dict[str, Any]:
        return await self.call(
            js_consumer_create(stream, config["durable_name"]), {"stream_name": stream, "config": config}
        )

    async def consumer_info(self, stream: str, durable: str) -> dict[str, Any] | None:
        try:
            return await self.call(js_consumer_info(stream, durable))
        except JsApiError as exc:
            if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
                return None
            raise

    async def consumer_delete(self, stream: str, durable: str) -> bool:
        try:
            await self.call(js_consumer_delete(stream, durable))
            return True
        except JsApiError as exc:
            if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
                return False
            raise
