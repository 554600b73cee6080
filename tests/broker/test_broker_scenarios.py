"""Scenario suite: a Memphis client (memphis-py 1.3.1 today) against the local broker.

Everything the client does goes through its public API (``client_lib``); raw NATS (``nc``) is
only used to look at what the broker did in JetStream, or to send what memphis-py cannot.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import pytest
from broker_helpers import ClientLib, R, consumer_config, data, eventually, fetch_n, js_api, stream_config

pytestmark = [pytest.mark.timeout(60)]

# -- connecting ------------------------------------------------------------------------------------


async def test_connect_with_password(connect: Any, broker: Any) -> None:
    conn = await connect()
    assert conn.is_connected()


# nats-py leaves the socket of a refused connection open; collect it while the warning is ignored.
_refused_socket = pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")


@_refused_socket
async def test_wrong_password_rejected(client_lib: ClientLib, broker: Any) -> None:
    conn = client_lib.Memphis()
    kwargs = broker.connect_kwargs() | {"password": "wrong", "reconnect": False}
    with pytest.raises(client_lib.MemphisError, match="(?i)authorization violation"):
        await conn.connect(**kwargs)
    del conn
    gc.collect()


@_refused_socket
async def test_unknown_user_rejected(client_lib: ClientLib, broker: Any) -> None:
    conn = client_lib.Memphis()
    kwargs = broker.connect_kwargs() | {"username": "nobody", "reconnect": False}
    with pytest.raises(client_lib.MemphisError, match="(?i)authorization violation"):
        await conn.connect(**kwargs)
    del conn
    gc.collect()


# -- stations -----------------------------------------------------------------------------------------


async def test_station_defaults(connect: Any, nc: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("defaults")
    await conn.station(name, timeout_retries=R)
    config = await stream_config(nc, f"{name}$1")
    assert config["subjects"] == [f"{name}$1.>"]
    assert config["retention"] == "limits"
    assert config["max_age"] == 3600 * 10**9
    assert config["max_msgs"] == -1 and config["max_bytes"] == -1
    assert config["storage"] == "file"
    assert config["num_replicas"] == 1
    assert config["duplicate_window"] == 120_000 * 10**6
    assert config["discard"] == "old"


@pytest.mark.parametrize(
    ("retention", "value", "expect"),
    [
        ("MAX_MESSAGE_AGE_SECONDS", 60, {"retention": "limits", "max_age": 60 * 10**9}),
        ("MESSAGES", 10, {"retention": "limits", "max_msgs": 10, "max_age": 0}),
        ("BYTES", 4096, {"retention": "limits", "max_bytes": 4096, "max_age": 0}),
        ("ACK_BASED", 0, {"retention": "interest", "max_age": 0, "max_msgs": -1}),
    ],
)
async def test_station_retention(
    client_lib: ClientLib, connect: Any, nc: Any, uid: Any, retention: str, value: int, expect: dict[str, Any]
) -> None:
    conn = await connect()
    name = uid("retention")
    await conn.station(
        name,
        retention_type=getattr(client_lib.Retention, retention),
        retention_value=value,
        idempotency_window_ms=1000,
        timeout_retries=R,
    )
    config = await stream_config(nc, f"{name}$1")
    for key, want in expect.items():
        assert config[key] == want, key


async def test_station_options(client_lib: ClientLib, connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name, dls = uid("options"), uid("options-dls")
    await conn.station(
        name,
        storage_type=client_lib.Storage.MEMORY,
        idempotency_window_ms=5000,
        partitions_number=3,
        send_poison_msg_to_dls=False,
        send_schema_failed_msg_to_dls=False,
        tiered_storage_enabled=True,  # accepted and stored; stock nats-server has no tiering
        dls_station=dls,
        timeout_retries=R,
    )
    for p in (1, 2, 3):
        config = await stream_config(nc, f"{name}${p}")
        assert config["storage"] == "memory"
        assert config["duplicate_window"] == 5000 * 10**6
    assert (await js_api(nc, f"STREAM.INFO.{name}$4"))["error"]["err_code"] == 10059
    stations = {s["name"]: s for s in await broker.list_stations()}
    st = stations[name]
    assert st["partitions"] == [1, 2, 3]
    assert (st["dls_poison"], st["dls_schemaverse"], st["tiered_storage_enabled"]) == (False, False, True)
    assert st["dls_station"] == dls
    # The DLS station did not exist: it was created with the defaults (docs/protocol.md §6.2).
    assert stations[dls]["partitions"] == [1] and stations[dls]["retention_value"] == 3600


async def test_station_recreate_existing_is_success(connect: Any, nc: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("again")
    await conn.station(name, partitions_number=2, timeout_retries=R)
    # Options are not compared (docs/protocol.md §5.1): the existing station is kept as it is.
    st = await conn.station(name, partitions_number=5, timeout_retries=R)
    assert st.name == name
    assert (await js_api(nc, f"STREAM.INFO.{name}$3"))["error"]["err_code"] == 10059


async def test_station_name_is_lower_cased_and_dots_map_to_hash(connect: Any, nc: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("Orders.EU")
    await conn.station(name, timeout_retries=R)
    internal = name.lower().replace(".", "#")
    assert (await stream_config(nc, f"{internal}$1"))["subjects"] == [f"{internal}$1.>"]


async def test_station_replicas_larger_than_cluster(client_lib: ClientLib, connect: Any, uid: Any) -> None:
    # A single-node broker, like the real one in standalone mode, cannot hold 3 replicas.
    conn = await connect()
    with pytest.raises(client_lib.MemphisError, match="replicas count is larger than the cluster size"):
        await conn.station(uid("replicas"), replicas=3, timeout_retries=R)


async def test_station_invalid_name(client_lib: ClientLib, connect: Any) -> None:
    conn = await connect()
    # memphis-py gets the broker's text; memphis_fast refuses the name before sending, in its words.
    with pytest.raises(client_lib.MemphisError, match="(?i)only alphanumeric and the '_', '-', '.' characters"):
        await conn.station("bad name!", timeout_retries=R)


async def test_station_destroy_removes_streams(connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("gone")
    st = await conn.station(name, partitions_number=2, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    await producer.produce(bytearray(b"x"))
    await st.destroy(timeout_retries=R)
    for p in (1, 2):
        assert (await js_api(nc, f"STREAM.INFO.{name}${p}"))["error"]["err_code"] == 10059
    assert name not in {s["name"] for s in await broker.list_stations()}
    assert (await broker.list_clients(name))["producers"] == []


# -- producers and consumers ------------------------------------------------------------------------


async def test_producer_and_consumer_lifecycle(connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("life")
    producer = await conn.producer(name, "Prod-1", timeout_retries=R)  # auto-creates the station
    consumer = await conn.consumer(name, "Cons-1", consumer_group="Group.A", timeout_retries=R)
    clients = await broker.list_clients(name)
    assert [(p["name"], p["active"], p["sdk"]) for p in clients["producers"]] == [("prod-1", True, "python")]
    assert [(c["name"], c["group"]) for c in clients["consumers"]] == [("cons-1", "group.a")]
    assert clients["producers"][0]["connection_id"] == conn.connection_id
    durable = await consumer_config(nc, f"{name}$1", "group#a")
    assert durable["filter_subject"] == f"{name}$1.final"
    await producer.destroy(timeout_retries=R)
    await consumer.destroy(timeout_retries=R)
    clients = await broker.list_clients(name)
    assert clients["producers"] == [] and clients["consumers"] == []
    # The last member of the group is gone: so is its durable (docs/protocol.md §5.6).
    assert (await js_api(nc, f"CONSUMER.INFO.{name}$1.group#a"))["error"]["err_code"] == 10014


async def test_default_station_auto_created(connect: Any, nc: Any, broker: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("auto")
    await conn.consumer(name, "c", timeout_retries=R)
    st = {s["name"]: s for s in await broker.list_stations()}[name]
    assert (st["retention_type"], st["retention_value"], st["storage_type"]) == (
        "message_age_sec",
        3600,
        "file",
    )
    assert st["partitions"] == [1] and st["version"] == 2
    assert (await consumer_config(nc, f"{name}$1", "c"))["deliver_policy"] == "all"


# -- producing ----------------------------------------------------------------------------------------


async def test_sync_and_nonblocking_produce_with_headers(
    client_lib: ClientLib, connect: Any, uid: Any
) -> None:
    conn = await connect()
    name = uid("produce")
    await conn.station(name, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    for i in range(3):
        headers = client_lib.Headers()
        headers.add("trace-id", f"t{i}")
        await producer.produce(bytearray(f"sync-{i}".encode()), headers=headers)
    for i in range(3):
        headers = client_lib.Headers()
        headers.add("trace-id", f"n{i}")
        await producer.produce(f"nonblocking-{i}", headers=headers, nonblocking=True)
    await producer.destroy(timeout_retries=R)  # drains the non-blocking publishes
    consumer = await conn.consumer(name, "c", timeout_retries=R)
    msgs = await fetch_n(consumer, 6)
    assert data(msgs) == [f"sync-{i}".encode() for i in range(3)] + [
        f"nonblocking-{i}".encode() for i in range(3)
    ]
    headers = [m.get_headers() for m in msgs]
    assert [h["trace-id"] for h in headers] == ["t0", "t1", "t2", "n0", "n1", "n2"]
    assert all(h["$memphis_producedBy"] == "p" for h in headers)
    assert all(h["$memphis_connectionId"] == conn.connection_id for h in headers)
    assert [m.get_sequence_number() for m in msgs] == [1, 2, 3, 4, 5, 6]


async def test_idempotency_window(client_lib: ClientLib, connect: Any, nc: Any, uid: Any) -> None:
    """De-duplication inside the station's idempotency window, and not after it.

    memphis-py only sends the fork's ``msg-id`` header, which stock nats-server ignores
    (docs/protocol.md §7.4); the JetStream header ``Nats-Msg-Id`` is honoured, so it is set as a user header.
    """
    conn = await connect()
    name = uid("idem")
    await conn.station(name, idempotency_window_ms=800, timeout_retries=R)
    assert (await stream_config(nc, f"{name}$1"))["duplicate_window"] == 800 * 10**6
    producer = await conn.producer(name, "p", timeout_retries=R)

    async def produce(text: str, msg_id: str | None = None, nats_msg_id: str | None = None) -> None:
        headers = client_lib.Headers()  # a fresh object each time (memphis-py mutates it: B3)
        if nats_msg_id:
            headers.add("Nats-Msg-Id", nats_msg_id)
        await producer.produce(bytearray(text.encode()), headers=headers, msg_id=msg_id)

    async def stored() -> int:
        info = await js_api(nc, f"STREAM.INFO.{name}$1")
        return int(info["state"]["messages"])

    await produce("a", nats_msg_id="id-1")
    await produce("a-duplicate", nats_msg_id="id-1")
    assert await stored() == 1
    # memphis-py: msg-id alone is not de-duplicated by stock nats-server (the fork's header,
    # docs/protocol.md §7.4). memphis-fast sends Nats-Msg-Id next to msg-id, so msg_id works here too.
    await produce("b", msg_id="id-2")
    await produce("b-again", msg_id="id-2")
    expected = 2 if client_lib.name == "memphis-fast" else 3
    assert await stored() == expected
    # After the window, the same Nats-Msg-Id is a new message.
    start = time.monotonic()
    while await stored() < expected + 1:
        assert time.monotonic() - start < 10
        await asyncio.sleep(0.3)
        await produce("a-later", nats_msg_id="id-1")
    assert time.monotonic() - start >= 0.5


async def test_partitions_round_robin_key_and_number(
    client_lib: ClientLib, connect: Any, nc: Any, uid: Any
) -> None:
    conn = await connect()
    name = uid("parts")
    await conn.station(name, partitions_number=3, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    for i in range(6):
        await producer.produce(bytearray(f"rr-{i}".encode()))

    async def counts() -> list[int]:
        return [int((await js_api(nc, f"STREAM.INFO.{name}${p}"))["state"]["messages"]) for p in (1, 2, 3)]

    assert await counts() == [2, 2, 2]
    # murmur3("key", seed 31) % 3 == 1 -> the second partition of [1, 2, 3] (docs/protocol.md §7.5 vectors).
    for _ in range(3):
        await producer.produce(bytearray(b"keyed"), producer_partition_key="key")
    assert await counts() == [2, 5, 2]
    await producer.produce(bytearray(b"numbered"), producer_partition_number=3)
    assert await counts() == [2, 5, 3]
    with pytest.raises(client_lib.MemphisError, match="Partition number is out of range"):
        await producer.produce(bytearray(b"x"), producer_partition_number=4)
    # Consumers read partitions the same way: by key, by number, or round-robin.
    consumer = await conn.consumer(name, "c", timeout_retries=R)
    keyed = await fetch_n(consumer, 5, consumer_partition_key="key")
    assert data(keyed) == [b"rr-1", b"rr-4", b"keyed", b"keyed", b"keyed"]
    numbered = await fetch_n(consumer, 3, consumer_partition_number=3)
    assert data(numbered) == [b"rr-2", b"rr-5", b"numbered"]
    rest = await fetch_n(consumer, 2, consumer_partition_number=1)
    assert data(rest) == [b"rr-0", b"rr-3"]


# -- consuming -----------------------------------------------------------------------------------------


async def test_group_members_split_and_groups_each_get_all(connect: Any, uid: Any) -> None:
    conn = await connect()
    other = await connect()
    name = uid("groups")
    await conn.station(name, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    for i in range(10):
        await producer.produce(bytearray(f"m{i}".encode()))
    a1 = await conn.consumer(name, "a1", consumer_group="team-a", timeout_retries=R)
    a2 = await other.consumer(name, "a2", consumer_group="team-a", timeout_retries=R)
    b1 = await conn.consumer(name, "b1", consumer_group="team-b", timeout_retries=R)
    first = await fetch_n(a1, 4)
    second = await fetch_n(a2, 6)
    assert sorted(data(first) + data(second)) == sorted(f"m{i}".encode() for i in range(10))
    assert not set(data(first)) & set(data(second))
    assert data(await fetch_n(b1, 10)) == [f"m{i}".encode() for i in range(10)]


async def test_consume_callback(connect: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("consume")
    await conn.station(name, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    for i in range(5):
        await producer.produce({"n": i})
    consumer = await conn.consumer(name, "c", pull_interval_ms=50, batch_size=2, timeout_retries=R)
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(msgs: list[Any], error: Any, context: dict[str, Any]) -> None:
        for m in msgs:
            received.append(bytes(m.get_data()))
            await m.ack()
        if len(received) >= 5:
            done.set()

    consumer.consume(handler)
    await asyncio.wait_for(done.wait(), 10)
    # memphis-py serialises dicts with json.dumps ('{"n": 0}'), memphis-fast with orjson
    # ('{"n":0}'): the same JSON value (a documented migration difference).
    assert [json.loads(r) for r in received] == [{"n": i} for i in range(5)]
    await consumer.destroy(timeout_retries=R)


async def test_nack_redelivers_and_delay_postpones(connect: Any, nc: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("nack")
    await conn.station(name, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    await producer.produce(bytearray(b"again"))
    consumer = await conn.consumer(name, "c", max_msg_deliveries=5, timeout_retries=R)
    (msg,) = await fetch_n(consumer, 1, ack=False)
    await msg.nack()
    (again,) = await fetch_n(consumer, 1, ack=False)
    assert again.get_sequence_number() == msg.get_sequence_number() == 1
    started = time.monotonic()
    await again.delay(1)
    (later,) = await fetch_n(consumer, 1, ack=True)
    assert time.monotonic() - started >= 0.9
    assert later.get_data() == bytearray(b"again")

    async def acked() -> bool:  # an ack is a plain publish: give it a moment to land
        info = await js_api(nc, f"CONSUMER.INFO.{name}$1.c")
        return bool(info["num_ack_pending"] == 0 and info["num_redelivered"] == 0)

    await eventually(acked)


async def test_start_from_sequence_and_last_messages(connect: Any, nc: Any, uid: Any) -> None:
    conn = await connect()
    name = uid("start")
    await conn.station(name, timeout_retries=R)
    producer = await conn.producer(name, "p", timeout_retries=R)
    for i in range(1, 11):
        await producer.produce(bytearray(f"m{i}".encode()))
    from_seq = await conn.consumer(name, "from-seq", start_consume_from_sequence=4, timeout_retries=R)
    assert data(await fetch_n(from_seq, 7)) == [f"m{i}".encode() for i in range(4, 11)]
    last = await conn.consumer(name, "last-3", last_messages=3, timeout_retries=R)
    assert data(await fetch_n(last, 3)) == [b"m8", b"m9", b"m10"]
    config = await consumer_config(nc, f"{name}$1", "last-3")
    assert (config["deliver_policy"], config["opt_start_seq"]) == ("by_start_sequence", 8)
    await conn.consumer(name, "only-new", last_messages=0, timeout_retries=R)
    assert (await consumer_config(nc, f"{name}$1", "only-new"))["deliver_policy"] == "new"
    await conn.consumer(name, "everything", timeout_retries=R)
    assert (await consumer_config(nc, f"{name}$1", "everything"))["deliver_policy"] == "all"


async def test_consumer_options_validated(client_lib: ClientLib, connect: Any, uid: Any) -> None:
    conn = await connect()
    with pytest.raises(client_lib.MemphisError, match="start_consume_from_sequence"):
        await conn.consumer(uid("v"), "c", start_consume_from_sequence=2, last_messages=1, timeout_retries=R)
