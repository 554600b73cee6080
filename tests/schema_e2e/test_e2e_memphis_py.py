"""Schemaverse regressions against memphis-py, side by side on the same broker and stations:
a schema attached (or a version activated) after the producer was created (B6), and JSON Schema
keywords of draft 2020-12 (``prefixItems``, ``dependentRequired``, ``unevaluatedProperties``)
validating exactly as memphis-py's ``jsonschema.validate`` does, with the draft named by
``$schema`` honoured as it is there."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import memphis as mpy
import pytest
from schema_e2e_helpers import R, eventually, fetch_exactly, stream_count, synced
from schema_e2e_specs import SPECS

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


def _py_version(py: Any, station: str) -> int | None:
    data = py.schema_updates_data.get(station) or {}
    version = (data.get("active_version") or {}).get("version_number")
    return version if isinstance(version, int) else None


@pytest.mark.parametrize("schema_type", ["json", "avro", "graphql"])
async def test_schema_attached_after_the_producer_was_created(
    schema_type: str,
    broker: LocalBroker,
    connect: Any,
    connect_py: Any,
    nc: Any,
    uid: Any,
    schema_file: Any,
) -> None:
    """B6: memphis-py compiles JSON, Avro and GraphQL schemas only when a producer is created, so
    a producer that predates the attachment fails every produce (a KeyError naming the station)
    and one that predates an activation keeps validating against the old version. memphis_fast
    follows both on the next message."""
    spec = SPECS[schema_type]
    schema, station = uid(f"b6-{schema_type}"), uid(f"b6-{schema_type}")
    conn = await connect()
    py = await connect_py()
    await conn.create_schema(schema, schema_type, schema_file(spec.v1))
    await conn.create_schema(schema, schema_type, schema_file(spec.v2))
    await conn.station(station)
    producer = await conn.producer(station, "mf")
    py_early = await py.producer(station, "py-early", timeout_retries=R)

    await conn.enforce_schema(schema, station)
    await eventually(lambda: _py_version(py, station) == 1)  # memphis-py got the broadcast
    await producer.produce(spec.v1_only)
    with pytest.raises(mf.MemphisSchemaError):
        await producer.produce(spec.v2_only)
    with pytest.raises(mpy.MemphisError) as info:
        await py_early.produce(spec.v1_only)
    assert f"'{station}'" in str(info.value)  # json_schemas[station] / avro_schemas[...]: KeyError

    # A memphis-py producer created now works, until a new version is activated.
    py_late = await py.producer(station, "py-late", timeout_retries=R)
    await py_late.produce(spec.v1_only)
    assert await stream_count(nc, station) == 2

    assert await broker.activate_schema(schema, 2) == [station]
    await synced(conn)
    await eventually(lambda: _py_version(py, station) == 2)
    with pytest.raises(mf.MemphisSchemaError):
        await producer.produce(spec.v1_only)
    await producer.produce(spec.v2_only)
    # memphis-py still validates against version 1: the wrong message passes, the right one fails.
    await py_late.produce(spec.v1_only)
    with pytest.raises(mpy.MemphisSchemaError):
        await py_late.produce(spec.v2_only)
    assert await stream_count(nc, station) == 4


PREFIX_ITEMS = {
    "type": "array",
    "prefixItems": [{"type": "integer"}, {"type": "string"}],
    "items": False,
}
PREFIX_ITEMS_DRAFT7 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "array",
    "prefixItems": [{"type": "integer"}, {"type": "string"}],  # not a draft-07 keyword: ignored
    "maxItems": 2,
}
DEPENDENT = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "dependentRequired": {"a": ["b"]},
    "unevaluatedProperties": False,
}

CASES: list[tuple[str, dict[str, Any], list[tuple[Any, bool]]]] = [
    (
        "prefixItems",
        PREFIX_ITEMS,
        [([1, "a"], True), ([1], True), ([], True), (["a", 1], False), ([1, "a", 3], False), ([1, 2], False)],
    ),
    (
        "draft-07",
        PREFIX_ITEMS_DRAFT7,
        [([1, "a"], True), (["a", 1], True), ([], True), ([1, "a", 3], False)],
    ),
    (
        "dependentRequired",
        DEPENDENT,
        [({"a": 1, "b": 2}, True), ({"b": 2}, True), ({}, True), ({"a": 1}, False), ({"c": 1}, False)],
    ),
]


@pytest.mark.parametrize(("label", "schema_doc", "instances"), CASES, ids=[c[0] for c in CASES])
async def test_json_schema_2020_12_keywords_validate_as_memphis_py(
    label: str,
    schema_doc: dict[str, Any],
    instances: list[tuple[Any, bool]],
    connect: Any,
    connect_py: Any,
    uid: Any,
    schema_file: Any,
) -> None:
    schema, station = uid(f"kw-{label.lower()}"), uid(f"kw-{label.lower()}")
    conn = await connect()
    py = await connect_py()
    await conn.create_schema(schema, "json", schema_file(json.dumps(schema_doc)))
    await conn.station(station, schema_name=schema)
    producer = await conn.producer(station, "mf")
    py_producer = await py.producer(station, "py", timeout_retries=R)
    validator = jsonschema.validators.validator_for(schema_doc)(schema_doc)  # memphis-py's validate

    accepted: list[Any] = []
    for instance, expected in instances:
        assert validator.is_valid(instance) is expected, instance  # the reference agrees
        outcomes = []
        for message in (instance, json.dumps(instance).encode()):
            try:
                await producer.produce(message)
                outcomes.append(True)
            except mf.MemphisSchemaError:
                outcomes.append(False)
        try:
            # memphis-py takes JSON only as dict or bytearray (B17).
            py_message = instance if isinstance(instance, dict) else bytearray(json.dumps(instance).encode())
            await py_producer.produce(py_message)
            outcomes.append(True)
        except mpy.MemphisSchemaError:
            outcomes.append(False)
        assert outcomes == [expected] * 3, (instance, outcomes)
        if expected:
            accepted += [instance] * 3

    consumer = await conn.consumer(station, "c", batch_size=len(accepted))
    msgs = await fetch_exactly(consumer, len(accepted))
    assert [await m.get_data_deserialized() for m in msgs] == accepted


async def test_rejected_message_reported_as_its_bytes_and_bytes_accepted(
    broker: LocalBroker, connect: Any, connect_py: Any, uid: Any, schema_file: Any
) -> None:
    """The schemaverse DLS record holds the bytes the producer would have sent (memphis-py:
    the Python repr of a dict); plain ``bytes`` of valid JSON are accepted (memphis-py: only
    ``bytearray`` or ``dict``, B17)."""
    spec = SPECS["json"]
    schema, station = uid("report-bytes"), uid("report-bytes")
    conn = await connect()
    py = await connect_py()
    await conn.create_schema(schema, "json", schema_file(spec.v1))
    await conn.station(station, schema_name=schema)
    producer = await conn.producer(station, "mf")
    py_producer = await py.producer(station, "py", timeout_retries=R)

    await producer.produce(b'{"id": 1}')
    with pytest.raises(mpy.MemphisSchemaError, match="Unsupported message type"):
        await py_producer.produce(b'{"id": 1}')

    bad = {"id": "x", "name": "ü"}
    with pytest.raises(mf.MemphisSchemaError):
        await producer.produce(bad)
    with pytest.raises(mpy.MemphisSchemaError):
        await py_producer.produce(bad)

    async def records() -> list[dict[str, Any]] | None:
        # one for each rejection above (memphis-py also reports its rejected bytes)
        recs = await broker.list_dls(station, "schema")
        return recs if len(recs) == 3 else None

    by_producer: dict[str, list[bytes]] = {}
    for rec in await eventually(records):
        by_producer.setdefault(rec["producer"], []).append(bytes.fromhex(rec["data"]))
    assert by_producer["mf"] == [json.dumps(bad, separators=(",", ":"), ensure_ascii=False).encode()]
    assert by_producer["py"] == [b"b'{\"id\": 1}'", str(bad).encode()]  # Python reprs
