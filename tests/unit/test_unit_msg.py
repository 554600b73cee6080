"""``Msg`` accessors on messages parsed by the core: subject, reply, payload, flat and
multi-valued headers, the raw header block, status lines, JetStream metadata forms; and the
stand-alone header/ack-subject parsers."""

from __future__ import annotations

import pytest

from memphis_fast import _core


def deliver(frame: bytes, subject: str = ">") -> _core.Msg:
    core = _core.Core("_INBOX.u")
    core.subscribe(subject)
    core.feed_bytes(frame)
    ((_, (msg,)),) = core.take_msgs()
    return msg


def hmsg(subject: str, sid: int, reply: str | None, block: bytes, payload: bytes) -> bytes:
    r = f" {reply}" if reply else ""
    return (
        f"HMSG {subject} {sid}{r} {len(block)} {len(block) + len(payload)}\r\n".encode()
        + block
        + payload
        + b"\r\n"
    )


def test_plain_message() -> None:
    m = deliver(b"MSG orders.eu 2 11\r\nhello world\r\n")
    assert (m.subject, m.sid, m.reply, m.data) == ("orders.eu", 2, None, b"hello world")
    assert m.headers is None and m.headers_multi is None and m.header_block_bytes is None
    assert (m.status, m.description) == (0, "")
    assert m.metadata() is None and m.stream_seq is None and m.stream is None
    assert m.delivered is None and m.timestamp_ns is None
    assert len(m) == 11
    assert m.data is m.data, "the payload is one bytes object, created once"
    assert repr(m) == '<Msg subject="orders.eu" sid=2 reply=None headers=false len=11>'


def test_headers_flat_multi_and_raw() -> None:
    block = b"NATS/1.0\r\nA: 1\r\nB:2\r\nA:  3 \r\nno colon line\r\nC: x: y\r\n\r\n"
    m = deliver(hmsg("h", 2, "_INBOX.r", block, b"body"))
    assert m.reply == "_INBOX.r" and m.data == b"body"
    assert m.header_block_bytes == block
    assert m.headers == {"A": "3", "B": "2", "C": "x: y"}, "last value wins, values trimmed"
    assert m.headers_multi == {"A": ["1", "3"], "B": ["2"], "C": ["x: y"]}
    assert m.status == 0
    assert "headers=true" in repr(m)


def test_unicode_and_invalid_utf8() -> None:
    block = "NATS/1.0\r\nName: héllo ✓\r\n\r\n".encode() + b""
    m = deliver(hmsg("u", 1, None, block, b"\xff\xfe"))
    assert m.headers == {"Name": "héllo ✓"}
    assert m.data == b"\xff\xfe"
    bad = deliver(hmsg("u", 1, None, b"NATS/1.0\r\nK: \xff\r\n\r\n", b""))
    assert bad.headers == {"K": "\ufffd"}, "invalid UTF-8 is replaced, never an exception"


@pytest.mark.parametrize(
    ("line", "code", "description"),
    [
        (b"NATS/1.0 503\r\n\r\n", 503, ""),
        (b"NATS/1.0 404 No Messages\r\n\r\n", 404, "No Messages"),
        (b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n", 408, "Request Timeout"),
        (b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\n\r\n", 100, "Idle Heartbeat"),
        (b"NATS/1.0 409 Consumer Deleted\r\n\r\n", 409, "Consumer Deleted"),
        (b"NATS/1.0\r\n\r\n", 0, ""),
    ],
)
def test_status_lines(line: bytes, code: int, description: str) -> None:
    m = deliver(hmsg("s", 1, None, line, b""))
    assert (m.status, m.description) == (code, description)
    parsed = _core.parse_header_block(line)
    assert parsed[:2] == (code, description)
    if code == 408:
        assert m.headers == {"Nats-Pending-Messages": "1"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "$JS.ACK.orders#eu$2.billing#team.3.42.7.1716200000000000000.5",
            ("orders#eu$2", "billing#team", 3, 42, 7, 1716200000000000000, 5, None),
        ),
        (
            "$JS.ACK.hub.ACCHASH.s$1.c.1.2.3.4.0",
            ("s$1", "c", 1, 2, 3, 4, 0, "hub"),
        ),
        (
            "$JS.ACK._.ACCHASH.s$1.c.1.2.3.4.0.rAnDoM",
            ("s$1", "c", 1, 2, 3, 4, 0, None),
        ),
    ],
    ids=["9-tokens", "11-tokens-domain", "12-tokens-no-domain"],
)
def test_jetstream_metadata_forms(reply: str, expected: tuple[object, ...]) -> None:
    m = deliver(f"MSG s 1 {reply} 2\r\nhi\r\n".encode())
    assert m.metadata() == expected
    assert m.stream == expected[0]
    assert (m.delivered, m.stream_seq, m.timestamp_ns) == (expected[2], expected[3], expected[5])
    assert _core.parse_ack_subject(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "_INBOX.abc.1",
        "$JS.ACK.s.c.1.2.3.4",
        "$JS.ACK.s.c.x.2.3.4.5",
        "$JS.ACK.a.b.c.d.1.2.3.4.5.6.7.8",
        "$JS.ACK.s.c.1.2.3.4.99999999999999999999999",
        "$JS.NAK.s.c.1.2.3.4.5",
    ],
)
def test_not_jetstream_metadata(reply: str) -> None:
    m = deliver(f"MSG s 1 {reply} 0\r\n\r\n".encode())
    assert m.metadata() is None and m.stream_seq is None
    assert _core.parse_ack_subject(reply) is None


def test_parse_header_block_keeps_every_pair() -> None:
    assert _core.parse_header_block(b"NATS/1.0\r\nk: v\r\nk: w\r\n\r\n") == (0, "", [("k", "v"), ("k", "w")])


def test_encode_header_lines_forms() -> None:
    assert _core.encode_header_lines({}) == b""
    assert _core.encode_header_lines([("a", "1"), ("a", "2")]) == b"a: 1\r\na: 2\r\n"
    assert _core.encode_header_lines({"a": ["1", "2"], "b": ("3",)}) == b"a: 1\r\na: 2\r\nb: 3\r\n"
    assert _core.encode_header_lines({"n": 5}) == b"n: 5\r\n", "values are str()-ed"


def test_ack_through_a_delivered_message() -> None:
    core = _core.Core("_INBOX.u")
    core.subscribe("s")
    core.feed_bytes(b"MSG s 2 $JS.ACK.s.c.1.9.9.1.0 0\r\n\r\nMSG s 2 0\r\n\r\n")
    ((_, msgs),) = core.take_msgs()
    core.start_session("{}")
    core.feed_bytes(b"PONG\r\n")
    core.session_ready()
    core.take_out()
    core.ack(msgs[0], _core.ACK)
    with pytest.raises(ValueError, match="no reply"):
        core.ack(msgs[1])
    assert core.ack_many(msgs, _core.TERM) == 1, "messages without a reply are skipped"
    assert core.take_out() == (
        b"PUB $JS.ACK.s.c.1.9.9.1.0 4\r\n+ACK\r\nPUB $JS.ACK.s.c.1.9.9.1.0 5\r\n+TERM\r\n"
    )


def test_ack_asks_for_a_write_once_32_kib_wait() -> None:
    """``Core.ack`` returns True once the encoded output reached 32 KiB (a few hundred acks), so
    that a handler acking a whole batch without yielding hands the server its acks as it goes;
    after the output was taken it counts again from zero."""
    core = _core.Core("_INBOX.u")
    core.subscribe("s")
    reply = "$JS.ACK.bench-station.bench-cg.1.123456.123456.1700000000000000000.0"
    core.feed_bytes(f"MSG s 1 {reply} 0\r\n\r\n".encode())
    ((_, (msg,)),) = core.take_msgs()
    core.start_session("{}")
    core.feed_bytes(b"PONG\r\n")
    core.session_ready()
    core.take_out()
    frame = len(f"PUB {reply} 4\r\n+ACK\r\n")
    answers = [core.ack(msg) for _ in range(2 * 32 * 1024 // frame + 2)]
    first = answers.index(True)
    assert (first + 1) * frame >= 32 * 1024 > first * frame, (first, frame)
    assert all(answers[first:]), "it keeps asking until the output is taken"
    out = core.take_out()
    assert out is not None and len(out) == len(answers) * frame
    assert core.ack(msg) is False
