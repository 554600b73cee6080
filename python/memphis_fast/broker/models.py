"""The broker's metadata records (docs/protocol.md §11.4), stored as JSON in a JetStream KV bucket."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "Consumer",
    "DlsRecord",
    "PoisonedGroup",
    "Producer",
    "Schema",
    "SchemaVersion",
    "Station",
    "from_dict",
    "to_dict",
]

T = TypeVar("T")


def to_dict(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = dataclasses.asdict(obj)
    return result


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a record from stored JSON, ignoring keys a newer/older broker may have written."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Station:
    name: str  # external name, lower case
    retention_type: str = "message_age_sec"
    retention_value: int = 3600
    storage_type: str = "file"
    replicas: int = 1
    idempotency_window_ms: int = 120000
    partitions: list[int] = field(default_factory=lambda: [1])
    dls_poison: bool = True
    dls_schemaverse: bool = True
    dls_station: str = ""
    tiered_storage_enabled: bool = False
    schema_name: str = ""
    schema_version: int = 0
    version: int = 2
    created_by: str = "root"
    created_at: float = field(default_factory=time.time)


@dataclass
class SchemaVersion:
    number: int
    active: bool
    content: str
    message_struct_name: str = ""
    descriptor: str = ""
    created_by: str = "root"
    created_at: float = field(default_factory=time.time)


@dataclass
class Schema:
    name: str
    type: str
    created_by: str = "root"
    created_at: float = field(default_factory=time.time)
    versions: list[SchemaVersion] = field(default_factory=list)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Schema:
        schema = from_dict(cls, data)
        schema.versions = [
            v if isinstance(v, SchemaVersion) else from_dict(SchemaVersion, v) for v in schema.versions
        ]
        return schema

    def active(self) -> SchemaVersion | None:
        for v in self.versions:
            if v.active:
                return v
        return None

    def latest(self) -> SchemaVersion | None:
        return max(self.versions, key=lambda v: v.number) if self.versions else None

    def version(self, number: int) -> SchemaVersion | None:
        for v in self.versions:
            if v.number == number:
                return v
        return None


@dataclass
class Producer:
    id: str
    name: str
    station: str
    connection_id: str
    type: str = "application"
    username: str = "root"
    app_id: str = ""
    sdk: str = ""
    req_version: int = 4
    active: bool = True
    created_at: float = field(default_factory=time.time)
    disconnected_at: float | None = None


@dataclass
class Consumer:
    id: str
    name: str
    group: str
    station: str
    connection_id: str
    type: str = "application"
    max_ack_time_ms: int = 30000
    max_msg_deliveries: int = 2
    start_consume_from_sequence: int = 1
    last_messages: int = -1
    partitions: list[int] = field(default_factory=list)
    username: str = "root"
    app_id: str = ""
    sdk: str = ""
    req_version: int = 4
    active: bool = True
    created_at: float = field(default_factory=time.time)
    disconnected_at: float | None = None


@dataclass
class PoisonedGroup:
    name: str  # consumer group, external form, lower case
    reason: str = ""  # the dead_letter() reason, empty for max-deliveries
    time: float = field(default_factory=time.time)


@dataclass
class DlsRecord:
    id: int
    station: str  # external name
    type: str  # "poison" or "schema"
    partition: int = 0
    seq: int = 0
    producer: str = "unknown"
    data: str = ""  # payload, lower-case hex
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0
    message_time: str = ""  # when the stream stored the message (RFC 3339), poison only
    validation_error: str = ""
    poisoned_cgs: list[PoisonedGroup] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    @classmethod
    def load(cls, data: dict[str, Any]) -> DlsRecord:
        rec = from_dict(cls, data)
        rec.poisoned_cgs = [
            g if isinstance(g, PoisonedGroup) else from_dict(PoisonedGroup, g) for g in rec.poisoned_cgs
        ]
        return rec

    def group_names(self) -> list[str]:
        return [g.name for g in self.poisoned_cgs]

    def public(self) -> dict[str, Any]:
        """The operator view (``dls list``)."""
        d = to_dict(self)
        try:
            d["payload"] = bytes.fromhex(self.data).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            d["payload"] = None
        return d
