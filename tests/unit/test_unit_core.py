"""The Rust core from Python, without a server: exact bytes out for calls in, exact results
out for bytes in, the buffer protocol, limits and error classes at the FFI boundary."""

from __future__ import annotations

import json

import pytest

from memphis_fast import _core
from memphis_fast.exceptions import (
    MemphisConnectError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisPayloadTooLargeError,
    MemphisProtocolError,
)

CONNECT = '{"verbose":false,"headers":true}'


def connected(prefix: str = "_INBOX.t", **kw: int) -> _core.Core:
    core = _core.Core(prefix, **kw)
    core.start_session(CONNECT)
    assert core.take_out() == f"CONNECT {CONNECT}\r\nPING\r\nSUB {prefix}.* 1\r\n".encode()
    flags = core.feed_bytes(b'INFO {"max_payload":1048576}\r\nPONG\r\n')
    assert flags & _core.F_EVENTS
    assert [k for k, _ in core.take_events()] == [_core.EV_INFO, _core.EV_PONG]
    core.session_ready()
    assert core.state == 2
    return core


# -- calls in, bytes out -----------------------------------------------------------------------
def test_publish_bytes() -> None:
    core = connected()
    core.publish("a.b", b"hi")
    core.publish("a.b", bytearray(b"ba"), reply="_INBOX.t.r1")
    core.publish("a.b", memoryview(b"xmvx")[1:3])
    core.publish("s", b"xyz", reply="r", headers={"k": "v"})
    core.publish("s", b"", headers=[("k", "1"), ("k", "2")])
    core.publish("s", b"", headers={"multi": ["a", "b"]})
    assert core.take_out() == (
        b"PUB a.b 2\r\nhi\r\n"
        b"PUB a.b _INBOX.t.r1 2\r\nba\r\n"
        b"PUB a.b 2\r\nmv\r\n"
        b"HPUB s r 18 21\r\nNATS/1.0\r\nk: v\r\n\r\nxyz\r\n"
        b"HPUB s 24 24\r\nNATS/1.0\r\nk: 1\r\nk: 2\r\n\r\n\r\n"
        b"HPUB s 32 32\r\nNATS/1.0\r\nmulti: a\r\nmulti: b\r\n\r\n\r\n"
    )
    assert core.take_out() is None


def test_js_publish_bytes_and_ids() -> None:
    core = connected()
    lines = _core.encode_header_lines({"$memphis_producedBy": "p1", "$memphis_connectionId": "c1"})
    assert lines == b"$memphis_producedBy: p1\r\n$memphis_connectionId: c1\r\n"
    a = core.js_publish("orders#eu$1.final", b"hello", 7, 0, 1000, True, lines, None, "m1")
    b = core.js_publish("orders#eu$1.final", b"x", 7, 1, 1000, False)
    assert (a, b) == (1, 2)
    hdr = (
        "NATS/1.0\r\n$memphis_producedBy: p1\r\n$memphis_connectionId: c1\r\n"
        "msg-id: m1\r\nNats-Msg-Id: m1\r\n\r\n"
    )
    assert (
        core.take_out()
        == (
            f"HPUB orders#eu$1.final _INBOX.t.1 {len(hdr)} {len(hdr) + 5}\r\n{hdr}hello\r\n"
            "PUB orders#eu$1.final _INBOX.t.2 1\r\nx\r\n"
        ).encode()
    )
    assert core.inflight == 2
    assert core.group_inflight(7) == (2, len(hdr) + 5 + 1)


def test_subscribe_unsubscribe_ack_bytes() -> None:
    core = connected()
    sid = core.subscribe("work.*", "q")
    core.unsubscribe(sid, 3)
    core.ack_reply("$JS.ACK.s.c.1.2.3.4.0")
    core.ack_reply("$JS.ACK.s.c.1.2.3.4.0", _core.NAK_DELAY, 5_000_000_000)
    core.ack_reply("r", _core.TERM)
    core.ack_reply("r", _core.IN_PROGRESS)
    core.ack_reply("r", _core.NAK)
    assert core.ping() is True
    assert core.take_out() == (
        b"SUB work.* q 2\r\nUNSUB 2 3\r\n"
        b"PUB $JS.ACK.s.c.1.2.3.4.0 4\r\n+ACK\r\n"
        b'PUB $JS.ACK.s.c.1.2.3.4.0 26\r\n-NAK {"delay": 5000000000}\r\n'
        b"PUB r 5\r\n+TERM\r\nPUB r 4\r\n+WPI\r\nPUB r 4\r\n-NAK\r\n"
        b"PING\r\n"
    )
    assert core.pings_outstanding == 1
    with pytest.raises(ValueError):
        core.ack_reply("r", 99)


# -- bytes in, results out ---------------------------------------------------------------------
def test_messages_are_grouped_per_subscription() -> None:
    core = connected()
    a = core.subscribe("a")
    b = core.subscribe("b.*")
    flags = core.feed_bytes(
        b"MSG a 2 1\r\n1\r\nMSG a 2 1\r\n2\r\nMSG b.x 3 r 1\r\n3\r\nMSG a 2 1\r\n4\r\nMSG gone 42 0\r\n\r\n"
    )
    assert flags & _core.F_MSGS
    groups = core.take_msgs()
    assert [(sid, [m.data for m in msgs]) for sid, msgs in groups] == [
        (a, [b"1", b"2"]),
        (b, [b"3"]),
        (a, [b"4"]),
    ]
    assert core.take_msgs() == []
    assert core.stats()["dropped_msgs"] == 1


def test_server_ping_queues_pong_and_err_is_an_event() -> None:
    core = connected()
    flags = core.feed_bytes(b"PING\r\n-ERR 'Permissions Violation for Publish to \"x\"'\r\n+OK\r\n")
    assert flags & _core.F_WRITE and flags & _core.F_EVENTS
    assert core.take_out() == b"PONG\r\n"
    assert core.take_events() == [(_core.EV_ERR, 'Permissions Violation for Publish to "x"')]


def test_outcomes_failures_and_batches() -> None:
    core = connected()
    w = core.js_publish("s.a", b"1", 1, 10, 1000, True)
    f = core.js_publish("s.a", b"2", 1, 11, 1000, False, None, None, "mid")
    ok = core.js_publish("s.a", b"3", 1, 12, 1000, False)
    batch_id, partial = core.js_publish_batch("s.a", [b"a", b"b"], 2, 1000)
    assert partial == [None, None] and batch_id == 1
    core.take_out()
    acks = [
        (w, b'{"stream":"s","seq":5}'),
        (ok, b'{"stream":"s","seq":6}'),
        (4, b'{"stream":"s","seq":7,"duplicate":true}'),
        (5, b'{"stream":"s","seq":8}'),
    ]
    data = b"".join(b"MSG _INBOX.t.%d 1 %d\r\n%s\r\n" % (i, len(body), body) for i, body in acks)
    data += b"HMSG _INBOX.t.%d 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n" % f
    flags = core.feed_bytes(data)
    assert flags & _core.F_OUTCOMES and flags & _core.F_FAILURES and flags & _core.F_PROGRESS
    ((mid, stored),) = core.take_outcomes()
    assert mid == w
    assert stored == _core.ProduceResult(10, None, True, "stored", "s", 5, False)
    assert stored.kind == _core.OutcomeKind.STORED and stored.reason == _core.OutcomeReason.NONE
    ((group, failed),) = core.take_failures()
    assert group == 1
    assert (failed.index, failed.msg_id, failed.kind, failed.code) == (11, "mid", "not_stored", 503)
    assert failed.kind == _core.OutcomeKind.NOT_STORED and not failed.stored
    assert failed.reason == _core.OutcomeReason.NO_RESPONDERS and failed.reason == "no_responders"
    assert core.take_events() == [(_core.EV_BATCH, batch_id)]
    assert core.take_batch(batch_id) == [
        _core.ProduceResult(0, None, True, "stored", "s", 7, True),
        _core.ProduceResult(1, None, True, "stored", "s", 8, False),
    ]
    assert core.take_batch(batch_id) is None
    assert core.group_stats(1) == {
        "inflight": 0,
        "inflight_bytes": 0,
        "published": 3,
        "acked": 2,
        "failed": 1,
        "retried": 0,
    }


def test_disconnect_close_and_pending_limit() -> None:
    core = connected(pending_limit=1000)
    sent = core.js_publish("s", b"a", 1, 0, 1000, True)
    core.take_out()
    core.disconnected()
    assert core.state == 0
    ((mid, lost),) = core.take_outcomes()
    assert (mid, lost.index, lost.kind, lost.reason) == (sent, 0, "unknown", _core.OutcomeReason.CONNECTION_LOST)
    buffered = core.js_publish("s", b"b", 1, 1, 1000, True)
    assert core.take_out() is None, "nothing is written while disconnected"
    with pytest.raises(MemphisConnectError) as ei:
        for _ in range(100):
            core.publish("s", b"x" * 100)
    assert not isinstance(ei.value, MemphisConnectionClosedError)
    assert core.stats()["pending_bytes"] <= 1000
    core.close()
    assert core.state == 3
    ((mid, unsent),) = core.take_outcomes()
    assert (mid, unsent.index, unsent.kind) == (buffered, 1, _core.OutcomeKind.NOT_SENT)
    assert unsent.reason == _core.OutcomeReason.CLOSED_BEFORE_SENDING
    with pytest.raises(MemphisConnectionClosedError):
        core.publish("s", b"")
    with pytest.raises(MemphisConnectionClosedError):
        core.subscribe("s")


def test_reconnect_replays_subscriptions_then_buffered() -> None:
    core = connected()
    sid = core.subscribe("keep")
    core.take_out()
    core.disconnected()
    core.publish("later", b"x")
    core.start_session(CONNECT)
    assert core.take_out() == f"CONNECT {CONNECT}\r\nPING\r\nSUB _INBOX.t.* 1\r\nSUB keep {sid}\r\n".encode()
    core.feed_bytes(b"PONG\r\n")
    core.session_ready()
    assert core.take_out() == b"PUB later 1\r\nx\r\n"
    assert core.stats()["reconnects"] == 1


# -- limits and errors -------------------------------------------------------------------------
def test_oversized_publish_is_refused_with_sizes() -> None:
    core = connected()
    core.max_payload = 100
    assert core.max_payload == 100
    with pytest.raises(MemphisPayloadTooLargeError) as ei:
        core.publish("s", b"x" * 101)
    assert ei.value.size == 101 and ei.value.limit == 100  # type: ignore[attr-defined]
    assert isinstance(ei.value, MemphisError)
    with pytest.raises(MemphisPayloadTooLargeError):
        core.js_publish("s", b"x" * 90, 1, 0, 1000, False, None, {"k": "v" * 20})
    core.publish("s", b"x" * 100)
    assert core.out_len == len(b"PUB s 100\r\n") + 102
    assert core.inflight == 0, "a refused publish leaves nothing in flight"


@pytest.mark.parametrize(
    "headers",
    [{"bad key": "v"}, {"a:b": "v"}, {"": "v"}, {"k": "v\r\nx"}, {"k": "v\n"}, {"ké": "v"}],
)
def test_invalid_headers_raise_memphis_error(headers: dict[str, str]) -> None:
    core = connected()
    with pytest.raises(MemphisError):
        core.publish("s", b"", headers=headers)
    with pytest.raises(MemphisError):
        _core.encode_header_lines(headers)
    with pytest.raises(MemphisError):
        core.js_publish("s", b"", 1, 0, 1000, False, None, headers)
    assert core.take_out() is None and core.inflight == 0


def test_invalid_msg_id_and_subjects() -> None:
    core = connected()
    with pytest.raises(MemphisError):
        core.js_publish("s", b"", 1, 0, 1000, False, None, None, "bad\r\nid")
    for subject in ["", "a b", "a.*", "a..b", "a.>", "a\r\n"]:
        with pytest.raises(MemphisError):
            core.publish(subject, b"")
    with pytest.raises(MemphisError):
        core.publish("ok", b"", reply="bad reply")
    with pytest.raises(MemphisError):
        core.subscribe("bad subject")
    with pytest.raises(TypeError):
        core.publish("s", "text")  # type: ignore[arg-type]
    assert core.take_out() is None
    _, partial = core.js_publish_batch("s", [b"a", b"b"], 1, 1000, None, ["ok", "bad\nid"])
    assert partial[0] is None and partial[1].kind == "rejected" and not partial[1].stored
    assert partial[1].msg_id == "bad\nid" and "CR or LF" in partial[1].error
    assert (
        core.take_out()
        == b"HPUB s _INBOX.t.1 41 42\r\nNATS/1.0\r\nmsg-id: ok\r\nNats-Msg-Id: ok\r\n\r\na\r\n"
    )


@pytest.mark.parametrize(
    "garbage",
    [b"FOO\r\n", b"MSG a b 1\r\n", b"MSG a 1 2\r\nabXY", b"HMSG a 1 5 3\r\n", b"INFO nope\r\n"],
)
def test_garbage_is_a_protocol_error(garbage: bytes) -> None:
    core = connected()
    with pytest.raises(MemphisProtocolError):
        core.feed_bytes(garbage)


def test_oversized_frame_from_the_server_is_a_protocol_error() -> None:
    core = connected()
    core.max_payload = 1024
    with pytest.raises(MemphisProtocolError, match="byte message"):
        core.feed_bytes(b"MSG a 1 99999999\r\n")


# -- the buffer protocol -----------------------------------------------------------------------
def test_receive_buffer_is_a_writable_sized_buffer() -> None:
    core = connected()
    sid = core.subscribe("in.place")
    core.take_out()
    view = memoryview(core.prepare_recv())
    assert not view.readonly and view.format == "B" and view.ndim == 1
    assert view.nbytes == len(core) > 0
    frame = b"MSG in.place %d 5\r\nhello\r\nPING\r\n" % sid
    view[: len(frame)] = frame
    view.release()
    flags = core.feed(len(frame))
    assert flags & _core.F_MSGS and flags & _core.F_WRITE
    ((got_sid, msgs),) = core.take_msgs()
    assert got_sid == sid and msgs[0].data == b"hello"
    assert core.take_out() == b"PONG\r\n"


def test_frame_split_across_in_place_reads() -> None:
    core = connected()
    sid = core.subscribe("split")
    core.take_out()
    frame = b"HMSG split %d r 12 17\r\nNATS/1.0\r\n\r\nhello\r\n" % sid
    for i in range(len(frame)):
        view = memoryview(core.prepare_recv())
        view[:1] = frame[i : i + 1]
        view.release()
        core.feed(1)
        if i < len(frame) - 1:
            assert core.take_msgs() == []
    ((_, (msg,)),) = core.take_msgs()
    assert (msg.subject, msg.reply, msg.data, msg.headers) == ("split", "r", b"hello", {})


def test_buffer_does_not_move_while_exported() -> None:
    core = connected()
    view = memoryview(core.prepare_recv())
    first = len(view)
    # Fill almost all of it with an incomplete line so that prepare_recv would like to grow.
    view[: first - 10] = b"x" * (first - 10)
    core.feed(first - 10)
    again = memoryview(core.prepare_recv())  # an export is alive: nothing is reallocated
    assert len(again) == 10
    again.release()
    view.release()
    grown = memoryview(core.prepare_recv())
    assert len(grown) > 10, "room is made once no export is alive"
    grown.release()


def test_feed_more_than_written_is_refused() -> None:
    core = connected()
    n = len(memoryview(core.prepare_recv()))
    with pytest.raises(MemphisError):
        core.feed(n + 1)


def test_stats_shape() -> None:
    core = connected()
    s = core.stats()
    for key in (
        "msgs_in",
        "bytes_in",
        "msgs_out",
        "bytes_out",
        "reconnects",
        "pings_sent",
        "pongs",
        "rtt_us",
        "late_acks",
        "dropped_msgs",
        "inflight",
        "published",
        "acked",
        "failed",
        "retried",
        "pending_bytes",
    ):
        assert isinstance(s[key], int), key
    assert json.dumps(s)


def test_outcome_enums_compare_with_their_names_and_results_carry_the_group_label() -> None:
    kinds = [_core.OutcomeKind.STORED, _core.OutcomeKind.NOT_STORED, _core.OutcomeKind.UNKNOWN]
    assert [str(k) for k in kinds] == ["stored", "not_stored", "unknown"]
    assert _core.OutcomeKind.STORED == "stored" and _core.OutcomeKind.STORED != "unknown"
    assert _core.OutcomeKind.STORED != _core.OutcomeKind.UNKNOWN
    assert {_core.OutcomeKind.REJECTED: 1}["rejected"] == 1
    assert _core.OutcomeReason.ACK_TIMEOUT.value == "ack_timeout"
    core = connected()
    g = core.new_group("orders")
    core.js_publish("s.a", b"1", g, 3, 1000, True, None, None, "id-3")
    core.take_out()
    core.close()
    ((_, r),) = core.take_outcomes()
    assert (r.station, r.msg_id, r.index, r.kind) == ("orders", "id-3", 3, "unknown")
    with pytest.raises(ValueError):
        _core.ProduceResult(0, None, True, "no such kind")
    with pytest.raises(ValueError):
        _core.ProduceResult(0, None, False, "stored")


def test_payload_kinds_is_one_pass_over_exact_types() -> None:
    class Bytes(bytes):
        pass

    k = _core.payload_kinds
    assert k([b"a", bytearray(b"b"), memoryview(b"c")]) == _core.PAYLOADS_BYTES
    assert k(()) == k([]) == _core.PAYLOADS_BYTES
    assert k((b"a", "text")) == k([{"k": 1}]) == _core.PAYLOADS_OTHER
    assert k([Bytes(b"x")]) == _core.PAYLOADS_OTHER  # a subclass goes the Python way
    assert k(["text", None, b"a"]) == k(iter([None])) == _core.PAYLOADS_NONE

    class EqualsEverything:
        def __eq__(self, other: object) -> bool:
            return True

    assert k([EqualsEverything()]) == _core.PAYLOADS_OTHER  # None by identity, not ==
    with pytest.raises(TypeError):
        k(5)  # type: ignore[arg-type]
