//! Exact bytes in / results out, and calls in / bytes out, for the connection state machine.

mod common;

use common::{msg, Ev, Rec};
use memphis_proto::{
    AckKind, Completed, Core, JsPublish, NotSentReason, Options, Outcome, ProtoError, PullRequest,
    State, UnknownReason,
};

const CONNECT: &[u8] = br#"{"verbose":false,"headers":true}"#;

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn take(core: &mut Core) -> String {
    let o = s(core.out());
    core.out_taken();
    o
}

fn connected() -> (Core, Rec) {
    let mut core = Core::new("_INBOX.abc", Options::default()).unwrap();
    let mut rec = Rec::default();
    core.start_session(CONNECT, 0).unwrap();
    assert_eq!(
        take(&mut core),
        "CONNECT {\"verbose\":false,\"headers\":true}\r\nPING\r\nSUB _INBOX.abc.* 1\r\n"
    );
    core.feed_bytes(b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n", 5, &mut rec)
        .unwrap();
    assert_eq!(
        rec.events,
        vec![Ev::Info(b"{\"server_id\":\"x\"}".to_vec()), Ev::Pong]
    );
    core.session_ready(0);
    assert_eq!(core.state(), State::Connected);
    assert_eq!(core.stats().last_rtt_us, 5);
    rec.events.clear();
    (core, rec)
}

fn js<'a>(
    headers: &'a [u8],
    extra: &'a [u8],
    group: u32,
    waiter: bool,
    keep: bool,
) -> JsPublish<'a> {
    JsPublish {
        subject: b"orders#eu$1.final",
        headers,
        extra_headers: extra,
        group,
        tag: 0,
        ack_wait_ms: 1000,
        waiter,
        keep_frame: keep,
    }
}

const HDRS: &[u8] = b"$memphis_producedBy: p1\r\n$memphis_connectionId: c1\r\n";

#[test]
fn js_publish_bytes_and_stored_outcome() {
    let (mut core, mut rec) = connected();
    let id = core
        .js_publish(
            &js(HDRS, b"msg-id: m1\r\nNats-Msg-Id: m1\r\n", 7, true, false),
            b"hello",
            0,
        )
        .unwrap();
    assert_eq!(id, 1);
    let hdr = "NATS/1.0\r\n$memphis_producedBy: p1\r\n$memphis_connectionId: c1\r\nmsg-id: m1\r\nNats-Msg-Id: m1\r\n\r\n";
    assert_eq!(
        take(&mut core),
        format!(
            "HPUB orders#eu$1.final _INBOX.abc.1 {} {}\r\n{hdr}hello\r\n",
            hdr.len(),
            hdr.len() + 5
        )
    );
    assert_eq!(core.group_stats(7).inflight, 1);
    assert_eq!(core.group_stats(7).inflight_bytes, (hdr.len() + 5) as u64);
    let body = br#"{"stream":"orders#eu$1","seq":42}"#;
    let frame = format!("MSG _INBOX.abc.1 1 {}\r\n{}\r\n", body.len(), s(body));
    core.feed_bytes(frame.as_bytes(), 0, &mut rec).unwrap();
    assert_eq!(
        rec.events,
        vec![Ev::Done(Completed {
            id: 1,
            group: 7,
            tag: 0,
            waiter: true,
            report_stored: false,
            outcome: Outcome::Stored {
                stream: "orders#eu$1".into(),
                seq: 42,
                duplicate: false
            }
        })]
    );
    assert_eq!(core.group_stats(7).inflight, 0);
    assert_eq!(core.group_stats(7).acked, 1);
    // A second ack for the same id is late and ignored.
    rec.events.clear();
    core.feed_bytes(frame.as_bytes(), 0, &mut rec).unwrap();
    assert!(rec.events.is_empty());
    assert_eq!(core.stats().late_acks, 1);
}

#[test]
fn publish_without_headers_uses_pub() {
    let (mut core, _) = connected();
    core.js_publish(&js(b"", b"", 0, false, false), b"x", 0)
        .unwrap();
    assert_eq!(
        take(&mut core),
        "PUB orders#eu$1.final _INBOX.abc.1 1\r\nx\r\n"
    );
}

#[test]
fn no_responders_and_api_errors() {
    let (mut core, mut rec) = connected();
    core.js_publish(&js(HDRS, b"", 1, false, false), b"a", 0)
        .unwrap();
    core.js_publish(&js(HDRS, b"", 1, false, false), b"b", 0)
        .unwrap();
    let err = br#"{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}"#;
    let input = format!(
        "HMSG _INBOX.abc.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nMSG _INBOX.abc.2 1 {}\r\n{}\r\n",
        err.len(),
        s(err)
    );
    core.feed_bytes(input.as_bytes(), 0, &mut rec).unwrap();
    let outcomes: Vec<_> = rec
        .events
        .iter()
        .map(|e| match e {
            Ev::Done(c) => (c.id, c.outcome.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(outcomes[0].0, 1);
    assert!(matches!(
        outcomes[0].1,
        Outcome::NotStored { code: 503, .. }
    ));
    assert_eq!(
        outcomes[1],
        (
            2,
            Outcome::NotStored {
                code: 400,
                err_code: 10060,
                description: "expected stream does not match".into()
            }
        )
    );
    assert_eq!(core.group_stats(1).failed, 2);
}

#[test]
fn request_replies_and_subscriptions() {
    let (mut core, mut rec) = connected();
    let sid = core.subscribe(b"updates", None).unwrap();
    let q = core.subscribe(b"work.*", Some(b"workers")).unwrap();
    core.unsubscribe(q, Some(2));
    assert_eq!(
        take(&mut core),
        "SUB updates 2\r\nSUB work.* workers 3\r\nUNSUB 3 2\r\n"
    );
    core.publish(
        b"$memphis_station_creations",
        Some(b"_INBOX.abc.r9"),
        None,
        b"{}",
    )
    .unwrap();
    assert_eq!(
        take(&mut core),
        "PUB $memphis_station_creations _INBOX.abc.r9 2\r\n{}\r\n"
    );
    let input = b"MSG _INBOX.abc.r9 1 0\r\n\r\nMSG updates 2 3\r\nabc\r\n\
HMSG work.a 3 _INBOX.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG work.b 3 1\r\nz\r\nMSG work.c 3 1\r\nq\r\nMSG gone 99 0\r\n\r\n";
    core.feed_bytes(input, 0, &mut rec).unwrap();
    assert_eq!(
        rec.events,
        vec![
            msg("_INBOX.abc.r9", 1, None, None, b""),
            msg("updates", 2, None, None, b"abc"),
            msg(
                "work.a",
                3,
                Some("_INBOX.x"),
                Some(b"NATS/1.0\r\n\r\n"),
                b"hi"
            ),
            msg("work.b", 3, None, None, b"z"),
        ]
    );
    assert!(!core.is_subscribed(q), "auto-unsubscribed after max");
    assert_eq!(core.stats().dropped_msgs, 2);
    assert!(core.is_subscribed(sid));
}

#[test]
fn server_ping_is_answered_and_errors_surface() {
    let (mut core, mut rec) = connected();
    core.feed_bytes(
        b"PING\r\n-ERR 'Permissions Violation for Publish to \"x\"'\r\n+OK\r\n",
        0,
        &mut rec,
    )
    .unwrap();
    assert_eq!(
        rec.events,
        vec![
            Ev::Ping,
            Ev::Err(b"Permissions Violation for Publish to \"x\"".to_vec())
        ]
    );
    assert_eq!(take(&mut core), "PONG\r\n");
    assert!(core.ping(100));
    assert_eq!(take(&mut core), "PING\r\n");
    rec.events.clear();
    core.feed_bytes(b"PONG\r\n", 350, &mut rec).unwrap();
    assert_eq!(core.stats().last_rtt_us, 250);
}

#[test]
fn acks_exact_bytes() {
    let (mut core, _) = connected();
    core.ack(b"$JS.ACK.s$1.g.1.5.5.1700000000000000000.0", AckKind::Ack)
        .unwrap();
    core.ack(
        b"$JS.ACK.s$1.g.1.6.6.1700000000000000000.0",
        AckKind::NakDelay(2_000_000_000),
    )
    .unwrap();
    assert_eq!(
        take(&mut core),
        "PUB $JS.ACK.s$1.g.1.5.5.1700000000000000000.0 4\r\n+ACK\r\n\
PUB $JS.ACK.s$1.g.1.6.6.1700000000000000000.0 26\r\n-NAK {\"delay\": 2000000000}\r\n"
    );
    assert!(core.ack(b"bad subject", AckKind::Ack).is_err());
}

#[test]
fn limits_are_enforced_before_sending() {
    let (mut core, _) = connected();
    core.set_server_max_payload(100);
    let err = core
        .js_publish(&js(b"", b"", 0, false, false), &[0u8; 101], 0)
        .unwrap_err();
    assert_eq!(
        err,
        ProtoError::MessageTooLarge {
            size: 101,
            limit: 100
        }
    );
    // Headers count against max_payload too.
    assert!(core
        .js_publish(&js(HDRS, b"", 0, false, false), &[0u8; 60], 0)
        .is_err());
    assert!(core
        .js_publish(&js(b"", b"", 0, false, false), &[0u8; 100], 0)
        .is_ok());
    assert!(core.publish(b"a.*", None, None, b"").is_err());
    assert!(core.publish(b"a", Some(b"r r"), None, b"").is_err());
}

#[test]
fn disconnect_replays_in_order_and_reports_unknown() {
    let (mut core, mut rec) = connected();
    // 1: sent, no id -> unknown on disconnect. 2: sent, with id -> re-sent.
    core.js_publish(&js(HDRS, b"", 1, true, false), b"one", 0)
        .unwrap();
    core.js_publish(&js(HDRS, b"msg-id: two\r\n", 1, true, true), b"two", 0)
        .unwrap();
    let sent = take(&mut core);
    // 3: still in the write buffer when the link drops -> kept.
    core.js_publish(&js(HDRS, b"", 1, true, false), b"three", 0)
        .unwrap();
    core.on_disconnect(&mut rec);
    assert_eq!(
        rec.events,
        vec![Ev::Done(Completed {
            id: 1,
            group: 1,
            tag: 0,
            waiter: true,
            report_stored: false,
            outcome: Outcome::Unknown(UnknownReason::ConnectionLost)
        })]
    );
    assert_eq!(core.state(), State::Disconnected);
    // 4: issued while disconnected -> buffered; an ack too; a subscription is recorded.
    core.js_publish(&js(HDRS, b"", 1, true, false), b"four", 0)
        .unwrap();
    core.ack(b"$JS.ACK.a.b.1.1.1.1.0", AckKind::Ack).unwrap();
    let sid = core.subscribe(b"later", None).unwrap();
    assert_eq!(core.out(), b"", "nothing is written while disconnected");
    assert!(!core.ping(0));

    core.start_session(CONNECT, 0).unwrap();
    let hello = take(&mut core);
    assert_eq!(
        hello,
        format!(
            "CONNECT {}\r\nPING\r\nSUB _INBOX.abc.* 1\r\nSUB later {sid}\r\n",
            s(CONNECT)
        )
    );
    // Publishing during the handshake is buffered behind the earlier ones.
    core.js_publish(&js(HDRS, b"", 1, true, false), b"five", 0)
        .unwrap();
    rec.events.clear();
    core.feed_bytes(b"PONG\r\n", 0, &mut rec).unwrap();
    core.session_ready(10);
    let replay = take(&mut core);
    let two = &sent[sent.find("HPUB orders#eu$1.final _INBOX.abc.2").unwrap()..];
    let order: Vec<usize> = ["two", "three", "four", "$JS.ACK.a.b", "five"]
        .iter()
        .map(|w| {
            replay
                .find(w)
                .unwrap_or_else(|| panic!("{w} missing in {replay}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{replay}");
    assert!(replay.starts_with(two), "re-sent frame is byte-identical");
    assert_eq!(core.inflight_totals().retried, 1);
    assert_eq!(core.stats().reconnects, 1);
    assert_eq!(core.inflight_totals().inflight, 4);
}

#[test]
fn pending_buffer_is_bounded() {
    let opts = Options {
        pending_limit: 1000,
        ..Options::default()
    };
    let mut core = Core::new("_INBOX.p", opts).unwrap();
    let mut n = 0;
    let err = loop {
        match core.js_publish(&js(HDRS, b"", 0, false, false), &[b'x'; 100], 0) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, ProtoError::BufferFull { limit: 1000 });
    assert!(n >= 3);
    assert!(core.pending_len() <= 1000);
}

#[test]
fn sweep_and_close() {
    let (mut core, mut rec) = connected();
    core.js_publish(&js(HDRS, b"", 1, false, false), b"a", 0)
        .unwrap(); // deadline 1000
    take(&mut core);
    core.js_publish(&js(HDRS, b"", 1, false, false), b"b", 500)
        .unwrap(); // deadline 1500, unsent
    assert_eq!(core.next_deadline_ms(), Some(1000));
    core.sweep(999, &mut rec);
    assert!(rec.events.is_empty());
    core.sweep(1000, &mut rec);
    assert_eq!(
        rec.events,
        vec![Ev::Done(Completed {
            id: 1,
            group: 1,
            tag: 0,
            waiter: false,
            report_stored: false,
            outcome: Outcome::Unknown(UnknownReason::AckTimeout)
        })]
    );
    rec.events.clear();
    core.close(&mut rec);
    assert_eq!(
        rec.events,
        vec![Ev::Done(Completed {
            id: 2,
            group: 1,
            tag: 0,
            waiter: false,
            report_stored: false,
            outcome: Outcome::NotSent(NotSentReason::Closed)
        })]
    );
    assert_eq!(
        core.js_publish(&js(HDRS, b"", 1, false, false), b"c", 0),
        Err(ProtoError::Closed)
    );
    assert_eq!(core.subscribe(b"x", None), Err(ProtoError::Closed));
}

#[test]
fn oversized_message_from_server_is_a_protocol_error() {
    let (mut core, mut rec) = connected();
    core.set_server_max_payload(1024);
    let err = core
        .feed_bytes(b"MSG a 1 99999999\r\n", 0, &mut rec)
        .unwrap_err();
    assert!(matches!(err, ProtoError::PayloadTooLarge { .. }));
}

#[test]
fn large_message_grows_and_shrinks_the_receive_buffer() {
    let (mut core, mut rec) = connected();
    let payload = vec![b'z'; 900_000];
    let mut frame = format!("MSG big 1 {}\r\n", payload.len()).into_bytes();
    frame.extend_from_slice(&payload);
    frame.extend_from_slice(b"\r\n");
    // Feed through the in-place path, 10 000 bytes at a time.
    let mut rest = &frame[..];
    while !rest.is_empty() {
        let tail = core.recv_buffer().prepare();
        let n = tail.len().min(rest.len()).min(10_000);
        tail[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        core.feed(n, 0, &mut rec).unwrap();
    }
    assert_eq!(rec.events.len(), 1);
    assert!(core.recv_buffer().capacity() >= 900_000);
    core.recv_buffer().prepare();
    assert!(
        core.recv_buffer().capacity() <= 256 * 1024,
        "shrinks once empty"
    );
}

fn pull_req(batch: u64, expires_ms: u64, heartbeat_ms: u64) -> PullRequest<'static> {
    PullRequest {
        api_subject: b"$JS.API.CONSUMER.MSG.NEXT.st$1.g",
        batch,
        max_bytes: 1_000_000,
        expires_ms,
        heartbeat_ms,
        no_wait: false,
        ahead_of_acks: false,
    }
}

fn ahead(batch: u64, expires_ms: u64) -> PullRequest<'static> {
    PullRequest {
        ahead_of_acks: true,
        ..pull_req(batch, expires_ms, 0)
    }
}

#[test]
fn pull_requests_are_counted_in_wire_order() {
    let (mut core, mut rec) = connected();
    let sid = core.pull_subscribe(0).unwrap();
    assert_eq!(take(&mut core), format!("SUB _INBOX.abc.P1.* {sid}\r\n"));
    let t1 = core.pull(sid, &pull_req(3, 5000, 1000), 0).unwrap();
    let t2 = core.pull(sid, &pull_req(2, 100, 0), 0).unwrap();
    assert_eq!((t1, t2), (1, 2));
    assert_eq!(
        take(&mut core),
        "PUB $JS.API.CONSUMER.MSG.NEXT.st$1.g _INBOX.abc.P1.1 80\r\n\
{\"batch\":3,\"expires\":5000000000,\"max_bytes\":1000000,\"idle_heartbeat\":1000000000}\r\n\
PUB $JS.API.CONSUMER.MSG.NEXT.st$1.g _INBOX.abc.P1.2 51\r\n\
{\"batch\":2,\"expires\":100000000,\"max_bytes\":1000000}\r\n"
    );
    assert_eq!(core.pull_outstanding(sid), (2, 5));
    // Three messages fill pull 1; a heartbeat; one message of pull 2; then its 408.
    let ack = |n: u32| format!("$JS.ACK.st$1.g.1.{n}.{n}.1700000000000000000.0");
    let mut input = String::new();
    for n in 1..=3 {
        input.push_str(&format!("MSG st$1.final {sid} {} 1\r\nx\r\n", ack(n)));
    }
    input.push_str(&format!(
        "HMSG _INBOX.abc.P1.1 {sid} 31 31\r\nNATS/1.0 100 Idle Heartbeat\r\n\r\n\r\n"
    ));
    input.push_str(&format!("MSG st$1.final {sid} {} 1\r\ny\r\n", ack(4)));
    input.push_str(&format!(
        "HMSG _INBOX.abc.P1.2 {sid} 32 32\r\nNATS/1.0 408 Request Timeout\r\n\r\n\r\n"
    ));
    core.feed_bytes(input.as_bytes(), 10_000, &mut rec).unwrap();
    let kinds: Vec<String> = rec
        .events
        .iter()
        .map(|e| match e {
            Ev::Msg { payload, .. } => format!("msg {}", String::from_utf8_lossy(payload)),
            Ev::PullEnd {
                token,
                code,
                undelivered,
                ..
            } => format!("end {token} {code} {undelivered}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["msg x", "msg x", "msg x", "msg y", "end 2 408 1"]);
    assert_eq!(core.pull_outstanding(sid), (0, 0));
}

/// The reply subject of a delivery `n` on consumer `g` of stream `st$1`.
fn ack_subject(n: u32) -> String {
    format!("$JS.ACK.st$1.g.1.{n}.{n}.1700000000000000000.0")
}

/// The positive ack of delivery `n`.
fn ack_frame(n: u32) -> String {
    format!("PUB {} 4\r\n+ACK\r\n", ack_subject(n))
}

/// Pull `t` of `ahead(2, 100)` on the first pull subscription.
fn pull_frame(t: u32) -> String {
    format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.st$1.g _INBOX.abc.P1.{t} 51\r\n\
{{\"batch\":2,\"expires\":100000000,\"max_bytes\":1000000}}\r\n"
    )
}

#[test]
fn a_fetch_pull_goes_ahead_of_the_positive_acks_written_last_and_of_nothing_else() {
    let (mut core, _rec) = connected();
    let sid = core.pull_subscribe(0).unwrap();
    let (ack, ack_frame, pull) = (ack_subject, ack_frame, pull_frame);
    let sub = format!("SUB _INBOX.abc.P1.* {sid}\r\n");
    // The SUB stays first: the pull moves only in front of the acks after it.
    core.ack(ack(1).as_bytes(), AckKind::Ack).unwrap();
    core.ack(ack(2).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    core.ack(ack(3).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert_eq!(
        take(&mut core),
        format!(
            "{sub}{}{}{}{}{}",
            pull(1),
            pull(2),
            ack_frame(1),
            ack_frame(2),
            ack_frame(3)
        )
    );
    // After a write: from the start of the buffer.
    core.ack(ack(4).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert_eq!(take(&mut core), format!("{}{}", pull(3), ack_frame(4)));
    // Anything else after the acks keeps the order: a publish, a PING, a NAK (the pull may be
    // there for its redelivery), an in-progress or a TERM.
    core.ack(ack(5).as_bytes(), AckKind::Ack).unwrap();
    core.publish(b"x", None, None, b"1").unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert_eq!(
        take(&mut core),
        format!("{}PUB x 1\r\n1\r\n{}", ack_frame(5), pull(4))
    );
    core.ack(ack(6).as_bytes(), AckKind::Ack).unwrap();
    core.ping(0);
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert_eq!(
        take(&mut core),
        format!("{}PING\r\n{}", ack_frame(6), pull(5))
    );
    for (n, kind, body) in [
        (7, AckKind::Nak, "-NAK"),
        (8, AckKind::InProgress, "+WPI"),
        (9, AckKind::Term, "+TERM"),
    ] {
        core.ack(ack(n - 6).as_bytes(), AckKind::Ack).unwrap();
        core.ack(ack(n).as_bytes(), kind).unwrap();
        core.pull(sid, &ahead(2, 100), 0).unwrap();
        assert_eq!(
            take(&mut core),
            format!(
                "{}PUB {} {}\r\n{body}\r\n{}",
                ack_frame(n - 6),
                ack(n),
                body.len(),
                pull(n - 1)
            )
        );
    }
    // A pull not marked ahead_of_acks (a pipeline's) keeps its place.
    core.ack(ack(10).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &pull_req(2, 100, 0), 0).unwrap();
    assert_eq!(take(&mut core), format!("{}{}", ack_frame(10), pull(9)));
    // Disconnected, nothing moves (the buffer of a later session keeps the call order).
    let mut rec = Rec::default();
    core.on_disconnect(&mut rec);
    core.ack(ack(11).as_bytes(), AckKind::Ack).unwrap();
    let sid2 = core.pull_subscribe(0).unwrap();
    core.pull(sid2, &ahead(2, 100), 0).unwrap();
    assert!(core.out().is_empty());
}

#[test]
fn held_acks_go_out_after_the_pull_they_were_behind_once_released() {
    let (mut core, mut rec) = connected();
    let sid = core.pull_subscribe(0).unwrap();
    take(&mut core);
    let (ack, ack_frame, pull) = (ack_subject, ack_frame, pull_frame);
    // The acks a fetch's pull went in front of wait; the pull goes out alone.
    core.ack(ack(1).as_bytes(), AckKind::Ack).unwrap();
    core.ack(ack(2).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    let held = ack_frame(1).len() + ack_frame(2).len();
    assert_eq!(core.hold_acks(), held);
    assert_eq!(core.held_acks(), held);
    assert_eq!(take(&mut core), pull(1));
    // One hold at a time: the next run stays where it is.
    core.ack(ack(3).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert_eq!(core.hold_acks(), 0);
    assert_eq!(take(&mut core), format!("{}{}", pull(2), ack_frame(3)));
    assert!(core.release_acks());
    assert!(!core.release_acks());
    assert_eq!(core.held_acks(), 0);
    assert_eq!(take(&mut core), format!("{}{}", ack_frame(1), ack_frame(2)));
    // Nothing to hold unless positive acks end the buffer.
    assert_eq!(core.hold_acks(), 0);
    core.ack(ack(4).as_bytes(), AckKind::Ack).unwrap();
    core.publish(b"x", None, None, b"1").unwrap();
    assert_eq!(core.hold_acks(), 0);
    assert_eq!(take(&mut core), format!("{}PUB x 1\r\n1\r\n", ack_frame(4)));
    core.ack(ack(5).as_bytes(), AckKind::Nak).unwrap();
    assert_eq!(core.hold_acks(), 0);
    take(&mut core);
    // Held when the connection drops: sent with the next session, after what was unsent.
    core.ack(ack(6).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert!(core.hold_acks() > 0);
    core.publish(b"y", None, None, b"2").unwrap();
    core.on_disconnect(&mut rec);
    assert_eq!(core.held_acks(), 0);
    core.start_session(CONNECT, 0).unwrap();
    take(&mut core);
    core.feed_bytes(b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n", 5, &mut rec)
        .unwrap();
    core.session_ready(10);
    let next = take(&mut core);
    assert!(
        next.ends_with(&format!("PUB y 1\r\n2\r\n{}", ack_frame(6))),
        "{next}"
    );
    // Closed: nothing is held any more.
    core.ack(ack(7).as_bytes(), AckKind::Ack).unwrap();
    core.pull(sid, &ahead(2, 100), 0).unwrap();
    assert!(core.hold_acks() > 0);
    core.close(&mut rec);
    assert_eq!(core.held_acks(), 0);
    assert!(!core.release_acks());
}

#[test]
fn pulls_end_on_expiry_heartbeat_loss_and_disconnect() {
    let (mut core, mut rec) = connected();
    let a = core.pull_subscribe(0).unwrap();
    let b = core.pull_subscribe(0).unwrap();
    core.pull(a, &pull_req(10, 100, 0), 0).unwrap();
    core.pull(b, &pull_req(10, 30_000, 5_000), 0).unwrap();
    take(&mut core);
    // Pull on `a` expires locally (100 ms + grace); `b` is alive until its heartbeats stop.
    assert_eq!(core.next_deadline_ms(), Some(2_100));
    core.sweep(2_100, &mut rec);
    assert_eq!(rec.events.len(), 1);
    assert!(
        matches!(rec.events[0], Ev::PullEnd { sid, code: 408, undelivered: 10, .. } if sid == a)
    );
    rec.events.clear();
    core.sweep(10_999, &mut rec);
    assert!(rec.events.is_empty(), "within 2 heartbeats + 1 s");
    assert_eq!(
        core.next_deadline_ms(),
        Some(memphis_proto::conn::heartbeat_deadline_ms(0, 5_000))
    );
    core.sweep(11_000, &mut rec);
    assert!(matches!(rec.events[0], Ev::PullEnd { sid, code: 0, undelivered: 10, .. } if sid == b));
    rec.events.clear();
    core.pull(a, &pull_req(4, 1000, 0), 11_002).unwrap();
    core.on_disconnect(&mut rec);
    assert!(matches!(rec.events[0], Ev::PullEnd { sid, code: 0, undelivered: 4, .. } if sid == a));
    assert_eq!(core.pull_outstanding(a), (0, 0));
    // Unsubscribing forgets the pull subscription.
    core.unsubscribe(a, None);
    assert!(core.pull(a, &pull_req(1, 1, 0), 0).is_err());
}

/// A message whose ack wait runs out before any live connection took it is "not sent", is
/// taken out of the buffer, and never goes out later; one that had left is "unknown".
#[test]
fn unsent_messages_expire_as_not_sent_and_are_never_sent() {
    let (mut core, mut rec) = connected();
    let sent = core
        .js_publish(&js(b"", b"", 1, true, true), b"left", 0)
        .unwrap();
    take(&mut core);
    // Written but not yet handed to the transport (a paused transport keeps it in `out`).
    let held = core
        .js_publish(&js(b"", b"", 1, true, false), b"held", 0)
        .unwrap();
    core.on_disconnect(&mut rec);
    rec.events.clear();
    // Buffered while disconnected, around a core NATS publish that must survive.
    let buffered = core
        .js_publish(&js(b"", b"", 1, true, true), b"order-42", 10)
        .unwrap();
    core.publish(b"plain", None, None, b"p").unwrap();
    let late = core
        .js_publish(&js(b"", b"", 1, true, false), b"late", 900)
        .unwrap();
    core.sweep(1000, &mut rec);
    let outcomes: Vec<(u64, Outcome)> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::Done(c) => Some((c.id, c.outcome.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (sent, Outcome::Unknown(UnknownReason::AckTimeout)),
            (held, Outcome::NotSent(NotSentReason::Expired)),
        ],
        "only the ack waits that ran out"
    );
    rec.events.clear();
    core.sweep(1010, &mut rec);
    assert!(matches!(
        rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::NotSent(NotSentReason::Expired), .. })] if id == buffered
    ));
    // The reconnect sends what is left: the core publish and the late message, nothing else.
    core.start_session(CONNECT, 0).unwrap();
    take(&mut core);
    core.feed_bytes(b"PONG\r\n", 5, &mut rec).unwrap();
    core.session_ready(1020);
    let out = take(&mut core);
    assert!(
        !out.contains("left") && !out.contains("held") && !out.contains("order-42"),
        "{out}"
    );
    assert_eq!(
        out,
        format!("PUB plain 1\r\np\r\nPUB orders#eu$1.final _INBOX.abc.{late} 4\r\nlate\r\n")
    );
}

/// A connected core with one awaited publish per payload written and taken (`keep`: their
/// frames kept, as a msg-id's are); `cluster`: it retries "unavailable" answers, as it does on
/// a clustered server.
fn publishes_written(payloads: &[&[u8]], keep: bool, cluster: bool) -> (Core, Rec, Vec<u64>) {
    let (mut core, rec) = connected();
    core.set_retry_unavailable(cluster);
    let ids = payloads
        .iter()
        .map(|p| core.js_publish(&js(b"", b"", 1, true, keep), p, 0).unwrap())
        .collect();
    take(&mut core);
    (core, rec, ids)
}

/// Sweep at each deadline from `now` (ms), answering every try of `id` with `answer`, until
/// something completes; the time it did. The ack wait (1 s) bounds it.
fn answer_every_try_until_done(
    core: &mut Core,
    rec: &mut Rec,
    id: u64,
    answer: &str,
    mut now: u64,
) -> u64 {
    while rec.events.is_empty() {
        now = core.next_deadline_ms().unwrap();
        core.sweep(now, rec);
        if take(core).contains(&format!("_INBOX.abc.{id} ")) {
            core.feed_bytes(answer.as_bytes(), now * 1000, rec).unwrap();
        }
        assert!(now <= 1000, "the ack wait bounds the tries");
    }
    now
}

/// Clustered servers: a publish answered "no responders" (a stream leader is being elected)
/// is sent again, with the same reply inbox, until it is stored or its ack wait runs out; a
/// final error ("insufficient resources") is not retried.
#[test]
fn unavailable_answers_are_retried_until_the_ack_wait() {
    let (mut core, mut rec, ids) = publishes_written(&[b"a", b"b", b"c"], false, true);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let full = br#"{"error":{"code":503,"err_code":10047,"description":"insufficient resources"}}"#;
    let input = format!(
        "HMSG _INBOX.abc.{a} 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nHMSG _INBOX.abc.{b} 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nMSG _INBOX.abc.{c} 1 {}\r\n{}\r\n",
        full.len(),
        s(full)
    );
    core.feed_bytes(input.as_bytes(), 0, &mut rec).unwrap();
    assert!(core.take_timer_changed());
    // Only the full store is final.
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::NotStored { err_code: 10047, .. }, .. })] if *id == c
    ));
    rec.events.clear();
    assert_eq!(core.next_deadline_ms(), Some(25));
    core.sweep(25, &mut rec);
    assert_eq!(
        take(&mut core),
        format!(
            "PUB orders#eu$1.final _INBOX.abc.{a} 1\r\na\r\nPUB orders#eu$1.final _INBOX.abc.{b} 1\r\nb\r\n"
        )
    );
    assert_eq!(core.group_stats(1).retried, 2);
    // `a` is stored by its second try; `b` keeps being unavailable until its ack wait ends.
    let stored = br#"{"stream":"orders#eu$1","seq":7}"#;
    let input = format!(
        "MSG _INBOX.abc.{a} 1 {}\r\n{}\r\nHMSG _INBOX.abc.{b} 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
        stored.len(),
        s(stored)
    );
    core.feed_bytes(input.as_bytes(), 30_000, &mut rec).unwrap();
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::Stored { seq: 7, .. }, .. })] if *id == a
    ));
    rec.events.clear();
    let nak = format!("HMSG _INBOX.abc.{b} 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
    let now = answer_every_try_until_done(&mut core, &mut rec, b, &nak, 30);
    match &rec.events[..] {
        [Ev::Done(Completed {
            id,
            outcome:
                Outcome::NotStored {
                    code: 503,
                    description,
                    ..
                },
            ..
        })] => {
            assert_eq!(*id, b);
            assert!(
                description.starts_with("no stream leader answered within the ack wait"),
                "{description}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!((500..=1000).contains(&now), "{now}");
}

/// Without retries (a single server: no responders means no stream), the answer is final.
#[test]
fn unavailable_is_final_without_retries() {
    let (mut core, mut rec) = connected();
    let a = core
        .js_publish(&js(b"", b"", 1, true, false), b"a", 0)
        .unwrap();
    take(&mut core);
    let input = format!("HMSG _INBOX.abc.{a} 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
    core.feed_bytes(input.as_bytes(), 0, &mut rec).unwrap();
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed {
            outcome: Outcome::NotStored {
                code: 503,
                err_code: 0,
                ..
            },
            ..
        })]
    ));
    assert!(!core.take_timer_changed());
}

/// Clustered servers: an awaited publish with a message id that nobody answers (it went to a
/// stream leader that died) is sent again after 1 s, then 2 s, ... until its ack wait; one
/// without a message id is not (a copy could be stored twice).
#[test]
fn silent_awaited_msg_id_publishes_are_sent_again() {
    let (mut core, mut rec) = connected();
    core.set_retry_unavailable(true);
    let mut p = js(b"", b"", 1, true, true);
    p.ack_wait_ms = 10_000;
    let a = core.js_publish(&p, b"a", 0).unwrap();
    let mut q = js(b"", b"", 1, true, false);
    q.ack_wait_ms = 10_000;
    core.js_publish(&q, b"b", 0).unwrap();
    take(&mut core);
    assert_eq!(core.next_deadline_ms(), Some(1_000));
    core.sweep(1_000, &mut rec);
    assert_eq!(
        take(&mut core),
        format!("PUB orders#eu$1.final _INBOX.abc.{a} 1\r\na\r\n")
    );
    assert_eq!(core.next_deadline_ms(), Some(3_000));
    core.sweep(2_000, &mut rec);
    assert_eq!(take(&mut core), "");
    core.sweep(3_000, &mut rec);
    assert_eq!(
        take(&mut core),
        format!("PUB orders#eu$1.final _INBOX.abc.{a} 1\r\na\r\n")
    );
    let ack = br#"{"stream":"orders#eu$1","seq":1}"#;
    let input = format!("MSG _INBOX.abc.{a} 1 {}\r\n{}\r\n", ack.len(), s(ack));
    core.feed_bytes(input.as_bytes(), 3_100_000, &mut rec)
        .unwrap();
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::Stored { seq: 1, .. }, .. })] if *id == a
    ));
    assert_eq!(core.group_stats(1).retried, 2);
}

/// Clustered servers: a copy of a msg-id publish that reaches the stream leader while the
/// first copy's proposal is not yet committed is answered "duplicate, sequence 0" (nats-server
/// 2.10) or 409/10158 "duplicate message id is in process" (2.11). Neither says the message is
/// stored (the proposal may still be lost): it is asked again until the server names a
/// sequence, and ends "unknown" if its ack wait runs out first.
#[test]
fn a_duplicate_still_in_process_is_asked_again_not_taken_as_stored() {
    let (mut core, mut rec, ids) = publishes_written(&[b"a", b"b"], true, true);
    let (a, b) = (ids[0], ids[1]);
    let zero = br#"{"stream":"orders#eu$1", "seq":0,"duplicate": true}"#;
    let conflict = br#"{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"}}"#;
    let input = format!(
        "MSG _INBOX.abc.{a} 1 {}\r\n{}\r\nMSG _INBOX.abc.{b} 1 {}\r\n{}\r\n",
        zero.len(),
        s(zero),
        conflict.len(),
        s(conflict)
    );
    core.feed_bytes(input.as_bytes(), 0, &mut rec).unwrap();
    assert!(rec.events.is_empty(), "{:?}", rec.events);
    assert!(core.take_timer_changed());
    core.sweep(25, &mut rec);
    assert_eq!(
        take(&mut core),
        format!(
            "PUB orders#eu$1.final _INBOX.abc.{a} 1\r\na\r\nPUB orders#eu$1.final _INBOX.abc.{b} 1\r\nb\r\n"
        )
    );
    // `a`'s first copy is committed now: the server names its sequence. `b`'s is not.
    let named = br#"{"stream":"orders#eu$1", "seq":9,"duplicate": true}"#;
    let input = format!(
        "MSG _INBOX.abc.{a} 1 {}\r\n{}\r\nMSG _INBOX.abc.{b} 1 {}\r\n{}\r\n",
        named.len(),
        s(named),
        zero.len(),
        s(zero)
    );
    core.feed_bytes(input.as_bytes(), 30_000, &mut rec).unwrap();
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::Stored { seq: 9, duplicate: true, .. }, .. })] if *id == a
    ));
    rec.events.clear();
    // `b` stays in process until its ack wait runs out.
    let again = format!("MSG _INBOX.abc.{b} 1 {}\r\n{}\r\n", zero.len(), s(zero));
    let now = answer_every_try_until_done(&mut core, &mut rec, b, &again, 30);
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::Unknown(UnknownReason::DuplicateInProcess), .. })] if *id == b
    ));
    assert!((500..1000).contains(&now), "{now}");
}

/// Without a kept frame there is nothing to ask again with: "in process" ends it as unknown.
#[test]
fn a_duplicate_in_process_without_a_kept_frame_is_unknown() {
    let (mut core, mut rec, ids) = publishes_written(&[b"a"], false, false);
    let a = ids[0];
    let zero = br#"{"stream":"orders#eu$1","seq":0,"duplicate":true}"#;
    let input = format!("MSG _INBOX.abc.{a} 1 {}\r\n{}\r\n", zero.len(), s(zero));
    core.feed_bytes(input.as_bytes(), 0, &mut rec).unwrap();
    assert!(matches!(
        &rec.events[..],
        [Ev::Done(Completed { id, outcome: Outcome::Unknown(UnknownReason::DuplicateInProcess), .. })] if *id == a
    ));
}

/// A JetStream delivery that reaches a pull inbox after it was unsubscribed (the server was
/// already sending) goes back at once with -NAK; a plain message is just dropped.
#[test]
fn deliveries_to_a_gone_subscription_are_nakked() {
    let (mut core, mut rec) = connected();
    let sid = core.pull_subscribe(0).unwrap();
    take(&mut core);
    core.unsubscribe(sid, None);
    take(&mut core);
    let input = format!(
        "MSG _INBOX.abc.P1.1 {sid} $JS.ACK.s.c.1.7.7.1700000000000000000.0 1\r\nx\r\nMSG plain {sid} 1\r\ny\r\n"
    );
    core.feed_bytes(input.as_bytes(), 0, &mut rec).unwrap();
    assert!(rec.events.is_empty());
    assert_eq!(
        take(&mut core),
        "PUB $JS.ACK.s.c.1.7.7.1700000000000000000.0 4\r\n-NAK\r\n"
    );
    assert_eq!(core.stats().dropped_msgs, 2);
    assert_eq!(core.stats().orphans_nakked, 1);
}

/// Feed `frames` to a fresh connected core with three publishes in flight; the events, the
/// stats and the error that come out.
fn pub_ack_run(frames: &[u8], limits: memphis_proto::Limits) -> (Vec<Ev>, String, String) {
    pub_ack_run_pieces(&[frames], limits)
}

/// [`pub_ack_run`] with the bytes fed in pieces.
fn pub_ack_run_pieces(
    pieces: &[&[u8]],
    limits: memphis_proto::Limits,
) -> (Vec<Ev>, String, String) {
    let mut core = Core::new(
        "_INBOX.abc",
        Options {
            limits,
            ..Options::default()
        },
    )
    .unwrap();
    let mut rec = Rec::default();
    core.start_session(CONNECT, 0).unwrap();
    core.feed_bytes(b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n", 5, &mut rec)
        .unwrap();
    core.session_ready(0);
    rec.events.clear();
    for _ in 0..3 {
        core.js_publish(&js(HDRS, b"", 1, true, false), b"m", 0)
            .unwrap();
    }
    let err = pieces
        .iter()
        .find_map(|p| core.feed_bytes(p, 0, &mut rec).err())
        .map_or_else(String::new, |e| e.to_string());
    (rec.events, format!("{:?}", core.stats()), err)
}

/// The PubAck fast path (`MSG <inbox prefix><id> <mux sid> <size>`, single spaces, as
/// nats-server writes it) gives exactly what the general parser gives for the same frame
/// written with doubled spaces (which only the general parser accepts): for acks of known,
/// unknown and overlong ids, other sids, an oversized size, a line past the control-line
/// limit, a bad terminator, and every split point of the canonical stream.
#[test]
fn pub_ack_fast_path_matches_the_general_parser() {
    let ack = |subject: &str, sid: &str, body: &str, sep: &str| {
        format!(
            "MSG{sep}{subject}{sep}{sid}{sep}{}\r\n{body}\r\n",
            body.len()
        )
    };
    let stored = r#"{"stream":"orders#eu$1","seq":42}"#;
    let cases: Vec<(String, String, String)> = vec![
        ("_INBOX.abc.1".into(), "1".into(), stored.into()),
        ("_INBOX.abc.3".into(), "1".into(), r#"{"stream":"orders#eu$1", "seq":7,"duplicate": true}"#.into()),
        ("_INBOX.abc.2".into(), "1".into(), r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"orders#eu$1"}"#.into()),
        ("_INBOX.abc.0002".into(), "1".into(), stored.into()), // leading zeros: id 2
        ("_INBOX.abc.9999999999999999999".into(), "1".into(), stored.into()), // 19 digits: late
        ("_INBOX.abc.12345678901234567890".into(), "1".into(), stored.into()), // 20: a message
        ("_INBOX.abc.1".into(), "7".into(), stored.into()), // not the mux sid: dropped
        ("_INBOX.abc.x1".into(), "1".into(), stored.into()), // a request reply: a message
        ("_INBOX.abcd.1".into(), "1".into(), stored.into()),
        ("_INBOX.abc.".into(), "1".into(), stored.into()),
        ("_INBOX.abc.1".into(), "1".into(), "".into()),
    ];
    let limits = memphis_proto::Limits::default();
    for (subject, sid, body) in &cases {
        let fast = ack(subject, sid, body, " ");
        let slow = ack(subject, sid, body, "  ");
        let a = pub_ack_run(fast.as_bytes(), limits);
        let b = pub_ack_run(slow.as_bytes(), limits);
        assert_eq!(a, b, "{fast:?}");
    }
    // All of them in one stream, fed whole and byte by byte.
    let stream: String = cases.iter().map(|(a, b, c)| ack(a, b, c, " ")).collect();
    let slow: String = cases.iter().map(|(a, b, c)| ack(a, b, c, "  ")).collect();
    let whole = pub_ack_run(stream.as_bytes(), limits);
    assert_eq!(whole, pub_ack_run(slow.as_bytes(), limits));
    assert!(whole.0.len() >= 4, "{:?}", whole.0);
    for cut in 1..stream.len() {
        let (a, b) = stream.as_bytes().split_at(cut);
        assert_eq!(pub_ack_run_pieces(&[a, b], limits), whole, "cut at {cut}");
    }
    // Errors: a size over the limit, a line over the control-line limit, no CRLF after the
    // payload. The fast path leaves each to the general parser.
    let small = memphis_proto::Limits {
        max_control_line: 30,
        max_payload: 16,
    };
    for frame in [
        format!("MSG _INBOX.abc.1 1 17\r\n{}\r\n", "x".repeat(17)),
        "MSG _INBOX.abc.123456789012 1 2\r\nab\r\n".to_string(),
        "MSG _INBOX.abc.1 1 2\r\nabXY".to_string(),
    ] {
        let (events, _, err) = pub_ack_run(frame.as_bytes(), small);
        assert!(!err.is_empty(), "{frame:?} gave {events:?}");
        assert_eq!(
            (events.clone(), err.clone()),
            {
                // (the error quotes the line: compare it with single spaces)
                let (e, _, r) = pub_ack_run(frame.replace(' ', "  ").as_bytes(), small);
                (e, r.replace("  ", " "))
            },
            "{frame:?}"
        );
    }
}
