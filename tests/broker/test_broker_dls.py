"""Dead-letter station: poison messages, explicit dead-lettering, resending, dls_station forwarding."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from broker_helpers import ClientLib, R, eventually, fetch_n, js_api, request

pytestmark = [pytest.mark.timeout(60)]


async def trigger_redelivery(nc: Any, stream: str, durable: str) -> None:
    """Pull once with a short expiry: JetStream raises the max-deliveries advisory only when it
    next tries to redeliver (docs/protocol.md §9.1), and memphis-py's own fetch would wait 5 s for nothing."""
    psub = await nc.jetstream().pull_subscribe_bind(durable, stream=stream)
    try:
        msgs = await psub.fetch(1, timeout=0.3)
    except Exception:
        msgs = []
    assert msgs == []
    await psub.unsubscribe()


async def poison_one(conn: Any, nc: Any, client_lib: ClientLib, name: str, group: str = "g") -> Any:
    """Produce one message and let group ``group`` fail it max_msg_deliveries (2) times."""
    producer = await conn.producer(name, "p", timeout_retries=R)
    headers = client_lib.Headers()
    headers.add("trace", "t-1")
    await producer.produce(bytearray(b"poison"), headers=headers)
    consumer = await conn.consumer(name, "c", consumer_group=group, max_msg_deliveries=2, timeout_retries=R)
    for _ in range(2):
        (msg,) = await fetch_n(consumer, 1, ack=False)
        await msg.nack()
    await trigger_redelivery(nc, f"{name}$1", group)
    return consumer


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "memphis_fast.cli",
        "broker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_poison_message_resent_through_cli_and_acked(
    client_lib: ClientLib, connect: Any, nc: Any, broker: Any, uid: Any
) -> None:
    conn = await connect()
    name = uid("poison")
    await conn.station(name, timeout_retries=R)
    consumer = await poison_one(conn, nc, client_lib, name)

    (rec,) = await eventually(lambda: broker.list_dls(name))
    assert (rec["type"], rec["partition"], rec["seq"], rec["producer"]) == ("poison", 1, 1, "p")
    assert [g["name"] for g in rec["poisoned_cgs"]] == ["g"]
    assert rec["payload"] == "poison" and rec["headers"]["trace"] == "t-1"

    received: list[Any] = []
    got_it = asyncio.Event()

    async def handler(msgs: list[Any], error: Any, context: dict[str, Any]) -> None:
        for m in msgs:
            if "$memphis_pm_id" in (m.get_headers() or {}):
                received.append(m)
                got_it.set()

    consumer.consume(handler)  # its DLS queue subscription was made with the consumer
    code, out, err = await cli(
        "dls", "resend", name, "--port", str(broker.port), "--password", broker.password
    )
    assert code == 0, err
    assert "resent 1 message" in out
    await asyncio.wait_for(got_it.wait(), 10)
    (msg,) = received
    headers = msg.get_headers()
    assert headers["$memphis_pm_id"] == str(rec["id"])
    assert headers["$memphis_pm_cg_name"] == "g"
    assert headers["$memphis_producedBy"] == "$memphis_dls"
    assert headers["trace"] == "t-1"
    assert bytes(msg.get_data()) == b"poison"
    # Not a JetStream message: the client acknowledges it on $memphis_pm_acks (docs/protocol.md §5.15).
    await msg.ack()
    assert await eventually(lambda: _no_dls(broker, name))
    await consumer.destroy(timeout_retries=R)


async def _no_dls(broker: Any, name: str) -> bool:
    return await broker.list_dls(name) == []


async def test_dead_letter(client_lib: ClientLib, connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("deadletter")
    await conn.station(name, partitions_number=2, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    await producer.produce(bytearray(b"bad payload"), producer_partition_number=2)
    consumer = await conn.consumer(name, "c", consumer_group="Billing.Team", timeout_retries=R)
    (msg,) = await fetch_n(consumer, 1, ack=False, consumer_partition_number=2)
    try:
        await msg.dead_letter("cannot parse")
    except client_lib.MemphisError:
        # memphis-py sends +TERM, then fails before $memphis_nacked_dls (B13): send it ourselves.
        assert not client_lib.dead_letter_works
        report = {
            "station_name": name,
            "error": "cannot parse",
            "partition": 2,
            "cg_name": "billing.team",
            "seq": msg.get_sequence_number(),
        }
        await nc.publish("$memphis_nacked_dls", json.dumps(report).encode())
    (rec,) = await eventually(lambda: broker.list_dls(name))
    assert (rec["type"], rec["partition"], rec["seq"], rec["payload"]) == ("poison", 2, 1, "bad payload")
    assert [(g["name"], g["reason"]) for g in rec["poisoned_cgs"]] == [("billing.team", "cannot parse")]

    async def terminated() -> bool:  # +TERM: never redelivered to this group
        info = await js_api(nc, f"CONSUMER.INFO.{name}$2.billing#team")
        return bool(info["num_ack_pending"] == 0)

    await eventually(terminated)
    # Destroying the group's last member removes the group from its DLS records (docs/protocol.md §5.6).
    await consumer.destroy(timeout_retries=R)
    assert await broker.list_dls(name) == []


async def test_nacked_dls_with_partition_zero_is_ignored(
    connect: Any, nc: Any, broker: Any, uid: Any
) -> None:
    conn = await connect()
    name, barrier = uid("part-zero"), uid("barrier")
    for st in (name, barrier):
        await conn.station(st, timeout_retries=R)
        producer = await conn.producer(st, "p", timeout_retries=R)
        await producer.produce(bytearray(b"x"))
        await conn.consumer(st, "c", consumer_group="g", timeout_retries=R)
    bad = {"station_name": name, "error": "e", "partition": 0, "cg_name": "g", "seq": 1}
    good = {"station_name": barrier, "error": "e", "partition": 1, "cg_name": "g", "seq": 1}
    await nc.publish("$memphis_nacked_dls", json.dumps(bad).encode())
    await nc.publish("$memphis_nacked_dls", json.dumps(good).encode())
    await eventually(lambda: broker.list_dls(barrier))
    assert await broker.list_dls(name) == []


async def test_poison_dls_disabled(
    client_lib: ClientLib, connect: Any, nc: Any, broker: Any, uid: Any
) -> None:
    conn = await connect()
    name, barrier = uid("no-poison"), uid("barrier")
    await conn.station(name, send_poison_msg_to_dls=False, timeout_retries=R)
    await conn.station(barrier, timeout_retries=R)
    await poison_one(conn, nc, client_lib, name)
    await poison_one(conn, nc, client_lib, barrier)
    await eventually(lambda: broker.list_dls(barrier))
    assert await broker.list_dls(name) == []


async def test_dls_station_forwarding(connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name, target = uid("source"), uid("target")
    await conn.station(name, dls_station=target, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    await producer.produce(bytearray(b"poisoned"))
    await conn.consumer(name, "c", consumer_group="g", timeout_retries=R)
    nacked = {"station_name": name, "error": "e", "partition": 1, "cg_name": "g", "seq": 1}
    await nc.publish("$memphis_nacked_dls", json.dumps(nacked).encode())
    failure = {
        "station_name": name,
        "producer": {"name": "p", "connection_id": "x"},
        "creation_unix": 0,
        "message": {"data": b"not valid".hex(), "headers": {"$memphis_producedBy": "p", "k": "v"}},
        "validation_error": "broken",
    }
    await nc.publish("$memphis_schemaverse_dls", json.dumps(failure).encode())
    reader = await conn.consumer(target, "reader", timeout_retries=R)
    msgs = await fetch_n(reader, 2)
    by_type = {m.get_headers()["type"]: m for m in msgs}
    assert bytes(by_type["unacked"].get_data()) == b"poisoned"
    assert bytes(by_type["failed_schema"].get_data()) == b"not valid"
    assert {m.get_headers()["station"] for m in msgs} == {name}
    assert by_type["failed_schema"].get_headers()["k"] == "v"
    # A second group poisoning the same message updates the record; it is not forwarded again.
    await conn.consumer(name, "c2", consumer_group="g2", timeout_retries=R)
    await nc.publish("$memphis_nacked_dls", json.dumps(nacked | {"cg_name": "g2"}).encode())

    async def two_groups() -> bool:
        recs = await broker.list_dls(name, "poison")
        return len(recs) == 1 and len(recs[0]["poisoned_cgs"]) == 2

    await eventually(two_groups)
    info = await js_api(nc, f"STREAM.INFO.{target}$1")
    assert info["state"]["messages"] == 2


async def test_dls_station_uses_every_partition(connect: Any, nc: Any, uid: Any) -> None:
    """The real broker never forwards to the last partition of a DLS station (docs/protocol.md §13.10);
    this one picks any partition."""
    conn = await connect()
    name, target = uid("source"), uid("target")
    await conn.station(target, partitions_number=2, timeout_retries=R)
    await conn.station(name, dls_station=target, timeout_retries=R)
    failure = {
        "station_name": name,
        "producer": {"name": "p", "connection_id": "x"},
        "message": {"data": b"x".hex(), "headers": {}},
        "validation_error": "broken",
    }
    for _ in range(24):
        await nc.publish("$memphis_schemaverse_dls", json.dumps(failure).encode())

    async def counts() -> list[int] | None:
        c = [int((await js_api(nc, f"STREAM.INFO.{target}${p}"))["state"]["messages"]) for p in (1, 2)]
        return c if sum(c) == 24 else None

    c = await eventually(counts)
    assert min(c) > 0  # all 24 in one partition: probability 2**-23


async def test_advisories_captured_by_a_durable_work_queue(nc: Any, broker: Any) -> None:
    info = await js_api(nc, "STREAM.INFO.$memphis_dls_unacked")
    assert info["config"]["subjects"] == ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]
    assert info["config"]["retention"] == "workqueue"
    consumer = await js_api(nc, "CONSUMER.INFO.$memphis_dls_unacked.$memphis_dls_unacked_consumer")
    assert consumer["config"]["ack_policy"] == "explicit"
    assert consumer["config"]["durable_name"] == "$memphis_dls_unacked_consumer"


async def test_dls_cli_list_and_drop(connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("cli")
    await conn.station(name, timeout_retries=R)
    failure = {
        "station_name": name,
        "producer": {"name": "p", "connection_id": "x"},
        "message": {"data": b"{}".hex(), "headers": {}},
        "validation_error": "missing id",
    }
    await nc.publish("$memphis_schemaverse_dls", json.dumps(failure).encode())
    await eventually(lambda: broker.list_dls(name))
    auth = ["--port", str(broker.port), "--password", broker.password]
    code, out, err = await cli("dls", "list", "--station", name, *auth)
    assert code == 0, err
    assert "schema" in out and "missing id" in out
    code, out, err = await cli("dls", "list", "--station", name, "--json", *auth)
    assert json.loads(out)[0]["validation_error"] == "missing id"
    code, out, err = await cli("dls", "drop", name, *auth)
    assert code == 0 and "dropped 1" in out
    assert await broker.list_dls(name) == []


async def test_dls_records_expire_after_the_retention(uid: Any) -> None:
    import nats as nats_client

    from memphis_fast.broker import LocalBroker

    async with LocalBroker(memory=True, dls_retention=1.0) as b:
        nc = await nats_client.connect(**b.nats_kwargs())
        try:
            name = uid("retention")
            await request(
                nc,
                "$memphis_producer_creations",
                {
                    "name": "p",
                    "station_name": name,
                    "connection_id": "c",
                    "producer_type": "application",
                    "req_version": 4,
                    "username": "root",
                    "app_id": "a",
                    "sdk_lang": "python",
                },
            )
            failure = {
                "station_name": name,
                "producer": {"name": "p", "connection_id": "x"},
                "message": {"data": b"x".hex(), "headers": {}},
                "validation_error": "broken",
            }
            await nc.publish("$memphis_schemaverse_dls", json.dumps(failure).encode())
            await eventually(lambda: b.list_dls(name))

            async def expired() -> bool:
                return await b.list_dls(name) == []

            await eventually(expired)
        finally:
            await nc.close()
