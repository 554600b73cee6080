"""JetStream publishes against a real nats-server, each outcome checked: stored with its
sequence, duplicate by message id, refused for a missing stream or a failed expectation;
unawaited publishes report failures only; batches; ``close()`` drains in-flight publishes."""

from __future__ import annotations

import asyncio
import base64

import pytest
from wire_helpers import Connect, create_stream, ms, stream_info, stream_msg

from memphis_fast import _core
from memphis_fast._connection import OutcomeKind, OutcomeReason, ProduceResult
from memphis_fast._server import NatsServer

pytestmark = pytest.mark.timeout(30)

LINES = _core.encode_header_lines({"$memphis_producedBy": "p1", "$memphis_connectionId": "c1"})


async def test_stored_duplicate_and_missing_stream(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "orders#eu$1", ["orders#eu$1.>"])
    g = conn.new_group("orders")
    outs = [
        await conn.publish_awaited("orders#eu$1.final", f"m{i}".encode(), g, i, ms(5), LINES)
        for i in range(3)
    ]
    assert [(o.index, o.kind, o.reason, o.stream, o.sequence, o.duplicate) for o in outs] == [
        (0, OutcomeKind.STORED, OutcomeReason.NONE, "orders#eu$1", 1, False),
        (1, OutcomeKind.STORED, OutcomeReason.NONE, "orders#eu$1", 2, False),
        (2, OutcomeKind.STORED, OutcomeReason.NONE, "orders#eu$1", 3, False),
    ]
    assert all(o.stored and o.msg_id is None and o.error is None for o in outs)
    assert all((o.code, o.err_code) == (0, 0) for o in outs)
    assert all(o.station == "orders" for o in outs), "the group's label names the station"

    first = await conn.publish_awaited("orders#eu$1.final", b"once", g, 10, ms(5), LINES, msg_id="order-17")
    again = await conn.publish_awaited("orders#eu$1.final", b"once", g, 11, ms(5), LINES, msg_id="order-17")
    assert (first.index, first.kind, first.sequence, first.duplicate) == (10, OutcomeKind.STORED, 4, False)
    assert (again.index, again.kind, again.sequence, again.duplicate) == (11, OutcomeKind.STORED, 4, True), (
        "duplicate: same sequence, flagged"
    )
    assert first.msg_id == again.msg_id == "order-17"
    info = await stream_info(conn, "orders#eu$1")
    assert info["state"]["messages"] == 4

    # The stored message carries both de-duplication headers (spec 7.4) and the producer's.
    stored = await stream_msg(conn, "orders#eu$1", 4)
    hdrs = base64.b64decode(stored["message"]["hdrs"])
    assert hdrs == (
        b"NATS/1.0\r\n$memphis_producedBy: p1\r\n$memphis_connectionId: c1\r\n"
        b"msg-id: order-17\r\nNats-Msg-Id: order-17\r\n\r\n"
    )
    assert base64.b64decode(stored["message"]["data"]) == b"once"

    missing = await conn.publish_awaited("nostream.final", b"x", g, 20, ms(5), LINES)
    assert (missing.index, missing.kind, missing.reason, missing.code) == (
        20,
        OutcomeKind.NOT_STORED,
        OutcomeReason.NO_RESPONDERS,
        503,
    )
    assert not missing.stored and missing.sequence is None
    assert "no responders" in (missing.error or "")
    stats = conn.core.group_stats(g)
    assert stats == {
        "inflight": 0,
        "inflight_bytes": 0,
        "published": 6,
        "acked": 5,
        "failed": 1,
        "retried": 0,
    }


async def test_api_error_is_reported_with_its_codes(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "s1", ["s1.>"], storage="memory")
    g = conn.new_group()
    out = await conn.publish_awaited(
        "s1.a", b"x", g, 0, ms(5), None, headers={"Nats-Expected-Stream": "other"}
    )
    assert (out.kind, out.reason) == (OutcomeKind.NOT_STORED, OutcomeReason.JETSTREAM_ERROR), out
    assert out.code == 400 and out.err_code == 10060, out  # JSStreamNotMatchErr
    assert "stream" in (out.error or "").lower()
    out = await conn.publish_awaited(
        "s1.a", b"x", g, 1, ms(5), None, headers={"Nats-Expected-Last-Sequence": "99"}
    )
    assert (out.index, out.kind, out.code, out.err_code) == (1, OutcomeKind.NOT_STORED, 400, 10071), out


async def test_unawaited_publishes_report_only_failures(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "s2", ["s2.>"], storage="memory")
    g = conn.new_group("s2")
    failures: list[ProduceResult] = []
    conn.set_failure_handler(g, failures.append)
    for i in range(100):
        assert conn.publish_windowed("s2.a", b"ok", g, i, ms(5), LINES, None, None, 0, 0)
    assert conn.publish_windowed("gone.a", b"lost", g, 100, ms(5), LINES, None, "m-100", 0, 0)
    assert conn.publish_windowed("gone.a", b"lost", g, 101, ms(5), LINES, None, None, 0, 0)
    assert await conn.wait_group_drained(g, 5)
    assert sorted((r.index, r.kind, r.reason, r.code, r.msg_id, r.station) for r in failures) == [
        (100, OutcomeKind.NOT_STORED, OutcomeReason.NO_RESPONDERS, 503, "m-100", "s2"),
        (101, OutcomeKind.NOT_STORED, OutcomeReason.NO_RESPONDERS, 503, None, "s2"),
    ]
    assert (await stream_info(conn, "s2"))["state"]["messages"] == 100
    assert conn.core.group_stats(g)["acked"] == 100


async def test_windowed_publish_respects_the_window(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "w1", ["w1.>"], storage="memory")
    g = conn.new_group()
    failures: list[ProduceResult] = []
    conn.set_failure_handler(g, failures.append)
    # Refused when the group already has max_inflight messages in flight: nothing sent.
    sent = [conn.publish_windowed("w1.a", b"x", g, i, ms(5), None, None, None, 3, 0) for i in range(5)]
    assert sent == [True, True, True, False, False]
    assert conn.group_inflight(g) == 3
    assert await conn.wait_group_drained(g, 5)
    assert conn.group_inflight(g) == 0
    # The window has room again once they were acknowledged.
    assert conn.publish_windowed("w1.a", b"x", g, 5, ms(5), None, None, None, 3, 0)
    assert await conn.wait_group_drained(g, 5)
    # A byte window: refused once the group has max_inflight_bytes in flight.
    sent = [
        conn.publish_windowed("w1.a", b"y" * 600, g, i, ms(5), None, None, None, 0, 1000) for i in range(6, 9)
    ]
    assert sent == [True, True, False]
    assert conn.core.group_inflight(g)[0] == 2 and conn.core.group_inflight(g)[1] >= 1200
    assert await conn.wait_group_drained(g, 5)
    assert failures == []
    assert conn.core.group_stats(g)["published"] == conn.core.group_stats(g)["acked"] == 6, (
        "refused = not sent"
    )
    assert (await stream_info(conn, "w1"))["state"]["messages"] == 6


async def test_ack_timeout_is_unknown(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    # A plain subscriber that never answers stands in for a stalled stream.
    conn.subscribe("slow.a", lambda msgs: None)
    await conn.flush()
    g = conn.new_group()
    out = await conn.publish_awaited("slow.a", b"x", g, 7, ms(0.2))
    assert (out.index, out.kind, out.reason) == (7, OutcomeKind.UNKNOWN, OutcomeReason.ACK_TIMEOUT)
    assert not out.stored
    assert "acknowledgement" in (out.error or "")


async def test_batch_outcomes_in_order(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "b1", ["b1.>"], storage="memory")
    g = conn.new_group()
    payloads = [f"p{i}".encode() for i in range(500)]
    ids: list[str | None] = [f"id-{i}" if i % 2 else None for i in range(500)]
    outs = await conn.publish_batch("b1.x", payloads, g, ms(5), LINES, ids)
    assert [o.index for o in outs] == list(range(500))
    assert [o.msg_id for o in outs] == ids
    assert [o.sequence for o in outs] == list(range(1, 501))
    assert all(o.stored and o.kind == "stored" and o.stream == "b1" and not o.duplicate for o in outs)
    # The same ids again: the odd ones are duplicates, the others new.
    outs = await conn.publish_batch("b1.x", payloads, g, ms(5), LINES, ids, base_index=500)
    assert [o.duplicate for o in outs] == [bool(i % 2) for i in range(500)]
    assert [o.index for o in outs] == list(range(500, 1000))
    # A rejected entry does not stop the others.
    outs = await conn.publish_batch("b1.x", [b"a", "not bytes", b"c"], g, ms(5))
    assert outs[1].kind == "rejected" and "bytes-like" in (outs[1].error or "")
    assert outs[1].reason == OutcomeReason.REJECTED and not outs[1].stored
    assert outs[0].stored and outs[2].stored


async def test_close_waits_for_inflight_publishes(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "d1", ["d1.>"])
    g = conn.new_group()
    failures: list[ProduceResult] = []
    conn.set_failure_handler(g, failures.append)
    n = 20_000
    for i in range(n):
        assert conn.publish_windowed("d1.x", b"x" * 64, g, i, ms(10), LINES, None, None, 0, 0)
    assert conn.core.inflight == n
    waiter = asyncio.ensure_future(conn.publish_awaited("d1.x", b"last", g, n, ms(10), LINES))
    await asyncio.sleep(0)  # let it register
    await conn.close()
    assert failures == [], "nothing was cut short"
    last = await waiter
    assert last.kind == OutcomeKind.STORED and last.sequence == n + 1
    assert conn.core.group_stats(g)["acked"] == n + 1
    check = await connect(nats_server)
    assert (await stream_info(check, "d1"))["state"]["messages"] == n + 1


async def test_close_with_timeout_ends_what_is_left(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    conn.subscribe("never.a", lambda msgs: None)  # swallows publishes, never acks
    await conn.flush()
    g = conn.new_group()
    waiter = asyncio.ensure_future(conn.publish_awaited("never.a", b"x", g, 0, ms(30)))
    await asyncio.sleep(0.05)
    await conn.close(timeout=0.2)
    out = await waiter
    assert (out.kind, out.reason) == (OutcomeKind.UNKNOWN, OutcomeReason.CONNECTION_LOST), out
    assert "lost" in (out.error or "")
