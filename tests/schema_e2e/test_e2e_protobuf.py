"""memphis-py's protobuf defects, against the local broker, with memphis_fast's behaviour next to
memphis-py's on the same station: dict fields leaking from one message into the next (B4), valid
binary rejected (B5), one shared object returned by ``get_data_deserialized()`` (B9), and
memphis-py failing on protobuf >= 6.30 (B19).

These tests also run under protobuf 7 (``scripts/test-protobuf7.sh``). memphis-py cannot create a
producer or consumer on a protobuf station there, so its side of B4/B5/B9 is only shown under an
older protobuf, and B19's failure only under a new one."""

from __future__ import annotations

from typing import Any

import google.protobuf
import memphis as mpy
import pytest
from google.protobuf import json_format
from memphis.station import Station as PyStation
from schema_e2e_helpers import (
    MESSAGE_FACTORY_WARNINGS,
    R,
    fetch_exactly,
    memphis_py_protobuf_broken,
    stored_payload,
)
from schema_e2e_specs import PROTO_V1, foreign_message_class

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [
    pytest.mark.timeout(60),
    *(pytest.mark.filterwarnings(w) for w in MESSAGE_FACTORY_WARNINGS),
]

needs_old_protobuf = pytest.mark.skipif(
    memphis_py_protobuf_broken(),
    reason=f"memphis-py cannot use protobuf {google.protobuf.__version__} (B19)",
)


async def _protobuf_station(
    broker: LocalBroker, conn: Any, uid: Any, schema_file: Any, base: str
) -> tuple[str, type[Any]]:
    """A station enforcing PROTO_V1; returns its name and an Order class of the test's own."""
    schema, station = uid(f"{base}-schema"), uid(base)
    await conn.create_schema(schema, "protobuf", schema_file(PROTO_V1))
    await conn.station(station, schema_name=schema)
    (stored,) = [s for s in await broker.list_schemas() if s["name"] == schema]
    return station, foreign_message_class(stored["versions"][0]["descriptor"], "shop.Order")


def _as_dict(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


async def test_b19_memphis_py_needs_protobuf_before_6_30(
    broker: LocalBroker, connect: Any, connect_py: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    station, order = await _protobuf_station(broker, conn, uid, schema_file, "b19")
    producer = await conn.producer(station, "mf")
    await producer.produce({"id": 1, "item": "book"})
    consumer = await conn.consumer(station, "mf-c")
    (msg,) = await fetch_exactly(consumer, 1)
    assert _as_dict(await msg.get_data_deserialized()) == {"id": 1, "item": "book"}

    py = await connect_py()
    if memphis_py_protobuf_broken():
        # MessageFactory.GetPrototype was removed in protobuf 6.30: memphis-py's producers and
        # consumers on a protobuf station cannot be created at all.
        with pytest.raises(mpy.MemphisError, match="GetPrototype"):
            await py.producer(station, "py", timeout_retries=R)
        with pytest.raises(mpy.MemphisError, match="GetPrototype"):
            await py.consumer(station, "py-c", timeout_retries=R)
    else:
        py_producer = await py.producer(station, "py", timeout_retries=R)
        await py_producer.produce(order(id=2, item="pen"))
        (again,) = await fetch_exactly(consumer, 1)
        assert _as_dict(await again.get_data_deserialized()) == {"id": 2, "item": "pen"}


DICTS = [{"id": 5, "tags": ["a"]}, {"item": "x"}, {"tags": ["b"]}]


async def test_b4_dict_fields_do_not_leak_into_the_next_message(
    broker: LocalBroker, connect: Any, connect_py: Any, nc: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    station, order = await _protobuf_station(broker, conn, uid, schema_file, "b4")
    producer = await conn.producer(station, "mf")
    for d in DICTS:
        await producer.produce(d)
    stored = [_as_dict(order.FromString(await stored_payload(nc, station, seq))) for seq in (1, 2, 3)]
    assert stored == DICTS


@needs_old_protobuf
async def test_b4_memphis_py_merges_every_dict_into_one_message(
    broker: LocalBroker, connect: Any, connect_py: Any, nc: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    station, order = await _protobuf_station(broker, conn, uid, schema_file, "b4-py")
    py = await connect_py()
    py_producer = await py.producer(station, "py", timeout_retries=R)
    for d in DICTS:
        await py_producer.produce(d)
    stored = [_as_dict(order.FromString(await stored_payload(nc, station, seq))) for seq in (1, 2, 3)]
    assert stored[0] == DICTS[0]
    assert stored[1] == {"id": 5, "item": "x", "tags": ["a"]}  # fields of the first message
    assert stored[2]["id"] == 5 and stored[2]["item"] == "x"


BINARY = b"\x08\x96\x01\x12\x03\xc3\xa9t"  # id=150 (a varint > 127), item="ét"


async def test_b5_valid_binary_is_sent_unchanged(
    broker: LocalBroker, connect: Any, nc: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    station, order = await _protobuf_station(broker, conn, uid, schema_file, "b5")
    producer = await conn.producer(station, "mf")
    for message in (BINARY, bytearray(BINARY), memoryview(BINARY)):
        await producer.produce(message)
    for seq in (1, 2, 3):
        assert await stored_payload(nc, station, seq) == BINARY
    consumer = await conn.consumer(station, "c", batch_size=3)
    for msg in await fetch_exactly(consumer, 3):
        assert _as_dict(await msg.get_data_deserialized()) == {"id": 150, "item": "ét"}
    with pytest.raises(mf.MemphisSchemaError, match="Invalid message format, expecting protobuf"):
        await producer.produce(BINARY[:-1])  # truncated


@needs_old_protobuf
async def test_b5_memphis_py_rejects_valid_binary(
    broker: LocalBroker, connect: Any, connect_py: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    station, _ = await _protobuf_station(broker, conn, uid, schema_file, "b5-py")
    py = await connect_py()
    py_producer = await py.producer(station, "py", timeout_retries=R)
    # Its validator decodes the binary as UTF-8 after parsing it...
    with pytest.raises(mpy.MemphisSchemaError, match="'utf-8' codec can't decode"):
        await PyStation(py, station).validate_msg(bytearray(BINARY))
    # ... and produce() then crashes in its failure report, doing the same.
    with pytest.raises(UnicodeDecodeError):
        await py_producer.produce(bytearray(BINARY))
    with pytest.raises(mpy.MemphisSchemaError, match="Unsupported message type"):
        await py_producer.produce(BINARY)  # plain bytes (B17)


async def test_b9_each_deserialized_message_is_a_fresh_object(
    broker: LocalBroker, connect: Any, connect_py: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    station, order = await _protobuf_station(broker, conn, uid, schema_file, "b9")
    producer = await conn.producer(station, "mf")
    await producer.produce(order(id=1, item="first"))
    await producer.produce(order(id=2, item="second"))
    consumer = await conn.consumer(station, "c", batch_size=2)
    m1, m2 = await fetch_exactly(consumer, 2)
    d1 = await m1.get_data_deserialized()
    d2 = await m2.get_data_deserialized()
    assert d1 is not d2 and (d1.id, d1.item, d2.id, d2.item) == (1, "first", 2, "second")
    d1.item = "changed by the application"
    assert (await m1.get_data_deserialized()).item == "first"

    if memphis_py_protobuf_broken():
        return
    py = await connect_py()
    py_consumer = await py.consumer(station, "py-c", batch_size=2, timeout_retries=R)
    p1, p2 = await fetch_exactly(py_consumer, 2)
    q1 = await p1.get_data_deserialized()
    q2 = await p2.get_data_deserialized()
    assert q1 is q2 and q1.id == 2  # the first message's object now holds the second message


PROTO_WELL_KNOWN = """syntax = "proto3";
package ev;
import "google/protobuf/timestamp.proto";

message Event {
  string name = 1;
  google.protobuf.Timestamp at = 2;
  map<string, int32> counts = 3;
}
"""


async def test_schema_importing_well_known_types(
    connect: Any, connect_py: Any, uid: Any, schema_file: Any
) -> None:
    """The broker's descriptor holds only the schema's own file (protoc without
    --include_imports, docs/protocol.md §10.4): the client resolves google/protobuf/* itself. memphis-py
    cannot build the descriptor pool and fails at producer creation."""
    schema, station = uid("wkt"), uid("wkt")
    conn = await connect()
    await conn.create_schema(schema, "protobuf", schema_file(PROTO_WELL_KNOWN))
    await conn.station(station, schema_name=schema)
    producer = await conn.producer(station, "mf")
    event = {"name": "deploy", "at": "2024-05-01T12:30:00Z", "counts": {"ok": 3}}
    await producer.produce(event)
    with pytest.raises(mf.MemphisSchemaError, match="at"):
        await producer.produce({"name": "x", "at": "yesterday"})
    consumer = await conn.consumer(station, "c")
    (msg,) = await fetch_exactly(consumer, 1)
    got = await msg.get_data_deserialized()
    assert json_format.MessageToDict(got) == event
    assert got.at.seconds == 1714566600

    py = await connect_py()
    with pytest.raises(mpy.MemphisError, match="timestamp.proto"):
        await py.producer(station, "py", timeout_retries=R)
