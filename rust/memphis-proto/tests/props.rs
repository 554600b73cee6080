//! Property tests: the parser gives identical results however the stream is split, and
//! arbitrary bytes never panic and never grow buffers past their limits.

mod common;

use common::Rec;
use memphis_proto::{Core, JsPublish, Limits, Options};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Spec {
    Info(String),
    Ping,
    Pong,
    Ok,
    Err(String),
    Msg {
        subject: String,
        sid: u64,
        reply: Option<String>,
        headers: Option<Vec<(String, String)>>,
        status: Option<u16>,
        payload: Vec<u8>,
    },
    Ack {
        id: u64,
        seq: u64,
    },
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_$#-]{1,12}"
}

fn subject() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..4).prop_map(|t| t.join("."))
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        "[a-z0-9:,\"]{0,30}".prop_map(|s| Spec::Info(format!("{{\"k\":\"{s}\"}}"))),
        Just(Spec::Ping),
        Just(Spec::Pong),
        Just(Spec::Ok),
        "[a-zA-Z ]{0,30}".prop_map(Spec::Err),
        (
            subject(),
            1u64..5,
            prop::option::of(subject()),
            prop::option::of(prop::collection::vec(
                ("[A-Za-z-]{1,8}", "[ -~]{0,10}"),
                0..3
            )),
            prop::option::of(prop_oneof![Just(100u16), Just(404), Just(408), Just(503)]),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |(subject, sid, reply, headers, status, payload)| Spec::Msg {
                    subject,
                    sid,
                    reply,
                    headers,
                    status,
                    payload
                }
            ),
        (1u64..6, 1u64..1000).prop_map(|(id, seq)| Spec::Ack { id, seq }),
    ]
}

fn encode(specs: &[Spec]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in specs {
        match s {
            Spec::Info(j) => out.extend_from_slice(format!("INFO {j}\r\n").as_bytes()),
            Spec::Ping => out.extend_from_slice(b"PING\r\n"),
            Spec::Pong => out.extend_from_slice(b"PONG\r\n"),
            Spec::Ok => out.extend_from_slice(b"+OK\r\n"),
            Spec::Err(e) => out.extend_from_slice(format!("-ERR '{e}'\r\n").as_bytes()),
            Spec::Msg {
                subject,
                sid,
                reply,
                headers,
                status,
                payload,
            } => {
                let r = reply.as_ref().map(|r| format!(" {r}")).unwrap_or_default();
                match headers {
                    None => {
                        out.extend_from_slice(
                            format!("MSG {subject} {sid}{r} {}\r\n", payload.len()).as_bytes(),
                        );
                    }
                    Some(h) => {
                        let mut block = String::from("NATS/1.0");
                        if let Some(c) = status {
                            block.push_str(&format!(" {c} Status"));
                        }
                        block.push_str("\r\n");
                        for (k, v) in h {
                            block.push_str(&format!("{k}: {v}\r\n"));
                        }
                        block.push_str("\r\n");
                        out.extend_from_slice(
                            format!(
                                "HMSG {subject} {sid}{r} {} {}\r\n",
                                block.len(),
                                block.len() + payload.len()
                            )
                            .as_bytes(),
                        );
                        out.extend_from_slice(block.as_bytes());
                    }
                }
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
            Spec::Ack { id, seq } => {
                let body = format!("{{\"stream\":\"s$1\",\"seq\":{seq}}}");
                out.extend_from_slice(
                    format!("MSG _INBOX.t.{id} 1 {}\r\n{body}\r\n", body.len()).as_bytes(),
                );
            }
        }
    }
    out
}

/// A connected core with subscriptions 2..4 and five publishes in flight (ids 1..=5).
fn fresh() -> Core {
    let mut core = Core::new("_INBOX.t", Options::default()).unwrap();
    let mut rec = Rec::default();
    core.start_session(b"{}", 0).unwrap();
    core.feed_bytes(b"PONG\r\n", 0, &mut rec).unwrap();
    core.session_ready(0);
    for s in ["a", "b.*", ">"] {
        core.subscribe(s.as_bytes(), None).unwrap();
    }
    for _ in 0..5 {
        let p = JsPublish {
            subject: b"s$1.final",
            headers: b"",
            extra_headers: b"",
            group: 1,
            tag: 0,
            ack_wait_ms: 1000,
            waiter: true,
            keep_frame: false,
        };
        core.js_publish(&p, b"x", 0).unwrap();
    }
    core.out_taken();
    core
}

fn run(chunks: &[&[u8]]) -> (Vec<common::Ev>, Vec<u8>) {
    let mut core = fresh();
    let mut rec = Rec::default();
    for c in chunks {
        core.feed_bytes(c, 0, &mut rec).unwrap();
    }
    (rec.events, core.out().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn split_at_every_offset_gives_identical_results(specs in prop::collection::vec(spec(), 1..8)) {
        let stream = encode(&specs);
        let whole = run(&[&stream]);
        let silent = specs
            .iter()
            .all(|s| matches!(s, Spec::Ok | Spec::Ack { .. } | Spec::Msg { sid: 1, .. }));
        prop_assert!(!whole.0.is_empty() || silent);
        for i in 0..=stream.len() {
            let split = run(&[&stream[..i], &stream[i..]]);
            prop_assert_eq!(&split, &whole, "split at {}", i);
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(run(&bytes), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20)
    ) {
        let opts = Options {
            limits: Limits { max_control_line: 256, max_payload: 1024 },
            ..Options::default()
        };
        let limit = opts.limits.max_control_line + opts.limits.max_payload + 2 + 16 * 1024;
        let mut core = Core::new("_INBOX.f", opts).unwrap();
        let mut rec = Rec::default();
        for c in &chunks {
            let tail = core.recv_buffer().prepare();
            let n = tail.len().min(c.len());
            tail[..n].copy_from_slice(&c[..n]);
            let res = core.feed(n, 0, &mut rec);
            prop_assert!(core.recv_buffer().capacity() <= limit.max(64 * 1024));
            prop_assert!(core.recv_buffer().pending().len() <= limit);
            if res.is_err() {
                break;
            }
        }
    }

    #[test]
    fn protocol_like_garbage_never_panics(
        parts in prop::collection::vec(prop_oneof![
            Just(b"MSG ".to_vec()), Just(b"HMSG ".to_vec()), Just(b"\r\n".to_vec()),
            Just(b" ".to_vec()), Just(b"NATS/1.0".to_vec()), Just(b"PING".to_vec()),
            Just(b"INFO {".to_vec()), Just(b"-ERR '".to_vec()),
            "[0-9]{1,6}".prop_map(String::into_bytes),
            "[a-z_.$]{1,5}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..4),
        ], 0..40)
    ) {
        let stream: Vec<u8> = parts.concat();
        let mut core = fresh();
        let mut rec = Rec::default();
        let _ = core.feed_bytes(&stream, 0, &mut rec);
    }
}
