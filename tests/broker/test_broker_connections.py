"""Connection tracking (docs/protocol.md §2.9, §5.5, §5.6): producers and consumers belong to a connection.

When a client goes away without closing, nats-server reports the disconnect ($SYS events in
password mode, /connz in token mode) and its registrations become inactive at once; they are
dropped after ``inactive_ttl`` (a reconnect within it reclaims them). A group's durable is
removed when its last *active* member is destroyed, or when the registrations of a group whose
members all vanished expire, so a crashed client never pins a group forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_helpers import ClientLib, R, eventually, js_api

from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]

CLIENT_SCRIPT = Path(__file__).with_name("broker_client_process.py")


@contextlib.asynccontextmanager
async def client_process(
    client_lib: ClientLib, b: LocalBroker, station: str, group: str
) -> AsyncIterator[tuple[Any, str]]:
    spec = {"client": client_lib.name, "connect": b.connect_kwargs(), "station": station, "group": group}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT_SCRIPT),
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            assert proc.stderr is not None
            raise AssertionError((await proc.stderr.read()).decode())
        yield proc, json.loads(line)["connection_id"]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def states(clients: dict[str, Any], conn_id: str) -> list[tuple[str, bool]]:
    regs = [*clients["producers"], *clients["consumers"]]
    return sorted((r["name"], r["active"]) for r in regs if r["connection_id"] == conn_id)


async def test_killed_client_registrations_become_inactive(
    client_lib: ClientLib, connect: Any, nc: Any, broker: LocalBroker, uid: Any
) -> None:
    station = uid("killed")
    async with client_process(client_lib, broker, station, "workers") as (proc, conn_id):
        clients = await broker.list_clients(station)
        assert states(clients, conn_id) == [("doomed-consumer", True), ("doomed-producer", True)]
        assert conn_id in clients["connections"]
        proc.send_signal(signal.SIGKILL)  # no close(), no destroy()
        await proc.wait()

        async def inactive() -> bool:
            got = states(await broker.list_clients(station), conn_id)
            return got == [("doomed-consumer", False), ("doomed-producer", False)]

        await eventually(inactive)
    # The crashed member does not count as active: the group's position survives for a while...
    assert "error" not in await js_api(nc, f"CONSUMER.INFO.{station}$1.workers")
    # ...and the next member to leave takes the durable with it.
    conn = await connect()
    consumer = await conn.consumer(station, "survivor", consumer_group="workers", timeout_retries=R)
    await consumer.destroy(timeout_retries=R)
    assert (await js_api(nc, f"CONSUMER.INFO.{station}$1.workers"))["error"]["err_code"] == 10014


@pytest.fixture(scope="module")
def short_ttl_broker() -> Iterator[LocalBroker]:
    with LocalBroker(inactive_ttl=0.5, memory=True) as b:
        yield b


async def test_killed_client_registrations_expire_and_free_the_group(
    client_lib: ClientLib, short_ttl_broker: LocalBroker, uid: Any
) -> None:
    b = short_ttl_broker
    station = uid("expired")
    import nats

    nc = await nats.connect(**b.nats_kwargs())
    try:
        async with client_process(client_lib, b, station, "workers") as (proc, conn_id):
            assert len(states(await b.list_clients(station), conn_id)) == 2
            proc.kill()
            await proc.wait()

            async def gone() -> bool:
                return states(await b.list_clients(station), conn_id) == []

            await eventually(gone)

        # All members vanished and expired: the group is gone too, nothing pins it.
        async def durable_gone() -> bool:
            info = await js_api(nc, f"CONSUMER.INFO.{station}$1.workers")
            return info.get("error", {}).get("err_code") == 10014

        await eventually(durable_gone)
    finally:
        await nc.close()


async def test_registration_for_a_vanished_connection_is_inactive(
    nc: Any, broker: LocalBroker, uid: Any
) -> None:
    """A request can arrive after its connection's DISCONNECT event (the client died meanwhile)."""
    station = uid("late")
    fake_id = "11111111-2222-4333-8444-555555555555"
    import nats

    doomed = await nats.connect(**broker.nats_kwargs(), name=f"{fake_id}::root")
    await doomed.close()

    async def dead() -> bool:
        return fake_id not in (await broker.list_clients())["connections"]

    await eventually(dead)
    req = {
        "name": "late",
        "station_name": station,
        "connection_id": fake_id,
        "producer_type": "application",
        "req_version": 4,
        "username": "root",
        "app_id": "a",
        "sdk_lang": "python",
    }
    reply = await nc.request("$memphis_producer_creations", json.dumps(req).encode(), timeout=10)
    assert json.loads(reply.data)["error"] == ""
    assert states(await broker.list_clients(station), fake_id) == [("late", False)]
