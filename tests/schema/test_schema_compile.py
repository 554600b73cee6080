"""compile_schema, the shared cache, broadcasts, and live updates on a station (B6)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from schemaverse_helpers import no_schema_update, protobuf_update, schema_update

from memphis_fast.exceptions import MemphisSchemaError
from memphis_fast.schemaverse import (
    CACHE_SIZE,
    BrokenSchema,
    StationSchema,
    compile_schema,
    schema_from_broadcast,
)
from memphis_fast.schemaverse import _compile as compile_module

JSON_V1 = json.dumps(
    {"type": "object", "required": ["id"], "properties": {"id": {}}, "additionalProperties": False}
)
JSON_V2 = json.dumps({"type": "object", "required": ["id", "name"]})
AVRO_V1 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": ["null", "int"]}],
    }
)
AVRO_V2 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}],
    }
)
GQL_V1 = "type Query { id: ID }"
GQL_V2 = "type Query { name: String }"
PROTO_V1 = 'syntax = "proto3"; package p; message M { int32 id = 1; }'
PROTO_V2 = 'syntax = "proto3"; package p; message M { string name = 2; }'


def test_no_schema() -> None:
    assert compile_schema(None) is None
    assert compile_schema(no_schema_update()) is None
    assert compile_schema({}) is None
    with pytest.raises(MemphisSchemaError):
        compile_schema("json")  # type: ignore[arg-type]


def test_same_version_is_shared() -> None:
    a = compile_schema(schema_update("json", JSON_V1, name="a"))
    b = compile_schema(schema_update("json", JSON_V1, name="a"))
    assert a is b
    assert compile_schema(schema_update("json", JSON_V2, name="a")) is not a  # same version, new text
    assert compile_schema(schema_update("json", JSON_V1, name="a", version=2)) is not a
    assert compile_schema(schema_update("json", JSON_V1, name="b")) is not a


def test_cache_is_bounded() -> None:
    first = compile_schema(schema_update("json", JSON_V1, version=0))
    for version in range(1, CACHE_SIZE + 20):
        compile_schema(schema_update("json", JSON_V1, version=version))
    assert len(compile_module._cache) == CACHE_SIZE
    assert compile_schema(schema_update("json", JSON_V1, version=0)) is not first


def test_unknown_type_fails_closed() -> None:
    schema = compile_schema(schema_update("xml", "<a/>"))
    assert isinstance(schema, BrokenSchema) and schema.type == "xml"
    with pytest.raises(MemphisSchemaError, match="unsupported schema type 'xml'"):
        schema.encode(b"<a/>")


def test_missing_fields_are_tolerated() -> None:
    schema = compile_schema({"schema_name": "x", "type": "json"})
    assert isinstance(schema, BrokenSchema)  # empty content: not a schema
    assert schema.version == 0


def broadcast(update_type: int, init: dict[str, Any]) -> bytes:
    return orjson.dumps({"UpdateType": update_type, "init": init})


def test_broadcasts() -> None:
    assert schema_from_broadcast(broadcast(1, schema_update("json", JSON_V1))) is compile_schema(
        schema_update("json", JSON_V1)
    )
    assert schema_from_broadcast(broadcast(2, no_schema_update())) is None
    # A drop is a drop even if init were filled in (Go's reading); Python's reading: empty name.
    assert schema_from_broadcast(broadcast(2, schema_update("json", JSON_V1))) is None
    assert schema_from_broadcast({"init": no_schema_update()}) is None
    assert schema_from_broadcast(bytearray(broadcast(1, schema_update("json", JSON_V1)))) is not None
    with pytest.raises(MemphisSchemaError, match="invalid schema update"):
        schema_from_broadcast(b"{nope")
    with pytest.raises(MemphisSchemaError, match="invalid schema update"):
        schema_from_broadcast(b"[]")


def _updates(schema_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if schema_type == "protobuf":
        return protobuf_update(PROTO_V1, name="live"), protobuf_update(PROTO_V2, name="live", version=2)
    texts = {"json": (JSON_V1, JSON_V2), "avro": (AVRO_V1, AVRO_V2), "graphql": (GQL_V1, GQL_V2)}[schema_type]
    return (
        schema_update(schema_type, texts[0], name="live"),
        schema_update(schema_type, texts[1], name="live", version=2),
    )


# For each type: a message valid only under v1, one valid only under v2, one never valid.
MESSAGES = {
    "json": ({"id": 1}, {"id": 1, "name": "x"}, {"other": 1}),
    "avro": ({"id": 1}, {"id": 1, "name": "x"}, {"other": 1}),
    "graphql": ("{ id }", "{ name }", "{ other }"),
    "protobuf": ({"id": 1}, {"name": "x"}, {"other": 1}),
}


@pytest.mark.parametrize("schema_type", ["json", "avro", "graphql", "protobuf"])
def test_live_updates_take_effect_on_the_next_message(schema_type: str) -> None:
    """B6: attach after the producer exists, then a new version, then detach -- each applies to
    the very next encode, for every type (memphis-py only refreshed protobuf)."""
    v1, v2 = _updates(schema_type)
    only_v1, only_v2, never = MESSAGES[schema_type]
    station = StationSchema(no_schema_update())  # producer created before any schema
    assert station.schema is None
    station.encode(b"anything")

    station.apply_broadcast(broadcast(1, v1))  # enforce
    assert station.schema is not None and station.schema.version == 1
    with pytest.raises(MemphisSchemaError):
        station.encode(b"anything")
    station.encode(only_v1)
    for bad in (only_v2, never):
        with pytest.raises(MemphisSchemaError):
            station.encode(bad)

    station.update(v2)  # a new version activated, seen through a creation reply
    assert station.schema is not None and station.schema.version == 2
    station.encode(only_v2)
    for bad in (only_v1, never):
        with pytest.raises(MemphisSchemaError):
            station.encode(bad)

    station.apply_broadcast(broadcast(2, no_schema_update()))  # detach
    assert station.schema is None
    assert station.encode(b"anything") == b"anything"
    assert station.decode(b"anything") == bytearray(b"anything")


def test_two_stations_share_one_compiled_version() -> None:
    v1, _ = _updates("json")
    a, b = StationSchema(v1), StationSchema(dict(v1))
    assert a.schema is b.schema is not None


async def test_b6_memphis_py_keeps_stale_validators() -> None:
    """The defect: after a JSON schema is enforced on a live station, memphis-py fails every
    produce with a KeyError text, because only protobuf is compiled on a broadcast."""
    from types import SimpleNamespace

    from memphis.exceptions import MemphisSchemaError as PyError
    from memphis.memphis import Memphis
    from schemaverse_helpers import INTERNAL_STATION, memphis_py_station

    station = memphis_py_station(no_schema_update())

    async def one_broadcast() -> Any:
        yield SimpleNamespace(data=broadcast(1, schema_update("json", JSON_V1)))

    await Memphis.get_msg_schema_updates(station.connection, INTERNAL_STATION, one_broadcast())
    with pytest.raises(PyError, match="Schema validation has failed: 'orders#eu'"):
        await station.validate_msg(bytearray(b'{"id": 1}'))

    ours = StationSchema(no_schema_update())
    ours.apply_broadcast(broadcast(1, schema_update("json", JSON_V1)))
    assert ours.encode(bytearray(b'{"id": 1}')) == b'{"id": 1}'
