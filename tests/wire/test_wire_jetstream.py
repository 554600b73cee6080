"""JetStream publishes against a real nats-server, each outcome checked: stored with its
sequence, duplicate by message id, refused for a missing stream or a failed expectation;
unawaited publishes report failures only; batches; ``close()`` drains in-flight publishes."""

from __future__ import annotations

import asyncio
import base64

import pytest
from wire_helpers import Connect, create_stream, stream_info, stream_msg

from memphis_fast import _core
from memphis_fast._server import NatsServer

pytestmark = pytest.mark.timeout(30)

K_STORED, K_NOT_STORED, K_UNKNOWN, K_NOT_SENT = (
    _core.K_STORED,
    _core.K_NOT_STORED,
    _core.K_UNKNOWN,
    _core.K_NOT_SENT,
)
LINES = _core.encode_header_lines({"$memphis_producedBy": "p1", "$memphis_connectionId": "c1"})


async def test_stored_duplicate_and_missing_stream(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "orders#eu$1", ["orders#eu$1.>"])
    g = conn.new_group()
    outs = [
        await conn.js_publish_wait("orders#eu$1.final", f"m{i}".encode(), g, i, 5, LINES) for i in range(3)
    ]
    # (id, tag, kind, stream_or_reason, seq, duplicate, code, err_code)
    assert [(o[1], o[2], o[3], o[4], o[5]) for o in outs] == [
        (0, K_STORED, "orders#eu$1", 1, False),
        (1, K_STORED, "orders#eu$1", 2, False),
        (2, K_STORED, "orders#eu$1", 3, False),
    ]
    assert len({o[0] for o in outs}) == 3, "every publish has its own id"

    first = await conn.js_publish_wait("orders#eu$1.final", b"once", g, 10, 5, LINES, msg_id="order-17")
    again = await conn.js_publish_wait("orders#eu$1.final", b"once", g, 11, 5, LINES, msg_id="order-17")
    assert (first[2], first[4], first[5]) == (K_STORED, 4, False)
    assert (again[2], again[4], again[5]) == (K_STORED, 4, True), "duplicate: same sequence, flagged"
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

    missing = await conn.js_publish_wait("nostream.final", b"x", g, 20, 5, LINES)
    assert (missing[1], missing[2], missing[6]) == (20, K_NOT_STORED, 503)
    assert "no responders" in missing[3]
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
    out = await conn.js_publish_wait("s1.a", b"x", g, 0, 5, None, headers={"Nats-Expected-Stream": "other"})
    assert out[2] == K_NOT_STORED
    assert out[6] == 400 and out[7] == 10060, out  # JSStreamNotMatchErr
    assert "stream" in out[3].lower()
    out = await conn.js_publish_wait(
        "s1.a", b"x", g, 1, 5, None, headers={"Nats-Expected-Last-Sequence": "99"}
    )
    assert (out[2], out[6], out[7]) == (K_NOT_STORED, 400, 10071), out  # wrong last sequence


async def test_unawaited_publishes_report_only_failures(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "s2", ["s2.>"], storage="memory")
    g = conn.new_group()
    failures: list[tuple[tuple[object, ...], str | None]] = []
    conn.set_failure_handler(g, lambda t, mid: failures.append((t, mid)))
    for i in range(100):
        conn.js_publish("s2.a", b"ok", g, i, 5, LINES)
    conn.js_publish("gone.a", b"lost", g, 100, 5, LINES, msg_id="m-100")
    conn.js_publish("gone.a", b"lost", g, 101, 5, LINES)
    assert await conn.wait_group_drained(g, 5)
    assert sorted((t[1], t[2], t[6], mid) for t, mid in failures) == [
        (100, K_NOT_STORED, 503, "m-100"),
        (101, K_NOT_STORED, 503, None),
    ]
    assert (await stream_info(conn, "s2"))["state"]["messages"] == 100
    assert conn.core.group_stats(g)["acked"] == 100


async def test_ack_timeout_is_unknown(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    # A plain subscriber that never answers stands in for a stalled stream.
    conn.subscribe("slow.a", lambda msgs: None)
    await conn.flush()
    g = conn.new_group()
    out = await conn.js_publish_wait("slow.a", b"x", g, 7, 0.2)
    assert (out[1], out[2]) == (7, K_UNKNOWN)
    assert "acknowledgement" in out[3]


async def test_batch_outcomes_in_order(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "b1", ["b1.>"], storage="memory")
    g = conn.new_group()
    payloads = [f"p{i}".encode() for i in range(500)]
    ids: list[str | None] = [f"id-{i}" if i % 2 else None for i in range(500)]
    outs = await conn.js_publish_batch("b1.x", payloads, g, 5, LINES, ids)
    assert [o.index for o in outs] == list(range(500))
    assert [o.msg_id for o in outs] == ids
    assert [o.sequence for o in outs] == list(range(1, 501))
    assert all(o.stored and o.kind == "stored" and o.stream == "b1" and not o.duplicate for o in outs)
    # The same ids again: the odd ones are duplicates, the others new.
    outs = await conn.js_publish_batch("b1.x", payloads, g, 5, LINES, ids, base_index=500)
    assert [o.duplicate for o in outs] == [bool(i % 2) for i in range(500)]
    assert [o.index for o in outs] == list(range(500, 1000))
    # A rejected entry does not stop the others.
    outs = await conn.js_publish_batch("b1.x", [b"a", "not bytes", b"c"], g, 5)
    assert outs[1].kind == "rejected" and "bytes-like" in (outs[1].error or "")
    assert outs[0].stored and outs[2].stored


async def test_close_waits_for_inflight_publishes(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "d1", ["d1.>"])
    g = conn.new_group()
    failures: list[object] = []
    conn.set_failure_handler(g, lambda t, mid: failures.append(t))
    n = 20_000
    for i in range(n):
        conn.js_publish("d1.x", b"x" * 64, g, i, 10, LINES)
    assert conn.core.inflight == n
    waiter = asyncio.ensure_future(conn.js_publish_wait("d1.x", b"last", g, n, 10, LINES))
    await asyncio.sleep(0)  # let it register
    await conn.close()
    assert failures == [], "nothing was cut short"
    last = await waiter
    assert last[2] == K_STORED and last[4] == n + 1
    assert conn.core.group_stats(g)["acked"] == n + 1
    check = await connect(nats_server)
    assert (await stream_info(check, "d1"))["state"]["messages"] == n + 1


async def test_close_with_timeout_ends_what_is_left(nats_server: NatsServer, connect: Connect) -> None:
    conn = await connect(nats_server)
    conn.subscribe("never.a", lambda msgs: None)  # swallows publishes, never acks
    await conn.flush()
    g = conn.new_group()
    waiter = asyncio.ensure_future(conn.js_publish_wait("never.a", b"x", g, 0, 30))
    await asyncio.sleep(0.05)
    await conn.close(timeout=0.2)
    out = await waiter
    assert out[2] == K_UNKNOWN and "lost" in out[3]
