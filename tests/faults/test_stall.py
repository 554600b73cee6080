"""A stalled link (no FIN, no reset) between the client and a real broker, through the suite's
proxy: paused (bytes held, delivered late) and blackholed (bytes read and dropped). Keepalive
finds it within about two ping intervals, the client reconnects once the route heals, and
every message is acknowledged or reported exactly once. A link that heals before keepalive
would notice costs nothing: no reconnect, no failure."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from faults_helpers import FAST_RECONNECT, Events, Ledger, NonblockingStream

from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

PING_S = 0.5


@pytest.mark.parametrize("with_id", [False, True], ids=["no-msg-id", "msg-id"])
@pytest.mark.parametrize("fault", ["pause", "blackhole"])
async def test_stalled_link_is_detected_and_recovered(
    broker: LocalBroker, connect: Any, proxy_factory: Any, uid: Any, results: Any, fault: str, with_id: bool
) -> None:
    proxy = await proxy_factory(broker.port)
    events = Events()
    conn = await connect(
        None,
        port=proxy.port,
        ping_interval_ms=int(PING_S * 1000),
        connection_event_callback=events,
        **FAST_RECONNECT,
    )
    stream = await NonblockingStream(Ledger(secrets.token_hex(4), with_msg_id=with_id), ack_wait=10).start(
        conn, uid("stall")
    )
    await stream.wait_acked(300)
    t_fault = time.monotonic()
    if fault == "pause":
        proxy.pause()
    else:
        proxy.blackhole()
    await events.wait("disconnected", timeout=10)
    detected = time.monotonic() - t_fault
    reason = events.details("disconnected")[-1]
    # Stay broken a moment longer: reconnect attempts meet the same dead route.
    await asyncio.sleep(1.0)
    attempts_while_broken = proxy.accepted - 1
    t_heal = time.monotonic()
    proxy.release()
    await events.wait("reconnected", timeout=15)
    reconnected = time.monotonic() - t_heal
    acked = stream.acked()
    await stream.wait_acked(acked + 300)
    assert stream.monitor is not None
    first_ack = stream.monitor.first_ack_after(t_heal)
    counts = await stream.finish(broker)
    figures = {
        **counts,
        "fault": fault,
        "msg_id": with_id,
        "ping_interval_s": PING_S,
        "detected_after_s": round(detected, 3),
        "disconnect_reason": reason,
        "reconnect_attempts_while_broken": attempts_while_broken,
        "reconnected_after_heal_s": round(reconnected, 3),
        "time_to_recover_s": round((first_ack or t_heal) - t_heal, 3),
        "bytes_dropped": proxy.bytes_dropped,
    }
    results(figures)
    assert reason == "stale connection", reason
    # Two unanswered PINGs one interval apart, then the check on the next tick (plus a
    # loaded machine's slack).
    assert detected < 3 * PING_S + 1.0, detected
    if with_id:
        # In flight when the link stalled: re-sent after the reconnect and de-duplicated.
        assert counts["reported"] == 0, counts
        assert counts["stored"] == counts["sent"], counts


async def test_link_that_heals_before_detection_costs_nothing(
    broker: LocalBroker, connect: Any, proxy_factory: Any, uid: Any, results: Any
) -> None:
    ping = 1.0
    proxy = await proxy_factory(broker.port)
    events = Events()
    conn = await connect(
        None,
        port=proxy.port,
        ping_interval_ms=int(ping * 1000),
        connection_event_callback=events,
        **FAST_RECONNECT,
    )
    stream = await NonblockingStream(Ledger(secrets.token_hex(4)), ack_wait=10).start(conn, uid("heal"))
    await stream.wait_acked(300)
    t_fault = time.monotonic()
    proxy.pause()
    await asyncio.sleep(0.6 * ping)  # well inside the two ping intervals keepalive allows
    stalled_acks = stream.acked()
    proxy.release()
    t_heal = time.monotonic()
    await stream.wait_acked(stalled_acks + 300)
    assert stream.monitor is not None
    first_ack = stream.monitor.first_ack_after(t_heal)
    counts = await stream.finish(broker)
    figures = {
        **counts,
        "fault": "pause (healed)",
        "stalled_s": round(t_heal - t_fault, 3),
        "ping_interval_s": ping,
        "disconnects": events.count("disconnected"),
        "time_to_recover_s": round((first_ack or t_heal) - t_heal, 3),
    }
    results(figures)
    assert events.count("disconnected") == 0 and events.count("reconnected") == 0, events.items
    assert proxy.accepted == 1
    assert counts["reported"] == 0 and counts["duplicates"] == 0, counts
    assert counts["acknowledged"] == counts["stored"] == counts["sent"], counts
