"""Interop with nats-py (2.16) as an independent peer on the same nats-server, both
directions: payloads and header names and values arrive unchanged. nats-py folds a repeated
header name into one value (the last), so multi-valued headers are checked against the raw
header bytes nats-py's parser received."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsPy
from nats.aio.msg import Msg as NatsPyMsg
from wire_helpers import Connect, create_stream, ms

from memphis_fast import _core
from memphis_fast._connection import OutcomeKind
from memphis_fast._server import NatsServer
from memphis_fast.testing.natspy import settle

pytestmark = pytest.mark.timeout(30)

PAYLOADS = [
    b"",
    b"hello",
    b"\r\n",
    b"MSG fake 1 3\r\nabc\r\n",
    bytes(range(256)),
    b"\x00" * 1000,
    b"x" * 300_000,
]
HEADERS = [
    {"$memphis_producedBy": "producer-1", "$memphis_connectionId": "5c3f5a8e-1111-2222-3333-444455556666"},
    {"Nats-Msg-Id": "id-1", "msg-id": "id-1"},
    {"Key": "a: value with: colons", "Other": "tab\tinside"},
    {"Unicode": "héllo ✓ 日本", "Empty": ""},
    {"CaseSensitive": "1", "casesensitive": "2"},
]


@pytest.fixture
async def natspy(nats_server: NatsServer) -> AsyncIterator[NatsPy]:
    errors: list[BaseException] = []

    async def on_error(e: BaseException) -> None:
        errors.append(e)

    nc = await nats.connect(servers=[nats_server.url], allow_reconnect=False, error_cb=on_error)
    try:
        yield nc
    finally:
        await nc.close()
    assert errors == [], errors


def record_raw_headers(nc: NatsPy) -> list[bytes | None]:
    """Wrap nats-py's ``_process_msg`` to keep the raw header block it received."""
    raw: list[bytes | None] = []
    original = nc._process_msg

    async def process(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        raw.append(headers)
        await original(sid, subject, reply, data, headers)  # type: ignore[arg-type]

    nc._process_msg = process  # type: ignore[method-assign]
    return raw


async def test_memphis_fast_to_natspy(nats_server: NatsServer, connect: Connect, natspy: NatsPy) -> None:
    got: list[NatsPyMsg] = []
    done = asyncio.Event()
    expected = len(PAYLOADS) + len(HEADERS)

    async def cb(msg: NatsPyMsg) -> None:
        got.append(msg)
        if len(got) == expected:
            done.set()

    await natspy.subscribe("interop.>", cb=cb)
    await settle(natspy)
    conn = await connect(nats_server)
    for i, p in enumerate(PAYLOADS):
        conn.publish(f"interop.p.{i}", p)
    for i, h in enumerate(HEADERS):
        conn.publish(f"interop.h.{i}", f"h{i}".encode(), headers=h)
    await conn.flush()
    async with asyncio.timeout(10):
        await done.wait()
    assert [m.subject for m in got[: len(PAYLOADS)]] == [f"interop.p.{i}" for i in range(len(PAYLOADS))]
    assert [m.data for m in got[: len(PAYLOADS)]] == PAYLOADS
    assert all(m.headers is None for m in got[: len(PAYLOADS)])
    for i, (m, h) in enumerate(zip(got[len(PAYLOADS) :], HEADERS, strict=True)):
        assert m.data == f"h{i}".encode()
        assert m.headers == h, (i, m.headers)


async def test_natspy_to_memphis_fast(nats_server: NatsServer, connect: Connect, natspy: NatsPy) -> None:
    conn = await connect(nats_server)
    got: list[_core.Msg] = []
    conn.subscribe("interop.>", got.extend)
    await conn.flush()
    for i, p in enumerate(PAYLOADS):
        await natspy.publish(f"interop.p.{i}", p)
    for i, h in enumerate(HEADERS):
        await natspy.publish(f"interop.h.{i}", f"h{i}".encode(), headers=h)
    await settle(natspy)
    await conn.flush()
    async with asyncio.timeout(5):
        while len(got) < len(PAYLOADS) + len(HEADERS):
            await asyncio.sleep(0.01)
    assert [m.data for m in got[: len(PAYLOADS)]] == PAYLOADS
    assert all(m.headers is None and m.header_block_bytes is None for m in got[: len(PAYLOADS)])
    for i, (m, h) in enumerate(zip(got[len(PAYLOADS) :], HEADERS, strict=True)):
        assert m.data == f"h{i}".encode()
        assert m.headers == h, (i, m.headers)
        assert m.headers_multi == {k: [v] for k, v in h.items()}
        # Byte for byte what nats-py encodes: version line, "key: value" lines, blank line.
        block = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) + b"\r\n"
        assert m.header_block_bytes == block


async def test_multi_valued_headers_against_raw_bytes(
    nats_server: NatsServer, connect: Connect, natspy: NatsPy
) -> None:
    raw = record_raw_headers(natspy)
    seen: list[NatsPyMsg] = []

    async def cb(msg: NatsPyMsg) -> None:
        seen.append(msg)

    await natspy.subscribe("multi", cb=cb)
    await settle(natspy)
    raw.clear()  # the settle round trip itself went through nats-py's parser
    conn = await connect(nats_server)
    echo: list[_core.Msg] = []
    conn.subscribe("multi", echo.extend)
    pairs = [("X-Trace", "a"), ("X-Trace", "b"), ("Single", "s"), ("X-Trace", "c: d")]
    conn.publish("multi", b"payload", headers=pairs)
    await conn.flush()
    async with asyncio.timeout(5):
        while not seen or not echo:
            await asyncio.sleep(0.01)
    expected = b"NATS/1.0\r\nX-Trace: a\r\nX-Trace: b\r\nSingle: s\r\nX-Trace: c: d\r\n\r\n"
    assert raw == [expected], "nats-py received every value, in order"
    assert echo[0].header_block_bytes == expected
    assert echo[0].headers_multi == {"X-Trace": ["a", "b", "c: d"], "Single": ["s"]}
    # nats-py's dict keeps one value per name (the last); ours agrees in the flat view.
    assert seen[0].headers == {"X-Trace": "c: d", "Single": "s"}
    assert echo[0].headers == seen[0].headers
    assert seen[0].data == echo[0].data == b"payload"


async def test_request_reply_both_ways(nats_server: NatsServer, connect: Connect, natspy: NatsPy) -> None:
    conn = await connect(nats_server)

    async def natspy_service(msg: NatsPyMsg) -> None:
        await msg.respond(msg.data.upper())

    await natspy.subscribe("svc.natspy", cb=natspy_service)
    await settle(natspy)
    reply = await conn.request("svc.natspy", b"from memphis-fast", 5, headers={"Ask": "1"})
    assert reply.data == b"FROM MEMPHIS-FAST"

    def fast_service(msgs: list[_core.Msg]) -> None:
        for m in msgs:
            assert m.reply is not None
            conn.publish(m.reply, m.data[::-1], headers={"Served-By": "memphis-fast"})

    conn.subscribe("svc.fast", fast_service)
    await conn.flush()
    answers = await asyncio.gather(
        *(natspy.request("svc.fast", f"q{i}".encode(), timeout=5) for i in range(20))
    )
    assert [a.data for a in answers] == [f"q{i}".encode()[::-1] for i in range(20)]
    assert all(a.headers == {"Served-By": "memphis-fast"} for a in answers)


async def test_mixed_queue_group(nats_server: NatsServer, connect: Connect, natspy: NatsPy) -> None:
    conn = await connect(nats_server)
    ours: list[bytes] = []
    theirs: list[bytes] = []

    async def cb(msg: NatsPyMsg) -> None:
        theirs.append(msg.data)

    conn.subscribe("work", lambda msgs: ours.extend(m.data for m in msgs), queue="pool")
    await natspy.subscribe("work", queue="pool", cb=cb)
    await settle(natspy)
    await conn.flush()
    n = 400
    for i in range(n):
        conn.publish("work", str(i).encode())
    await conn.flush()
    async with asyncio.timeout(5):
        while len(ours) + len(theirs) < n:
            await asyncio.sleep(0.01)
    assert sorted(int(x) for x in ours + theirs) == list(range(n))
    assert ours and theirs


async def test_jetstream_dedup_across_clients(
    nats_server: NatsServer, connect: Connect, natspy: NatsPy
) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "mixed", ["mixed.>"], storage="memory")
    js = natspy.jetstream()
    g = conn.new_group()
    lines = _core.encode_header_lines({"$memphis_producedBy": "p", "$memphis_connectionId": "c"})
    ours = await conn.publish_awaited("mixed.a", b"first", g, 0, ms(5), lines, msg_id="shared-1")
    assert (ours.kind, ours.stream, ours.sequence, ours.duplicate) == (OutcomeKind.STORED, "mixed", 1, False)
    ack = await js.publish("mixed.a", b"second", headers={"Nats-Msg-Id": "shared-1"})
    assert (ack.seq, ack.duplicate) == (1, True), "nats-py's publish is a duplicate of ours"
    ack = await js.publish("mixed.a", b"third", headers={"Nats-Msg-Id": "shared-2"})
    assert (ack.seq, ack.duplicate) == (2, None)
    again = await conn.publish_awaited("mixed.a", b"fourth", g, 1, ms(5), lines, msg_id="shared-2")
    assert (again.kind, again.stream, again.sequence, again.duplicate) == (
        OutcomeKind.STORED,
        "mixed",
        2,
        True,
    )

    # nats-py reads back what we stored: payload and every header unchanged.
    sub = await js.pull_subscribe("mixed.a", durable="reader")
    msgs = await sub.fetch(2, timeout=5)
    assert [m.data for m in msgs] == [b"first", b"third"]
    assert msgs[0].headers == {
        "$memphis_producedBy": "p",
        "$memphis_connectionId": "c",
        "msg-id": "shared-1",
        "Nats-Msg-Id": "shared-1",
    }
    meta: Any = msgs[0].metadata
    assert (meta.stream, meta.sequence.stream) == ("mixed", 1)
    for m in msgs:
        await m.ack()

    # And we read what nats-py stored, with the JetStream metadata from the reply subject.
    got: list[_core.Msg] = []
    inbox = conn.new_inbox()
    conn.subscribe(inbox, got.extend)
    await conn.request(
        "$JS.API.CONSUMER.CREATE.mixed",
        json.dumps(
            {"stream_name": "mixed", "config": {"ack_policy": "explicit", "deliver_subject": inbox}}
        ).encode(),
        5,
    )
    async with asyncio.timeout(5):
        while len(got) < 2:
            await asyncio.sleep(0.01)
    assert [m.data for m in got] == [b"first", b"third"]
    assert got[1].headers == {"Nats-Msg-Id": "shared-2"}
    assert [m.stream_seq for m in got] == [1, 2]
    assert got[0].stream == "mixed" and got[0].delivered == 1
    assert got[1].metadata() is not None
