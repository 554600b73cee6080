//! Fuzz the stand-alone parsers of server text: one operation (`parse_op`), header blocks
//! (status line and pairs), JetStream ack subjects and PubAck bodies. Nothing may panic, and
//! `parse_op` must never claim more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memphis_proto::jetstream::{parse_ack_subject, parse_pub_ack};
use memphis_proto::{header, parse_op, Limits, Parsed};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_control_line: 256,
        max_payload: 2048,
    };
    if let Ok(Parsed::Op(_, used)) = parse_op(data, &limits) {
        assert!(used > 0 && used <= data.len());
    }
    let st = header::status(data);
    assert!(st.code <= 999);
    for (k, _v) in header::pairs(data) {
        assert!(!k.is_empty());
    }
    if let Some(m) = parse_ack_subject(data) {
        assert!(m.stream.len() < data.len());
    }
    let _ = parse_pub_ack(data);
});
