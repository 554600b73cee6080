"""A hostile server: garbage, a control line that never ends, absurd sizes, no INFO at all, a
close in the middle of a frame, a server that goes silent after the handshake; first as the
only server a client connects to, then taking over a live link (through the suite's proxy)
while a producer is producing to a real broker, and as bytes injected into a live link.

Never a crash, a hang or unbounded memory; the client reconnects; every message is
acknowledged or reported exactly once, nothing acknowledged is lost, nothing is stored twice."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from faults_helpers import FAST_RECONNECT, Events, Ledger, NonblockingStream, rss_bytes

from memphis_fast.broker import LocalBroker
from memphis_fast.exceptions import MemphisConnectError
from memphis_fast.testing.fakeserver import Behaviour

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

HOSTILE: list[Behaviour] = [
    "garbage",
    "endless_line",
    "absurd_size",
    "absurd_info",
    "no_info",
    "close_mid_frame",
    "silent_after_handshake",
]
#: a hostile server may cost some memory (a receive buffer up to the limits), never a lot
RSS_BUDGET = 96 * 1024 * 1024
PING_MS = 500


@pytest.mark.parametrize("behaviour", HOSTILE)
async def test_connect_to_a_hostile_server(
    hostile: Any, connect: Any, results: Any, behaviour: Behaviour
) -> None:
    srv = await hostile(behaviour)
    events = Events()
    rss0 = rss_bytes()
    t0 = time.monotonic()
    error = None
    conn = None
    try:
        conn = await asyncio.wait_for(
            connect(
                None,
                host="127.0.0.1",
                port=srv.port,
                ping_interval_ms=PING_MS,
                connection_event_callback=events,
                **FAST_RECONNECT,
            ),
            15,
        )
    except MemphisConnectError as exc:
        error = str(exc)
    connect_s = time.monotonic() - t0
    if conn is not None:
        # The handshake passed; the fault comes right after it and drops the connection.
        await events.wait("disconnected", timeout=10)
    dropped_s = time.monotonic() - t0
    # A few more rounds against the same server: nothing accumulates.
    await asyncio.sleep(1.0)
    growth = rss_bytes() - rss0
    if conn is not None:
        t_close = time.monotonic()
        # close() drains: against a server that never answers, its last PING waits out the
        # drain timeout (10 s); bounded, never a hang.
        await asyncio.wait_for(conn.close(), 15)
        close_s = time.monotonic() - t_close
    else:
        close_s = 0.0
    results(
        {
            "behaviour": behaviour,
            "connected": conn is not None,
            "error": error,
            "connect_s": round(connect_s, 3),
            "dropped_after_s": round(dropped_s, 3),
            "disconnect_reasons": sorted({str(d) for d in events.details("disconnected")}),
            "attempts": srv.connections,
            "bytes_sent_by_server": srv.sent,
            "rss_growth_bytes": growth,
            "close_s": round(close_s, 3),
        }
    )
    if behaviour == "no_info":
        assert error is not None and connect_s < 5, (error, connect_s)
    else:
        assert srv.handshakes >= 1 or error is not None
        assert dropped_s < 8, dropped_s
    assert growth < RSS_BUDGET, f"RSS grew {growth / 2**20:.1f} MiB"
    assert close_s < 12, close_s


async def _takeover(
    broker: LocalBroker,
    connect: Any,
    proxy_factory: Any,
    hostile: Any,
    uid: Any,
    behaviour: Behaviour,
    with_id: bool,
) -> dict[str, Any]:
    srv = await hostile(behaviour)
    proxy = await proxy_factory(broker.port)
    events = Events()
    conn = await connect(
        None, port=proxy.port, ping_interval_ms=PING_MS, connection_event_callback=events, **FAST_RECONNECT
    )
    stream = await NonblockingStream(Ledger(secrets.token_hex(4), with_msg_id=with_id), ack_wait=15).start(
        conn, uid("hostile")
    )
    await stream.wait_acked(300)
    rss0 = rss_bytes()
    # The route now leads to the impostor; the live link breaks.
    proxy.retarget(srv.port)
    t_fault = time.monotonic()
    proxy.cut()
    await events.wait("disconnected", timeout=10)
    # Let the client meet the impostor a few times.
    deadline = time.monotonic() + 8
    while srv.connections < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    growth = rss_bytes() - rss0
    attempts = srv.connections
    proxy.retarget(broker.port)
    proxy.cut()
    t_heal = time.monotonic()
    acked = stream.acked()
    await stream.wait_acked(acked + 300, timeout=30)
    assert stream.monitor is not None
    first_ack = stream.monitor.first_ack_after(t_heal)
    counts = await stream.finish(broker)
    return {
        **counts,
        "behaviour": behaviour,
        "msg_id": with_id,
        "hostile_attempts": attempts,
        "hostile_handshakes": srv.handshakes,
        "hostile_s": round(t_heal - t_fault, 3),
        "disconnect_reasons": sorted({str(d) for d in events.details("disconnected")}),
        "rss_growth_bytes": growth,
        "time_to_recover_s": round((first_ack or t_heal) - t_heal, 3),
    }


@pytest.mark.parametrize("behaviour", HOSTILE)
async def test_hostile_server_takes_over_a_live_link(
    broker: LocalBroker,
    connect: Any,
    proxy_factory: Any,
    hostile: Any,
    uid: Any,
    results: Any,
    behaviour: Behaviour,
) -> None:
    figures = await _takeover(broker, connect, proxy_factory, hostile, uid, behaviour, with_id=True)
    results(figures)
    assert figures["hostile_attempts"] >= 1
    assert figures["rss_growth_bytes"] < RSS_BUDGET, figures
    # With msg_id and an ack wait longer than the outage nothing needs reporting: what the
    # impostor swallowed is re-sent to the real broker and de-duplicated there.
    assert figures["reported"] == 0, figures
    assert figures["stored"] == figures["sent"], figures


async def test_hostile_server_takeover_without_msg_id(
    broker: LocalBroker, connect: Any, proxy_factory: Any, hostile: Any, uid: Any, results: Any
) -> None:
    figures = await _takeover(broker, connect, proxy_factory, hostile, uid, "garbage", with_id=False)
    results(figures)
    assert figures["rss_growth_bytes"] < RSS_BUDGET, figures


INJECT = {
    "garbage": b"\x00\xffNOT NATS AT ALL\r\n",
    "absurd_size": b"MSG x 1 99999999999\r\n",
    "bad_header_size": b"HMSG x 1 100 10\r\n",
}


@pytest.mark.parametrize("with_id", [False, True], ids=["no-msg-id", "msg-id"])
@pytest.mark.parametrize("injected", sorted(INJECT))
async def test_bytes_injected_into_a_live_link(
    broker: LocalBroker,
    connect: Any,
    proxy_factory: Any,
    uid: Any,
    results: Any,
    injected: str,
    with_id: bool,
) -> None:
    proxy = await proxy_factory(broker.port)
    events = Events()
    conn = await connect(None, port=proxy.port, connection_event_callback=events, **FAST_RECONNECT)
    stream = await NonblockingStream(Ledger(secrets.token_hex(4), with_msg_id=with_id), ack_wait=15).start(
        conn, uid("inject")
    )
    await stream.wait_acked(300)
    t0 = time.monotonic()
    assert proxy.inject(INJECT[injected]) == 1
    await events.wait("disconnected", timeout=10)
    detected = time.monotonic() - t0
    await events.wait("reconnected", timeout=15)
    reconnected = time.monotonic() - t0
    acked = stream.acked()
    await stream.wait_acked(acked + 300)
    counts = await stream.finish(broker)
    reason = events.details("disconnected")[0]
    results(
        {
            **counts,
            "injected": injected,
            "msg_id": with_id,
            "disconnect_reason": reason,
            "detected_after_s": round(detected, 3),
            "time_to_recover_s": round(reconnected, 3),
        }
    )
    assert "protocol error" in str(reason), reason
    assert detected < 2, detected
    if with_id:
        assert counts["reported"] == 0 and counts["stored"] == counts["sent"], counts
