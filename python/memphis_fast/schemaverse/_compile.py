"""From the broker's schema object to a compiled :class:`Schema`, cached and shared."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .._subjects import BodyError, SchemaInit, SchemaUpdate
from ..exceptions import MemphisSchemaError
from ._base import BrokenSchema, Schema, encode_plain

__all__ = [
    "SCHEMA_TYPES",
    "CACHE_SIZE",
    "compile_schema",
    "schema_from_broadcast",
    "clear_cache",
    "StationSchema",
]

SCHEMA_TYPES = ("json", "graphql", "protobuf", "avro")
CACHE_SIZE = 128

_cache: OrderedDict[tuple[str, str, int, str, str, str], Schema] = OrderedDict()
_lock = threading.Lock()


def _build(schema_type: str, name: str, version: int, content: str, descriptor: str, struct: str) -> Schema:
    # The type modules are imported here, on first use: a process that never meets a graphql or
    # protobuf station never pays for importing those libraries.
    try:
        if schema_type == "json":
            from ._json import JsonSchema

            return JsonSchema(name, version, content)
        if schema_type == "avro":
            from ._avro import AvroSchema

            return AvroSchema(name, version, content)
        if schema_type == "protobuf":
            from ._protobuf import ProtobufSchema

            return ProtobufSchema(name, version, descriptor, struct)
        if schema_type == "graphql":
            from ._graphql import GraphqlSchema

            return GraphqlSchema(name, version, content)
    except ImportError as e:
        return BrokenSchema(schema_type, name, version, f"{schema_type} schemas need {e.name or e}")
    except ValueError as e:
        return BrokenSchema(schema_type, name, version, str(e))
    return BrokenSchema(schema_type, name, version, f"unsupported schema type {schema_type!r}")


def compile_schema(update: Mapping[str, Any] | SchemaInit | None) -> Schema | None:
    """Compile the broker's schema object (the ``schema_update`` of a producer/consumer creation
    reply, or the ``init`` of a schema broadcast; docs/protocol.md §5.10)::

        {"schema_name": str, "type": str,
         "active_version": {"version_number": int, "descriptor": str,
                            "schema_content": str, "message_struct_name": str}}

    given as that mapping or already parsed (:class:`memphis_fast._subjects.SchemaInit`).
    Returns ``None`` when ``schema_name`` is empty (no schema). Otherwise a :class:`Schema`; a
    schema text that does not compile gives a :class:`BrokenSchema` that rejects every message
    (it never raises for content, so a live update cannot kill a listener). Compiled schemas are
    shared through a bounded LRU keyed by type, name, version and the exact texts.
    """
    if update is None:
        return None
    if isinstance(update, SchemaInit):
        init = update
    elif isinstance(update, Mapping):
        init = SchemaInit.parse(update)
    else:
        raise MemphisSchemaError(f"invalid schema object: {type(update).__name__}")
    if init.is_empty:
        return None
    key = (
        init.type,
        init.schema_name,
        init.version_number,
        init.schema_content,
        init.descriptor,
        init.message_struct_name,
    )
    with _lock:
        schema = _cache.get(key)
        if schema is not None:
            _cache.move_to_end(key)
            return schema
    schema = _build(*key)
    with _lock:
        # Another thread may have compiled the same key meanwhile: keep the first, so callers
        # keep sharing one object.
        existing = _cache.get(key)
        if existing is not None:
            return existing
        _cache[key] = schema
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return schema


def clear_cache() -> None:
    """Forget every compiled schema (tests, or to release memory)."""
    with _lock:
        _cache.clear()


def schema_from_broadcast(message: bytes | bytearray | memoryview | Mapping[str, Any]) -> Schema | None:
    """Interpret a ``$memphis_schema_updates_<station>`` message (docs/protocol.md §5.10):
    ``UpdateType`` 2 (drop), a missing ``init`` or an empty ``init.schema_name`` means no
    schema, otherwise the compiled ``init``."""
    try:
        update = SchemaUpdate.parse(message)
    except BodyError as e:
        raise MemphisSchemaError(str(e)) from None
    if update.update_type == 2 or update.init is None:
        return None
    return compile_schema(update.init)


class StationSchema:
    """The schema currently enforced on one station, replaced as a whole on every update.

    A producer or consumer reads :attr:`schema` once per message, so an update (attach, new
    version, detach) takes effect on the next message with no reconnect (memphis-py recompiled
    only protobuf on an update, defect B6).
    """

    __slots__ = ("schema",)

    def __init__(self, update: Mapping[str, Any] | SchemaInit | None = None) -> None:
        self.schema: Schema | None = compile_schema(update)

    def update(self, update: Mapping[str, Any] | SchemaInit | None) -> None:
        """Apply a creation reply's ``schema_update`` (or a broadcast's ``init``)."""
        self.schema = compile_schema(update)

    def apply_broadcast(self, message: bytes | bytearray | memoryview | Mapping[str, Any]) -> None:
        """Apply a schema broadcast (docs/protocol.md §5.10)."""
        self.schema = schema_from_broadcast(message)

    def encode(self, message: Any) -> bytes:
        schema = self.schema
        return encode_plain(message) if schema is None else schema.encode(message)

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """``get_data_deserialized``: the schema's value, or the raw bytes as a ``bytearray`` when
        no schema is attached (memphis-py's return value)."""
        schema = self.schema
        return bytearray(data) if schema is None else schema.decode(data)
