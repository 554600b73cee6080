//! Property tests for the pieces that parse what we (or nats-server) encode:
//! * PubAck bodies: the hand-written scanner plus the serde fallback agree with a plain JSON
//!   reading for every shape nats-server sends (key order, whitespace, optional keys,
//!   escapes, API errors);
//! * header blocks: what `header::encode` writes, `header::pairs` reads back unchanged;
//! * publishes: an HPUB frame turned into the HMSG the server would deliver parses back to
//!   the same subject, reply, headers and payload.

mod common;

use common::{Ev, Rec};
use memphis_proto::header;
use memphis_proto::jetstream::{parse_pub_ack, PubAck};
use memphis_proto::{Core, Options};
use proptest::prelude::*;

fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\n"), Just(" \t ")]
}

/// A JSON string literal for `s`, sometimes with a needless escape (still the same string).
fn json_str(s: &str, escape_first: bool) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 0 && escape_first {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn expected(body: &str) -> PubAck {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    if let Some(e) = v.get("error") {
        return PubAck::Error {
            code: e["code"].as_u64().unwrap() as u16,
            err_code: e["err_code"].as_u64().unwrap() as u32,
            description: e["description"].as_str().unwrap().to_owned(),
        };
    }
    PubAck::Stored {
        stream: v["stream"].as_str().unwrap().to_owned(),
        seq: v["seq"].as_u64().unwrap(),
        duplicate: v
            .get("duplicate")
            .and_then(|d| d.as_bool())
            .unwrap_or(false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn pub_ack_bodies_read_like_json(
        stream in "[a-zA-Z0-9_$#-]{1,20}",
        seq in any::<u64>(),
        duplicate in prop::option::of(any::<bool>()),
        domain in prop::option::of("[a-z]{1,8}"),
        escape in any::<bool>(),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        spaces in prop::collection::vec(ws(), 12),
    ) {
        let mut fields = vec![
            format!("\"stream\"{}:{}{}", spaces[0], spaces[1], json_str(&stream, escape)),
            format!("\"seq\"{}:{}{}", spaces[2], spaces[3], seq),
        ];
        if let Some(d) = duplicate {
            fields.push(format!("\"duplicate\"{}:{}{}", spaces[4], spaces[5], d));
        }
        if let Some(d) = &domain {
            fields.push(format!("\"domain\":{}", json_str(d, false)));
        }
        // A permutation of the keys chosen by `order`.
        let mut o = order;
        for i in (1..fields.len()).rev() {
            fields.swap(i, (o % (i as u64 + 1)) as usize);
            o /= i as u64 + 1;
        }
        let sep = format!("{},{}", spaces[6], spaces[7]);
        let body = format!("{{{}{}{}}}{}", spaces[8], fields.join(&sep), spaces[9], spaces[10]);
        prop_assert_eq!(parse_pub_ack(body.as_bytes()), expected(&body), "body {}", body);
    }

    #[test]
    fn pub_ack_errors_read_like_json(
        code in 100u16..600,
        err_code in any::<u32>(),
        description in "[ -~]{0,40}",
        with_stream in any::<bool>(),
    ) {
        let desc = serde_json::to_string(&description).unwrap();
        let stream = if with_stream { r#""stream":"s$1","seq":0,"# } else { "" };
        let body = format!(
            r#"{{{stream}"error":{{"code":{code},"err_code":{err_code},"description":{desc}}}}}"#
        );
        prop_assert_eq!(parse_pub_ack(body.as_bytes()), expected(&body));
    }

    #[test]
    fn pub_ack_garbage_is_never_stored_by_mistake(body in prop::collection::vec(any::<u8>(), 0..80)) {
        // Whatever the bytes, the result is either what a JSON reading says, or an error.
        match parse_pub_ack(&body) {
            PubAck::Stored { stream, seq, duplicate } => {
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .expect("reported stored, so it must be JSON");
                prop_assert_eq!(v["stream"].as_str(), Some(stream.as_str()));
                prop_assert_eq!(v["seq"].as_u64(), Some(seq));
                prop_assert_eq!(v.get("duplicate").and_then(|d| d.as_bool()).unwrap_or(false), duplicate);
            }
            PubAck::Error { .. } => {}
        }
    }

    #[test]
    fn header_blocks_round_trip(
        pairs in prop::collection::vec(("[!#-9;-~]{1,16}", "[!-~]([ -~]{0,30}[!-~])?"), 0..8),
    ) {
        let refs: Vec<(&[u8], &[u8])> =
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
        let block = header::encode(refs.iter().copied()).unwrap();
        let back: Vec<(&[u8], &[u8])> = header::pairs(&block).collect();
        prop_assert_eq!(back, refs);
        prop_assert_eq!(header::status(&block).code, 0);
    }

    #[test]
    fn publish_frames_parse_back_as_deliveries(
        subject in "[a-z0-9_$#]{1,10}(\\.[a-z0-9_$#-]{1,10}){0,3}",
        reply in prop::option::of("_INBOX\\.[a-z0-9]{1,12}"),
        pairs in prop::option::of(prop::collection::vec(("[A-Za-z$_-]{1,12}", "[!-~]{1,12}"), 0..4)),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        // Encode as a client, turn the HPUB/PUB into the HMSG/MSG a server delivers on sid 2,
        // parse as a client.
        let mut sender = Core::new("_INBOX.s", Options::default()).unwrap();
        let mut rec = Rec::default();
        sender.start_session(b"{}", 0).unwrap();
        sender.feed_bytes(b"PONG\r\n", 0, &mut rec).unwrap();
        sender.session_ready(0);
        sender.out_taken();
        let block = pairs.as_ref().map(|p| {
            header::encode(p.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))).unwrap()
        });
        sender
            .publish(subject.as_bytes(), reply.as_deref().map(str::as_bytes), block.as_deref(), &payload)
            .unwrap();
        let out = sender.out().to_vec();
        let line_end = out.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = std::str::from_utf8(&out[..line_end]).unwrap();
        let mut f: Vec<&str> = line.split(' ').collect();
        let op = if f[0] == "HPUB" { "HMSG" } else { "MSG" };
        f[0] = op;
        f.insert(2, "2");
        let mut delivered = f.join(" ").into_bytes();
        delivered.extend_from_slice(&out[line_end..]);

        let mut receiver = Core::new("_INBOX.r", Options::default()).unwrap();
        receiver.subscribe(b">", None).unwrap();
        let mut got = Rec::default();
        receiver.feed_bytes(&delivered, 0, &mut got).unwrap();
        prop_assert_eq!(
            got.events,
            vec![Ev::Msg {
                subject: subject.into_bytes(),
                sid: 2,
                reply: reply.map(String::into_bytes),
                headers: block,
                payload,
            }]
        );
    }
}
