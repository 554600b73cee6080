//! A bounded, deterministic fuzz run of `Core::feed` / `Core::feed_bytes` on the stable
//! toolchain (the cargo-fuzz targets in `fuzz/` need nightly; `scripts/fuzz.sh` runs both).
//!
//! Feeds `MEMPHIS_FUZZ_CASES` inputs (default 50,000: about 5 s of CPU in a debug build) from a
//! seeded generator (`MEMPHIS_FUZZ_SEED`, default fixed): pure random bytes, valid server
//! streams (INFO, PING, PONG, +OK, -ERR, MSG, HMSG with status lines, publish acks of the
//! in-flight publishes), and those valid streams mutated (bytes flipped, inserted, deleted,
//! duplicated, spliced, sizes replaced by huge or negative numbers, truncated). For every input:
//!
//! * nothing panics (a failing case is printed with its seed, number and bytes);
//! * the receive buffer never grows past its ceiling, and after a successful feed at most one
//!   incomplete operation is left unparsed;
//! * feeding the stream in pieces through the in-place path gives exactly the events, output
//!   and error of feeding it in one piece;
//! * after the stream (or its error) the connection can be dropped, re-handshaken and closed,
//!   and each of the publishes that were in flight ends exactly once.

mod common;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{Ev, Rec};
use memphis_proto::{Core, JsPublish, Limits, Options};

const LIMITS: Limits = Limits {
    max_control_line: 512,
    max_payload: 4096,
};
/// `Core::new` sizes the receive buffer to the limits plus one minimum read; 64 KiB is the
/// ceiling it may never pass.
const RECV_CEILING: usize = 64 * 1024;
/// After a successful feed: at most one incomplete operation (control line, LF, the largest
/// payload and its CRLF).
const MAX_UNPARSED: usize = LIMITS.max_control_line + 1 + LIMITS.max_payload + 2;
const PUBLISHES: u64 = 4;

/// SplitMix64: tiny, seedable, good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A connected core with subscriptions and `PUBLISHES` JetStream publishes in flight (two of
/// them keep their frame, as msg-id publishes do), so acks, replies and deliveries all reach
/// their handlers.
fn core() -> Core {
    let opts = Options {
        limits: LIMITS,
        ..Options::default()
    };
    let mut core = Core::new("_INBOX.f", opts).unwrap();
    let mut rec = Rec::default();
    core.start_session(b"{}", 0).unwrap();
    core.feed_bytes(b"PONG\r\n", 0, &mut rec).unwrap();
    core.session_ready(0);
    for s in ["a", "b.*", ">"] {
        core.subscribe(s.as_bytes(), None).unwrap();
    }
    for i in 0..PUBLISHES {
        let keep = i % 2 == 1;
        let p = JsPublish {
            subject: b"s$1.final",
            headers: b"k: v\r\n",
            extra_headers: b"",
            group: 1,
            tag: i,
            ack_wait_ms: 1000,
            waiter: keep,
            keep_frame: keep,
        };
        core.js_publish(&p, b"x", 0).unwrap();
    }
    core.out_taken();
    core
}

// -- inputs --------------------------------------------------------------------------------
fn subject(rng: &mut Rng, mux: &str) -> String {
    let choices = [
        "a".to_string(),
        "b.c".to_string(),
        "z.y.x".to_string(),
        format!("{mux}{}", 1 + rng.below(PUBLISHES as usize + 2)),
        format!("{mux}99"),
        "$JS.ACK.s.c.1.2.3.4.5".to_string(),
    ];
    rng.pick(&choices).clone()
}

fn valid_op(rng: &mut Rng, mux: &str, mux_sid: u64) -> Vec<u8> {
    match rng.below(9) {
        0 => br#"INFO {"server_id":"X","version":"2.10.26","max_payload":4096,"headers":true}"#
            .iter()
            .chain(b"\r\n")
            .copied()
            .collect(),
        1 => b"PING\r\n".to_vec(),
        2 => b"PONG\r\n".to_vec(),
        3 => b"+OK\r\n".to_vec(),
        4 => b"-ERR 'Permissions Violation for Publish'\r\n".to_vec(),
        5 => {
            let subj = subject(rng, mux);
            let sid = *rng.pick(&[1, 2, 3, 4, mux_sid, 77]);
            let n = rng.below(64);
            let body = rng.bytes(n);
            let mut out = format!("MSG {subj} {sid} {}\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
            out
        }
        6 => {
            // A publish ack for one of the in-flight publishes (or a JetStream error).
            let id = 1 + rng.below(PUBLISHES as usize + 1);
            let body = if rng.chance(3) {
                br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#
                    .to_vec()
            } else {
                format!(
                    r#"{{"stream":"s$1","seq":{},"duplicate":false}}"#,
                    rng.below(1000)
                )
                .into_bytes()
            };
            let mut out = format!("MSG {mux}{id} {mux_sid} {}\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
            out
        }
        7 => {
            // A status message (no responders, timeout, heartbeat) with headers.
            let status = *rng.pick(&[
                "503",
                "408 Request Timeout",
                "100 Idle Heartbeat",
                "404 No Messages",
            ]);
            let id = 1 + rng.below(PUBLISHES as usize);
            let hdr = format!("NATS/1.0 {status}\r\n\r\n");
            let mut out =
                format!("HMSG {mux}{id} {mux_sid} {} {}\r\n", hdr.len(), hdr.len()).into_bytes();
            out.extend_from_slice(hdr.as_bytes());
            out.extend_from_slice(b"\r\n");
            out
        }
        _ => {
            let subj = subject(rng, mux);
            let hdr = "NATS/1.0\r\nmsg-id: m1\r\nk: v\r\n\r\n";
            let n = rng.below(32);
            let body = rng.bytes(n);
            let mut out = format!(
                "HMSG {subj} 3 _INBOX.r {} {}\r\n",
                hdr.len(),
                hdr.len() + body.len()
            )
            .into_bytes();
            out.extend_from_slice(hdr.as_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

fn valid_stream(rng: &mut Rng, mux: &str, mux_sid: u64) -> Vec<u8> {
    let n = 1 + rng.below(10);
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend(valid_op(rng, mux, mux_sid));
    }
    out
}

fn mutate(rng: &mut Rng, mut data: Vec<u8>) -> Vec<u8> {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let junk = rng.bytes(n);
                data.splice(i..i, junk);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(16)).min(len);
                data.drain(i..j);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(64)).min(len);
                let copy = data[i..j].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            4 => {
                // Replace the first run of digits with an absurd number.
                if let Some(i) = data.iter().position(u8::is_ascii_digit) {
                    let j = data[i..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(data.len(), |k| i + k);
                    let big = rng
                        .pick(&[
                            "99999999999999999999999",
                            "18446744073709551616",
                            "4097",
                            "-1",
                            "0",
                            "2147483648",
                        ])
                        .as_bytes()
                        .to_vec();
                    data.splice(i..j, big);
                }
            }
            5 if len > 0 => data.truncate(rng.below(len)),
            6 => {
                // CR/LF in odd places.
                let i = rng.below(len + 1);
                let pick = *rng.pick(&[&b"\r"[..], b"\n", b"\r\n", b"\r\r\n", b" "]);
                data.splice(i..i, pick.iter().copied());
            }
            _ => {
                let i = rng.below(len + 1);
                let long = vec![b'A' + rng.below(26) as u8; 1 + rng.below(700)];
                data.splice(i..i, long);
            }
        }
    }
    data
}

fn input(rng: &mut Rng, mux: &str, mux_sid: u64) -> Vec<u8> {
    match rng.below(4) {
        0 => {
            let n = rng.below(600);
            rng.bytes(n)
        }
        1 => valid_stream(rng, mux, mux_sid),
        _ => {
            let v = valid_stream(rng, mux, mux_sid);
            mutate(rng, v)
        }
    }
}

// -- checks --------------------------------------------------------------------------------
fn check_bounds(core: &mut Core, ok: bool) {
    let cap = core.recv_buffer().capacity();
    assert!(cap <= RECV_CEILING, "receive buffer grew to {cap}");
    let pending = core.recv_buffer().pending().len();
    assert!(pending <= RECV_CEILING, "{pending} unparsed bytes");
    if ok {
        assert!(
            pending <= MAX_UNPARSED,
            "{pending} unparsed bytes after a successful feed"
        );
    }
}

fn completions(events: &[Ev], seen: &mut HashMap<u64, u32>) {
    for e in events {
        if let Ev::Done(c) = e {
            *seen.entry(c.id).or_default() += 1;
        }
    }
}

fn run_case(stream: &[u8], step: usize) {
    // In pieces, through the in-place path (prepare, write into the tail, feed(n)).
    let mut split = core();
    let mut split_rec = Rec::default();
    let mut split_err = None;
    let mut rest = stream;
    let mut pieces = 0usize;
    while !rest.is_empty() {
        let tail = split.recv_buffer().prepare();
        let want = (step + pieces * 7) % 300 + 1;
        let n = tail.len().min(rest.len()).min(want);
        tail[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        pieces += 1;
        let res = split.feed(n, 0, &mut split_rec);
        check_bounds(&mut split, res.is_ok());
        if let Err(e) = res {
            split_err = Some(e);
            break;
        }
    }

    // In one piece, through the copying path.
    let mut whole = core();
    let mut whole_rec = Rec::default();
    let whole_res = whole.feed_bytes(stream, 0, &mut whole_rec);
    check_bounds(&mut whole, whole_res.is_ok());

    match (&split_err, &whole_res) {
        (None, Ok(())) => {
            assert_eq!(
                split_rec.events, whole_rec.events,
                "events differ by how the stream was cut"
            );
            assert_eq!(split.out(), whole.out());
            assert_eq!(split.recv_buffer().pending(), whole.recv_buffer().pending());
        }
        (Some(a), Err(b)) => {
            assert_eq!(a, b, "different errors");
            assert_eq!(split_rec.events, whole_rec.events);
        }
        (a, b) => panic!("split: {a:?}, whole: {b:?}"),
    }

    // The connection drops (after the error, or after the stream), comes back and closes:
    // every publish that was in flight ends exactly once, whatever the stream did.
    let mut rec = whole_rec;
    whole.on_disconnect(&mut rec);
    whole.start_session(b"{}", 1).unwrap();
    whole.feed_bytes(b"PONG\r\n", 1, &mut rec).unwrap();
    whole.session_ready(1);
    whole.out_taken();
    whole.close(&mut rec);
    let mut seen = HashMap::new();
    completions(&rec.events, &mut seen);
    for id in 1..=PUBLISHES {
        assert_eq!(
            seen.get(&id).copied().unwrap_or(0),
            1,
            "publish {id} ended {:?} times",
            seen.get(&id)
        );
    }
    assert!(
        seen.keys().all(|id| (1..=PUBLISHES).contains(id)),
        "{seen:?}"
    );
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn feed_survives_random_and_mutated_streams() {
    let cases = env_u64("MEMPHIS_FUZZ_CASES", 50_000);
    let seed = env_u64("MEMPHIS_FUZZ_SEED", 0x006d_656d_7068_6973);
    let probe = core();
    let mux = String::from_utf8(probe.inbox_prefix().to_vec()).unwrap();
    let mux_sid = probe.mux_sid();
    let mut rng = Rng(seed);
    let mut errors = 0u64;
    let started = std::time::Instant::now();
    for case in 0..cases {
        let stream = input(&mut rng, &mux, mux_sid);
        let step = 1 + rng.below(256);
        let result = catch_unwind(AssertUnwindSafe(|| run_case(&stream, step)));
        if let Err(panic) = result {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            panic!(
                "case {case} (MEMPHIS_FUZZ_SEED={seed}, step {step}) failed: {msg}\ninput ({} bytes): {}",
                stream.len(),
                hex(&stream)
            );
        }
        let mut c = core();
        if c.feed_bytes(&stream, 0, &mut Rec::default()).is_err() {
            errors += 1;
        }
    }
    eprintln!(
        "fuzz_feed: {cases} cases (seed {seed}) in {:.1?}, {errors} ended in a protocol error",
        started.elapsed()
    );
    // The generator must reach both sides: streams that parse and streams that do not.
    if cases >= 1000 {
        assert!(
            errors > cases / 20,
            "only {errors} of {cases} inputs were rejected"
        );
        assert!(errors < cases, "every input was rejected");
    }
}
