"""The control plane on the wire, with a plain NATS client: exact reply formats and error texts
(docs/protocol.md §3.1, §4, §5), malformed requests, and the choices made where the real broker is buggy
or the spec is ambiguous (§13)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from broker_helpers import collect, consumer_config, eventually, has, js_api, request, stream_config

from memphis_fast.testing.natspy import settle

pytestmark = [pytest.mark.timeout(60)]

EMPTY_SCHEMA_UPDATE = {
    "schema_name": "",
    "active_version": {
        "version_number": 0,
        "descriptor": "",
        "schema_content": "",
        "message_struct_name": "",
    },
    "type": "",
}


def station_req(name: str, **kw: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
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


def producer_req(station: str, name: str = "p", **kw: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "name": name,
        "station_name": station,
        "connection_id": "conn-1",
        "producer_type": "application",
        "req_version": 4,
        "username": "root",
        "app_id": "app-1",
        "sdk_lang": "python",
    }
    req.update(kw)
    return req


def consumer_req(station: str, name: str = "c", **kw: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "name": name,
        "station_name": station,
        "connection_id": "conn-1",
        "consumer_type": "application",
        "consumers_group": "",
        "max_ack_time_ms": 30000,
        "max_msg_deliveries": 2,
        "start_consume_from_sequence": 1,
        "last_messages": -1,
        "req_version": 4,
        "username": "root",
        "app_id": "app-1",
        "sdk_lang": "go",
    }
    req.update(kw)
    return req


# -- names (§3.1) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Station name can not be empty"),
        ("x" * 129, "Station should be under 128 characters"),
        ("has space", "Only alphanumeric and the '_', '-', '.' characters are allowed in Station"),
        ("has#hash", "Only alphanumeric and the '_', '-', '.' characters are allowed in Station"),
        ("-dash", "Station name can not start or end with non alphanumeric character"),
        ("dot.", "Station name can not start or end with non alphanumeric character"),
    ],
)
async def test_station_name_validation(nc: Any, name: str, error: str) -> None:
    assert (await request(nc, "$memphis_station_creations", station_req(name))).decode() == error


async def test_producer_and_consumer_name_validation(nc: Any, uid: Any) -> None:
    station = uid("names")
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(station, "_p")))
    assert reply["error"] == "Producer name can not start or end with non alphanumeric character"
    reply2 = await request(nc, "$memphis_consumer_creations", consumer_req(station, "c!"))
    assert reply2 == b"Only alphanumeric and the '_', '-', '.' characters are allowed in Consumer"
    reply2 = await request(nc, "$memphis_consumer_creations", consumer_req(station, consumers_group="-g"))
    assert reply2 == b"Consumer name can not start or end with non alphanumeric character"
    # A 128-byte name is fine; upper case is lower-cased, not refused.
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(station, "P" * 128)))
    assert reply["error"] == ""


# -- stations (§5.1, §5.2) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            {"retention_type": "forever"},
            "retention type can be one of the following message_age_sec/messages/bytes/ack_based",
        ),
        ({"storage_type": "tape"}, "storage type can be one of the following file/memory"),
        ({"idempotency_window_in_ms": 86_400_001}, "idempotency window can not exceed 24 hours"),
        (
            {"retention_value": 60, "idempotency_window_in_ms": 61_000},
            "idempotency window cannot be greater than the station retention",
        ),
        ({"partitions_number": 0}, "you are using an old SDK, make sure to update your SDK"),
        ({"username": "nobody"}, "User nobody does not exist"),
    ],
)
async def test_station_option_errors(nc: Any, uid: Any, options: dict[str, Any], error: str) -> None:
    name = uid("opt")
    assert (await request(nc, "$memphis_station_creations", station_req(name, **options))).decode() == error
    assert (await js_api(nc, f"STREAM.INFO.{name}$1"))["error"]["err_code"] == 10059


async def test_station_negative_partitions(nc: Any, uid: Any) -> None:
    name = uid("neg")
    reply = await request(nc, "$memphis_station_creations", station_req(name, partitions_number=-2))
    assert (
        reply.decode() == f"cannot create station with -2 partitions (max:10000 min:1): Station -  {name}, "
    )


async def test_station_normalisation(nc: Any, uid: Any) -> None:
    # Empty type -> message_age_sec 3600; value <= 0 -> the same; window <= 0 -> 2 min; 1..99 -> 100 ms.
    a, b, c = uid("norm"), uid("norm"), uid("norm")
    assert (
        await request(nc, "$memphis_station_creations", station_req(a, retention_type="", retention_value=5))
        == b""
    )
    assert (await stream_config(nc, f"{a}$1"))["max_age"] == 3600 * 10**9
    req = station_req(b, retention_type="MESSAGES", retention_value=0, idempotency_window_in_ms=0)
    assert await request(nc, "$memphis_station_creations", req) == b""
    config = await stream_config(nc, f"{b}$1")
    assert (config["max_age"], config["max_msgs"], config["duplicate_window"]) == (
        3600 * 10**9,
        -1,
        120 * 10**9,
    )
    req = station_req(c, idempotency_window_in_ms=5, storage_type="MEMORY")
    assert await request(nc, "$memphis_station_creations", req) == b""
    config = await stream_config(nc, f"{c}$1")
    assert (config["duplicate_window"], config["storage"]) == (100 * 10**6, "memory")


async def test_station_dls_configuration_key_case(nc: Any, broker: Any, uid: Any) -> None:
    """Python sends "Schemaverse", Go "schemaverse": both are read (§5.1)."""
    py, go = uid("py"), uid("go")
    await request(
        nc,
        "$memphis_station_creations",
        station_req(py, dls_configuration={"poison": True, "Schemaverse": False}),
    )
    await request(
        nc,
        "$memphis_station_creations",
        station_req(go, dls_configuration={"poison": False, "schemaverse": False}),
    )
    stations = {s["name"]: s for s in await broker.list_stations()}
    assert (stations[py]["dls_poison"], stations[py]["dls_schemaverse"]) == (True, False)
    assert (stations[go]["dls_poison"], stations[go]["dls_schemaverse"]) == (False, False)


async def test_existing_station_replies_empty(nc: Any, uid: Any) -> None:
    """§13.3: the real broker answers an existing station with an empty (success) reply."""
    name = uid("exists")
    assert await request(nc, "$memphis_station_creations", station_req(name)) == b""
    assert await request(nc, "$memphis_station_creations", station_req(name, storage_type="memory")) == b""
    assert (await stream_config(nc, f"{name}$1"))["storage"] == "file"


async def test_unknown_schema_on_station_creation_is_an_error(nc: Any, broker: Any, uid: Any) -> None:
    """§13.4: the real broker replies empty and silently creates nothing; the spec recommends the
    error, and so the local broker replies ``Schema <name> does not exist``."""
    name = uid("noschema")
    reply = await request(nc, "$memphis_station_creations", station_req(name, schema_name="Missing-Schema"))
    assert reply == b"Schema missing-schema does not exist"
    assert name not in {s["name"] for s in await broker.list_stations()}


async def test_station_destruction_errors(nc: Any, uid: Any) -> None:
    # The broker's text has two spaces (it prints the name of an empty record); clients only
    # look for "not exist".
    reply = await request(
        nc, "$memphis_station_destructions", {"station_name": uid("never"), "username": "root"}
    )
    assert reply == b"Station  does not exist"
    reply = await request(
        nc, "$memphis_station_destructions", {"station_name": "Bad Name", "username": "root"}
    )
    assert reply == b"Only alphanumeric and the '_', '-', '.' characters are allowed in Station"


async def test_station_destruction_clears_dls_station_references(nc: Any, broker: Any, uid: Any) -> None:
    src, dls = uid("src"), uid("dls")
    assert await request(nc, "$memphis_station_creations", station_req(src, dls_station=dls)) == b""
    assert (
        await request(nc, "$memphis_station_destructions", {"station_name": dls, "username": "root"}) == b""
    )
    stations = {s["name"]: s for s in await broker.list_stations()}
    assert stations[src]["dls_station"] == ""


async def test_remove_station_only_broadcast_for_the_ui_path(nc: Any, broker: Any, uid: Any) -> None:
    """§13.11: SDK destruction sends no remove_station; the operator (UI) path does."""
    sdk, ui = uid("sdk"), uid("ui")
    updates, sub = await collect(nc, "$memphis_sdk_clients_updates")
    for name in (sdk, ui):
        await request(nc, "$memphis_station_creations", station_req(name))
    await request(nc, "$memphis_station_destructions", {"station_name": sdk, "username": "root"})
    async with broker.admin() as admin:
        await admin.delete_station(ui)
    await eventually(has(updates, 1))
    await settle(nc)  # anything the broker published before is delivered by now
    await sub.unsubscribe()
    assert [u for u in updates if u["type"] == "remove_station"] == [
        {"station_name": ui, "type": "remove_station", "update": None}
    ]


async def test_schemaverse_to_dls_update_sends_the_new_value(nc: Any, broker: Any, uid: Any) -> None:
    """§13.8: the real broker broadcasts the previous value; the local broker sends the new one."""
    name = uid("Dls.Flags")
    await request(nc, "$memphis_station_creations", station_req(name))
    updates, sub = await collect(nc, "$memphis_sdk_clients_updates")
    async with broker.admin() as admin:
        await admin.set_dls_config(name, schemaverse=False)
    await eventually(has(updates, 1))
    await sub.unsubscribe()
    internal = name.lower().replace(".", "#")
    assert updates == [{"station_name": internal, "type": "schemaverse_to_dls", "update": False}]
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(name)))
    assert reply["schemaverse_to_dls"] is False


# -- producers (§5.3, §5.4) --------------------------------------------------------------------------------


async def test_producer_reply_shape(nc: Any, uid: Any) -> None:
    name = uid("shape")
    await request(nc, "$memphis_station_creations", station_req(name, partitions_number=3))
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(name)))
    assert reply == {
        "schema_update": EMPTY_SCHEMA_UPDATE,
        "partitions_update": {"partitions_list": [1, 2, 3]},
        "schemaverse_to_dls": True,
        "send_notification": False,
        "station_version": 2,
        "station_partitions_first_functions": {},
        "error": "",
    }


async def test_producer_errors(nc: Any, uid: Any) -> None:
    name = uid("perr")
    reply = json.loads(
        await request(nc, "$memphis_producer_creations", producer_req(name, producer_type="robot"))
    )
    assert reply["error"] == "producer type has to be one of the following application/connector"
    assert reply["station_partitions_first_functions"] == {}  # an object even on errors
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(name, username="ghost")))
    assert reply["error"] == "User ghost does not exist"
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(name, req_version=1)))
    assert reply["error"].startswith("this station does not exist, a default station can not be created")
    destroy = {
        "name": "nope",
        "station_name": name,
        "username": "root",
        "connection_id": "x",
        "req_version": 1,
    }
    assert (
        await request(nc, "$memphis_producer_destructions", destroy)
        == f"Producer nope at station {name} does not exist".encode()
    )


async def test_producer_destruction_matches_connection(nc: Any, broker: Any, uid: Any) -> None:
    name = uid("pconn")
    await request(nc, "$memphis_producer_creations", producer_req(name, connection_id="a"))
    await request(nc, "$memphis_producer_creations", producer_req(name, connection_id="b"))
    destroy = {
        "name": "P",
        "station_name": name.upper(),
        "username": "root",
        "connection_id": "a",
        "req_version": 1,
    }
    assert await request(nc, "$memphis_producer_destructions", destroy) == b""
    assert [p["connection_id"] for p in (await broker.list_clients(name))["producers"]] == ["b"]


# -- consumers (§5.5, §5.6, §6.3) ----------------------------------------------------------------------------


async def test_consumer_reply_shape_and_durables(nc: Any, uid: Any) -> None:
    name = uid("Orders.EU")
    internal = name.lower().replace(".", "#")
    await request(nc, "$memphis_station_creations", station_req(name, partitions_number=2))
    req = consumer_req(name, "W1", consumers_group="Billing.Team", max_ack_time_ms=0, max_msg_deliveries=11)
    reply = json.loads(await request(nc, "$memphis_consumer_creations", req))
    assert reply == {
        "schema_update": EMPTY_SCHEMA_UPDATE,
        "partitions_update": {"partitions_list": [1, 2]},
        "error": "",
    }
    for p in (1, 2):
        config = await consumer_config(nc, f"{internal}${p}", "billing#team")
        assert config["durable_name"] == "billing#team"
        assert config["filter_subject"] == f"{internal}${p}.final"
        assert (config["ack_policy"], config["deliver_policy"], config["replay_policy"]) == (
            "explicit",
            "all",
            "instant",
        )
        assert config["ack_wait"] == 30 * 10**9  # <= 0 -> 30 s
        assert config["max_deliver"] == 10  # > 10 -> 10
        assert config["max_ack_pending"] == -1
        assert "deliver_subject" not in config  # a pull consumer


async def test_consumer_errors_are_plain_text_and_single(nc: Any, uid: Any) -> None:
    """§13.5: the real broker sometimes sends a second (JSON) reply after a plain-text error;
    the local broker sends exactly one."""
    name = uid("cerr")
    cases = [
        ({"start_consume_from_sequence": 0}, "startConsumeFromSequence has to be a positive number"),
        ({"last_messages": -2}, "min value for LastMessages is -1"),
        (
            {"start_consume_from_sequence": 2, "last_messages": 0},
            "consumer creation options can't contain both startConsumeFromSequence and lastMessages",
        ),
        (
            {"consumer_type": "robot"},
            "consumer type has to be one of the following application/connector and not robot",
        ),
        ({"username": "ghost"}, "user does not exist"),
    ]
    for options, error in cases:
        inbox = nc.new_inbox()
        replies: list[bytes] = []

        async def on_reply(msg: Any, box: list[bytes] = replies) -> None:
            box.append(bytes(msg.data))

        sub = await nc.subscribe(inbox, cb=on_reply)
        await nc.publish(
            "$memphis_consumer_creations", json.dumps(consumer_req(name, **options)).encode(), reply=inbox
        )
        await eventually(has(replies, 1))  # type: ignore[arg-type]
        await settle(nc)  # a second reply, had there been one, is delivered by now
        await sub.unsubscribe()
        assert replies == [error.encode()]
    destroy = {
        "name": "ghost",
        "station_name": name,
        "username": "root",
        "connection_id": "x",
        "req_version": 1,
    }
    assert (
        await request(nc, "$memphis_consumer_destructions", destroy)
        == f"Consumer ghost at station {name} does not exist".encode()
    )


async def test_last_messages_is_per_partition(nc: Any, uid: Any) -> None:
    name = uid("lastn")
    await request(nc, "$memphis_station_creations", station_req(name, partitions_number=2))
    js = nc.jetstream()
    for _ in range(5):
        await js.publish(f"{name}$1.final", b"x")
    for _ in range(2):
        await js.publish(f"{name}$2.final", b"y")
    await request(nc, "$memphis_consumer_creations", consumer_req(name, "c", last_messages=3))
    c1 = await consumer_config(nc, f"{name}$1", "c")
    c2 = await consumer_config(nc, f"{name}$2", "c")
    assert (c1["deliver_policy"], c1["opt_start_seq"]) == ("by_start_sequence", 3)
    assert (c2["deliver_policy"], c2["opt_start_seq"]) == ("by_start_sequence", 1)
    await request(nc, "$memphis_consumer_creations", consumer_req(name, "s", start_consume_from_sequence=4))
    for p in (1, 2):
        config = await consumer_config(nc, f"{name}${p}", "s")
        assert (config["deliver_policy"], config["opt_start_seq"]) == ("by_start_sequence", 4)


async def test_joining_an_active_group_updates_ack_wait_and_max_deliver(nc: Any, uid: Any) -> None:
    name = uid("join")
    await request(nc, "$memphis_consumer_creations", consumer_req(name, "a", consumers_group="g"))
    req = consumer_req(
        name, "b", consumers_group="g", max_ack_time_ms=5000, max_msg_deliveries=7, last_messages=3
    )
    assert json.loads(await request(nc, "$memphis_consumer_creations", req))["error"] == ""
    config = await consumer_config(nc, f"{name}$1", "g")
    # Only what JetStream can edit changes; the group's start position stays (§5.5 step 3).
    assert (config["ack_wait"], config["max_deliver"], config["deliver_policy"]) == (5 * 10**9, 7, "all")


async def test_group_durable_kept_until_last_active_member_destroyed(nc: Any, uid: Any) -> None:
    name = uid("keep")
    for member in ("a", "b"):
        await request(nc, "$memphis_consumer_creations", consumer_req(name, member, consumers_group="g"))
    destroy = {
        "name": "a",
        "station_name": name,
        "username": "root",
        "connection_id": "conn-1",
        "req_version": 1,
    }
    assert await request(nc, "$memphis_consumer_destructions", destroy) == b""
    assert "error" not in await js_api(nc, f"CONSUMER.INFO.{name}$1.g")
    assert await request(nc, "$memphis_consumer_destructions", destroy | {"name": "b"}) == b""
    assert (await js_api(nc, f"CONSUMER.INFO.{name}$1.g"))["error"]["err_code"] == 10014


# -- schemas (§5.7 - §5.9) ----------------------------------------------------------------------------------


async def test_attach_and_detach_errors(nc: Any, uid: Any) -> None:
    station = uid("att")
    req = {"name": "nothing", "station_name": station, "username": "root"}
    assert (
        await request(nc, "$memphis_schema_attachments", req)
        == f"memphis: Station {station} does not exist".encode()
    )
    await request(nc, "$memphis_station_creations", station_req(station))
    assert await request(nc, "$memphis_schema_attachments", req) == b"Schema nothing does not exist"
    gone = uid("gone")
    reply = await request(nc, "$memphis_schema_detachments", {"station_name": gone, "username": "root"})
    assert reply == f"station {gone} does not exist".encode()


# -- robustness ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expect"),
    [
        ("$memphis_station_creations", "text"),
        ("$memphis_station_destructions", "text"),
        ("$memphis_producer_creations", "producer"),
        ("$memphis_producer_destructions", "text"),
        ("$memphis_consumer_creations", "text"),
        ("$memphis_consumer_destructions", "text"),
        ("$memphis_schema_creations", "schema"),
        ("$memphis_schema_attachments", "text"),
        ("$memphis_schema_detachments", "text"),
    ],
)
@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"name": 5, "station_name": []}', b"\xff\xfe"])
async def test_malformed_requests_get_an_error_reply(nc: Any, subject: str, expect: str, body: bytes) -> None:
    reply = await request(nc, subject, body)
    if expect == "text":
        assert reply and not reply.startswith(b"{"), reply
    elif expect == "producer":
        parsed = json.loads(reply)
        assert parsed["error"] and parsed["station_partitions_first_functions"] == {}
    else:
        assert json.loads(reply)["error"]


async def test_malformed_notifications_are_ignored(nc: Any, broker: Any, uid: Any) -> None:
    for subject in (
        "$memphis_schemaverse_dls",
        "$memphis_nacked_dls",
        "$memphis_pm_acks",
        "$memphis_notifications",
    ):
        for body in (b"garbage", b"[]", b'{"station_name": 1, "partition": "x", "id": null}'):
            await nc.publish(subject, body)
    # Still serving.
    assert await request(nc, "$memphis_station_creations", station_req(uid("alive"))) == b""


async def test_notification_keys_are_case_insensitive(nc: Any, broker: Any, uid: Any) -> None:
    """Go sends Title/Msg/Code/Type (§5.12)."""
    marker = uid("note")
    note = {"Title": "Schema validation has failed", "Msg": f"Station: {marker}", "Type": "x", "Code": "{}"}
    await nc.publish("$memphis_notifications", json.dumps(note).encode())

    async def seen() -> bool:
        async with broker.admin() as admin:
            return any(n["msg"] == f"Station: {marker}" for n in await admin.list_notifications())

    await eventually(seen)


async def test_requests_are_served_concurrently(nc: Any, uid: Any) -> None:
    names = [uid("many") for _ in range(40)]
    start = time.monotonic()
    replies = await asyncio.gather(
        *(request(nc, "$memphis_producer_creations", producer_req(n, partitions_number=1)) for n in names)
    )
    assert all(json.loads(r)["error"] == "" for r in replies)
    assert time.monotonic() - start < 10


async def test_functions_subject_is_never_used(nc: Any, uid: Any) -> None:
    """Functions are cloud-only (§5.17): an empty map in replies and nothing on the subject."""
    name = uid("fn")
    updates, sub = await collect(nc, f"$memphis_functions_updates_{name}")
    reply = json.loads(await request(nc, "$memphis_producer_creations", producer_req(name)))
    assert reply["station_partitions_first_functions"] == {}
    await settle(nc)  # anything the broker published before is delivered by now
    await sub.unsubscribe()
    assert updates == []


async def test_rejoining_a_group_whose_members_vanished_keeps_its_position(
    nc: Any, broker: Any, uid: Any
) -> None:
    """§13.18: re-creating a group with ``last_messages > 0`` while its durable still exists
    (every member disconnected without destroying) would make the real broker forward a
    JetStream error about a start position that cannot be edited. Here the group resumes where
    it was, and only ack wait / max deliveries are updated."""
    import nats as nats_client

    name = uid("rejoin")
    conn_id = "22222222-3333-4444-8555-666666666666"
    member = await nats_client.connect(**broker.nats_kwargs(), name=f"{conn_id}::root")
    try:
        await request(
            member,
            "$memphis_consumer_creations",
            consumer_req(name, "a", consumers_group="g", connection_id=conn_id),
        )
        js = nc.jetstream()
        for _ in range(5):
            await js.publish(f"{name}$1.final", b"x")
    finally:
        await member.close()

    async def inactive() -> bool:
        consumers = (await broker.list_clients(name))["consumers"]
        return bool(consumers) and not consumers[0]["active"]

    await eventually(inactive)
    req = consumer_req(name, "b", consumers_group="g", last_messages=2, max_msg_deliveries=4)
    assert json.loads(await request(nc, "$memphis_consumer_creations", req))["error"] == ""
    config = await consumer_config(nc, f"{name}$1", "g")
    assert (config["deliver_policy"], config["max_deliver"]) == ("all", 4)


async def test_metadata_lives_in_a_jetstream_kv_bucket(nc: Any, uid: Any) -> None:
    name = uid("kv")
    await request(nc, "$memphis_station_creations", station_req(name))
    kv = await nc.jetstream().key_value("memphis_broker")
    entry = await kv.get(f"station.{name}")  # names are escaped only outside [A-Za-z0-9_-]
    assert json.loads(entry.value)["name"] == name


async def test_schema_delete_detaches_everywhere(nc: Any, broker: Any, uid: Any) -> None:
    station, schema = uid("del"), uid("s")
    create = {"name": schema, "type": "json", "created_by_username": "root", "schema_content": "{}"}
    await request(nc, "$memphis_schema_creations", create)
    await request(nc, "$memphis_station_creations", station_req(station, schema_name=schema))
    updates, sub = await collect(nc, f"$memphis_schema_updates_{station}")
    async with broker.admin() as admin:
        assert await admin.delete_schema(schema) == [station]
    await eventually(has(updates, 1))
    await sub.unsubscribe()
    assert updates[0]["UpdateType"] == 2
    assert schema not in {s["name"] for s in await broker.list_schemas()}


def test_sync_helpers(broker: Any) -> None:
    assert isinstance(broker.list_dls_sync(), list)
    assert set(broker.list_clients_sync()) >= {"producers", "consumers", "connections"}
