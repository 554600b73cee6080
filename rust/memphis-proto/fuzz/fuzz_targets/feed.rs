//! Fuzz `Core::feed` (the in-place read path) and `Core::feed_bytes`.
//!
//! The input is split into chunks whose sizes come from its first bytes, so the fuzzer also
//! explores how a stream is cut. For every input:
//! * nothing panics;
//! * the receive buffer never grows past its limit and never holds more unparsed bytes than
//!   that limit;
//! * feeding the same bytes in one piece yields exactly the same events (and the same error,
//!   if any) as feeding them in chunks, as long as no error happened before the last chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memphis_proto::{Completed, Core, JsPublish, Limits, MsgOp, Options, Sink};

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Info(Vec<u8>),
    Err(Vec<u8>),
    Ping,
    Pong,
    Msg(Vec<u8>, u64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>),
    Done(Completed),
}

#[derive(Default)]
struct Rec(Vec<Ev>);

impl Sink for Rec {
    fn info(&mut self, json: &[u8]) {
        self.0.push(Ev::Info(json.to_vec()));
    }
    fn error(&mut self, text: &[u8]) {
        self.0.push(Ev::Err(text.to_vec()));
    }
    fn ping(&mut self) {
        self.0.push(Ev::Ping);
    }
    fn pong(&mut self, _rtt: Option<u64>) {
        self.0.push(Ev::Pong);
    }
    fn msg(&mut self, m: &MsgOp<'_>) {
        self.0.push(Ev::Msg(
            m.subject.to_vec(),
            m.sid,
            m.reply.map(<[u8]>::to_vec),
            m.headers.map(<[u8]>::to_vec),
            m.payload.to_vec(),
        ));
    }
    fn completed(&mut self, c: Completed) {
        self.0.push(Ev::Done(c));
    }
}

const LIMITS: Limits = Limits {
    max_control_line: 512,
    max_payload: 4096,
};
/// `Core::new` sizes the receive buffer to these limits plus one minimum read (16 KiB); it
/// starts at 64 KiB, which is then the ceiling.
const RECV_CEILING: usize = 64 * 1024;

/// A connected core with a few subscriptions and JetStream publishes in flight (ids 1..=4),
/// so acknowledgements, request replies and deliveries all reach their handlers.
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
    for keep in [false, true, false, true] {
        let p = JsPublish {
            subject: b"s$1.final",
            headers: b"k: v\r\n",
            extra_headers: b"",
            group: 1,
            tag: 0,
            ack_wait_ms: 1000,
            waiter: keep,
            keep_frame: keep,
        };
        core.js_publish(&p, b"x", 0).unwrap();
    }
    core.out_taken();
    core
}

/// After a successful feed, what is left unparsed is at most one incomplete operation: a
/// control line (with its LF) plus a payload of the largest accepted size and its CRLF.
const MAX_UNPARSED: usize = LIMITS.max_control_line + 1 + LIMITS.max_payload + 2;

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

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // First byte: chunk size seed (1..=256); the rest is the stream.
    let step = usize::from(data[0]) + 1;
    let stream = &data[1..];

    // In pieces, through the in-place path (prepare, write into the tail, feed(n)).
    let mut split = core();
    let mut split_rec = Rec::default();
    let mut split_err = None;
    let mut rest = stream;
    let mut pieces = 0usize;
    while !rest.is_empty() {
        let tail = split.recv_buffer().prepare();
        // Vary the piece size a little so that cuts land everywhere.
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

    match (&split_err, whole_res) {
        (None, Ok(())) => {
            assert_eq!(
                split_rec.0, whole_rec.0,
                "events differ by how the stream was cut"
            );
            assert_eq!(split.out(), whole.out());
            assert_eq!(split.recv_buffer().pending(), whole.recv_buffer().pending());
        }
        (Some(a), Err(b)) => {
            assert_eq!(a, &b, "different errors");
            assert_eq!(split_rec.0, whole_rec.0);
        }
        // A stream that stops early in one form must stop early in the other.
        (a, b) => panic!("split: {a:?}, whole: {b:?}"),
    }
});
