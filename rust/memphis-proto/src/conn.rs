//! The sans-IO NATS connection state machine.
//!
//! [`Core`] owns the receive buffer (which the I/O layer fills in place), the write buffer
//! (which the I/O layer drains once per event-loop tick), the subscription table, the muxed
//! inbox used for JetStream publish acknowledgements and requests, and the in-flight table.
//! It does no I/O, never blocks and never panics on input; what it cannot handle itself
//! (messages for subscriptions, request replies, INFO, -ERR, PONG, finished publishes) it
//! hands to a [`Sink`].
//!
//! Connection lifecycle, driven by the I/O layer:
//!
//! ```text
//!   Disconnected --start_session(CONNECT)--> Handshaking --(PONG) session_ready()--> Connected
//!        ^                                        |                                    |
//!        +------------------ on_disconnect() -----+------------------------------------+
//!   any state --close()--> Closed
//! ```
//!
//! While not `Connected`, publishes and acks are kept in a bounded pending buffer; on
//! `session_ready` they follow CONNECT, the re-sent subscriptions and the re-sent in-flight
//! frames, in that order.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::encode::{self, AckKind};
use crate::error::ProtoError;
use crate::header;
use crate::inflight::{
    Completed, GroupId, GroupStats, IdHasher, Inflight, MsgId, NotSentReason, Outcome,
    UnknownReason,
};

/// Sids are small sequential integers: a multiplicative hash is plenty (one lookup per message).
type SidMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
use crate::jetstream::{parse_pub_ack, PubAck};
use crate::parse::{parse_op, Limits, MsgOp, Op, Parsed};

/// Default limit of the buffer for messages issued while disconnected (like nats.go).
pub const DEFAULT_PENDING_LIMIT: usize = 8 * 1024 * 1024;
const INITIAL_RECV: usize = 64 * 1024;
const MIN_READ: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Disconnected,
    Handshaking,
    Connected,
    Closed,
}

/// Receives what the core does not handle itself.
pub trait Sink {
    /// `INFO` from the server (JSON text).
    fn info(&mut self, json: &[u8]);
    /// `-ERR` from the server (text without quotes).
    fn error(&mut self, text: &[u8]);
    /// The server sent `PING`; the core already queued the `PONG`, which needs a flush.
    fn ping(&mut self);
    /// A `PONG` answered one of our `PING`s; `rtt_us` is its round trip when known.
    fn pong(&mut self, rtt_us: Option<u64>);
    /// A message for a subscription, or a request reply on the muxed inbox.
    fn msg(&mut self, m: &MsgOp<'_>);
    /// A JetStream publish finished.
    fn completed(&mut self, c: Completed);
    /// A pull request ended before delivering everything it asked for: the server said so
    /// with a status (404 no messages, 408 request expired, 409 e.g. max bytes or consumer
    /// deleted), it expired locally without an answer, its heartbeats stopped, or the
    /// connection dropped (code 0). `undelivered` messages of it will not come.
    fn pull_end(&mut self, end: &PullEnd<'_>) {
        let _ = end;
    }
}

/// How long after its `expires` a pull without an answer is considered lost.
pub const PULL_GRACE_MS: u64 = 2_000;
/// A pull with idle heartbeats is considered lost when nothing arrived on its subscription
/// for two heartbeat intervals plus this.
pub const HEARTBEAT_GRACE_MS: u64 = 1_000;
/// How long a pull without `expires` may wait for its answer before it counts as lost.
pub const PULL_DEFAULT_WAIT_MS: u64 = 30_000;

/// The instant (ms) after which a pull subscription that last saw traffic at `last_ms`
/// and asked for heartbeats every `heartbeat_ms` is dead.
#[inline]
pub fn heartbeat_deadline_ms(last_ms: u64, heartbeat_ms: u64) -> u64 {
    last_ms
        .saturating_add(heartbeat_ms.saturating_mul(2))
        .saturating_add(HEARTBEAT_GRACE_MS)
}

/// Why a pull request ended before delivering everything it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullEndKind {
    /// 404/408: the pull expired; nothing (`undelivered == asked`) or part of it came.
    Expired,
    /// The pull is gone without a status: the connection dropped, heartbeats stopped, or no
    /// answer came before its deadline. Pull again.
    Lost,
    /// 409 that clears by itself (leadership change, max waiting, max bytes): pull again.
    Transient,
    /// The consumer is gone or refuses pulls (409 consumer deleted / push based, or any
    /// other status): report it.
    Refused,
}

/// A pull request that ended short; see [`Sink::pull_end`].
#[derive(Debug, Clone, Copy)]
pub struct PullEnd<'a> {
    pub sid: u64,
    pub token: u64,
    /// the status code (0 when the pull ended without one)
    pub code: u16,
    pub description: &'a [u8],
    pub undelivered: u64,
    pub asked: u64,
    pub kind: PullEndKind,
}

impl PullEnd<'_> {
    /// True when the pull delivered nothing.
    pub fn empty(&self) -> bool {
        self.undelivered >= self.asked
    }
}

/// The one place where a pull's end status is interpreted.
pub fn pull_end_kind(code: u16, description: &[u8]) -> PullEndKind {
    match code {
        0 => PullEndKind::Lost,
        404 | 408 => PullEndKind::Expired,
        409 => {
            let d = description.to_ascii_lowercase();
            let has = |needle: &[u8]| d.windows(needle.len()).any(|w| w == needle);
            if has(b"deleted") || has(b"push") {
                PullEndKind::Refused
            } else {
                PullEndKind::Transient
            }
        }
        _ => PullEndKind::Refused,
    }
}

#[derive(Debug)]
struct Pull {
    token: u64,
    asked: u64,
    remaining: u64,
    deadline_ms: u64,
}

/// A subscription on which JetStream pull requests are answered. Delivered messages are
/// counted against the oldest pull (the server serves a consumer's waiting requests in
/// order); status messages name their pull by the last subject token.
#[derive(Debug)]
struct PullSub {
    prefix: Box<[u8]>,
    pulls: VecDeque<Pull>,
    next_token: u64,
    heartbeat_ms: u64,
    last_activity_ms: u64,
}

/// Parameters of one pull request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`).
#[derive(Debug, Clone, Copy)]
pub struct PullRequest<'a> {
    pub api_subject: &'a [u8],
    pub batch: u64,
    /// 0 = no byte limit
    pub max_bytes: u64,
    pub expires_ms: u64,
    /// 0 = no idle heartbeat; otherwise below `expires_ms`
    pub heartbeat_ms: u64,
    pub no_wait: bool,
    /// Write the pull in front of the positive acks written last (see [`Core::pull`]).
    pub ahead_of_acks: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: Limits,
    /// Bytes of publishes/acks kept while disconnected before publishes are refused.
    pub pending_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            pending_limit: DEFAULT_PENDING_LIMIT,
        }
    }
}

/// Connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub sessions: u64,
    pub reconnects: u64,
    pub pings_sent: u64,
    pub pongs: u64,
    pub last_rtt_us: u64,
    pub late_acks: u64,
    pub dropped_msgs: u64,
    /// JetStream deliveries to a gone subscription, sent back with `-NAK`.
    pub orphans_nakked: u64,
}

#[derive(Debug)]
struct Sub {
    subject: Box<[u8]>,
    queue: Option<Box<[u8]>>,
    max: Option<u64>,
    delivered: u64,
}

/// The receive buffer: always fully initialised; `buf[start..end]` holds unparsed bytes and
/// `buf[end..]` is the writable tail handed to the socket.
#[derive(Debug, Default)]
pub struct RecvBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
}

impl RecvBuffer {
    fn new(limit: usize) -> Self {
        RecvBuffer {
            buf: vec![0; INITIAL_RECV],
            start: 0,
            end: 0,
            limit,
        }
    }

    /// Make room for the next read and return the writable tail. Compacts, grows (doubling,
    /// never past the limit) and shrinks back after a large message; never moves memory any
    /// other time.
    pub fn prepare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * INITIAL_RECV {
                self.buf = vec![0; INITIAL_RECV];
            }
        }
        if self.buf.len() - self.end < MIN_READ && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < MIN_READ && self.buf.len() < self.limit {
            let new_len = (self.buf.len() * 2)
                .min(self.limit)
                .max(self.end + MIN_READ);
            self.buf.resize(new_len, 0);
        }
        &mut self.buf[self.end..]
    }

    /// The writable tail as prepared last, without moving anything.
    pub fn tail_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// Bytes writable right now (what `prepare` returned last, without preparing again).
    pub fn spare(&self) -> usize {
        self.buf.len() - self.end
    }

    /// `n` bytes were written into the tail.
    pub fn commit(&mut self, n: usize) -> Result<(), ProtoError> {
        if n > self.spare() {
            return Err(ProtoError::InvalidArgument(format!(
                "{n} bytes committed to a receive buffer with {} free",
                self.spare()
            )));
        }
        self.end += n;
        Ok(())
    }

    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// A JetStream publish to encode. `headers` and `extra_headers` are pre-validated header
/// lines (`key: value\r\n` each, without the version line or the final blank line).
#[derive(Debug, Clone, Copy)]
pub struct JsPublish<'a> {
    pub subject: &'a [u8],
    pub headers: &'a [u8],
    pub extra_headers: &'a [u8],
    pub group: GroupId,
    /// Returned with the outcome (memphis-fast uses the producer's message index).
    pub tag: u64,
    pub ack_wait_ms: u64,
    pub waiter: bool,
    /// Keep the encoded frame so that it can be re-sent after a reconnect (only sensible when
    /// the message carries a de-duplication id).
    pub keep_frame: bool,
}

/// Where the frame of a JetStream publish that has not been handed to the transport yet lies,
/// so that it can be taken back when its ack wait runs out first (it is then "not sent", and
/// must never be sent later).
#[derive(Debug, Clone, Copy)]
struct Unsent {
    id: MsgId,
    start: usize,
    len: usize,
}

/// Remove the frame of `id` from `buf`, fixing the entries behind it; false when `id` is not
/// there. Linear: it runs only when an ack wait ran out before the message left, and the
/// `drain` costs as much.
fn take_back(buf: &mut Vec<u8>, unsent: &mut Vec<Unsent>, id: MsgId) -> bool {
    let Some(pos) = unsent.iter().position(|u| u.id == id) else {
        return false;
    };
    let u = unsent.remove(pos);
    buf.drain(u.start..u.start + u.len);
    for later in unsent.iter_mut().filter(|l| l.start > u.start) {
        later.start -= u.len;
    }
    true
}

pub struct Core {
    recv: RecvBuffer,
    out: Vec<u8>,
    pending: Vec<u8>,
    /// JetStream frames in `out` not yet handed to the transport.
    unsent_out: Vec<Unsent>,
    /// JetStream frames in `pending`.
    unsent_pending: Vec<Unsent>,
    /// `(start, end)` in `out` of the positive acks written last, one after another: valid
    /// only while `end == out.len()` (nothing written after them). A pull goes in front of
    /// them (see [`Core::pull`]).
    ack_run: Option<(usize, usize)>,
    /// Positive acks taken out of `out` by [`Core::hold_acks`] until [`Core::release_acks`].
    held_acks: Vec<u8>,
    state: State,
    opts: Options,
    server_max_payload: usize,
    subs: SidMap<Sub>,
    next_sid: u64,
    inbox_prefix: Box<[u8]>,
    mux_sid: u64,
    inflight: Inflight,
    pings: VecDeque<u64>,
    last_ack_wait_ms: u64,
    stats: Stats,
    completed_buf: Vec<Completed>,
    pull_subs: SidMap<PullSub>,
    next_pull_sub: u64,
    /// Retry publishes answered "unavailable" (503 no responders, JetStream cluster not
    /// available) until their ack wait runs out: set for clustered servers, where that answer
    /// means a stream leader is being elected (docs/protocol.md §7.7).
    retry_unavailable: bool,
    /// A deadline earlier than the scheduled sweep may exist (a retry was scheduled).
    timer_changed: bool,
    /// The stream names of recent PubAcks.
    stream_names: StreamNames,
}

/// How many stream names [`StreamNames`] keeps (a producer writes to one stream per
/// partition; a few producers share a connection).
const STREAM_NAMES: usize = 8;

/// The stream names of recent PubAcks, shared (`Arc<str>`) by the outcomes that carry them.
/// An ack of a known stream is read by comparing its bytes with the name, instead of scanning
/// for the closing quote, validating the name and copying it: that was a third of the
/// client's instructions per `produce_batch` message.
#[derive(Debug)]
struct StreamNames {
    names: Vec<Arc<str>>,
    /// The slot the next new name replaces once all are taken.
    next: usize,
    empty: Arc<str>,
}

impl Default for StreamNames {
    fn default() -> Self {
        StreamNames {
            names: Vec::with_capacity(STREAM_NAMES),
            next: 0,
            empty: Arc::from(""),
        }
    }
}

impl StreamNames {
    /// The PubAck as nats-server writes it (`{"stream":"<name>", "seq":<n>}`, or with
    /// `,"duplicate": true}` before the brace) for a known `<name>`. Exact: a known name holds
    /// no quote and no backslash (the scanners that found it stop at the first quote and refuse
    /// escapes), so the bytes after it being `", "seq":` prove the JSON string is that name.
    fn known_ack(&self, body: &[u8]) -> Option<(Arc<str>, u64, bool)> {
        let rest = body.strip_prefix(crate::jetstream::CANONICAL_ACK_START)?;
        let (name, tail) = self.names.iter().find_map(|name| {
            let tail = rest.strip_prefix(name.as_bytes())?.strip_prefix(b"\"")?;
            Some((name, tail))
        })?;
        let (seq, duplicate) = crate::jetstream::canonical_pub_ack_tail(tail)?;
        Some((name.clone(), seq, duplicate))
    }

    /// The shared name for these bytes, remembered for the next acks. Without `keep` a name not
    /// known yet is only remembered while there is a free slot (else the empty name: nobody
    /// waits for it, and a producer spraying many streams would otherwise allocate per ack).
    fn intern(&mut self, stream: &[u8], keep: bool) -> Arc<str> {
        if let Some(n) = self.names.iter().find(|n| n.as_bytes() == stream) {
            return n.clone();
        }
        if !keep && self.names.len() == STREAM_NAMES {
            return self.empty.clone();
        }
        let name: Arc<str> = match std::str::from_utf8(stream) {
            Ok(s) => Arc::from(s),
            Err(_) => Arc::from(String::from_utf8_lossy(stream).as_ref()),
        };
        if self.names.len() < STREAM_NAMES {
            self.names.push(name.clone());
        } else {
            self.names[self.next] = name.clone();
            self.next = (self.next + 1) % STREAM_NAMES;
        }
        name
    }
}

/// The outcome of a message whose every try was answered "unavailable" until its ack wait
/// ran out (an "in process" outcome, already unknown, stays as it is).
fn summarize_unavailable(last: Outcome, tries: u32) -> Outcome {
    match last {
        Outcome::NotStored {
            code,
            err_code,
            description,
        } => Outcome::NotStored {
            code,
            err_code,
            description: format!(
                "no stream leader answered within the ack wait ({tries} tries; last answer: {description})"
            ),
        },
        other => other,
    }
}

/// JetStream's "temporarily unavailable" answers: no responders (no stream leader took the
/// subject) and JSClusterNotAvailErr (10008). Not "insufficient resources" (10047), which is
/// a full store and final.
pub fn is_unavailable(o: &Outcome) -> bool {
    matches!(o, Outcome::NotStored { code: 503, err_code, .. } if *err_code == 0 || *err_code == 10008)
}

/// A clustered stream's answer for a message id it holds for a store still in process: the
/// leader records the id before it proposes the message and learns the sequence only once the
/// proposal is committed. nats-server 2.10 answers a copy that arrives in between with a
/// duplicate PubAck of sequence 0, 2.11 with JSStreamDuplicateMessageConflict (409, 10158).
/// Neither says the message is stored: the proposal may still be lost with a leader change
/// (the copy after a reconnect or a silent resend is what gets this answer), so it is asked
/// again until the server names a sequence.
pub fn is_in_process(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::Stored {
            seq: 0,
            duplicate: true,
            ..
        }
    ) || matches!(
        o,
        Outcome::NotStored {
            err_code: 10158,
            ..
        }
    )
}

impl Core {
    /// `inbox_prefix` is the unique prefix of this connection's inboxes, e.g.
    /// `_INBOX.3f2a...`; the muxed inbox subscription `<prefix>.*` is created here.
    pub fn new(inbox_prefix: &str, opts: Options) -> Result<Self, ProtoError> {
        let prefix = inbox_prefix.trim_end_matches('.');
        encode::check_publish_subject(prefix.as_bytes())?;
        let mut p = prefix.as_bytes().to_vec();
        p.push(b'.');
        let recv_limit = opts.limits.max_payload + opts.limits.max_control_line + 2 + MIN_READ;
        let mut core = Core {
            recv: RecvBuffer::new(recv_limit),
            out: Vec::with_capacity(64 * 1024),
            pending: Vec::new(),
            unsent_out: Vec::new(),
            unsent_pending: Vec::new(),
            ack_run: None,
            held_acks: Vec::new(),
            state: State::Disconnected,
            opts,
            server_max_payload: 1024 * 1024,
            subs: SidMap::default(),
            next_sid: 1,
            inbox_prefix: p.into_boxed_slice(),
            mux_sid: 0,
            inflight: Inflight::new(),
            pings: VecDeque::new(),
            last_ack_wait_ms: 15_000,
            stats: Stats::default(),
            completed_buf: Vec::new(),
            pull_subs: SidMap::default(),
            next_pull_sub: 1,
            retry_unavailable: false,
            timer_changed: false,
            stream_names: StreamNames::default(),
        };
        let mut mux = core.inbox_prefix.to_vec();
        mux.push(b'*');
        core.mux_sid = core.subscribe(&mux, None)?;
        Ok(core)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// `<prefix>.` — request tokens appended to it must not be all digits (those are
    /// publish-acknowledgement ids).
    pub fn inbox_prefix(&self) -> &[u8] {
        &self.inbox_prefix
    }

    pub fn mux_sid(&self) -> u64 {
        self.mux_sid
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn inflight_totals(&self) -> GroupStats {
        self.inflight.totals()
    }

    pub fn group_stats(&self, group: GroupId) -> GroupStats {
        self.inflight.group(group)
    }

    /// Report the group's stored outcomes through [`Sink::completed`] as well (they are only
    /// counted otherwise).
    pub fn set_report_stored(&mut self, group: GroupId, on: bool) {
        self.inflight.set_report_stored(group, on);
    }

    pub fn drop_group(&mut self, group: GroupId) {
        self.inflight.drop_group(group);
    }

    /// The earliest moment `sweep` has something to do (an ack wait, a pull's expiry or
    /// heartbeat check), if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let pulls = self
            .pull_subs
            .values()
            .flat_map(|ps| {
                let hb = (ps.heartbeat_ms > 0 && !ps.pulls.is_empty())
                    .then(|| heartbeat_deadline_ms(ps.last_activity_ms, ps.heartbeat_ms));
                ps.pulls.iter().map(|p| p.deadline_ms).chain(hb)
            })
            .min();
        match (self.inflight.next_deadline(), pulls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn recv(&self) -> &RecvBuffer {
        &self.recv
    }

    pub fn recv_buffer(&mut self) -> &mut RecvBuffer {
        &mut self.recv
    }

    pub fn server_max_payload(&self) -> usize {
        self.server_max_payload
    }

    /// Apply the server's `max_payload` from INFO: larger publishes are refused locally, and
    /// the parser accepts messages up to it (plus headroom) and no larger.
    pub fn set_server_max_payload(&mut self, n: usize) {
        self.server_max_payload = n;
        self.opts.limits.max_payload = n
            .saturating_add(64 * 1024)
            .min(64 * 1024 * 1024 + 64 * 1024);
        self.recv.limit =
            self.opts.limits.max_payload + self.opts.limits.max_control_line + 2 + MIN_READ;
    }

    pub fn limits(&self) -> Limits {
        self.opts.limits
    }

    // -- reading -----------------------------------------------------------------------------

    /// `n` bytes were written into the tail returned by `recv_buffer().prepare()`: parse and
    /// dispatch every complete operation.
    pub fn feed(&mut self, n: usize, now_us: u64, sink: &mut impl Sink) -> Result<(), ProtoError> {
        self.recv.commit(n)?;
        self.process(now_us, sink)
    }

    /// Copy `data` into the receive buffer and process it (tests, fuzzing, non-buffered I/O).
    pub fn feed_bytes(
        &mut self,
        mut data: &[u8],
        now_us: u64,
        sink: &mut impl Sink,
    ) -> Result<(), ProtoError> {
        while !data.is_empty() {
            let tail = self.recv.prepare();
            if tail.is_empty() {
                return Err(ProtoError::LineTooLong {
                    limit: self.recv.limit,
                });
            }
            let n = tail.len().min(data.len());
            tail[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.feed(n, now_us, sink)?;
        }
        Ok(())
    }

    fn process(&mut self, now_us: u64, sink: &mut impl Sink) -> Result<(), ProtoError> {
        // Parse out of a moved-out buffer so that handlers can mutate the rest of the core
        // while borrowing message bytes (moving a Vec is three words).
        let mut recv = std::mem::take(&mut self.recv);
        let res = self.process_buf(&mut recv, now_us, sink);
        self.recv = recv;
        res
    }

    fn process_buf(
        &mut self,
        recv: &mut RecvBuffer,
        now_us: u64,
        sink: &mut impl Sink,
    ) -> Result<(), ProtoError> {
        loop {
            let data = &recv.buf[recv.start..recv.end];
            if data.is_empty() {
                return Ok(());
            }
            if let Some(a) = self.fast_pub_ack(data) {
                let m = MsgOp {
                    subject: &data[4..a.subject_end],
                    sid: self.mux_sid,
                    reply: None,
                    headers: None,
                    payload: &data[a.payload_start..a.payload_end],
                };
                self.stats.msgs_in += 1;
                self.stats.bytes_in += m.payload.len() as u64;
                self.complete_pub_ack(a.id, &m, now_us / 1000, sink);
                recv.start += a.payload_end + 2;
                continue;
            }
            match parse_op(data, &self.opts.limits)? {
                Parsed::Incomplete => return Ok(()),
                Parsed::Op(op, used) => {
                    self.handle(op, now_us, sink);
                    recv.start += used;
                }
            }
        }
    }

    fn handle(&mut self, op: Op<'_>, now_us: u64, sink: &mut impl Sink) {
        match op {
            Op::Msg(m) => self.handle_msg(&m, now_us / 1000, sink),
            Op::Ping => {
                encode::write_pong(&mut self.out);
                sink.ping();
            }
            Op::Pong => {
                self.stats.pongs += 1;
                let rtt = self.pings.pop_front().map(|t| now_us.saturating_sub(t));
                if let Some(r) = rtt {
                    self.stats.last_rtt_us = r;
                }
                sink.pong(rtt);
            }
            Op::Ok => {}
            Op::Info(json) => sink.info(json),
            Op::Err(text) => sink.error(text),
        }
    }

    /// The acknowledgement of one of this connection's publishes, exactly as nats-server
    /// writes it: `MSG <inbox prefix><id> <mux sid> <size>\r\n<payload>\r\n`, whole in
    /// `data`. Read here without the general parser (every publish has one: the field
    /// splitting, the name match and the subscription lookups were ~400 of the ~1,900
    /// instructions a PubAck cost, callgrind). Anything else, or anything not yet complete,
    /// gives `None` and goes to `parse_op`, which also produces every error; what this accepts
    /// `parse_op` parses to the same `MsgOp`, which `handle_msg` gives to the same
    /// [`Core::complete_pub_ack`] (the mux sid is never a pull subscription's).
    #[inline]
    fn fast_pub_ack(&self, data: &[u8]) -> Option<FastPubAck> {
        let rest = data.strip_prefix(b"MSG ")?;
        let rest = rest.strip_prefix(&*self.inbox_prefix)?;
        let (id, rest) = decimal_then(rest, b' ')?;
        let subject_end = data.len() - rest.len() - 1;
        let (sid, rest) = decimal_then(rest, b' ')?;
        if sid != self.mux_sid {
            return None;
        }
        let (size, rest) = decimal_then(rest, b'\r')?;
        let rest = rest.strip_prefix(b"\n")?;
        if size > self.opts.limits.max_payload as u64 {
            return None;
        }
        let payload_start = data.len() - rest.len();
        if payload_start - 1 > self.opts.limits.max_control_line {
            return None; // parse_op's error
        }
        let payload_end = payload_start + size as usize;
        if data.get(payload_end..payload_end + 2)? != b"\r\n" {
            return None;
        }
        Some(FastPubAck {
            id,
            subject_end,
            payload_start,
            payload_end,
        })
    }

    fn ack_id(&self, subject: &[u8]) -> Option<MsgId> {
        let rest = subject.strip_prefix(&*self.inbox_prefix)?;
        if rest.is_empty() || rest.len() > 19 || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
        crate::parse::parse_u64(rest)
    }

    fn handle_msg(&mut self, m: &MsgOp<'_>, now_ms: u64, sink: &mut impl Sink) {
        self.stats.msgs_in += 1;
        self.stats.bytes_in += (m.payload.len() + m.headers.map_or(0, <[u8]>::len)) as u64;
        if let Some(ps) = self.pull_subs.get_mut(&m.sid) {
            ps.last_activity_ms = now_ms;
            let status = m.headers.map_or(0, |h| header::status(h).code);
            if status != 0 {
                if status == 100 {
                    return; // idle heartbeat: the pull is alive
                }
                let token = m
                    .subject
                    .strip_prefix(&*ps.prefix)
                    .and_then(crate::parse::parse_u64);
                if let Some(token) = token {
                    if let Some(pos) = ps.pulls.iter().position(|p| p.token == token) {
                        let pull = ps.pulls.remove(pos).unwrap_or(Pull {
                            token,
                            asked: 0,
                            remaining: 0,
                            deadline_ms: 0,
                        });
                        let desc = m
                            .headers
                            .map_or(&b""[..], |h| header::status(h).description);
                        sink.pull_end(&PullEnd {
                            sid: m.sid,
                            token,
                            code: status,
                            description: desc,
                            undelivered: pull.remaining,
                            asked: pull.asked,
                            kind: pull_end_kind(status, desc),
                        });
                    }
                }
                return;
            }
            if let Some(front) = ps.pulls.front_mut() {
                front.remaining = front.remaining.saturating_sub(1);
                if front.remaining == 0 {
                    ps.pulls.pop_front();
                }
            }
            if self.subs.contains_key(&m.sid) {
                sink.msg(m);
            } else {
                self.stats.dropped_msgs += 1;
                self.nak_orphan(m);
            }
            return;
        }
        if m.sid == self.mux_sid {
            if let Some(id) = self.ack_id(m.subject) {
                self.complete_pub_ack(id, m, now_ms, sink);
                return;
            }
            sink.msg(m);
            return;
        }
        let Some(sub) = self.subs.get_mut(&m.sid) else {
            self.stats.dropped_msgs += 1;
            self.nak_orphan(m);
            return;
        };
        sub.delivered += 1;
        let done = sub.max.is_some_and(|max| sub.delivered >= max);
        sink.msg(m);
        if done {
            self.subs.remove(&m.sid);
        }
    }

    /// The answer `m` to publish `id`: its outcome, unless it is to be retried.
    fn complete_pub_ack(&mut self, id: MsgId, m: &MsgOp<'_>, now_ms: u64, sink: &mut impl Sink) {
        let mut outcome = pub_ack_outcome(m, self.inflight.is_waiter(id), &mut self.stream_names);
        let in_process = is_in_process(&outcome);
        if in_process {
            outcome = Outcome::Unknown(UnknownReason::DuplicateInProcess);
        }
        if in_process || (self.retry_unavailable && is_unavailable(&outcome)) {
            if self.inflight.retry_later(id, outcome.clone(), now_ms) {
                self.timer_changed = true;
                return;
            }
            let tries = self.inflight.attempts(id);
            if tries > 0 {
                outcome = summarize_unavailable(outcome, tries + 1);
            }
        }
        match self.inflight.complete(id, outcome) {
            Some(c) => sink.completed(c),
            None => self.stats.late_acks += 1,
        }
    }

    /// A JetStream delivery to a subscription that is gone (a pull inbox unsubscribed while
    /// the server was already sending into it): `-NAK` it, so the consumer redelivers it at
    /// once instead of after its ack wait.
    fn nak_orphan(&mut self, m: &MsgOp<'_>) {
        if let Some(reply) = m.reply {
            if reply.starts_with(b"$JS.ACK.") && self.state == State::Connected {
                encode::write_ack(&mut self.out, reply, AckKind::Nak);
                self.stats.orphans_nakked += 1;
            }
        }
    }

    // -- writing -----------------------------------------------------------------------------

    /// The bytes to hand to the transport.
    pub fn out(&self) -> &[u8] {
        &self.out
    }

    /// Take the positive acks written last (the run a pull with `ahead_of_acks` just went in
    /// front of) out of [`Core::out`] until [`Core::release_acks`]: a fetch loop's pull goes
    /// out alone, and the acks of the batch before follow once the next batch is in, so the
    /// server works through them while the caller handles that batch instead of before it
    /// delivers (nats-server serializes a consumer's acks and deliveries). Returns the bytes
    /// held; 0 when there is no such run or acks are held already (one hold at a time; acks
    /// written meanwhile may go before the held ones: acks of different messages commute).
    /// Set only while connected (as `ack_run`); a disconnect puts them back.
    pub fn hold_acks(&mut self) -> usize {
        match self.ack_run {
            Some((s, e)) if e == self.out.len() && self.held_acks.is_empty() => {
                // Only acks after `s` (the run ends `out`), so no frame offset moves.
                self.held_acks.extend_from_slice(&self.out[s..]);
                self.out.truncate(s);
                self.ack_run = None;
                self.held_acks.len()
            }
            _ => 0,
        }
    }

    /// Put the acks [`Core::hold_acks`] took back at the end of [`Core::out`]; returns whether
    /// there were any.
    pub fn release_acks(&mut self) -> bool {
        if self.held_acks.is_empty() {
            return false;
        }
        self.ack_run = None;
        self.out.extend_from_slice(&self.held_acks);
        self.held_acks.clear();
        if self.held_acks.capacity() > 1024 * 1024 {
            self.held_acks = Vec::new();
        }
        true
    }

    /// Bytes of acks held by [`Core::hold_acks`].
    pub fn held_acks(&self) -> usize {
        self.held_acks.len()
    }

    /// The transport took everything in [`Core::out`].
    pub fn out_taken(&mut self) {
        self.stats.bytes_out += self.out.len() as u64;
        self.out.clear();
        self.unsent_out.clear();
        self.ack_run = None;
        if self.out.capacity() > 4 * 1024 * 1024 {
            self.out.shrink_to(64 * 1024);
        }
        if self.state == State::Connected {
            self.inflight.mark_sent();
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Where publishes and acks go in the current state, after checking the pending limit.
    fn data_buf(&mut self, extra: usize) -> Result<&mut Vec<u8>, ProtoError> {
        match self.state {
            State::Connected => Ok(&mut self.out),
            State::Closed => Err(ProtoError::Closed),
            State::Disconnected | State::Handshaking => {
                if self.pending.len() + extra > self.opts.pending_limit {
                    return Err(ProtoError::BufferFull {
                        limit: self.opts.pending_limit,
                    });
                }
                Ok(&mut self.pending)
            }
        }
    }

    fn check_size(&self, size: usize) -> Result<(), ProtoError> {
        if size > self.server_max_payload {
            return Err(ProtoError::MessageTooLarge {
                size,
                limit: self.server_max_payload,
            });
        }
        Ok(())
    }

    /// Core NATS publish. `headers` is a complete header block (or `None`).
    pub fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), ProtoError> {
        encode::check_publish_subject(subject)?;
        if let Some(r) = reply {
            encode::check_token("reply subject", r)?;
        }
        let hlen = headers.map_or(0, <[u8]>::len);
        self.check_size(hlen + payload.len())?;
        let buf = self.data_buf(subject.len() + hlen + payload.len() + 64)?;
        match headers {
            Some(h) => encode::write_hpub(buf, subject, reply, h, payload),
            None => encode::write_pub(buf, subject, reply, payload),
        }
        self.stats.msgs_out += 1;
        Ok(())
    }

    /// JetStream publish with a reply on the muxed inbox; returns the message id. The outcome
    /// arrives later through [`Sink::completed`].
    pub fn js_publish(
        &mut self,
        p: &JsPublish<'_>,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<MsgId, ProtoError> {
        let has_headers = !p.headers.is_empty() || !p.extra_headers.is_empty();
        let hdr_len = if has_headers {
            header::VERSION_LINE.len() + 2 + p.headers.len() + p.extra_headers.len() + 2
        } else {
            0
        };
        self.check_size(hdr_len + payload.len())?;
        let id = self.inflight.next_id();
        let prefix_len = self.inbox_prefix.len();
        let estimate = p.subject.len() + prefix_len + hdr_len + payload.len() + 64;
        let state = self.state;
        // Borrow the prefix separately from the destination buffer.
        let prefix = std::mem::take(&mut self.inbox_prefix);
        let res = self.data_buf(estimate).map(|buf| {
            let start = buf.len();
            write_js_frame(buf, p, &prefix, id, hdr_len, payload);
            (start, buf.len() - start)
        });
        self.inbox_prefix = prefix;
        let (start, len) = res?;
        let u = Unsent { id, start, len };
        if state == State::Connected {
            self.unsent_out.push(u);
        } else {
            self.unsent_pending.push(u);
        }
        let frame = if p.keep_frame || self.retry_unavailable {
            let buf = if state == State::Connected {
                &self.out
            } else {
                &self.pending
            };
            Some(buf[start..].to_vec().into_boxed_slice())
        } else {
            None
        };
        self.last_ack_wait_ms = p.ack_wait_ms;
        let got = self.inflight.register(
            p.group,
            p.tag,
            hdr_len + payload.len(),
            now_ms.saturating_add(p.ack_wait_ms),
            p.waiter,
            frame,
            p.keep_frame,
        );
        debug_assert_eq!(got, id);
        if self.retry_unavailable && p.keep_frame {
            self.inflight.resend_if_silent(id, now_ms);
        }
        self.stats.msgs_out += 1;
        Ok(id)
    }

    /// Acknowledge a JetStream message through its reply subject.
    pub fn ack(&mut self, reply: &[u8], kind: AckKind) -> Result<(), ProtoError> {
        encode::check_token("reply subject", reply)?;
        self.ack_parsed(reply, kind)
    }

    /// [`Core::ack`] for a reply subject that came out of this core's parser, which only
    /// yields whitespace-free, non-empty fields: no need to check it again.
    pub fn ack_parsed(&mut self, reply: &[u8], kind: AckKind) -> Result<(), ProtoError> {
        let start = self.out.len();
        let buf = self.data_buf(reply.len() + 48)?;
        encode::write_ack(buf, reply, kind);
        if self.state == State::Connected {
            // Only positive acks: a NAK (or TERM, in-progress) keeps its place before a later
            // pull, which may be meant to receive the redelivery.
            self.ack_run = match self.ack_run {
                _ if kind != AckKind::Ack => None,
                Some((s, e)) if e == start => Some((s, self.out.len())),
                _ => Some((start, self.out.len())),
            };
        }
        Ok(())
    }

    /// Subscribe; returns the sid. While disconnected the subscription is only recorded and
    /// sent with the next session.
    pub fn subscribe(&mut self, subject: &[u8], queue: Option<&[u8]>) -> Result<u64, ProtoError> {
        if self.state == State::Closed {
            return Err(ProtoError::Closed);
        }
        encode::check_token("subject", subject)?;
        if let Some(q) = queue {
            encode::check_token("queue group", q)?;
        }
        let sid = self.next_sid;
        self.next_sid += 1;
        if matches!(self.state, State::Connected | State::Handshaking) {
            encode::write_sub(&mut self.out, subject, queue, sid);
        }
        self.subs.insert(
            sid,
            Sub {
                subject: subject.into(),
                queue: queue.map(Into::into),
                max: None,
                delivered: 0,
            },
        );
        Ok(sid)
    }

    /// Subscribe an inbox for pull requests (`<inbox prefix>P<n>.*`); returns its sid.
    pub fn pull_subscribe(&mut self, now_ms: u64) -> Result<u64, ProtoError> {
        let mut prefix = self.inbox_prefix.to_vec();
        prefix.push(b'P');
        encode::push_u64(&mut prefix, self.next_pull_sub);
        self.next_pull_sub += 1;
        prefix.push(b'.');
        let mut subject = prefix.clone();
        subject.push(b'*');
        let sid = self.subscribe(&subject, None)?;
        self.pull_subs.insert(
            sid,
            PullSub {
                prefix: prefix.into_boxed_slice(),
                pulls: VecDeque::new(),
                next_token: 1,
                heartbeat_ms: 0,
                last_activity_ms: now_ms,
            },
        );
        Ok(sid)
    }

    /// Send a pull request answered on pull subscription `sid`; returns its token.
    pub fn pull(&mut self, sid: u64, r: &PullRequest<'_>, now_ms: u64) -> Result<u64, ProtoError> {
        if r.batch == 0 {
            return Err(ProtoError::InvalidArgument(
                "a pull must ask for at least one message".into(),
            ));
        }
        encode::check_publish_subject(r.api_subject)?;
        let Some(ps) = self.pull_subs.get_mut(&sid) else {
            return Err(ProtoError::InvalidArgument(format!(
                "{sid} is not a pull subscription"
            )));
        };
        let token = ps.next_token;
        let mut reply = ps.prefix.to_vec();
        encode::push_u64(&mut reply, token);
        let mut body = Vec::with_capacity(96);
        body.extend_from_slice(b"{\"batch\":");
        encode::push_u64(&mut body, r.batch);
        if r.expires_ms > 0 {
            body.extend_from_slice(b",\"expires\":");
            encode::push_u64(&mut body, r.expires_ms.saturating_mul(1_000_000));
        }
        if r.max_bytes > 0 {
            body.extend_from_slice(b",\"max_bytes\":");
            encode::push_u64(&mut body, r.max_bytes);
        }
        if r.heartbeat_ms > 0 {
            body.extend_from_slice(b",\"idle_heartbeat\":");
            encode::push_u64(&mut body, r.heartbeat_ms.saturating_mul(1_000_000));
        }
        if r.no_wait {
            body.extend_from_slice(b",\"no_wait\":true");
        }
        body.push(b'}');
        // With `ahead_of_acks` (a fetch loop's pull), the acks written last (the batch
        // before this pull) go after it: the server starts gathering the next batch at once
        // instead of after the acks, which need nothing from the pull nor the pull from them
        // (positive acks only free room under the consumer's max ack pending, and a pull
        // waits for room). Not for a pipeline's pulls: a raw client whose pipelined pulls
        // overtook its acks measured slower (docs/decisions.md).
        // (`ack_run` is only ever set while connected, and forgotten with the session.)
        let ahead_of = match self.ack_run {
            Some((s, e)) if r.ahead_of_acks && e == self.out.len() => Some(s),
            _ => None,
        };
        let buf = self.data_buf(r.api_subject.len() + reply.len() + body.len() + 32)?;
        let at = buf.len();
        encode::write_pub(buf, r.api_subject, Some(&reply), &body);
        if let Some(s) = ahead_of {
            let len = self.out.len() - at;
            self.out[s..].rotate_right(len);
            self.ack_run = Some((s + len, self.out.len()));
        }
        // Borrow again: `data_buf` borrowed all of self.
        let ps = self
            .pull_subs
            .get_mut(&sid)
            .ok_or_else(|| ProtoError::InvalidArgument("pull subscription vanished".into()))?;
        ps.next_token += 1;
        if ps.pulls.is_empty() {
            ps.last_activity_ms = now_ms;
        }
        ps.heartbeat_ms = r.heartbeat_ms;
        let wait = if r.expires_ms > 0 {
            r.expires_ms
        } else {
            PULL_DEFAULT_WAIT_MS
        };
        ps.pulls.push_back(Pull {
            token,
            asked: r.batch,
            remaining: r.batch,
            deadline_ms: now_ms.saturating_add(wait).saturating_add(PULL_GRACE_MS),
        });
        Ok(token)
    }

    /// `(pulls, messages)` requested on pull subscription `sid` and not yet delivered.
    pub fn pull_outstanding(&self, sid: u64) -> (usize, u64) {
        self.pull_subs.get(&sid).map_or((0, 0), |ps| {
            (ps.pulls.len(), ps.pulls.iter().map(|p| p.remaining).sum())
        })
    }

    fn end_pulls(&mut self, now_ms: Option<u64>, sink: &mut impl Sink) {
        for (&sid, ps) in &mut self.pull_subs {
            let stale = match now_ms {
                None => true,
                Some(now) => {
                    ps.heartbeat_ms > 0
                        && !ps.pulls.is_empty()
                        && now >= heartbeat_deadline_ms(ps.last_activity_ms, ps.heartbeat_ms)
                }
            };
            if stale {
                let why: &[u8] = if now_ms.is_none() {
                    b"connection lost"
                } else {
                    b"idle heartbeats stopped"
                };
                for p in ps.pulls.drain(..) {
                    sink.pull_end(&PullEnd {
                        sid,
                        token: p.token,
                        code: 0,
                        description: why,
                        undelivered: p.remaining,
                        asked: p.asked,
                        kind: PullEndKind::Lost,
                    });
                }
                continue;
            }
            if let Some(now) = now_ms {
                while let Some(pos) = ps.pulls.iter().position(|p| p.deadline_ms <= now) {
                    if let Some(p) = ps.pulls.remove(pos) {
                        sink.pull_end(&PullEnd {
                            sid,
                            token: p.token,
                            code: 408,
                            description: b"expired without an answer",
                            undelivered: p.remaining,
                            asked: p.asked,
                            kind: PullEndKind::Expired,
                        });
                    }
                }
            }
        }
    }

    /// Unsubscribe now, or after `max` messages in total.
    pub fn unsubscribe(&mut self, sid: u64, max: Option<u64>) {
        let Some(sub) = self.subs.get_mut(&sid) else {
            return;
        };
        let remove_now = match max {
            Some(m) if m > sub.delivered => {
                sub.max = Some(m);
                false
            }
            _ => true,
        };
        if matches!(self.state, State::Connected | State::Handshaking) {
            encode::write_unsub(&mut self.out, sid, if remove_now { None } else { max });
        }
        if remove_now {
            self.subs.remove(&sid);
            self.pull_subs.remove(&sid);
        }
    }

    pub fn is_subscribed(&self, sid: u64) -> bool {
        self.subs.contains_key(&sid)
    }

    /// Queue a `PING` (for keepalive or flush). Returns false when not connected.
    pub fn ping(&mut self, now_us: u64) -> bool {
        if !matches!(self.state, State::Connected | State::Handshaking) {
            return false;
        }
        encode::write_ping(&mut self.out);
        self.pings.push_back(now_us);
        self.stats.pings_sent += 1;
        true
    }

    pub fn pings_outstanding(&self) -> usize {
        self.pings.len()
    }

    // -- lifecycle ---------------------------------------------------------------------------

    /// A transport is up and INFO was handled: queue `CONNECT`, a `PING` (its `PONG` confirms
    /// that the server accepted the connection) and every subscription.
    pub fn start_session(&mut self, connect_json: &[u8], now_us: u64) -> Result<(), ProtoError> {
        if self.state == State::Closed {
            return Err(ProtoError::Closed);
        }
        if self.state == State::Connected {
            return Err(ProtoError::InvalidArgument(
                "start_session while connected".into(),
            ));
        }
        self.state = State::Handshaking;
        self.out.clear();
        self.ack_run = None;
        self.pings.clear();
        encode::write_connect(&mut self.out, connect_json);
        self.ping(now_us);
        // Resubscribe in creation (sid) order.
        let mut sids: Vec<u64> = self.subs.keys().copied().collect();
        sids.sort_unstable();
        for sid in sids {
            let sub = &self.subs[&sid];
            encode::write_sub(&mut self.out, &sub.subject, sub.queue.as_deref(), sid);
            if let Some(max) = sub.max {
                encode::write_unsub(&mut self.out, sid, Some(max.saturating_sub(sub.delivered)));
            }
        }
        if self.stats.sessions > 0 {
            self.stats.reconnects += 1;
        }
        self.stats.sessions += 1;
        Ok(())
    }

    /// The server accepted the session: re-send in-flight frames that carry a message id,
    /// then everything buffered while disconnected.
    pub fn session_ready(&mut self, now_ms: u64) {
        if self.state != State::Handshaking {
            return;
        }
        self.state = State::Connected;
        let wait = self.last_ack_wait_ms;
        self.inflight
            .take_resends(now_ms, Some(wait), &mut self.out);
        let base = self.out.len();
        for mut u in self.unsent_pending.drain(..) {
            u.start += base;
            self.unsent_out.push(u);
        }
        if !self.pending.is_empty() {
            self.out.extend_from_slice(&self.pending);
            self.pending.clear();
            self.pending.shrink_to(64 * 1024);
        }
    }

    /// The transport is gone. Unsent bytes are kept for the next session; in-flight messages
    /// that had left are re-sent later (with a message id) or finished as unknown.
    pub fn on_disconnect(&mut self, sink: &mut impl Sink) {
        match self.state {
            State::Connected => {
                // Whatever was not yet handed to the transport is still ours to send, held
                // acks included (after everything else, as they would have gone).
                self.release_acks();
                let mut unsent = std::mem::take(&mut self.out);
                self.ack_run = None;
                let base = unsent.len();
                if !self.pending.is_empty() {
                    unsent.extend_from_slice(&self.pending);
                }
                self.pending = unsent;
                self.out = Vec::with_capacity(64 * 1024);
                let mut frames = std::mem::take(&mut self.unsent_out);
                frames.extend(self.unsent_pending.drain(..).map(|mut u| {
                    u.start += base;
                    u
                }));
                self.unsent_pending = frames;
            }
            State::Handshaking => {
                self.out.clear();
                self.unsent_out.clear();
                self.ack_run = None;
            }
            State::Disconnected | State::Closed => {}
        }
        if self.state != State::Closed {
            self.state = State::Disconnected;
        }
        self.recv.clear();
        self.pings.clear();
        self.end_pulls(None, sink);
        let mut done = std::mem::take(&mut self.completed_buf);
        self.inflight.on_disconnect(&mut done);
        for c in done.drain(..) {
            sink.completed(c);
        }
        self.completed_buf = done;
    }

    /// Close for good: every in-flight message ends now (unknown if it had left, not sent
    /// otherwise). Buffers are released.
    pub fn close(&mut self, sink: &mut impl Sink) {
        self.state = State::Closed;
        self.ack_run = None;
        self.held_acks = Vec::new();
        self.pending = Vec::new();
        self.unsent_out.clear();
        self.unsent_pending.clear();
        self.recv.clear();
        self.pings.clear();
        let mut done = Vec::new();
        self.inflight.close(&mut done);
        for c in done {
            sink.completed(c);
        }
    }

    /// Finish publishes whose ack wait expired: "unknown" if they were handed to a live
    /// connection, "not sent" (and taken out of the buffer, never to be sent) otherwise.
    pub fn sweep(&mut self, now_ms: u64, sink: &mut impl Sink) {
        self.end_pulls(Some(now_ms), sink);
        for id in self.inflight.expired_ids(now_ms) {
            let never_left = take_back(&mut self.out, &mut self.unsent_out, id)
                || take_back(&mut self.pending, &mut self.unsent_pending, id);
            if never_left {
                self.ack_run = None; // bytes left `out`: its offsets moved
            }
            let outcome = if never_left {
                Outcome::NotSent(NotSentReason::Expired)
            } else if let Some((last, tries)) = self.inflight.unavailable_outcome(id) {
                summarize_unavailable(last, tries)
            } else {
                Outcome::Unknown(UnknownReason::AckTimeout)
            };
            if let Some(c) = self.inflight.complete(id, outcome) {
                sink.completed(c);
            }
        }
        if self.state != State::Closed {
            let mut due = Vec::new();
            let (buf, unsent) = if self.state == State::Connected {
                (&mut self.out, &mut self.unsent_out)
            } else {
                (&mut self.pending, &mut self.unsent_pending)
            };
            self.inflight.take_retries(now_ms, buf, &mut due);
            if self.state == State::Connected {
                // Silent awaited msg-id publishes go again only on a live link (after a
                // reconnect they are re-sent anyway).
                self.inflight.take_silent(now_ms, buf, &mut due);
            }
            for (id, start, len) in due {
                unsent.push(Unsent { id, start, len });
                self.stats.msgs_out += 1;
            }
        }
    }

    /// Retry publishes answered "unavailable" until their ack wait runs out (clustered
    /// servers: docs/protocol.md §7.7). Takes effect for publishes made from now on.
    pub fn set_retry_unavailable(&mut self, on: bool) {
        self.retry_unavailable = on;
    }

    pub fn retry_unavailable(&self) -> bool {
        self.retry_unavailable
    }

    /// True (once) when a retry was scheduled since the last call: the next deadline may be
    /// earlier than the sweep the caller scheduled.
    pub fn take_timer_changed(&mut self) -> bool {
        std::mem::take(&mut self.timer_changed)
    }
}

fn write_js_frame(
    buf: &mut Vec<u8>,
    p: &JsPublish<'_>,
    prefix: &[u8],
    id: MsgId,
    hdr_len: usize,
    payload: &[u8],
) {
    buf.reserve(p.subject.len() + prefix.len() + hdr_len + payload.len() + 64);
    if hdr_len == 0 {
        buf.extend_from_slice(b"PUB ");
    } else {
        buf.extend_from_slice(b"HPUB ");
    }
    buf.extend_from_slice(p.subject);
    buf.push(b' ');
    buf.extend_from_slice(prefix);
    encode::push_u64(buf, id);
    buf.push(b' ');
    if hdr_len > 0 {
        encode::push_u64(buf, hdr_len as u64);
        buf.push(b' ');
    }
    encode::push_u64(buf, (hdr_len + payload.len()) as u64);
    buf.extend_from_slice(b"\r\n");
    if hdr_len > 0 {
        buf.extend_from_slice(header::VERSION_LINE);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(p.headers);
        buf.extend_from_slice(p.extra_headers);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(payload);
    buf.extend_from_slice(b"\r\n");
}

/// Where [`Core::fast_pub_ack`] found a PubAck's parts in the receive buffer.
struct FastPubAck {
    id: MsgId,
    /// The subject is `data[4..subject_end]`.
    subject_end: usize,
    payload_start: usize,
    payload_end: usize,
}

/// A decimal number of 1 to 19 digits (no overflow) directly followed by `stop`: the number
/// and what follows `stop`.
#[inline]
fn decimal_then(s: &[u8], stop: u8) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == stop && i > 0 {
            return Some((v, &s[i + 1..]));
        }
        let d = b.wrapping_sub(b'0');
        if d > 9 || i == 19 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    None
}

/// The outcome of a publish from the message that answered it. The stream name of a stored
/// message is shared with the acks before it (`names`); a name not seen before is only copied
/// out when somebody waits for it (`with_stream`) or there is room to remember it.
fn pub_ack_outcome(m: &MsgOp<'_>, with_stream: bool, names: &mut StreamNames) -> Outcome {
    if let Some(h) = m.headers {
        let st = header::status(h);
        if st.code == 503 {
            return Outcome::NotStored {
                code: 503,
                err_code: 0,
                description: "no responders: no stream is listening on this subject".into(),
            };
        }
        if st.code != 0 {
            return Outcome::NotStored {
                code: st.code,
                err_code: 0,
                description: String::from_utf8_lossy(st.description).into_owned(),
            };
        }
    }
    if let Some((stream, seq, duplicate)) = names.known_ack(m.payload) {
        return Outcome::Stored {
            stream,
            seq,
            duplicate,
        };
    }
    if let Some((stream, seq, duplicate)) = crate::jetstream::stored_pub_ack(m.payload) {
        return Outcome::Stored {
            stream: names.intern(stream, with_stream),
            seq,
            duplicate,
        };
    }
    match parse_pub_ack(m.payload) {
        PubAck::Stored {
            stream,
            seq,
            duplicate,
        } => Outcome::Stored {
            stream: names.intern(stream.as_bytes(), with_stream),
            seq,
            duplicate,
        },
        PubAck::Error {
            code,
            err_code,
            description,
        } => Outcome::NotStored {
            code,
            err_code,
            description,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the general path (scanner, then serde_json) reads from an ack body.
    fn general(body: &[u8]) -> Option<(String, u64, bool)> {
        match parse_pub_ack(body) {
            PubAck::Stored {
                stream,
                seq,
                duplicate,
            } => Some((stream, seq, duplicate)),
            PubAck::Error { .. } => None,
        }
    }

    #[test]
    fn known_stream_names_read_acks_as_the_general_path_does() {
        let mut names = StreamNames::default();
        // Names that are prefixes of each other, and one with characters JSON may escape.
        for n in ["s$1", "s$10", "s$1x", "a<b"] {
            names.intern(n.as_bytes(), true);
        }
        let cases: &[&[u8]] = &[
            br#"{"stream":"s$1", "seq":42}"#,
            br#"{"stream":"s$10", "seq":7}"#,
            br#"{"stream":"s$1x", "seq":0,"duplicate": true}"#,
            br#"{"stream":"a<b", "seq":18446744073709551615}"#,
            // escaped, unknown, other shapes, malformed: not the short way
            br#"{"stream":"a\u003cb", "seq":1}"#,
            br#"{"stream":"s$2", "seq":1}"#,
            br#"{"stream":"s$1","seq":1}"#,
            br#"{"stream":"s$1", "seq":1,"duplicate":false}"#,
            br#"{"stream":"s$1", "seq":1, "domain":"d"}"#,
            br#"{"stream":"s$1", "seq":}"#,
            br#"{"stream":"s$1", "seq":18446744073709551616}"#,
            br#"{"stream":"s$1", "seq":1"#,
            br#"{"stream":"s$1"#,
        ];
        let mut short = 0;
        for &c in cases {
            let want = general(c);
            if let Some((stream, seq, dup)) = names.known_ack(c) {
                short += 1;
                assert_eq!(
                    Some((stream.to_string(), seq, dup)),
                    want,
                    "{}",
                    String::from_utf8_lossy(c)
                );
            }
        }
        assert_eq!(
            short, 4,
            "the four canonical acks of known names take the short way"
        );
    }

    #[test]
    fn stream_names_are_shared_bounded_and_kept_for_waiters() {
        let mut names = StreamNames::default();
        let a = names.intern(b"a", false);
        assert!(
            Arc::ptr_eq(&a, &names.intern(b"a", false)),
            "one allocation per name"
        );
        for i in 1..STREAM_NAMES {
            names.intern(format!("n{i}").as_bytes(), false);
        }
        assert_eq!(names.names.len(), STREAM_NAMES);
        // Full: a new name nobody waits for is not copied; one somebody waits for replaces the
        // oldest slot and is read the short way from then on.
        assert_eq!(&*names.intern(b"new", false), "");
        assert_eq!(&*names.intern(b"new", true), "new");
        assert_eq!(names.names.len(), STREAM_NAMES);
        let (s, seq, _) = names.known_ack(br#"{"stream":"new", "seq":5}"#).unwrap();
        assert_eq!((&*s, seq), ("new", 5));
        assert!(
            names.known_ack(br#"{"stream":"a", "seq":5}"#).is_none(),
            "replaced"
        );
        // Bytes that are not UTF-8 become a lossy name (never a panic).
        assert_eq!(&*names.intern(b"x\xffy", true), "x\u{fffd}y");
    }
}
