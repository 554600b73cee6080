"""Live schema changes on a station with a producer and consumers alive: enforce, a new version
activated through the broker's activation entry point, detach. Each change applies to the next
produce and to the next ``get_data_deserialized()`` call, with no new producer or consumer and no
reconnect, on the connection that made the change and on another one."""

from __future__ import annotations

from typing import Any

import pytest
from schema_e2e_helpers import (
    DESERIALIZATION_PREFIX,
    VALIDATION_PREFIX,
    fetch_exactly,
    stream_count,
    synced,
)
from schema_e2e_specs import SPECS, norm

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]


async def _rejected(producer: Any, message: Any) -> str:
    with pytest.raises(mf.MemphisSchemaError) as info:
        await producer.produce(message)
    assert info.value.message.startswith(VALIDATION_PREFIX)
    return str(info.value.reason)


async def _undecodable(msg: Any) -> str:
    with pytest.raises(mf.MemphisSchemaError) as info:
        await msg.get_data_deserialized()
    assert info.value.message.startswith(DESERIALIZATION_PREFIX)
    return str(info.value.reason)


@pytest.mark.parametrize("schema_type", list(SPECS))
async def test_enforce_activate_detach_follow_on_the_next_message(
    schema_type: str,
    broker: LocalBroker,
    connect: Any,
    nc: Any,
    uid: Any,
    schema_file: Any,
) -> None:
    spec = SPECS[schema_type]
    schema, station = uid(f"live-{schema_type}"), uid(f"live-{schema_type}")
    conn = await connect()  # producer, local consumer, and the one making the changes
    other = await connect()  # a consumer on another connection
    await conn.create_schema(schema, schema_type, schema_file(spec.v1))
    await conn.create_schema(schema, schema_type, schema_file(spec.v2))  # version 2, inactive
    (stored,) = [s for s in await broker.list_schemas() if s["name"] == schema]
    assert [(v["number"], v["active"]) for v in stored["versions"]] == [(1, True), (2, False)]
    await conn.station(station)
    producer = await conn.producer(station, "p")
    local = await conn.consumer(station, "local", batch_size=1)
    remote = await other.consumer(station, "remote", batch_size=1)
    late = await other.consumer(station, "late", batch_size=1)  # reads only after the enforce
    consumers = (local, remote)

    async def next_msgs() -> list[Any]:
        return [(await fetch_exactly(c, 1))[0] for c in consumers]

    # No schema: anything goes, and get_data_deserialized() gives the raw bytes.
    await producer.produce(spec.garbage)
    before = await next_msgs()
    for m in before:
        assert await m.get_data_deserialized() == bytearray(spec.garbage)

    # Enforce: the next produce validates; the message stored before no longer deserializes.
    await conn.enforce_schema(schema, station)
    await synced(other)
    await _rejected(producer, spec.garbage)
    await _rejected(producer, spec.v2_only)
    for m in before:
        await _undecodable(m)
    (late_msg,) = await fetch_exactly(late, 1)  # produced before the enforce, consumed after
    assert late_msg.data == spec.garbage
    reason = await _undecodable(late_msg)
    assert reason == await _undecodable(before[0])
    await producer.produce(spec.v1_only)
    v1_msgs = await next_msgs()
    for m in v1_msgs:
        assert norm(await m.get_data_deserialized()) == spec.v1_value

    # Activate version 2 (an operator action; the broker broadcasts it).
    assert await broker.activate_schema(schema, 2) == [station]
    await synced(conn, other)
    await _rejected(producer, spec.v1_only)
    await producer.produce(spec.v2_only)
    v2_msgs = await next_msgs()
    for m in v2_msgs:
        assert norm(await m.get_data_deserialized()) == spec.v2_value
    for m in v1_msgs:  # the same message objects, read again under the new version
        if spec.v1_under_v2 is None:
            await _undecodable(m)
        else:
            assert norm(await m.get_data_deserialized()) == spec.v1_under_v2

    # Back to version 1: the activation entry point works both ways.
    assert await broker.activate_schema(schema, 1) == [station]
    await synced(conn, other)
    await _rejected(producer, spec.v2_only)
    for m in v1_msgs:
        assert norm(await m.get_data_deserialized()) == spec.v1_value

    # Detach: no validation, raw bytes again.
    await conn.detach_schema(station)
    await synced(other)
    await producer.produce(spec.garbage)
    after = await next_msgs()
    for m in [*after, *before, *v2_msgs]:
        assert await m.get_data_deserialized() == bytearray(m.data)

    # Four messages stored (garbage, v1, v2, garbage); the rejected ones never were.
    assert await stream_count(nc, station) == 4
    for c in (conn, other):
        assert c.stats().get("reconnects", 0) == 0
