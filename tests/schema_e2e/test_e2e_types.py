"""Issue 5, first "Done when" item, for each of the four schema types against the local broker:
a schema created from a file and enforced; valid messages of every accepted input type produced,
stored as the exact bytes a client would send, consumed, and round-tripped through
``get_data_deserialized()`` (and produced again from the deserialized value); invalid messages
rejected with ``MemphisSchemaError`` and the validator's reason, never stored, and reported on
``$memphis_schemaverse_dls`` in the format of docs/protocol.md §5.13, which the broker records as a
schemaverse DLS record."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message
from schema_e2e_helpers import (
    VALIDATION_PREFIX,
    Inbox,
    eventually,
    fetch_exactly,
    internal,
    stored_payload,
    stream_count,
)
from schema_e2e_specs import ORDER, SPECS, foreign_message_class, norm

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


def _wire(message: Any) -> bytes | None:
    """The bytes a byte-like or text message must be stored as (sent unchanged)."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, str):
        return message.encode()
    return None


async def _schema_records(broker: LocalBroker, station: str, n: int) -> list[dict[str, Any]] | None:
    records = await broker.list_dls(station, "schema")
    return records if len(records) >= n else None


@pytest.mark.parametrize("schema_type", list(SPECS))
async def test_valid_messages_round_trip_and_invalid_ones_go_to_the_dls(
    schema_type: str,
    broker: LocalBroker,
    connect: Any,
    nc: Any,
    uid: Any,
    schema_file: Any,
) -> None:
    spec = SPECS[schema_type]
    # A dotted station name: reports carry the internal name (orders#eu), the broker the external.
    schema, station = uid(f"e2e-{schema_type}"), uid(f"types.{schema_type}")
    conn = await connect()
    await conn.create_schema(schema, schema_type, schema_file(spec.v1))
    (stored_schema,) = [s for s in await broker.list_schemas() if s["name"] == schema]
    assert (stored_schema["type"], stored_schema["versions"][0]["content"]) == (schema_type, spec.v1)
    await conn.station(station)
    await conn.enforce_schema(schema, station)

    valid = list(spec.valid)
    if schema_type == "protobuf":
        # A message object of the application's own class (not the client's).
        descriptor = stored_schema["versions"][0]["descriptor"]
        foreign = foreign_message_class(descriptor, "shop.Order")
        valid.append(("foreign message object", foreign(id=7, item="book", tags=["a", "b"]), ORDER))

    producer = await conn.producer(station, "p")
    for _label, message, _value in valid:
        await producer.produce(message)
    consumer = await conn.consumer(station, "c", batch_size=len(valid))
    msgs = await fetch_exactly(consumer, len(valid))
    deserialized = [await m.get_data_deserialized() for m in msgs]
    for (label, message, value), msg, got in zip(valid, msgs, deserialized, strict=True):
        assert norm(got) == value, label
        wire = _wire(message)
        if wire is not None:
            assert msg.data == wire, label
            assert await stored_payload(nc, station, msg.get_sequence_number()) == wire, label
    if schema_type == "protobuf":
        # Each call gives a fresh object of the schema's class (memphis-py: one shared one, B9).
        assert all(isinstance(d, Message) for d in deserialized)
        assert len({id(d) for d in deserialized}) == len(deserialized)
        assert type(deserialized[0]) is not foreign
    elif schema_type in ("json", "avro"):
        assert all(type(d) is dict for d in deserialized)
    else:
        assert all(type(d) is str for d in deserialized)

    # What get_data_deserialized() returned is itself a valid message: produce it again.
    for d in deserialized:
        await producer.produce(d)
    again = await fetch_exactly(consumer, len(deserialized))
    assert [norm(await m.get_data_deserialized()) for m in again] == [v for _, _, v in valid]

    # Invalid messages: rejected, not stored, reported.
    count = await stream_count(nc, station)
    assert count == 2 * len(valid)
    reports = await Inbox.open(nc, "$memphis_schemaverse_dls")
    headers = mf.Headers()
    headers.add("trace", "t-1")
    errors: list[mf.MemphisSchemaError] = []
    try:
        for bad in spec.invalid:
            with pytest.raises(mf.MemphisSchemaError) as info:
                await producer.produce(bad.message, headers=headers)
            assert info.value.reason == bad.reason
            assert info.value.message == VALIDATION_PREFIX + bad.reason
            assert str(info.value) == "memphis: " + VALIDATION_PREFIX + bad.reason
            errors.append(info.value)
        assert headers.headers == {"trace": "t-1"}  # never modified (memphis-py: B3)
        assert await stream_count(nc, station) == count

        n = len(spec.invalid)
        records = await _eventually_records(broker, station, n)
        sent = await _eventually_reports(reports, station, n)
    finally:
        await reports.close()
    expected_headers = {
        "trace": "t-1",
        "$memphis_producedBy": "p",
        "$memphis_connectionId": conn.connection_id,
    }
    for bad, err, rec, report in zip(spec.invalid, errors, records, sent, strict=True):
        # docs/protocol.md §5.13, exactly: memphis-py's keys, the internal station name, hex of the bytes.
        assert set(report) == {"station_name", "producer", "creation_unix", "message", "validation_error"}
        assert report["station_name"] == internal(station)
        assert report["producer"] == {"name": "p", "connection_id": conn.connection_id}
        assert type(report["creation_unix"]) is int and report["creation_unix"] > 1_600_000_000
        assert report["message"] == {"data": bad.wire.hex(), "headers": expected_headers}
        assert report["validation_error"] == str(err)
        # ... and what the broker made of it.
        assert (rec["type"], rec["station"], rec["producer"], rec["seq"]) == ("schema", station, "p", 0)
        assert rec["data"] == bad.wire.hex()
        assert rec["headers"] == expected_headers
        assert rec["validation_error"] == str(err)
        assert rec["poisoned_cgs"] == []


async def _eventually_records(broker: LocalBroker, station: str, n: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = await eventually(lambda: _schema_records(broker, station, n))
    assert len(records) == n, records
    return records


async def _eventually_reports(reports: Inbox, station: str, n: int) -> list[dict[str, Any]]:
    def mine() -> list[dict[str, Any]] | None:
        got = [r for r in reports.items if r.get("station_name") == internal(station)]
        return got if len(got) >= n else None

    try:
        got: list[dict[str, Any]] = await eventually(mine)
    except AssertionError:
        raise AssertionError(f"reports received: {reports.items!r}; nc events: {reports.events!r}") from None
    assert len(got) == n, got
    return got
