"""Shared state of the control plane: configuration, records, persistence, request decoding."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS

from .._subjects import (
    EMPTY_SCHEMA,
    FAST_ADMIN_PREFIX,
    GLOBAL_ACCOUNT,
    Fields,
    SchemaInit,
    SdkClientsUpdate,
    stream_subjects,
)
from .connections import ConnectionTracker
from .jsapi import JsApi
from .models import Consumer, DlsRecord, Producer, Schema, Station, from_dict, to_dict
from .names import kv_key, stream_name
from .store import MetadataStore

__all__ = ["ADMIN_PREFIX", "ControlPlaneBase", "ControlPlaneConfig", "ReplyError", "Request"]

log = logging.getLogger("memphis_fast.broker")

ADMIN_PREFIX = FAST_ADMIN_PREFIX

MAX_PARTITIONS = 10_000
NS = 1_000_000_000
MS = 1_000_000

TENANT_SUFFIX = re.compile(r"\$\d+$")


class ReplyError(Exception):
    """A request failed; ``str()`` is the exact text the client gets."""


@dataclass
class ControlPlaneConfig:
    url: str
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls: ssl.SSLContext | None = None
    # Password mode: the system account's user, for $SYS connect/disconnect events.
    sys_user: str | None = None
    sys_password: str | None = None
    account: str = GLOBAL_ACCOUNT
    # Token mode: nats-server's monitoring /connz endpoint.
    connz_url: str | None = None
    users: dict[str, str] = field(default_factory=lambda: {"root": "root"})
    storage: str = "file"  # storage of the broker's own streams (memory for --memory)
    inactive_ttl: float = 7200.0
    dls_retention: float = 3 * 3600.0
    connection_poll_interval: float = 0.5
    # A cluster: every node's client URL (the connection moves to a surviving node), the
    # replicas of the broker's own streams (min(3, nodes)), and how long a JetStream call or a
    # metadata write is retried while a leader is being elected.
    servers: list[str] = field(default_factory=list)
    nodes: int = 1
    internal_replicas: int = 1
    retry_for: float = 0.0
    # Room reserved (max_bytes) for the broker's own streams; None: unlimited (no reservation).
    metadata_max_bytes: int | None = None
    dls_max_bytes: int | None = None


class Request(Fields):
    """A decoded JSON request with Go-like, case-insensitive field access and type checks
    (:class:`memphis_fast._subjects.Fields`); errors are :class:`ReplyError`, whose text goes
    back to the client."""

    error = ReplyError


class ControlPlaneBase:
    """State, locks and persistence; the request handlers live in the subclasses."""

    def __init__(self, config: ControlPlaneConfig) -> None:
        self.cfg = config
        self.nc: NATS | None = None
        self.sys_nc: NATS | None = None
        self.js: JsApi | None = None
        self.store: MetadataStore | None = None
        self.tracker: ConnectionTracker | None = None
        self.stations: dict[str, Station] = {}
        self.schemas: dict[str, Schema] = {}
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self.dls: dict[int, DlsRecord] = {}
        self._dls_index: dict[tuple[str, int, int], int] = {}
        self.next_dls_id = 1
        self.send_notifications = False
        self.notifications: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._locks: dict[str, asyncio.Lock] = {}
        self._dls_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[Any]] = []
        self._subs: list[Any] = []
        self.failed: asyncio.Future[None] | None = None
        self._stopping = False

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    @property
    def _nc(self) -> NATS:
        assert self.nc is not None
        return self.nc

    @property
    def _js(self) -> JsApi:
        assert self.js is not None
        return self.js

    @property
    def _store(self) -> MetadataStore:
        assert self.store is not None
        return self.store

    async def _load(self) -> None:
        values = await self._store.load()
        for key, value in values.items():
            kind, _, _ = key.partition(".")
            try:
                if kind == "station":
                    st = from_dict(Station, value)
                    self.stations[st.name] = st
                elif kind == "schema":
                    sc = Schema.load(value)
                    self.schemas[sc.name] = sc
                elif kind == "producer":
                    p = from_dict(Producer, value)
                    self.producers[p.id] = p
                elif kind == "consumer":
                    c = from_dict(Consumer, value)
                    self.consumers[c.id] = c
                elif kind == "dls":
                    rec = DlsRecord.load(value)
                    self.dls[rec.id] = rec
                    if rec.type == "poison":
                        self._dls_index[(rec.station, rec.partition, rec.seq)] = rec.id
                elif key == "meta.settings":
                    self.next_dls_id = int(value.get("next_dls_id", 1))
                    self.send_notifications = bool(value.get("send_notifications", False))
            except (TypeError, ValueError) as exc:
                log.error("ignoring unreadable metadata record %s: %s", key, exc)
        if self.dls:
            self.next_dls_id = max(self.next_dls_id, max(self.dls) + 1)

    def _save_station(self, st: Station) -> asyncio.Future[None]:
        return self._store.put(kv_key("station", st.name), to_dict(st))

    def _save_schema(self, sc: Schema) -> asyncio.Future[None]:
        return self._store.put(kv_key("schema", sc.name), to_dict(sc))

    def _save_producer(self, p: Producer) -> asyncio.Future[None]:
        return self._store.put(kv_key("producer", p.id), to_dict(p))

    def _save_consumer(self, c: Consumer) -> asyncio.Future[None]:
        return self._store.put(kv_key("consumer", c.id), to_dict(c))

    def _save_dls(self, rec: DlsRecord) -> asyncio.Future[None]:
        return self._store.put(kv_key("dls", str(rec.id)), to_dict(rec))

    def _save_settings(self) -> asyncio.Future[None]:
        return self._store.put(
            "meta.settings",
            {"next_dls_id": self.next_dls_id, "send_notifications": self.send_notifications},
        )

    def _delete_producer(self, p: Producer) -> asyncio.Future[None]:
        self.producers.pop(p.id, None)
        return self._store.delete(kv_key("producer", p.id))

    def _delete_consumer(self, c: Consumer) -> asyncio.Future[None]:
        self.consumers.pop(c.id, None)
        return self._store.delete(kv_key("consumer", c.id))

    def _delete_dls(self, rec: DlsRecord) -> asyncio.Future[None]:
        self.dls.pop(rec.id, None)
        if self._dls_index.get((rec.station, rec.partition, rec.seq)) == rec.id:
            del self._dls_index[(rec.station, rec.partition, rec.seq)]
        return self._store.delete(kv_key("dls", str(rec.id)))

    def _save_registration(self, reg: Producer | Consumer) -> None:
        if isinstance(reg, Producer):
            self._save_producer(reg)
        else:
            self._save_consumer(reg)

    def _stream_config(self, st: Station, partition: int) -> dict[str, Any]:
        """docs/protocol.md §6.1."""
        rtype, rvalue = st.retention_type, st.retention_value
        return {
            "name": stream_name(st.name, partition),
            "subjects": [stream_subjects(stream_name(st.name, partition))],
            "retention": "interest" if rtype == "ack_based" else "limits",
            "max_consumers": -1,
            "max_msgs": rvalue if rtype == "messages" and rvalue > 0 else -1,
            "max_bytes": rvalue if rtype == "bytes" and rvalue > 0 else -1,
            "discard": "old",
            "max_age": rvalue * NS if rtype == "message_age_sec" and rvalue > 0 else 0,
            "max_msgs_per_subject": -1,
            "storage": "memory" if st.storage_type == "memory" else "file",
            "num_replicas": st.replicas,
            "no_ack": False,
            "duplicate_window": st.idempotency_window_ms * MS,
        }

    def schema_update(self, st: Station | None) -> SchemaInit:
        """The docs/protocol.md §5.10 ``init`` object for a station: its schema's *currently
        active* version."""
        if st is None or not st.schema_name:
            return EMPTY_SCHEMA
        sc = self.schemas.get(st.schema_name)
        version = sc.active() if sc is not None else None
        if sc is None or version is None:
            return EMPTY_SCHEMA
        return SchemaInit(
            schema_name=sc.name,
            type=sc.type,
            version_number=version.number,
            descriptor=version.descriptor,
            schema_content=version.content,
            message_struct_name=version.message_struct_name,
        )

    async def _sdk_update(self, update_type: str, station: str, update: Any) -> None:
        """A docs/protocol.md §5.11 broadcast; ``station`` is the internal name."""
        msg = SdkClientsUpdate(station_name=station, type=update_type, update=update)
        await self._nc.publish(msg.subject, msg.to_json())
