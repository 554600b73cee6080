"""Schemaverse: client-side validation, serialization and deserialization for schema stations.

Self-contained: no I/O except :func:`load_schema_file`, no connection state. The client keeps one
:class:`StationSchema` per station and feeds it what the broker sends; everything else is pure.

Compiling (docs/protocol.md §5.3, §5.10, §10)::

    compile_schema(update: Mapping | None) -> Schema | None
        # update = the creation reply's "schema_update" or a broadcast's "init", as on the wire:
        # {"schema_name", "type", "active_version": {"version_number", "descriptor",
        #  "schema_content", "message_struct_name"}}. None when schema_name is "" (no schema).
        # Cached: one shared object per (type, name, version, texts), LRU of CACHE_SIZE (128).
        # Never raises for a bad schema text: that gives a BrokenSchema rejecting every message.
    schema_from_broadcast(message: bytes | Mapping) -> Schema | None   # honours UpdateType 2
    StationSchema(update=None)  .schema  .update(init)  .apply_broadcast(msg)
                                .encode(message) -> bytes  .decode(data) -> object

Using a schema::

    Schema.encode(message) -> bytes         # validate, return the exact bytes to publish
    Schema.decode(data) -> object           # get_data_deserialized(): validate, deserialize
    encode_plain(message) -> bytes          # a station without a schema
    failed_message_bytes(message) -> bytes  # the bytes of a rejected message, for the DLS report

=========  ==================================================  ====================================
type       encode accepts (sent as)                             decode returns
=========  ==================================================  ====================================
json       dict, list (orjson JSON); bytes, bytearray,          the parsed JSON value (dict)
           memoryview, str of JSON text (unchanged)
avro       the same; validated by fastavro, JSON on the wire    the parsed JSON value (dict)
protobuf   message object, bytes/bytearray/memoryview           a fresh message object
           (unchanged), dict in the protobuf JSON mapping
graphql    str, bytes/bytearray/memoryview (UTF-8),             the document text (str)
           graphql DocumentNode (its source text)
=========  ==================================================  ====================================

Errors are :class:`~memphis_fast.exceptions.MemphisSchemaError` with memphis-py's texts:
``Schema validation has failed: <reason>`` from ``encode`` (reasons such as
``Expecting Json format: ...``, ``Expecting Avro format: ...``,
``Invalid message format, expecting protobuf``, ``Invalid message format, expected GraphQL``,
``Unsupported message type``, or the validator's own text), and
``Deserialization has been failed since the message format does not align with the currently
attached schema: <reason>`` from ``decode``. Each carries ``reason`` (the text after the prefix);
those from ``encode`` also carry ``payload``, the bytes that would have been sent.

Validation failure path (docs/protocol.md §7.8, pure functions returning the body to publish)::

    build_schemaverse_dls_report(*, internal_station_name, producer_name, connection_id, data,
                                 headers, validation_error, creation_unix=None) -> bytes
    build_schema_notification(*, station_name, producer_name, validation_error, data) -> bytes

``create_schema`` helpers (all raise :class:`~memphis_fast.exceptions.MemphisError`)::

    validate_schema_name(name) -> str     # memphis-py's rules and texts (docs/protocol.md §3.1)
    validate_schema_type(type) -> str     # json / graphql / protobuf / avro
    await load_schema_file(path) -> str   # read in a worker thread

JSON Schema uses the draft named by ``$schema``, else 2020-12 (as memphis-py's
``jsonschema.validate``), treats ``format`` as an annotation and never fetches remote ``$ref``.
The libraries for a type are imported when the first schema of that type is compiled.
"""

from __future__ import annotations

from ._base import (
    DESERIALIZATION_PREFIX,
    UNSUPPORTED,
    VALIDATION_PREFIX,
    BrokenSchema,
    Schema,
    encode_plain,
    failed_message_bytes,
)
from ._compile import (
    CACHE_SIZE,
    SCHEMA_TYPES,
    StationSchema,
    clear_cache,
    compile_schema,
    schema_from_broadcast,
)
from ._names import load_schema_file, validate_schema_name, validate_schema_type
from ._reports import (
    NOTIFICATIONS_SUBJECT,
    SCHEMA_FAIL_ALERT_TYPE,
    SCHEMAVERSE_DLS_SUBJECT,
    build_schema_notification,
    build_schemaverse_dls_report,
)

__all__ = [
    "CACHE_SIZE",
    "DESERIALIZATION_PREFIX",
    "NOTIFICATIONS_SUBJECT",
    "SCHEMAVERSE_DLS_SUBJECT",
    "SCHEMA_FAIL_ALERT_TYPE",
    "SCHEMA_TYPES",
    "UNSUPPORTED",
    "VALIDATION_PREFIX",
    "BrokenSchema",
    "Schema",
    "StationSchema",
    "build_schema_notification",
    "build_schemaverse_dls_report",
    "clear_cache",
    "compile_schema",
    "encode_plain",
    "failed_message_bytes",
    "load_schema_file",
    "schema_from_broadcast",
    "validate_schema_name",
    "validate_schema_type",
]
