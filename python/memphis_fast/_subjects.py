"""The Memphis wire names and control-plane bodies, defined once.

This module is the single place where memphis-fast spells a Memphis wire name: every
``$memphis_*`` subject, the JetStream API subjects, the Memphis header names, the internal-name
mapping, and a builder and a parser for every control-plane JSON body. The client
(``memphis.py``, ``station.py``, ``producer.py``, ``consumer.py``, ``message.py``, the
schemaverse) and the local broker (``broker/``) both import from here, so the two sides of the
protocol cannot drift apart. Section numbers refer to ``docs/protocol.md``:

* names and the internal-name mapping: docs/protocol.md §3.2;
* control-plane conventions (no headers, queue groups, reply formats): docs/protocol.md §4;
* the subjects and their bodies: docs/protocol.md §5.1 - §5.20;
* JetStream resources and API subjects: docs/protocol.md §6, §8.1, §8.2, §8.6;
* produced-message headers: docs/protocol.md §7.3, §7.4; DLS headers: §5.16, §9.7.

Bodies: a request or notification the client sends is a frozen dataclass with ``to_json()`` and
a parser (``from_fields``/``from_json``) that the broker uses on the same bytes. Replies and
broadcasts the broker sends have builder functions (returning bytes) and a parser the client uses.

Encoding. Each body has exactly one encoding, chosen so that nothing changes on the wire:
client bodies are compact orjson (:func:`dumps`), as memphis-fast has always sent them; broker
bodies are ``json.dumps`` with its default separators (:func:`broker_dumps`), as the local broker
has always sent them. Both are plain UTF-8 JSON objects; the real broker and clients accept
either (docs/protocol.md §4).

Parsing. The broker reads request fields like the real broker's Go decoder: keys match
case-insensitively (an exact lower-case key wins), a missing field takes a default, a field of
the wrong type is an error (:class:`Fields`). Client-side reply parsers are lenient in the
other direction: absent keys mean "not sent" (older brokers), never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import orjson

__all__ = [
    # prefixes and accounts
    "MEMPHIS_PREFIX",
    "GLOBAL_ACCOUNT",
    "RESERVED_HEADER_PREFIX",
    # names
    "internal_name",
    "external_name",
    "durable_name",
    "stream_name",
    "station_streams",
    "stream_subjects",
    "final_subject",
    "functions_subject",
    "partition_of_stream",
    # request subjects
    "STATION_CREATIONS",
    "STATION_DESTRUCTIONS",
    "PRODUCER_CREATIONS",
    "PRODUCER_DESTRUCTIONS",
    "CONSUMER_CREATIONS",
    "CONSUMER_DESTRUCTIONS",
    "SCHEMA_CREATIONS",
    "SCHEMA_ATTACHMENTS",
    "SCHEMA_DETACHMENTS",
    "REQUEST_SUBJECTS",
    "request_queue_group",
    # notification subjects
    "SCHEMAVERSE_DLS",
    "NACKED_DLS",
    "PM_ACKS",
    "NOTIFICATIONS",
    "NOTIFICATION_SUBJECTS",
    "notification_queue_group",
    # broadcasts
    "SDK_CLIENTS_UPDATES",
    "schema_updates_subject",
    "functions_updates_subject",
    "dls_subject",
    "legacy_dls_subject",
    "configurations_update_subject",
    # broker-internal
    "DLS_UNACKED_STREAM",
    "DLS_UNACKED_CONSUMER",
    "FAST_ADMIN_PREFIX",
    "admin_subject",
    # headers
    "HEADER_PRODUCED_BY",
    "HEADER_CONNECTION_ID",
    "HEADER_MSG_ID",
    "HEADER_NATS_MSG_ID",
    "HEADER_PM_ID",
    "HEADER_PM_CG_NAME",
    "HEADER_LEGACY_PRODUCED_BY",
    "DLS_PRODUCER",
    "HEADER_DLS_SOURCE_STATION",
    "HEADER_DLS_TYPE",
    "DLS_TYPE_UNACKED",
    "DLS_TYPE_FAILED_SCHEMA",
    # JetStream
    "JS_API_PREFIX",
    "JS_STREAM_NAMES",
    "MAX_DELIVERIES_ADVISORY",
    "js_stream_create",
    "js_stream_update",
    "js_stream_info",
    "js_stream_delete",
    "js_stream_msg_get",
    "js_consumer_create",
    "js_consumer_info",
    "js_consumer_delete",
    "js_consumer_msg_next",
    # encoding and decoding
    "BodyError",
    "Fields",
    "dumps",
    "broker_dumps",
    "reply_text",
    # request bodies
    "CREATION_REQ_VERSION",
    "DESTRUCTION_REQ_VERSION",
    "SDK_LANG",
    "StationCreation",
    "StationDestruction",
    "ProducerCreation",
    "ConsumerCreation",
    "ClientDestruction",
    "ProducerDestruction",
    "ConsumerDestruction",
    "SchemaCreation",
    "SchemaAttachment",
    "SchemaDetachment",
    # notification bodies
    "SchemaverseDlsReport",
    "Notification",
    "SCHEMA_FAIL_ALERT_TYPE",
    "SCHEMA_FAIL_ALERT_TITLE",
    "NackedDls",
    "PmAck",
    # replies and broadcasts
    "SchemaInit",
    "EMPTY_SCHEMA",
    "SchemaUpdate",
    "SCHEMA_UPDATE_INIT",
    "SCHEMA_UPDATE_DROP",
    "CreationReply",
    "producer_creation_reply",
    "producer_creation_error",
    "consumer_creation_reply",
    "parse_creation_reply",
    "schema_creation_reply",
    "parse_schema_creation_reply",
    "SdkClientsUpdate",
    "UPDATE_SEND_NOTIFICATION",
    "UPDATE_SCHEMAVERSE_TO_DLS",
    "UPDATE_REMOVE_STATION",
    "configurations_update",
    "parse_functions_update",
]

# ==========================================================================================
# prefixes and accounts (docs/protocol.md §2.3, §7.3, §5.20)
# ==========================================================================================

#: The prefix of every Memphis subject, system stream and reserved header.
MEMPHIS_PREFIX: Final = "$memphis"
#: The broker's global account (password mode; docs/protocol.md §2.3).
GLOBAL_ACCOUNT: Final = "$memphis"
#: User header keys may not start with this (docs/protocol.md §7.3).
RESERVED_HEADER_PREFIX: Final = "$memphis"

# ==========================================================================================
# names (docs/protocol.md §3.2)
# ==========================================================================================


def internal_name(name: str) -> str:
    """The broker's internal form of a station or consumer-group name: lower case, ``.`` ->
    ``#`` (``Orders.EU`` -> ``orders#eu``; docs/protocol.md §3.2). Idempotent."""
    return name.lower().replace(".", "#")


def external_name(internal: str) -> str:
    """The reverse mapping: ``orders#eu`` -> ``orders.eu``."""
    return internal.replace("#", ".")


def durable_name(consumer_group: str) -> str:
    """The JetStream durable of a consumer group on every partition stream (docs/protocol.md §6.3)."""
    return internal_name(consumer_group)


def stream_name(station: str, partition: int) -> str:
    """The stream of one partition, ``orders#eu$2``; ``partition <= 0`` is a legacy
    (version 0) station's single stream, ``orders#eu``. ``station`` may be external or internal."""
    base = internal_name(station)
    return base if partition <= 0 else f"{base}${partition}"


def station_streams(station: str, partitions: list[int] | None) -> list[str]:
    """The streams of a station: one per partition, or the legacy stream when ``partitions``
    is empty or ``None`` (docs/protocol.md §7.5 rule 1)."""
    if not partitions:
        return [internal_name(station)]
    return [stream_name(station, p) for p in partitions]


def stream_subjects(stream: str) -> str:
    """The subject filter a partition stream captures: ``<stream>.>`` (docs/protocol.md §6.1)."""
    return f"{stream}.>"


def final_subject(stream: str) -> str:
    """Where producers publish and what durables filter on: ``<stream>.final`` (§7.6, §6.3)."""
    return f"{stream}.final"


def functions_subject(stream: str, function_id: Any) -> str:
    """The produce subject of a partition with a function: ``<stream>.functions.<id>`` (§7.6)."""
    return f"{stream}.functions.{function_id}"


def partition_of_stream(stream: str) -> tuple[str, int] | None:
    """``orders#eu$2`` -> ``("orders#eu", 2)``; ``None`` for a name that is not a partition
    stream (a legacy stream, a system stream)."""
    if stream.startswith(MEMPHIS_PREFIX) or "$" not in stream:
        return None
    internal, _, part = stream.rpartition("$")
    if not part.isdigit():
        return None
    return internal, int(part)


# ==========================================================================================
# request subjects (client -> broker, request/reply; docs/protocol.md §5.0 - §5.9)
# ==========================================================================================

STATION_CREATIONS: Final = "$memphis_station_creations"  # §5.1
STATION_DESTRUCTIONS: Final = "$memphis_station_destructions"  # §5.2
PRODUCER_CREATIONS: Final = "$memphis_producer_creations"  # §5.3
PRODUCER_DESTRUCTIONS: Final = "$memphis_producer_destructions"  # §5.4
CONSUMER_CREATIONS: Final = "$memphis_consumer_creations"  # §5.5
CONSUMER_DESTRUCTIONS: Final = "$memphis_consumer_destructions"  # §5.6
SCHEMA_CREATIONS: Final = "$memphis_schema_creations"  # §5.7
SCHEMA_ATTACHMENTS: Final = "$memphis_schema_attachments"  # §5.8
SCHEMA_DETACHMENTS: Final = "$memphis_schema_detachments"  # §5.9

#: The nine request subjects, in the order of docs/protocol.md §5.0.
REQUEST_SUBJECTS: Final = (
    STATION_CREATIONS,
    STATION_DESTRUCTIONS,
    PRODUCER_CREATIONS,
    PRODUCER_DESTRUCTIONS,
    CONSUMER_CREATIONS,
    CONSUMER_DESTRUCTIONS,
    SCHEMA_CREATIONS,
    SCHEMA_ATTACHMENTS,
    SCHEMA_DETACHMENTS,
)


def request_queue_group(subject: str) -> str:
    """The broker's queue group for a request subject (docs/protocol.md §4):
    ``$memphis_station_creations`` -> ``memphis_station_creations_listeners_group``."""
    return f"memphis_{subject[len(MEMPHIS_PREFIX) + 1 :]}_listeners_group"


# ==========================================================================================
# notification subjects (client -> broker, plain publish; docs/protocol.md §5.12 - §5.15)
# ==========================================================================================

NOTIFICATIONS: Final = "$memphis_notifications"  # §5.12
SCHEMAVERSE_DLS: Final = "$memphis_schemaverse_dls"  # §5.13
NACKED_DLS: Final = "$memphis_nacked_dls"  # §5.14
PM_ACKS: Final = "$memphis_pm_acks"  # §5.15

NOTIFICATION_SUBJECTS: Final = (SCHEMAVERSE_DLS, NACKED_DLS, PM_ACKS, NOTIFICATIONS)


def notification_queue_group(subject: str) -> str:
    """The broker's queue group for a notification subject: ``<subject>_group`` (§4)."""
    return f"{subject}_group"


# ==========================================================================================
# broadcasts (broker -> clients; docs/protocol.md §5.10, §5.11, §5.16 - §5.18)
# ==========================================================================================

SDK_CLIENTS_UPDATES: Final = "$memphis_sdk_clients_updates"  # §5.11


def schema_updates_subject(station: str) -> str:
    """``$memphis_schema_updates_<internal station>`` (docs/protocol.md §5.10)."""
    return f"$memphis_schema_updates_{internal_name(station)}"


def functions_updates_subject(station: str) -> str:
    """``$memphis_functions_updates_<internal station>`` (docs/protocol.md §5.17)."""
    return f"$memphis_functions_updates_{internal_name(station)}"


def dls_subject(station: str, consumer_group: str) -> str:
    """``$memphis_dls_<internal station>.<internal group>``: poison messages resent to a group
    (docs/protocol.md §5.16). Consumers queue-subscribe with the subject as the queue (§8.7)."""
    return f"$memphis_dls_{internal_name(station)}.{internal_name(consumer_group)}"


def legacy_dls_subject(station: str, consumer_group: str) -> str:
    """The legacy ``$memphis_dls_<station>_<group>`` the broker also publishes on (§5.16)."""
    return f"$memphis_dls_{internal_name(station)}_{internal_name(consumer_group)}"


def configurations_update_subject(connection_id: str) -> str:
    """``$memphis_configurations_updates.init.<connection_id>`` (docs/protocol.md §5.18)."""
    return f"$memphis_configurations_updates.init.{connection_id}"


# ==========================================================================================
# broker-internal names (docs/protocol.md §5.20, §9.1)
# ==========================================================================================

#: The system stream capturing JetStream's max-deliveries advisories.
DLS_UNACKED_STREAM: Final = "$memphis_dls_unacked"
#: The local broker's durable on :data:`DLS_UNACKED_STREAM`.
DLS_UNACKED_CONSUMER: Final = "$memphis_dls_unacked_consumer"
#: memphis-fast's operator requests (what the real broker's UI does): ``<prefix>.<operation>``.
FAST_ADMIN_PREFIX: Final = "$memphis_fast_admin"


def admin_subject(operation: str) -> str:
    """The subject of one local-broker operator request: ``$memphis_fast_admin.<operation>``."""
    return f"{FAST_ADMIN_PREFIX}.{operation}"


# ==========================================================================================
# headers (docs/protocol.md §7.3, §7.4, §5.16, §9.7)
# ==========================================================================================

HEADER_PRODUCED_BY: Final = "$memphis_producedBy"
HEADER_CONNECTION_ID: Final = "$memphis_connectionId"
#: The Memphis fork's de-duplication header, and stock JetStream's (both are sent; §7.4).
HEADER_MSG_ID: Final = "msg-id"
HEADER_NATS_MSG_ID: Final = "Nats-Msg-Id"
#: On messages resent on a DLS subject: the dead-letter record id and the group (§5.16).
HEADER_PM_ID: Final = "$memphis_pm_id"
HEADER_PM_CG_NAME: Final = "$memphis_pm_cg_name"
#: A legacy header the broker removes from resent messages (§5.16).
HEADER_LEGACY_PRODUCED_BY: Final = "producedBy"
#: The ``$memphis_producedBy`` value of a resent poison message (§5.16).
DLS_PRODUCER: Final = "$memphis_dls"
#: Headers added to a message forwarded to a ``dls_station`` (§9.7) and their ``type`` values.
HEADER_DLS_SOURCE_STATION: Final = "station"
HEADER_DLS_TYPE: Final = "type"
DLS_TYPE_UNACKED: Final = "unacked"
DLS_TYPE_FAILED_SCHEMA: Final = "failed_schema"

# ==========================================================================================
# JetStream API subjects (docs/protocol.md §6, §8.1, §8.2, §8.6, §9.1)
# ==========================================================================================

JS_API_PREFIX: Final = "$JS.API."
JS_STREAM_NAMES: Final = "$JS.API.STREAM.NAMES"
#: JetStream's max-deliveries advisories: the broker's poison detection (§9.1).
MAX_DELIVERIES_ADVISORY: Final = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"


def js_stream_create(stream: str) -> str:
    return f"$JS.API.STREAM.CREATE.{stream}"


def js_stream_update(stream: str) -> str:
    return f"$JS.API.STREAM.UPDATE.{stream}"


def js_stream_info(stream: str) -> str:
    return f"$JS.API.STREAM.INFO.{stream}"


def js_stream_delete(stream: str) -> str:
    return f"$JS.API.STREAM.DELETE.{stream}"


def js_stream_msg_get(stream: str) -> str:
    """Read one stored message by sequence (the broker's §5.14 handling)."""
    return f"$JS.API.STREAM.MSG.GET.{stream}"


def js_consumer_create(stream: str, durable: str) -> str:
    """Create or update a durable (docs/protocol.md §6.3)."""
    return f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"


def js_consumer_info(stream: str, durable: str) -> str:
    """Consumer info: the client's bind (§8.1) and its 30 s ping (§8.6)."""
    return f"$JS.API.CONSUMER.INFO.{stream}.{durable}"


def js_consumer_delete(stream: str, durable: str) -> str:
    return f"$JS.API.CONSUMER.DELETE.{stream}.{durable}"


def js_consumer_msg_next(stream: str, durable: str) -> str:
    """A pull request on a durable (docs/protocol.md §8.2)."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"


# ==========================================================================================
# encoding and decoding
# ==========================================================================================


class BodyError(ValueError):
    """A body that cannot be read (not JSON, not an object, a field of the wrong type), or an
    error reply; ``str()`` is the text to report."""


def dumps(body: Mapping[str, Any]) -> bytes:
    """The client's encoding: compact orjson. A text holding a lone surrogate (orjson refuses
    them; say, an error quoting a rejected value) falls back to the standard library's ASCII
    escapes, so a body is always produced."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":")).encode("ascii")


def broker_dumps(body: Mapping[str, Any]) -> bytes:
    """The local broker's encoding of its replies and broadcasts: ``json.dumps`` defaults."""
    return json.dumps(body).encode()


def reply_text(data: bytes | bytearray | memoryview) -> str:
    """A text reply (station/producer/consumer destruction, station creation, schema
    attach/detach; docs/protocol.md §4): empty means success, anything else is the error."""
    return bytes(data).decode("utf-8", "replace")


class Fields:
    """A JSON object read like the real broker's Go decoder (docs/protocol.md §5.1, §5.12):
    keys match case-insensitively, an exact lower-case key wins, ``get_*`` return the default
    for a missing or ``null`` field and raise :attr:`error` for a field of the wrong type."""

    #: The exception raised for an unreadable body or a wrongly typed field.
    error: ClassVar[type[Exception]] = BodyError

    def __init__(self, data: bytes | bytearray | memoryview | Mapping[str, Any]) -> None:
        if isinstance(data, Mapping):
            raw: Any = data
        else:
            data = bytes(data)
            try:
                raw = json.loads(data) if data.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                raise self.error(f"invalid request: {exc}") from exc
        if not isinstance(raw, Mapping):
            raise self.error("invalid request: expected a JSON object")
        self.raw: dict[str, Any] = dict(raw)
        self._lower: dict[str, Any] = {}
        for k, v in self.raw.items():
            self._lower.setdefault(str(k).lower(), v)
        for k, v in self.raw.items():  # an exact lower-case key wins, as in Go's decoder
            if k == str(k).lower():
                self._lower[k] = v

    def get(self, key: str) -> Any:
        return self._lower.get(key.lower())

    def get_str(self, key: str, default: str = "") -> str:
        v = self.get(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.error(f"invalid request: field {key} must be a string")
        return v

    def get_int(self, key: str, default: int = 0) -> int:
        v = self.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise self.error(f"invalid request: field {key} must be an integer")
        return int(v)

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(f"invalid request: field {key} must be a boolean")
        return v

    def get_obj(self, key: str) -> Fields:
        """A nested object, read the same way (an empty one when missing)."""
        v = self.get(key)
        if v is None:
            return type(self)({})
        if not isinstance(v, Mapping):
            raise self.error(f"invalid request: field {key} must be an object")
        return type(self)(v)


# ==========================================================================================
# request bodies (client -> broker; docs/protocol.md §5.1 - §5.9)
# ==========================================================================================

#: ``req_version`` of producer/consumer creations and destructions (docs/protocol.md §4).
CREATION_REQ_VERSION: Final = 4
DESTRUCTION_REQ_VERSION: Final = 1
SDK_LANG: Final = "python"


@dataclass(frozen=True)
class StationCreation:
    """``$memphis_station_creations`` (docs/protocol.md §5.1). Python sends the DLS flag key
    ``Schemaverse`` capitalised (the broker reads it case-insensitively)."""

    name: str
    username: str
    retention_type: str = "message_age_sec"
    retention_value: int = 3600
    storage_type: str = "file"
    replicas: int = 1
    idempotency_window_in_ms: int = 120000
    schema_name: str = ""
    dls_poison: bool = True
    dls_schemaverse: bool = True
    tiered_storage_enabled: bool = False
    partitions_number: int = 1
    dls_station: str = ""

    subject: ClassVar[str] = STATION_CREATIONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retention_type": self.retention_type,
            "retention_value": self.retention_value,
            "storage_type": self.storage_type,
            "replicas": self.replicas,
            "idempotency_window_in_ms": self.idempotency_window_in_ms,
            "schema_name": self.schema_name,
            "dls_configuration": {"poison": self.dls_poison, "Schemaverse": self.dls_schemaverse},
            "username": self.username,
            "tiered_storage_enabled": self.tiered_storage_enabled,
            "partitions_number": self.partitions_number,
            "dls_station": self.dls_station,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> StationCreation:
        """The broker's reading: a missing field is its zero value (so a missing
        ``partitions_number`` is 0, an old SDK), except the DLS flags, which default to true."""
        dls = f.get_obj("dls_configuration")
        return cls(
            name=f.get_str("name"),
            username=f.get_str("username"),
            retention_type=f.get_str("retention_type"),
            retention_value=f.get_int("retention_value", 0),
            storage_type=f.get_str("storage_type"),
            replicas=f.get_int("replicas", 1),
            idempotency_window_in_ms=f.get_int("idempotency_window_in_ms", 0),
            schema_name=f.get_str("schema_name"),
            dls_poison=dls.get_bool("poison", True),
            dls_schemaverse=dls.get_bool("schemaverse", True),
            tiered_storage_enabled=f.get_bool("tiered_storage_enabled", False),
            partitions_number=f.get_int("partitions_number", 0),
            dls_station=f.get_str("dls_station"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> StationCreation:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class StationDestruction:
    """``$memphis_station_destructions`` (docs/protocol.md §5.2)."""

    station_name: str
    username: str

    subject: ClassVar[str] = STATION_DESTRUCTIONS

    def to_dict(self) -> dict[str, Any]:
        return {"station_name": self.station_name, "username": self.username}

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> StationDestruction:
        return cls(station_name=f.get_str("station_name"), username=f.get_str("username"))

    @classmethod
    def from_json(cls, data: bytes) -> StationDestruction:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class ProducerCreation:
    """``$memphis_producer_creations`` (docs/protocol.md §5.3)."""

    name: str
    station_name: str
    connection_id: str
    username: str
    app_id: str
    producer_type: str = "application"
    req_version: int = CREATION_REQ_VERSION
    sdk_lang: str = SDK_LANG

    subject: ClassVar[str] = PRODUCER_CREATIONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "station_name": self.station_name,
            "connection_id": self.connection_id,
            "producer_type": self.producer_type,
            "req_version": self.req_version,
            "username": self.username,
            "app_id": self.app_id,
            "sdk_lang": self.sdk_lang,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> ProducerCreation:
        """Missing fields are empty; ``req_version`` 0 (the broker's legacy handling)."""
        return cls(
            name=f.get_str("name"),
            station_name=f.get_str("station_name"),
            connection_id=f.get_str("connection_id"),
            username=f.get_str("username"),
            app_id=f.get_str("app_id"),
            producer_type=f.get_str("producer_type"),
            req_version=f.get_int("req_version", 0),
            sdk_lang=f.get_str("sdk_lang"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> ProducerCreation:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class ConsumerCreation:
    """``$memphis_consumer_creations`` (docs/protocol.md §5.5)."""

    name: str
    station_name: str
    connection_id: str
    consumers_group: str
    username: str
    app_id: str
    max_ack_time_ms: int = 30000
    max_msg_deliveries: int = 2
    start_consume_from_sequence: int = 1
    last_messages: int = -1
    consumer_type: str = "application"
    req_version: int = CREATION_REQ_VERSION
    sdk_lang: str = SDK_LANG

    subject: ClassVar[str] = CONSUMER_CREATIONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "station_name": self.station_name,
            "connection_id": self.connection_id,
            "consumer_type": self.consumer_type,
            "consumers_group": self.consumers_group,
            "max_ack_time_ms": self.max_ack_time_ms,
            "max_msg_deliveries": self.max_msg_deliveries,
            "start_consume_from_sequence": self.start_consume_from_sequence,
            "last_messages": self.last_messages,
            "req_version": self.req_version,
            "username": self.username,
            "app_id": self.app_id,
            "sdk_lang": self.sdk_lang,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> ConsumerCreation:
        """Missing fields are zero values, except a missing start sequence (1) and
        ``last_messages`` (-1): the broker's "from the beginning"."""
        return cls(
            name=f.get_str("name"),
            station_name=f.get_str("station_name"),
            connection_id=f.get_str("connection_id"),
            consumers_group=f.get_str("consumers_group"),
            username=f.get_str("username"),
            app_id=f.get_str("app_id"),
            max_ack_time_ms=f.get_int("max_ack_time_ms", 0),
            max_msg_deliveries=f.get_int("max_msg_deliveries", 0),
            start_consume_from_sequence=f.get_int("start_consume_from_sequence", 1),
            last_messages=f.get_int("last_messages", -1),
            consumer_type=f.get_str("consumer_type"),
            req_version=f.get_int("req_version", 0),
            sdk_lang=f.get_str("sdk_lang"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> ConsumerCreation:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class ClientDestruction:
    """``$memphis_producer_destructions`` / ``$memphis_consumer_destructions``: the same shape
    (docs/protocol.md §5.4, §5.6)."""

    name: str
    station_name: str
    username: str
    connection_id: str
    req_version: int = DESTRUCTION_REQ_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "station_name": self.station_name,
            "username": self.username,
            "connection_id": self.connection_id,
            "req_version": self.req_version,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> ClientDestruction:
        return cls(
            name=f.get_str("name"),
            station_name=f.get_str("station_name"),
            username=f.get_str("username"),
            connection_id=f.get_str("connection_id"),
            req_version=f.get_int("req_version", 0),
        )

    @classmethod
    def from_json(cls, data: bytes) -> ClientDestruction:
        return cls.from_fields(Fields(data))


#: The body of ``$memphis_producer_destructions`` (docs/protocol.md §5.4).
ProducerDestruction = ClientDestruction
#: The body of ``$memphis_consumer_destructions`` (docs/protocol.md §5.6).
ConsumerDestruction = ClientDestruction


@dataclass(frozen=True)
class SchemaCreation:
    """``$memphis_schema_creations`` (docs/protocol.md §5.7); ``message_struct_name`` is
    always sent empty (the broker takes the first protobuf message)."""

    name: str
    schema_type: str
    created_by_username: str
    schema_content: str
    message_struct_name: str = ""

    subject: ClassVar[str] = SCHEMA_CREATIONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.schema_type,
            "created_by_username": self.created_by_username,
            "schema_content": self.schema_content,
            "message_struct_name": self.message_struct_name,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> SchemaCreation:
        return cls(
            name=f.get_str("name"),
            schema_type=f.get_str("type"),
            created_by_username=f.get_str("created_by_username"),
            schema_content=f.get_str("schema_content"),
            message_struct_name=f.get_str("message_struct_name"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> SchemaCreation:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class SchemaAttachment:
    """``$memphis_schema_attachments`` (docs/protocol.md §5.8)."""

    name: str
    station_name: str
    username: str

    subject: ClassVar[str] = SCHEMA_ATTACHMENTS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "station_name": self.station_name, "username": self.username}

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> SchemaAttachment:
        return cls(
            name=f.get_str("name"), station_name=f.get_str("station_name"), username=f.get_str("username")
        )

    @classmethod
    def from_json(cls, data: bytes) -> SchemaAttachment:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class SchemaDetachment:
    """``$memphis_schema_detachments`` (docs/protocol.md §5.9)."""

    station_name: str
    username: str

    subject: ClassVar[str] = SCHEMA_DETACHMENTS

    def to_dict(self) -> dict[str, Any]:
        return {"station_name": self.station_name, "username": self.username}

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> SchemaDetachment:
        return cls(station_name=f.get_str("station_name"), username=f.get_str("username"))

    @classmethod
    def from_json(cls, data: bytes) -> SchemaDetachment:
        return cls.from_fields(Fields(data))


# ==========================================================================================
# notification bodies (client -> broker; docs/protocol.md §5.12 - §5.15)
# ==========================================================================================

SCHEMA_FAIL_ALERT_TYPE: Final = "schema_validation_fail_alert"
SCHEMA_FAIL_ALERT_TITLE: Final = "Schema validation has failed"


@dataclass(frozen=True)
class SchemaverseDlsReport:
    """``$memphis_schemaverse_dls`` (docs/protocol.md §5.13), in memphis-py's key order.

    ``station_name`` is the *internal* name; ``data`` the bytes the producer would have sent
    (lower-case hex on the wire); ``headers`` the user's headers plus the producer's two. The
    broker also accepts ``partition_number``, which no client sends: it is written only when
    non-zero.
    """

    station_name: str
    producer_name: str
    connection_id: str
    data: bytes
    headers: Mapping[str, str]
    validation_error: str
    creation_unix: int = 0
    partition_number: int = 0

    subject: ClassVar[str] = SCHEMAVERSE_DLS

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "station_name": self.station_name,
            "producer": {"name": self.producer_name, "connection_id": self.connection_id},
            "creation_unix": self.creation_unix,
            "message": {"data": self.data.hex(), "headers": dict(self.headers)},
            "validation_error": self.validation_error,
        }
        if self.partition_number:
            body["partition_number"] = self.partition_number
        return body

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> SchemaverseDlsReport:
        """``message.data`` that is not hex is taken as the text itself; headers that are not
        an object are dropped, values are turned into strings."""
        producer = f.get_obj("producer")
        message = f.get_obj("message")
        hex_data = message.get_str("data")
        try:
            data = bytes.fromhex(hex_data)
        except ValueError:
            data = hex_data.encode()
        raw_headers = message.get("headers") or {}
        headers = (
            {str(k): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, Mapping) else {}
        )
        return cls(
            station_name=f.get_str("station_name"),
            producer_name=producer.get_str("name"),
            connection_id=producer.get_str("connection_id"),
            data=data,
            headers=headers,
            validation_error=f.get_str("validation_error"),
            creation_unix=_lenient_int(f.get("creation_unix")),
            partition_number=f.get_int("partition_number", 0),
        )

    @classmethod
    def from_json(cls, data: bytes) -> SchemaverseDlsReport:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class Notification:
    """``$memphis_notifications`` (docs/protocol.md §5.12). Go sends the keys capitalised;
    the parser reads both."""

    title: str
    msg: str
    type: str
    code: str

    subject: ClassVar[str] = NOTIFICATIONS

    @classmethod
    def schema_validation_failed(
        cls, station_name: str, producer_name: str, validation_error: str, code: str
    ) -> Notification:
        """The alert a producer sends, as memphis-py writes it: ``Error:`` with no space."""
        return cls(
            title=SCHEMA_FAIL_ALERT_TITLE,
            msg=f"Station: {station_name}\nProducer: {producer_name}\nError:{validation_error}",
            type=SCHEMA_FAIL_ALERT_TYPE,
            code=code,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "msg": self.msg, "type": self.type, "code": self.code}

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> Notification:
        return cls(
            title=f.get_str("title"), msg=f.get_str("msg"), type=f.get_str("type"), code=f.get_str("code")
        )

    @classmethod
    def from_json(cls, data: bytes) -> Notification:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class NackedDls:
    """``$memphis_nacked_dls`` (docs/protocol.md §5.14): sent after ``+TERM``. ``station_name``
    is internal, ``partition`` >= 1, ``cg_name`` the (lower-cased) external group name."""

    station_name: str
    error: str
    partition: int
    cg_name: str
    seq: int

    subject: ClassVar[str] = NACKED_DLS

    def to_dict(self) -> dict[str, Any]:
        return {
            "station_name": self.station_name,
            "error": self.error,
            "partition": self.partition,
            "cg_name": self.cg_name,
            "seq": self.seq,
        }

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> NackedDls:
        return cls(
            station_name=f.get_str("station_name"),
            error=f.get_str("error"),
            partition=f.get_int("partition", 0),
            cg_name=f.get_str("cg_name"),
            seq=f.get_int("seq", 0),
        )

    @classmethod
    def from_json(cls, data: bytes) -> NackedDls:
        return cls.from_fields(Fields(data))


@dataclass(frozen=True)
class PmAck:
    """``$memphis_pm_acks`` (docs/protocol.md §5.15): ``id`` is the integer value of the
    ``$memphis_pm_id`` header, ``cg_name`` the ``$memphis_pm_cg_name`` header."""

    id: int
    cg_name: str

    subject: ClassVar[str] = PM_ACKS

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> PmAck | None:
        """The ack of a message received on a DLS subject; ``None`` without both headers.
        Raises :class:`ValueError` for a ``$memphis_pm_id`` that is not an integer."""
        if HEADER_PM_ID not in headers or HEADER_PM_CG_NAME not in headers:
            return None
        return cls(id=int(headers[HEADER_PM_ID]), cg_name=headers[HEADER_PM_CG_NAME])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "cg_name": self.cg_name}

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> PmAck:
        return cls(id=f.get_int("id", 0), cg_name=f.get_str("cg_name"))

    @classmethod
    def from_json(cls, data: bytes) -> PmAck:
        return cls.from_fields(Fields(data))


# ==========================================================================================
# replies and broadcasts (broker -> clients; docs/protocol.md §5.3, §5.5, §5.7, §5.10, §5.11)
# ==========================================================================================


def _lenient_int(value: Any) -> int:
    """An integer field nobody acts on: anything else reads as 0 instead of failing the body."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class SchemaInit:
    """The schema object of docs/protocol.md §5.10 (``init`` of a broadcast, ``schema_update`` of
    a creation reply). An empty ``schema_name`` means "no schema"."""

    schema_name: str = ""
    type: str = ""
    version_number: int = 0
    descriptor: str = ""
    schema_content: str = ""
    message_struct_name: str = ""

    @property
    def is_empty(self) -> bool:
        return self.schema_name == ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_name": self.schema_name,
            "active_version": {
                "version_number": self.version_number,
                "descriptor": self.descriptor,
                "schema_content": self.schema_content,
                "message_struct_name": self.message_struct_name,
            },
            "type": self.type,
        }

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> SchemaInit:
        """Lenient: a missing or non-string text is ``""``, a non-integer version 0."""
        version_obj = obj.get("active_version")
        active: Mapping[str, Any] = version_obj if isinstance(version_obj, Mapping) else {}
        number = active.get("version_number")
        return cls(
            schema_name=_text(obj.get("schema_name")),
            type=_text(obj.get("type")),
            version_number=number if type(number) is int else 0,
            descriptor=_text(active.get("descriptor")),
            schema_content=_text(active.get("schema_content")),
            message_struct_name=_text(active.get("message_struct_name")),
        )


#: The all-empty schema object (no schema attached).
EMPTY_SCHEMA: Final = SchemaInit()

SCHEMA_UPDATE_INIT: Final = 1
SCHEMA_UPDATE_DROP: Final = 2


@dataclass(frozen=True)
class SchemaUpdate:
    """A ``$memphis_schema_updates_<station>`` broadcast (docs/protocol.md §5.10): ``UpdateType``
    1 (init) or 2 (drop, still with a complete, empty ``init``)."""

    update_type: int
    init: SchemaInit | None

    @classmethod
    def for_schema(cls, init: SchemaInit) -> SchemaUpdate:
        """An init for a schema, a drop for the empty one."""
        return cls(SCHEMA_UPDATE_DROP if init.is_empty else SCHEMA_UPDATE_INIT, init)

    @property
    def schema(self) -> SchemaInit | None:
        """The schema now enforced; ``None`` for a drop, a missing ``init`` or an empty name."""
        if self.update_type == SCHEMA_UPDATE_DROP or self.init is None or self.init.is_empty:
            return None
        return self.init

    def to_dict(self) -> dict[str, Any]:
        return {
            "UpdateType": self.update_type,
            "init": (self.init or EMPTY_SCHEMA).to_dict(),
        }

    def to_json(self) -> bytes:
        return broker_dumps(self.to_dict())

    @classmethod
    def parse(cls, body: bytes | bytearray | memoryview | Mapping[str, Any]) -> SchemaUpdate:
        """Raises :class:`BodyError` (``invalid schema update: ...``) for a body that is not a
        JSON object, and for an ``init`` that is neither an object nor missing."""
        if isinstance(body, Mapping):
            obj: Any = body
        else:
            try:
                obj = orjson.loads(bytes(body))
            except orjson.JSONDecodeError as e:
                raise BodyError(f"invalid schema update: {e}") from None
        if not isinstance(obj, Mapping):
            raise BodyError("invalid schema update: not a JSON object")
        raw_type = obj.get("UpdateType")
        update_type = 0
        if isinstance(raw_type, int | float) and not isinstance(raw_type, bool):
            update_type = int(raw_type) if float(raw_type).is_integer() else 0
        init = obj.get("init")
        if init is not None and not isinstance(init, Mapping):
            raise BodyError(f"invalid schema object: {type(init).__name__}")
        return cls(
            update_type=update_type,
            init=SchemaInit.parse(init) if init is not None else None,
        )


@dataclass(frozen=True)
class CreationReply:
    """A producer or consumer creation reply as the client reads it (docs/protocol.md §5.3,
    §5.5). ``None`` means the key was not sent (an empty reply: a legacy broker)."""

    schema_update: SchemaInit | None = None
    #: The partition numbers; ``None`` for a legacy station (``null``, ``[]`` or missing).
    partitions: list[int] | None = None
    schemaverse_to_dls: bool | None = None
    send_notification: bool | None = None
    station_version: int = 0
    #: partition number (as a string, like the wire) -> function id.
    functions: dict[str, Any] = field(default_factory=dict)


def _creation_reply(schema_update: SchemaInit, partitions: list[int] | None) -> dict[str, Any]:
    return {
        "schema_update": schema_update.to_dict(),
        "partitions_update": {"partitions_list": partitions},
    }


def producer_creation_reply(
    *,
    schema_update: SchemaInit,
    partitions: list[int] | None,
    schemaverse_to_dls: bool,
    send_notification: bool,
    station_version: int,
    first_functions: Mapping[str, Any] | None = None,
) -> bytes:
    """The broker's success reply to ``$memphis_producer_creations`` (§5.3): every key, and
    ``station_partitions_first_functions`` an object (never ``null``)."""
    body = _creation_reply(schema_update, partitions)
    body["schemaverse_to_dls"] = schemaverse_to_dls
    body["send_notification"] = send_notification
    body["station_version"] = station_version
    body["station_partitions_first_functions"] = dict(first_functions or {})
    body["error"] = ""
    return broker_dumps(body)


def producer_creation_error(text: str) -> bytes:
    """The broker's error reply to a producer creation: the same JSON with ``error`` set
    (memphis-py requires JSON here; §4)."""
    body = _creation_reply(EMPTY_SCHEMA, None)
    body["schemaverse_to_dls"] = False
    body["send_notification"] = False
    body["station_version"] = 0
    body["station_partitions_first_functions"] = {}
    body["error"] = text
    return broker_dumps(body)


def consumer_creation_reply(*, schema_update: SchemaInit, partitions: list[int] | None) -> bytes:
    """The broker's success reply to ``$memphis_consumer_creations`` (§5.5); errors are plain text."""
    body = _creation_reply(schema_update, partitions)
    body["error"] = ""
    return broker_dumps(body)


def parse_creation_reply(data: bytes | bytearray | memoryview) -> CreationReply:
    """Read a producer/consumer creation reply. An empty reply is success without data; a
    reply that is not a JSON object (a plain-text error), or whose ``error`` is set, raises
    :class:`BodyError` with the error text."""
    raw = bytes(data)
    text = raw.decode("utf-8", "replace")
    if text == "":
        return CreationReply()
    try:
        res = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BodyError(text) from None
    if not isinstance(res, dict):
        raise BodyError(text)
    err = res.get("error")
    if err:
        raise BodyError(str(err))
    schema_update = res.get("schema_update")
    pu = res.get("partitions_update")
    plist = pu.get("partitions_list") if isinstance(pu, dict) else None
    partitions = [int(p) for p in plist] if plist is not None else None
    first = res.get("station_partitions_first_functions")
    return CreationReply(
        schema_update=SchemaInit.parse(schema_update) if isinstance(schema_update, dict) else None,
        partitions=partitions or None,
        schemaverse_to_dls=bool(res["schemaverse_to_dls"]) if "schemaverse_to_dls" in res else None,
        send_notification=bool(res["send_notification"]) if "send_notification" in res else None,
        station_version=int(res.get("station_version", 0) or 0),
        functions={str(k): v for k, v in first.items()} if isinstance(first, dict) else {},
    )


def schema_creation_reply(error: str = "") -> bytes:
    """The broker's reply to ``$memphis_schema_creations``: always JSON ``{"error": ...}`` (§5.7)."""
    return broker_dumps({"error": error})


def parse_schema_creation_reply(data: bytes | bytearray | memoryview) -> str:
    """The error text of a schema-creation reply (``""`` = success). A reply that is not JSON
    raises :class:`BodyError` with its text; JSON that is not an object is itself the error."""
    raw = bytes(data)
    text = raw.decode("utf-8", "replace")
    if text == "":
        return ""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BodyError(text) from None
    if not isinstance(body, dict):
        return text
    err = body.get("error", "")
    return str(err) if err else ""


UPDATE_SEND_NOTIFICATION: Final = "send_notification"
UPDATE_SCHEMAVERSE_TO_DLS: Final = "schemaverse_to_dls"
UPDATE_REMOVE_STATION: Final = "remove_station"


@dataclass(frozen=True)
class SdkClientsUpdate:
    """A ``$memphis_sdk_clients_updates`` broadcast (docs/protocol.md §5.11). ``station_name`` is
    internal (``""`` for ``send_notification``); unknown ``type`` values are to be ignored."""

    station_name: str
    type: str
    update: Any

    subject: ClassVar[str] = SDK_CLIENTS_UPDATES

    def to_dict(self) -> dict[str, Any]:
        return {"station_name": self.station_name, "type": self.type, "update": self.update}

    def to_json(self) -> bytes:
        return broker_dumps(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> SdkClientsUpdate:
        """Raises :class:`BodyError` for a body that is not a JSON object."""
        try:
            obj = orjson.loads(bytes(data))
        except orjson.JSONDecodeError as e:
            raise BodyError(f"invalid sdk clients update: {e}") from None
        if not isinstance(obj, dict):
            raise BodyError("invalid sdk clients update: not a JSON object")
        return cls(
            station_name=str(obj.get("station_name", "")),
            type=str(obj.get("type", "")),
            update=obj.get("update"),
        )


def configurations_update(notifications: bool) -> bytes:
    """The ``$memphis_configurations_updates.init.<id>`` body (docs/protocol.md §5.18)."""
    return broker_dumps({"notifications": notifications})


def parse_functions_update(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """A ``$memphis_functions_updates_<station>`` body (docs/protocol.md §5.17): partition
    number (as a string) -> function id. Raises :class:`BodyError` for a body that is not a
    JSON object."""
    try:
        obj = orjson.loads(bytes(data))
    except orjson.JSONDecodeError as e:
        raise BodyError(f"invalid functions update: {e}") from None
    if not isinstance(obj, dict):
        raise BodyError("invalid functions update: not a JSON object")
    functions = obj.get("functions") or {}
    if not isinstance(functions, dict):
        raise BodyError("invalid functions update: functions is not an object")
    return {str(k): v for k, v in functions.items()}
