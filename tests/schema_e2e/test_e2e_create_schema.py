"""``create_schema`` (and enforce/detach) against the local broker: the schema text is read from
the file without blocking the event loop and stored as it is; bad names, types and paths are
``MemphisError`` before anything is sent (memphis-py: ``TypeError``/``FileNotFoundError``, B16);
content the broker rejects comes back as ``MemphisError`` with the broker's text."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import memphis as mpy
import pytest
from schema_e2e_helpers import R, Wiretap

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]

CREATIONS = "$memphis_schema_creations"
JSON_SCHEMA = json.dumps({"type": "object", "description": "Bestellung – größer", "required": ["id"]})


async def _schema(broker: LocalBroker, name: str) -> dict[str, Any] | None:
    return next((s for s in await broker.list_schemas() if s["name"] == name), None)


async def test_schema_text_is_stored_as_read_and_versions_behave(
    broker: LocalBroker, connect: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    name = uid("stored")
    path = schema_file(JSON_SCHEMA)
    await conn.create_schema(name, "json", path)
    await conn.create_schema(name, "json", path)  # same content: "already exists", a no-op
    stored = await _schema(broker, name)
    assert stored is not None and stored["type"] == "json" and stored["created_by"] == "root"
    assert [(v["number"], v["content"]) for v in stored["versions"]] == [(1, JSON_SCHEMA)]
    with pytest.raises(mf.MemphisError, match="already exist with type - json"):
        await conn.create_schema(name, "avro", schema_file('{"type": "string"}'))


@pytest.mark.parametrize(
    ("schema_type", "content", "error"),
    [
        ("json", "not json", "your json schema is invalid"),
        ("json", '{"type": 12}', "your json schema is invalid"),
        ("avro", '{"type": "nope"}', "your Avro file is invalid: "),
        (
            "avro",
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Y"}]}',
            "your Avro file is invalid: ",
        ),
        # protoc's own diagnostics, on the file named as the version will be (docs/protocol.md §10.4)
        (
            "protobuf",
            'syntax = "proto3";\nmessage Order { int32 id = 1',
            "your Proto file is invalid: {name}_1.proto:2:",
        ),
        (
            "protobuf",
            'syntax = "proto3";\nenum E { A = 0; }\n',
            "your Proto file is invalid: the file defines no message",
        ),
        ("graphql", "type Query {", "Syntax Error: Expected Name, found <EOF>."),
        ("graphql", "   \n", "your schema content is invalid"),
    ],
)
async def test_content_the_broker_rejects_is_a_memphis_error(
    broker: LocalBroker,
    connect: Any,
    uid: Any,
    schema_file: Any,
    schema_type: str,
    content: str,
    error: str,
) -> None:
    conn = await connect()
    name = uid(f"bad-{schema_type}")
    with pytest.raises(mf.MemphisError) as info:
        await conn.create_schema(name, schema_type, schema_file(content))
    assert type(info.value) is mf.MemphisError
    assert info.value.message.startswith(error.format(name=name)), info.value.message
    assert await _schema(broker, name) is None


async def test_client_side_checks_come_first_and_send_nothing(
    broker: LocalBroker, connect: Any, connect_py: Any, nc: Any, uid: Any, schema_file: Any, tmp_path: Path
) -> None:
    conn = await connect()
    good = schema_file(JSON_SCHEMA)
    not_utf8 = tmp_path / "latin1.json"
    not_utf8.write_bytes('{"description": "größer"}'.encode("latin-1"))
    cases: list[tuple[str, str, Any, str]] = [
        # (name, type, path, the error text)
        ("ok-name", "xml", good, "schema type not supported: 'xml'"),
        ("ok-name", "JSON", good, "schema type not supported: 'JSON'"),
        ("", "json", good, "Schema name cannot be empty"),
        ("a" * 129, "json", good, "Schema name should be under 128 characters"),
        ("Upper", "json", good, "Only alphanumeric and the '_', '-', '.' characters are allowed"),
        ("has space", "json", good, "Only alphanumeric and the '_', '-', '.' characters are allowed"),
        ("-lead", "json", good, "Schema name cannot start or end with a non-alphanumeric character"),
        ("trail.", "json", good, "Schema name cannot start or end with a non-alphanumeric character"),
        ("ok-name", "json", str(tmp_path / "missing.json"), "schema file not found: "),
        ("ok-name", "json", str(tmp_path), "schema path is a directory: "),
        ("ok-name", "json", str(not_utf8), "is not UTF-8 text"),
        ("ok-name", "json", 42, "schema path must be a string or a path"),
    ]
    tap = await Wiretap.open(nc, CREATIONS)
    try:
        for name, schema_type, path, error in cases:
            with pytest.raises(mf.MemphisError) as info:
                await conn.create_schema(name, schema_type, path)
            assert error in info.value.message, (name, schema_type, path, info.value.message)
        marker = uid("marker")
        await conn.create_schema(marker, "json", Path(good))  # a path object is fine
        seen = await tap.wait_for(CREATIONS, lambda body: body.get("name") == marker)
        assert len(seen) == 1  # none of the failed calls reached the broker
        assert seen[0][1] == {
            "name": marker,
            "type": "json",
            "created_by_username": "root",
            "schema_content": JSON_SCHEMA,
            "message_struct_name": "",
        }
    finally:
        await tap.close()

    # memphis-py: the same name rules and texts; a bad type or path is not a MemphisError (B16).
    py = await connect_py()
    for name, _, _, error in cases[2:8]:
        with pytest.raises(mpy.MemphisError, match=error.replace(".", r"\.")):
            await py.schema_name_validation(name)
    with pytest.raises(TypeError):
        await py.create_schema("ok-name", "xml", good, timeout_retries=R)
    with pytest.raises(FileNotFoundError):
        await py.create_schema("ok-name", "json", str(tmp_path / "missing.json"), timeout_retries=R)


async def test_create_schema_without_a_connection(schema_file: Any) -> None:
    conn = mf.Memphis()
    with pytest.raises(mf.MemphisError):
        await conn.create_schema("never-sent", "json", schema_file(JSON_SCHEMA))


async def test_the_file_is_read_without_blocking_the_event_loop(
    broker: LocalBroker, connect: Any, uid: Any, tmp_path: Path
) -> None:
    """The schema file is a FIFO whose writer waits until the event loop has run a few times
    after the reader opened it: a read on the event loop would block it, the writer would give
    up waiting (a safety net) and report that the loop never ran."""
    conn = await connect()
    fifo = tmp_path / "schema.fifo"
    os.mkfifo(fifo)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    result: dict[str, bool] = {}

    def writer() -> None:
        with open(fifo, "w", encoding="utf-8") as f:  # returns once the reader has opened it
            start = ticks
            deadline = time.monotonic() + 10
            while ticks < start + 5 and time.monotonic() < deadline:
                time.sleep(0.001)
            result["loop_ran"] = ticks >= start + 5
            f.write(JSON_SCHEMA)

    beat = asyncio.create_task(heartbeat())
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    name = uid("fifo")
    try:
        await conn.create_schema(name, "json", str(fifo))
    finally:
        beat.cancel()
        thread.join()
    assert result == {"loop_ran": True}
    stored = await _schema(broker, name)
    assert stored is not None and stored["versions"][0]["content"] == JSON_SCHEMA


async def test_enforce_and_detach_errors(connect: Any, uid: Any, schema_file: Any) -> None:
    conn = await connect()
    schema, station = uid("enf"), uid("enf-st")
    await conn.create_schema(schema, "json", schema_file(JSON_SCHEMA))
    await conn.station(station)
    missing_schema, missing_station = uid("nope"), uid("nope-st")
    with pytest.raises(mf.MemphisError, match=f"Schema {missing_schema} does not exist"):
        await conn.enforce_schema(missing_schema, station)
    with pytest.raises(mf.MemphisError, match=f"Station {missing_station} does not exist"):
        await conn.enforce_schema(schema, missing_station)
    with pytest.raises(mf.MemphisError, match="name and station name can not be empty"):
        await conn.enforce_schema("", station)
    with pytest.raises(mf.MemphisError, match=f"station {missing_station} does not exist"):
        await conn.detach_schema(missing_station)
    await conn.attach_schema(schema, station)  # the deprecated name still works
    producer = await conn.producer(station, "p")
    with pytest.raises(mf.MemphisSchemaError):
        await producer.produce({"no": "id"})
