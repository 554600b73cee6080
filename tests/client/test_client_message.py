"""The Message API: get_timesent and dead_letter (B13), get_data_deserialized raising on a
mismatch (B9), delay/nack/ack on JetStream and DLS messages. memphis-py's behaviour is shown
next to memphis_fast's where it differs."""

from __future__ import annotations

import datetime
import json
from typing import Any

import memphis as mpy
import pytest
from client_helpers import R, consumer_info, eventually, fetch_exactly

import memphis_fast as mf
from memphis_fast.broker import LocalBroker
from memphis_fast.testing.natspy import settle

pytestmark = [pytest.mark.timeout(60)]


async def test_message_accessors(connect: Any, connect_py: Any, uid: Any) -> None:
    """B13: get_timesent() is the broker's store time as an aware UTC datetime (memphis-py
    always returns None); data, headers and the sequence number are as produced."""
    name = uid("accessors")
    conn = await connect()
    producer = await conn.producer(name, "p")
    before = datetime.datetime.now(datetime.UTC)
    await producer.produce(b"payload", headers={"k": "v"})
    consumer = await conn.consumer(name, "c")
    (msg,) = await fetch_exactly(consumer, 1)
    after = datetime.datetime.now(datetime.UTC)
    sent = msg.get_timesent()
    assert isinstance(sent, datetime.datetime) and sent.utcoffset() == datetime.timedelta(0)
    assert before <= sent <= after
    assert msg.message.metadata.timestamp == sent
    assert msg.get_data() == bytearray(b"payload") and type(msg.get_data()) is bytearray
    assert msg.data == b"payload"
    headers = msg.get_headers()
    assert headers["k"] == "v" and headers["$memphis_producedBy"] == "p"
    assert headers["$memphis_connectionId"] == conn.connection_id
    assert msg.get_sequence_number() == 1 and msg.partition == 1

    py = await connect_py()
    py_consumer = await py.consumer(name, "py-c", timeout_retries=R)
    (py_msg,) = await fetch_exactly(py_consumer, 1)
    assert py_msg.get_timesent() is None


async def test_dead_letter_records_the_reason(
    broker: LocalBroker, connect: Any, connect_py: Any, nc: Any, uid: Any
) -> None:
    """B13: dead_letter() terminates the message for the group and records it with the reason
    (``$memphis_nacked_dls``). memphis-py sends +TERM and then fails, so no record is made."""
    name = uid("dead-letter")
    conn = await connect()
    await conn.station(name, partitions_number=2)
    producer = await conn.producer(name, "p")
    await producer.produce(b"bad payload", producer_partition_number=2)
    consumer = await conn.consumer(name, "c", consumer_group="Billing.Team")
    (msg,) = await fetch_exactly(consumer, 1, ack=False, consumer_partition_number=2)
    await msg.dead_letter("cannot parse")
    (rec,) = await eventually(lambda: broker.list_dls(name))
    assert (rec["partition"], rec["seq"], rec["payload"]) == (2, 1, "bad payload")
    assert [(g["name"], g["reason"]) for g in rec["poisoned_cgs"]] == [("billing.team", "cannot parse")]
    info = await consumer_info(nc, f"{name}$2", "billing#team")
    assert info["num_ack_pending"] == 0  # terminated: never redelivered to this group

    py_name = uid("dead-letter-py")
    py = await connect_py()
    py_producer = await py.producer(py_name, "p", timeout_retries=R)
    await py_producer.produce(bytearray(b"bad"))
    py_consumer = await py.consumer(py_name, "c", timeout_retries=R)
    (py_msg,) = await fetch_exactly(py_consumer, 1, ack=False)
    with pytest.raises(mpy.MemphisConnectError, match="not callable"):
        await py_msg.dead_letter("cannot parse")


async def test_get_data_deserialized_raises_on_mismatch(
    connect: Any, connect_py: Any, nc: Any, uid: Any, tmp_path: Any
) -> None:
    """B9: a message that does not match the station's schema raises MemphisSchemaError
    (memphis-py returns None and swallows the error)."""
    name, schema = uid("deser"), uid("deser-schema")
    schema_file = tmp_path / "s.json"
    schema_file.write_text(json.dumps({"type": "object", "required": ["id"]}))
    conn = await connect()
    await conn.create_schema(schema, "json", str(schema_file))
    await conn.station(name, schema_name=schema)
    producer = await conn.producer(name, "p")
    await producer.produce({"id": 1})
    # A message that never went through a client's validation.
    await nc.jetstream().publish(f"{name}$1.final", b'{"no": "id"}')
    consumer = await conn.consumer(name, "c")
    good, bad = await fetch_exactly(consumer, 2)
    assert await good.get_data_deserialized() == {"id": 1}
    with pytest.raises(mf.MemphisSchemaError):
        await bad.get_data_deserialized()

    py = await connect_py()
    py_consumer = await py.consumer(name, "py-c", timeout_retries=R)
    py_good, py_bad = await fetch_exactly(py_consumer, 2)
    assert await py_good.get_data_deserialized() == {"id": 1}
    assert await py_bad.get_data_deserialized() is None


async def test_get_data_deserialized_without_schema(connect: Any, uid: Any) -> None:
    name = uid("deser-plain")
    conn = await connect()
    producer = await conn.producer(name, "p")
    await producer.produce(b"\x00\xffraw")
    consumer = await conn.consumer(name, "c")
    (msg,) = await fetch_exactly(consumer, 1)
    assert await msg.get_data_deserialized() == bytearray(b"\x00\xffraw")


async def test_delay_redelivers_later(connect: Any, uid: Any) -> None:
    """delay(seconds) nacks with a delay: the message comes back, as its second delivery."""
    name = uid("delay")
    conn = await connect()
    producer = await conn.producer(name, "p")
    await producer.produce(b"later")
    consumer = await conn.consumer(name, "c")
    (msg,) = await fetch_exactly(consumer, 1, ack=False)
    await msg.delay(0.2)
    (again,) = await fetch_exactly(consumer, 1)
    assert (again.data, again.get_delivery_count()) == (b"later", 2)
    with pytest.raises(mf.MemphisError):
        await msg.delay("soon")


async def test_dls_message_ack_nack_delay(connect: Any, nc: Any, uid: Any, connect_py: Any) -> None:
    """A message resent from the DLS is a core NATS message: nack() does nothing (memphis-py
    raises nats' NotJSMessageError), delay() is refused, ack() goes to ``$memphis_pm_acks``."""
    name = uid("dls-acks")
    conn = await connect()
    consumer = await conn.consumer(name, "c", consumer_group="g")
    await conn.broker_manager.flush()
    acks: list[dict[str, Any]] = []

    async def on_ack(msg: Any) -> None:
        acks.append(json.loads(msg.data))

    sub = await nc.subscribe("$memphis_pm_acks", cb=on_ack)
    await settle(nc)
    try:
        headers = {"$memphis_pm_id": "42", "$memphis_pm_cg_name": "g", "$memphis_producedBy": "$memphis_dls"}
        await nc.publish(f"$memphis_dls_{name}.g", b"resent", headers=headers)
        (msg,) = await eventually(lambda: list(consumer.dls_messages))
        await msg.nack()
        with pytest.raises(mf.MemphisError, match="cannot delay DLS message"):
            await msg.delay(1)
        await msg.ack()
        await eventually(lambda: acks)
        assert acks == [{"id": 42, "cg_name": "g"}]
    finally:
        await sub.unsubscribe()

    py = await connect_py()
    py_consumer = await py.consumer(name, "c-py", consumer_group="g2", timeout_retries=R)
    await eventually(lambda: getattr(py_consumer, "consumer_dls", None) is not None)
    await py.broker_manager.flush()
    await nc.publish(f"$memphis_dls_{name}.g2", b"resent", headers={**headers, "$memphis_pm_cg_name": "g2"})
    (py_msg,) = await eventually(lambda: list(py_consumer.dls_messages))
    with pytest.raises(Exception, match="JetStream"):
        await py_msg.nack()
