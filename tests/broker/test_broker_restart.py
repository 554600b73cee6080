"""Restarting the broker on the same data directory keeps stations, schemas, DLS records,
registrations, consumer-group positions and the messages of file-storage stations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats
import pytest
from broker_helpers import ClientLib, R, data, eventually, fetch_n, js_api

from memphis_fast.broker import BrokerStartError, LocalBroker

pytestmark = [pytest.mark.timeout(90)]


async def test_restart_keeps_everything(
    client_lib: ClientLib, connect: Any, uid: Any, tmp_path: Path
) -> None:
    b = LocalBroker(data_dir=tmp_path / "data")
    b.start()
    try:
        conn = await connect(b)
        disk, mem, schema = uid("disk"), uid("mem"), uid("schema")
        schema_file = tmp_path / "s.json"
        schema_file.write_text(json.dumps({"type": "object", "required": ["id"]}))
        await conn.create_schema(schema, "json", str(schema_file), timeout_retries=R)
        schema_file.write_text(json.dumps({"type": "object", "required": ["id", "name"]}))
        await conn.create_schema(schema, "json", str(schema_file), timeout_retries=R)
        await conn.station(
            disk,
            partitions_number=2,
            retention_type=client_lib.Retention.MESSAGES,
            retention_value=1000,
            timeout_retries=R,
        )
        await conn.station(mem, storage_type=client_lib.Storage.MEMORY, timeout_retries=R)
        producer = await conn.producer(disk, "p", timeout_retries=R)
        for i in range(6):
            await producer.produce(bytearray(f"d{i}".encode()), producer_partition_number=1)
        mem_producer = await conn.producer(mem, "p", timeout_retries=R)
        await mem_producer.produce(bytearray(b"volatile"))
        group = await conn.consumer(disk, "worker", consumer_group="g", timeout_retries=R)
        assert data(await fetch_n(group, 2, consumer_partition_number=1)) == [b"d0", b"d1"]
        await conn.enforce_schema(schema, disk, timeout_retries=R)
        nc = await nats.connect(**b.nats_kwargs())
        nacked = {"station_name": disk, "error": "bad", "partition": 1, "cg_name": "g", "seq": 3}
        await nc.publish("$memphis_nacked_dls", json.dumps(nacked).encode())

        async def acks_recorded() -> bool:
            # An ack is fire-and-forget: the group's position can only survive a restart once
            # the server has recorded it (a CI run restarted before it had, and got d0 again).
            info = await js_api(nc, f"CONSUMER.INFO.{disk}$1.g")
            return bool(info.get("ack_floor", {}).get("stream_seq", 0) >= 2)

        await eventually(acks_recorded)
        await nc.close()
        (record,) = await eventually(lambda: b.list_dls(disk))
        before = {
            "stations": await b.list_stations(),
            "schemas": await b.list_schemas(),
            "dls": await b.list_dls(),
        }

        b.restart()

        after = {
            "stations": await b.list_stations(),
            "schemas": await b.list_schemas(),
            "dls": await b.list_dls(),
        }
        assert after == before

        # The old client reconnects (same connection id) and its registrations are active again.
        async def reactivated() -> bool:
            clients = await b.list_clients(disk)
            return all(r["active"] for r in clients["producers"] + clients["consumers"])

        await eventually(reactivated, timeout=20)

        fresh = await connect(b)
        # The group's position survived: the two acked messages are not delivered again.
        rejoin = await fresh.consumer(disk, "worker-2", consumer_group="g", timeout_retries=R)
        assert data(await fetch_n(rejoin, 4, consumer_partition_number=1)) == [b"d2", b"d3", b"d4", b"d5"]
        newcomer = await fresh.consumer(disk, "reader", consumer_group="new", timeout_retries=R)
        assert len(await fetch_n(newcomer, 6, consumer_partition_number=1)) == 6
        nc = await nats.connect(**b.nats_kwargs())
        try:
            # The memory station is still there (recreated empty): its messages are gone.
            info = await js_api(nc, f"STREAM.INFO.{mem}$1")
            assert info["config"]["storage"] == "memory" and info["state"]["messages"] == 0
            assert (await js_api(nc, f"STREAM.INFO.{disk}$1"))["config"]["max_msgs"] == 1000
        finally:
            await nc.close()
        assert record["id"] in {r["id"] for r in await b.list_dls(disk)}

        # A crash (SIGKILL of the broker; its nats-server dies with it) loses nothing either.
        b.kill()
        b.start()
        assert await b.list_stations() == after["stations"]
        assert await b.list_schemas() == after["schemas"]
        # DLS record ids keep counting after a restart.
        nc = await nats.connect(**b.nats_kwargs())
        await nc.publish("$memphis_nacked_dls", json.dumps(nacked | {"seq": 4}).encode())
        await nc.close()

        async def two_records() -> list[dict[str, Any]] | None:
            recs = await b.list_dls(disk)
            return recs if len(recs) == 2 else None

        recs = await eventually(two_records)
        assert recs[1]["id"] > recs[0]["id"] == record["id"]
    finally:
        b.cleanup()


def test_data_dir_is_locked(tmp_path: Path) -> None:
    with LocalBroker(data_dir=tmp_path / "shared"):
        second = LocalBroker(data_dir=tmp_path / "shared")
        with pytest.raises(BrokerStartError, match="is in use by another memphis-fast broker"):
            second.start()
        second.cleanup()
