"""The validation failure path (docs/protocol.md §7.8): the message is not published; the schemaverse DLS
report (§5.13) goes out only when the station's ``schemaverse_to_dls`` flag is on (set by
``send_schema_failed_msg_to_dls`` and changed live by the operator); the notification (§5.12)
only when the cluster's ``send_notification`` flag is on, independently of the DLS flag; the
call raises ``MemphisSchemaError`` either way. Absence is checked by ordering, never by waiting:
see :class:`schema_e2e_helpers.Wiretap`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from schema_e2e_helpers import Wiretap, eventually, internal, stream_count, synced

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]

DLS = "$memphis_schemaverse_dls"
NOTIFICATIONS = "$memphis_notifications"
SCHEMA = json.dumps({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]})


async def _json_schema(conn: Any, uid: Any, schema_file: Any) -> str:
    name = uid("fail-path")
    await conn.create_schema(name, "json", schema_file(SCHEMA))
    return str(name)


async def _reject(producer: Any, message: Any, **kw: Any) -> mf.MemphisSchemaError:
    with pytest.raises(mf.MemphisSchemaError) as info:
        await producer.produce(message, **kw)
    return info.value


def _report_of(station: str) -> Any:
    return lambda body: body.get("station_name") == internal(station)


async def test_dls_report_follows_the_station_flag(
    broker: LocalBroker, connect: Any, nc: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    schema = await _json_schema(conn, uid, schema_file)
    off, on = uid("dls.off"), uid("dls.on")  # dotted: reports name the internal station
    await conn.station(off, schema_name=schema, send_schema_failed_msg_to_dls=False)
    await conn.station(on, schema_name=schema)  # send_schema_failed_msg_to_dls=True by default
    p_off = await conn.producer(off, "p")
    p_on = await conn.producer(on, "p")
    tap = await Wiretap.open(nc, DLS)
    try:
        await _reject(p_off, {"id": "off"})
        await _reject(p_off, {"id": "off"}, nonblocking=True)
        err = await _reject(p_on, {"id": "on"})
        seen = await tap.wait_for(DLS, _report_of(on))
        assert [body["station_name"] for _, body in seen] == [internal(on)]
        assert seen[0][1]["validation_error"] == str(err)

        # The operator flips both flags; the broker tells the clients (schemaverse_to_dls).
        async with broker.admin() as admin:
            await admin.set_dls_config(on, schemaverse=False)
            await admin.set_dls_config(off, schemaverse=True)
        await synced(conn)
        tap.items.clear()
        await _reject(p_on, {"id": "on again"})
        await _reject(p_off, {"id": "off now on"})
        seen = await tap.wait_for(DLS, _report_of(off))
        assert [body["station_name"] for _, body in seen] == [internal(off)]
        assert bytes.fromhex(seen[0][1]["message"]["data"]) == b'{"id":"off now on"}'

        # A batch: the invalid message is a "rejected" result, reported once; the others stored.
        tap.items.clear()
        results = await p_off.produce_batch([{"id": 1}, {"id": "batch"}, {"id": 2}])
        assert [r.kind for r in results] == ["stored", "rejected", "stored"]
        assert results[1].error is not None and "is not of type" in results[1].error
        seen = await tap.wait_for(DLS, _report_of(off))
        assert bytes.fromhex(seen[0][1]["message"]["data"]) == b'{"id":"batch"}'
    finally:
        await tap.close()

    (rec_on,) = await broker.list_dls(on, "schema")
    assert bytes.fromhex(rec_on["data"]) == b'{"id":"on"}'
    recs_off = await eventually(lambda: _n_records(broker, off, 2))
    assert [bytes.fromhex(r["data"]) for r in recs_off] == [b'{"id":"off now on"}', b'{"id":"batch"}']
    assert await stream_count(nc, on) == 0
    assert await stream_count(nc, off) == 2  # the two valid messages of the batch


async def _n_records(broker: LocalBroker, station: str, n: int) -> list[dict[str, Any]] | None:
    records = await broker.list_dls(station, "schema")
    assert len(records) <= n, records
    return records if len(records) == n else None


async def test_notification_follows_the_cluster_flag(
    broker: LocalBroker, connect: Any, nc: Any, uid: Any, schema_file: Any
) -> None:
    conn = await connect()
    schema = await _json_schema(conn, uid, schema_file)
    station = uid("notify")
    # The DLS flag is off: notifications do not depend on it (memphis-py, docs/protocol.md §7.8).
    await conn.station(station, schema_name=schema, send_schema_failed_msg_to_dls=False)
    producer = await conn.producer(station, "p")
    tap = await Wiretap.open(nc, DLS, NOTIFICATIONS)
    admin = broker.admin()
    await admin.connect()
    try:
        await _reject(producer, {"id": "quiet"})  # notifications are off: nothing is sent
        await admin.set_notifications(True)
        await synced(conn)
        err = await _reject(producer, b'{"id": "loud"}')
        seen = await tap.wait_for(NOTIFICATIONS, lambda body: station in body.get("msg", ""))
        # Nothing before it: no notification for the first failure, no DLS report for either.
        assert [s for s, _ in seen] == [NOTIFICATIONS]
        expected = {
            "title": "Schema validation has failed",
            "msg": f"Station: {station}\nProducer: p\nError:{err}",
            "type": "schema_validation_fail_alert",
            "code": '{"id": "loud"}',
        }
        assert seen[0][1] == expected
        # The broker kept it (it has no Slack: `notifications list`).
        notes = await admin.list_notifications()
        mine = [n for n in notes if station in n["msg"]]
        assert [{k: n[k] for k in expected} for n in mine] == [expected]

        # Off again: the next failure is silent; a report from another station proves it.
        await admin.set_notifications(False)
        await synced(conn)
        tap.items.clear()
        marker = uid("marker")
        await conn.station(marker, schema_name=schema)
        marker_producer = await conn.producer(marker, "p")
        await _reject(producer, {"id": "quiet again"})
        await _reject(marker_producer, {"id": "marker"})
        seen = await tap.wait_for(DLS, _report_of(marker))
        assert [s for s, _ in seen] == [DLS]
    finally:
        await admin.set_notifications(False)
        await admin.close()
        await tap.close()
    assert await broker.list_dls(station) == []
    assert await stream_count(nc, station) == 0
