"""Setup and verification on the broker, from the bench's own process (nats-py).

Stations, schemas and consumer groups are created through the Memphis control-plane requests
(the same JSON the SDKs send, built by :mod:`memphis_fast._subjects`), so every client meets the
same stations; after a run the bench
reads the streams' and durables' state from the JetStream API to check that every message was
stored (produce paths) or received and acked (consume paths), whatever the runner reported.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import nats
from nats.aio.client import Client as NATS

from .._subjects import (
    ConsumerCreation,
    SchemaCreation,
    StationCreation,
    StationDestruction,
    durable_name,
    js_consumer_info,
    js_stream_info,
    reply_text,
)
from .runner_common import stream_names


class ControlError(RuntimeError):
    pass


class Control:
    """A nats-py connection in the Memphis account for setup and checks."""

    def __init__(self, nats_kwargs: dict[str, Any], username: str) -> None:
        self.nats_kwargs = nats_kwargs
        self.username = username
        self.connection_id = str(uuid.uuid4())
        self.nc: NATS | None = None

    async def connect(self, timeout: float = 5.0) -> None:
        async def quiet(exc: Exception) -> None:
            return None

        self.nc = await nats.connect(
            **self.nats_kwargs,
            name=f"{self.connection_id}::{self.username}",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=timeout,
            error_cb=quiet,
        )

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()
        self.nc = None

    async def _request(self, subject: str, body: bytes, timeout: float = 20.0) -> bytes:
        assert self.nc is not None
        msg = await self.nc.request(subject, body, timeout=timeout)
        return bytes(msg.data)

    async def _memphis(self, subject: str, body: bytes) -> None:
        """A control-plane request whose reply is an error text, or JSON with ``error``."""
        raw = reply_text(await self._request(subject, body))
        err = raw
        if raw.startswith("{"):
            err = str(json.loads(raw).get("error") or "")
        if err and "already exist" not in err:
            raise ControlError(f"{subject}: {err}")

    async def create_station(self, name: str, partitions: int = 1, schema: str = "", storage: str = "memory") -> None:
        """A station with ``partitions`` streams on ``storage`` (``memory`` or ``file``)."""
        req = StationCreation(
            name=name,
            username=self.username,
            storage_type=storage,
            schema_name=schema,
            partitions_number=partitions,
        )
        await self._memphis(req.subject, req.to_json())

    async def delete_station(self, name: str) -> None:
        req = StationDestruction(station_name=name, username=self.username)
        err = reply_text(await self._request(req.subject, req.to_json()))
        if err and "not exist" not in err:
            raise ControlError(f"station deletion: {err}")

    async def create_schema(self, name: str, schema_type: str, content: str) -> None:
        req = SchemaCreation(
            name=name, schema_type=schema_type, created_by_username=self.username, schema_content=content
        )
        await self._memphis(req.subject, req.to_json())

    async def create_consumer_group(self, station: str, group: str) -> None:
        """Register a consumer (and so the group's durable on every partition)."""
        req = ConsumerCreation(
            name=group,
            station_name=station,
            connection_id=self.connection_id,
            consumers_group=group,
            username=self.username,
            app_id=self.connection_id,
        )
        await self._memphis(req.subject, req.to_json())

    async def _js_api(self, subject: str) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(await self._request(subject, b"", timeout=10))
        if "error" in body:
            raise ControlError(f"{subject}: {body['error'].get('description', body['error'])}")
        return body

    async def _stream_infos(self, station: str, partitions: int) -> list[dict[str, Any]]:
        """JetStream's ``STREAM.INFO`` of each of the station's streams."""
        return [await self._js_api(js_stream_info(s)) for s in stream_names(station, partitions)]

    async def stored(self, station: str, partitions: int) -> int:
        """Messages in the station's streams."""
        return sum(int(info["state"]["messages"]) for info in await self._stream_infos(station, partitions))

    async def storages(self, station: str, partitions: int) -> set[str]:
        """The storage types (``memory``, ``file``) of the station's streams, as JetStream has them."""
        return {str(info["config"]["storage"]) for info in await self._stream_infos(station, partitions)}

    async def group_state(self, station: str, partitions: int, group: str) -> dict[str, int]:
        """Summed over partitions: delivered, ack floor (acked in order), ack pending, pending."""
        out = {"delivered": 0, "ack_floor": 0, "ack_pending": 0, "pending": 0, "redelivered": 0}
        durable = durable_name(group)
        for s in stream_names(station, partitions):
            info = await self._js_api(js_consumer_info(s, durable))
            out["delivered"] += int(info["delivered"]["consumer_seq"])
            out["ack_floor"] += int(info["ack_floor"]["consumer_seq"])
            out["ack_pending"] += int(info["num_ack_pending"])
            out["pending"] += int(info["num_pending"])
            out["redelivered"] += int(info.get("num_redelivered", 0))
        return out

    async def wait_acked(self, station: str, partitions: int, group: str, expect: int, timeout: float = 5.0) -> dict[str, int]:
        """The group's state once ``expect`` messages are acked (or at the timeout)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            st = await self.group_state(station, partitions, group)
            if st["ack_floor"] >= expect and st["ack_pending"] == 0:
                return st
            if asyncio.get_running_loop().time() > deadline:
                return st
            await asyncio.sleep(0.05)
