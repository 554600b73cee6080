"""Schemaverse through the broker: creation with versions, enforce/detach broadcasts, DLS records."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from broker_helpers import ClientLib, R, collect, eventually, fetch_n, has, request
from google.protobuf import descriptor_pb2

from memphis_fast.broker.names import internal_name

pytestmark = [
    pytest.mark.timeout(60),
    # memphis-py's protobuf path calls MessageFactory.GetPrototype, deprecated in protobuf 5
    # (and removed in 6.30: feature matrix B19).
    pytest.mark.filterwarnings("ignore:MessageFactory class is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:MessageFactory class is deprecated:DeprecationWarning"),
]

PROTO = """syntax = "proto3";
package shop;

message Order {
  int32 id = 1;
  string item = 2;
}

message Other {
  string x = 1;
}
"""

SCHEMAS: dict[str, dict[str, Any]] = {
    "json": {
        "content": json.dumps(
            {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
        ),
        "valid": {"id": 7},
        "invalid": {"name": "no id"},
    },
    "avro": {
        "content": json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int"}]}),
        "valid": {"id": 7},
        "invalid": {"id": "seven"},
    },
    "graphql": {
        "content": "type Query { hello: String }",
        "valid": "query { hello }",
        "invalid": "query { goodbye }",
    },
    "protobuf": {
        "content": PROTO,
        "valid": {"id": 7, "item": "book"},
        "invalid": bytearray(b"this is not protobuf"),
    },
}


def _protobuf_too_new() -> bool:
    import google.protobuf

    major, minor = (int(x) for x in google.protobuf.__version__.split(".")[:2])
    return (major, minor) >= (6, 30)


def schema_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "schema.txt"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("schema_type", list(SCHEMAS))
async def test_schema_enforced_valid_invalid_dls_and_detach(
    schema_type: str, client_lib: ClientLib, connect: Any, nc: Any, broker: Any, uid: Any, tmp_path: Path
) -> None:
    spec = SCHEMAS[schema_type]
    if schema_type == "protobuf" and client_lib.name == "memphis-py" and _protobuf_too_new():
        pytest.skip("memphis-py's protobuf path needs protobuf < 6.30 (feature matrix B19)")
    conn = await connect()
    station, schema = uid(f"typed-{schema_type}"), uid(f"s-{schema_type}")
    await conn.create_schema(schema, schema_type, schema_file(tmp_path, spec["content"]), timeout_retries=R)
    await conn.station(station, timeout_retries=R)
    await conn.enforce_schema(schema, station, timeout_retries=R)
    # memphis-py only picks a schema up when a producer is created after it was enforced (B6).
    producer = await conn.producer(station, "p", timeout_retries=R)
    await producer.produce(spec["valid"])
    with pytest.raises(client_lib.MemphisSchemaError, match="Schema validation has failed"):
        await producer.produce(spec["invalid"])
    # The producer reported the failure on $memphis_schemaverse_dls (schemaverse_to_dls is on).
    (rec,) = await eventually(lambda: broker.list_dls(station))
    assert (rec["type"], rec["producer"], rec["seq"]) == ("schema", "p", 0)
    assert "Schema validation has failed" in rec["validation_error"]
    assert rec["headers"]["$memphis_producedBy"] == "p"
    consumer = await conn.consumer(station, "c", timeout_retries=R)
    (msg,) = await fetch_n(consumer, 1)
    assert msg.get_data()  # the valid message, as the client encoded it
    # Detach: a drop broadcast, after which anything goes.
    await conn.detach_schema(station, timeout_retries=R)
    # The broker publishes the drop before it replies; a PING round trip delivers it. memphis_fast
    # runs the handler before flush() returns; memphis-py hands it to a task, so wait for that.
    await conn.broker_manager.flush()
    if client_lib.name == "memphis-py":
        await eventually(lambda: conn.schema_updates_data.get(internal_name(station)) == {})
    await producer.produce(bytearray(b"no schema any more"))
    stations = {s["name"]: s for s in await broker.list_stations()}
    assert stations[station]["schema_name"] == ""


async def test_station_created_with_a_schema(
    client_lib: ClientLib, connect: Any, broker: Any, uid: Any, tmp_path: Path
) -> None:
    conn = await connect()
    station, schema = uid("with-schema"), uid("s")
    await conn.create_schema(
        schema, "json", schema_file(tmp_path, SCHEMAS["json"]["content"]), timeout_retries=R
    )
    await conn.station(station, schema_name=schema, timeout_retries=R)
    producer = await conn.producer(station, "p", timeout_retries=R)
    await producer.produce({"id": 1})
    with pytest.raises(client_lib.MemphisSchemaError):  # the producer got the schema
        await producer.produce({"no": "id"})
    stations = {s["name"]: s for s in await broker.list_stations()}
    assert (stations[station]["schema_name"], stations[station]["schema_version"]) == (schema, 1)


async def test_schema_versions(
    client_lib: ClientLib, connect: Any, nc: Any, broker: Any, uid: Any, tmp_path: Path
) -> None:
    conn = await connect()
    name = uid("versions")
    v1 = json.dumps({"type": "object"})
    v2 = json.dumps({"type": "object", "required": ["id"]})
    await conn.create_schema(name, "json", schema_file(tmp_path, v1), timeout_retries=R)
    # Identical content: "already exists ... same schema content", which clients treat as success.
    await conn.create_schema(name, "json", schema_file(tmp_path, v1), timeout_retries=R)
    await conn.create_schema(name, "json", schema_file(tmp_path, v2), timeout_retries=R)
    (schema,) = [s for s in await broker.list_schemas() if s["name"] == name]
    assert [(v["number"], v["active"]) for v in schema["versions"]] == [(1, True), (2, False)]
    with pytest.raises(client_lib.MemphisError, match=f"{name} already exist with type - json"):
        await conn.create_schema(
            name, "avro", schema_file(tmp_path, SCHEMAS["avro"]["content"]), timeout_retries=R
        )
    # Operators activate versions (the UI's job); here that is also broadcast to stations.
    station = uid("versioned")
    await conn.station(station, timeout_retries=R)
    await conn.enforce_schema(name, station, timeout_retries=R)
    updates, sub = await collect(nc, f"$memphis_schema_updates_{station}")
    assert await broker.activate_schema(name, 2) == [station]
    await eventually(has(updates, 1))
    assert updates[0]["UpdateType"] == 1
    assert updates[0]["init"]["active_version"]["version_number"] == 2
    assert updates[0]["init"]["active_version"]["schema_content"] == v2
    await sub.unsubscribe()
    (schema,) = [s for s in await broker.list_schemas() if s["name"] == name]
    assert [(v["number"], v["active"]) for v in schema["versions"]] == [(1, False), (2, True)]


async def test_attach_and_detach_broadcasts(nc: Any, uid: Any) -> None:
    station, schema = uid("bcast"), uid("s")
    content = json.dumps({"type": "object"})
    create = {"name": schema, "type": "json", "created_by_username": "root", "schema_content": content}
    assert json.loads(await request(nc, "$memphis_schema_creations", create)) == {"error": ""}
    await request(nc, "$memphis_station_creations", _station(station))
    updates, sub = await collect(nc, f"$memphis_schema_updates_{station}")
    attach = {"name": schema, "station_name": station, "username": "root"}
    assert await request(nc, "$memphis_schema_attachments", attach) == b""
    assert (
        await request(nc, "$memphis_schema_detachments", {"station_name": station, "username": "root"}) == b""
    )
    await eventually(has(updates, 2))
    await sub.unsubscribe()
    attached, dropped = updates
    assert attached == {
        "UpdateType": 1,
        "init": {
            "schema_name": schema,
            "active_version": {
                "version_number": 1,
                "descriptor": "",
                "schema_content": content,
                "message_struct_name": "",
            },
            "type": "json",
        },
    }
    # A drop still carries a complete, empty init object (docs/protocol.md §5.10).
    assert dropped == {
        "UpdateType": 2,
        "init": {
            "schema_name": "",
            "active_version": {
                "version_number": 0,
                "descriptor": "",
                "schema_content": "",
                "message_struct_name": "",
            },
            "type": "",
        },
    }


def _station(name: str, **kw: Any) -> dict[str, Any]:
    req = {
        "name": name,
        "retention_type": "message_age_sec",
        "retention_value": 3600,
        "storage_type": "file",
        "replicas": 1,
        "idempotency_window_in_ms": 120000,
        "schema_name": "",
        "dls_configuration": {"poison": True, "Schemaverse": True},
        "username": "root",
        "tiered_storage_enabled": False,
        "partitions_number": 1,
        "dls_station": "",
    }
    req.update(kw)
    return req


async def test_protobuf_descriptor(nc: Any, uid: Any) -> None:
    """A protoc-built FileDescriptorSet with one file named <schema>_<version>.proto; the
    message is the first top-level one (docs/protocol.md §10.4). The real broker names every SDK-created
    version's file <schema>_1.proto (§13.7); here version 2's file is <schema>_2.proto."""
    station, schema = uid("proto"), uid("proto-s")
    create = {"name": schema, "type": "protobuf", "created_by_username": "root", "schema_content": PROTO}
    create["message_struct_name"] = "Ignored"
    assert json.loads(await request(nc, "$memphis_schema_creations", create)) == {"error": ""}
    v2 = PROTO.replace("string item = 2;", "string item = 2;\n  int64 qty = 3;")
    create2 = create | {"schema_content": v2}
    assert json.loads(await request(nc, "$memphis_schema_creations", create2)) == {"error": ""}
    await request(nc, "$memphis_station_creations", _station(station))
    producer = {
        "name": "p",
        "station_name": station,
        "connection_id": "c-1",
        "producer_type": "application",
        "req_version": 4,
        "username": "root",
        "app_id": "a",
        "sdk_lang": "python",
    }
    await request(
        nc, "$memphis_schema_attachments", {"name": schema, "station_name": station, "username": "r"}
    )
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer))
    version = reply["schema_update"]["active_version"]
    assert (reply["schema_update"]["type"], version["message_struct_name"]) == ("protobuf", "Order")
    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(version["descriptor"]))
    assert [f.name for f in fds.file] == [f"{schema}_1.proto"]
    assert fds.file[0].package == "shop"
    assert [m.name for m in fds.file[0].message_type] == ["Order", "Other"]

    activate = await nc.request(
        "$memphis_fast_admin.schema.activate", json.dumps({"name": schema, "version": 2}).encode(), timeout=10
    )
    assert json.loads(activate.data)["error"] == ""
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer))
    version = reply["schema_update"]["active_version"]
    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(version["descriptor"]))
    assert version["version_number"] == 2
    assert [f.name for f in fds.file] == [f"{schema}_2.proto"]
    assert [f.name for f in fds.file[0].message_type[0].field] == ["id", "item", "qty"]


@pytest.mark.parametrize(
    ("schema_type", "content", "error"),
    [
        ("json", "", "your schema content is invalid"),
        ("json", "{not json", "your json schema is invalid"),
        ("json", '{"type": 12}', "your json schema is invalid"),
        ("avro", '{"type": "no-such-type"}', "your Avro file is invalid: "),
        ("protobuf", "message {", "your Proto file is invalid: "),
        ("protobuf", 'syntax = "proto3";', "your Proto file is invalid: "),
        ("graphql", "type Query {", "Syntax Error"),
    ],
)
async def test_invalid_schema_content(nc: Any, uid: Any, schema_type: str, content: str, error: str) -> None:
    create = {
        "name": uid("bad"),
        "type": schema_type,
        "created_by_username": "root",
        "schema_content": content,
    }
    reply = json.loads(await request(nc, "$memphis_schema_creations", create))
    assert list(reply) == ["error"]
    assert reply["error"].startswith(error), reply


async def test_protoc_error_text_is_the_parsers(nc: Any, uid: Any) -> None:
    name = uid("bad")
    create = {
        "name": name,
        "type": "protobuf",
        "created_by_username": "root",
        "schema_content": "message X { int32 }",
    }
    reply = json.loads(await request(nc, "$memphis_schema_creations", create))
    # protoc's own message, with the file name it was compiled under and no temp directory.
    assert reply["error"].startswith(f"your Proto file is invalid: {name}_1.proto:1:")
    assert "/tmp" not in reply["error"]


async def test_schema_notifications_flag_and_alerts(
    client_lib: ClientLib, connect: Any, broker: Any, uid: Any, tmp_path: Path
) -> None:
    """send_notification (§5.11) and the client's alert on $memphis_notifications (§5.12)."""
    async with broker.admin() as admin:
        await admin.set_notifications(True)
        try:
            conn = await connect()
            station, schema = uid("alerts"), uid("s")
            await conn.create_schema(
                schema, "json", schema_file(tmp_path, SCHEMAS["json"]["content"]), timeout_retries=R
            )
            await conn.station(station, schema_name=schema, timeout_retries=R)
            producer = await conn.producer(station, "p", timeout_retries=R)
            with pytest.raises(client_lib.MemphisSchemaError):
                await producer.produce({"no": "id"})

            async def alert() -> list[dict[str, Any]]:
                return [n for n in await admin.list_notifications() if station in n["msg"]]

            (note,) = await eventually(alert)
            assert note["title"] == "Schema validation has failed"
            assert note["type"] == "schema_validation_fail_alert"
        finally:
            await admin.set_notifications(False)
