//! The in-flight table of JetStream publishes.
//!
//! Every publish gets an identity ([`MsgId`], strictly increasing) and ends in exactly one
//! [`Outcome`]: stored, not stored (503 no responders or a JetStream API error), unknown (ack
//! timeout, or the connection dropped after it was sent) or not sent (the connection was closed
//! before it left). Messages belong to a *group* (one per producer) whose counters bound the
//! producer's window. Timeouts are swept by one periodic call, not one timer per message.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

pub type MsgId = u64;
pub type GroupId = u32;

/// Why the fate of a sent message is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownReason {
    /// No acknowledgement within the ack wait.
    AckTimeout,
    /// The connection dropped after the message was handed to the transport.
    ConnectionLost,
    /// A clustered stream answered that it holds the message id for a store still in process
    /// (a proposal not yet committed, which may yet be lost), and never confirmed it within
    /// the ack wait.
    DuplicateInProcess,
}

/// Why a message never left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSentReason {
    /// The connection was closed while the message was still buffered.
    Closed,
    /// Its ack wait ran out while it was still buffered (no live connection took it); it was
    /// taken out of the buffer and will never be sent.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        /// Shared: consecutive acks of one stream hold the same allocation (see
        /// `conn::StreamNames`).
        stream: Arc<str>,
        seq: u64,
        duplicate: bool,
    },
    /// The server refused it: `code` 503 = no responders (no stream for the subject), else a
    /// JetStream API error with its `err_code` and description.
    NotStored {
        code: u16,
        err_code: u32,
        description: String,
    },
    Unknown(UnknownReason),
    NotSent(NotSentReason),
}

impl Outcome {
    pub fn is_stored(&self) -> bool {
        matches!(self, Outcome::Stored { .. })
    }
}

/// A finished publish, handed to the [`crate::conn::Sink`]. For a stored message nobody awaits
/// (`waiter == false`), `Outcome::Stored::stream` may be empty: a name not seen recently is
/// only copied out for somebody who waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub id: MsgId,
    pub group: GroupId,
    /// The caller's tag given at registration (memphis-fast: the producer's message index).
    pub tag: u64,
    pub waiter: bool,
    /// The group reports its stored outcomes too (see [`Inflight::set_report_stored`]).
    pub report_stored: bool,
    pub outcome: Outcome,
}

#[derive(Debug)]
struct Entry {
    group: GroupId,
    tag: u64,
    bytes: u32,
    deadline_ms: u64,
    waiter: bool,
    /// The encoded frame, kept when the message carries a message id (so that it can be sent
    /// again after a reconnect: the server de-duplicates it) or when publishes answered "no
    /// stream leader" are retried (clustered servers).
    frame: Option<Box<[u8]>>,
    /// The frame may be re-sent after a reconnect (it carries a message id).
    dedup: bool,
    resend: bool,
    /// Answered "unavailable" (no responders / no leader): sent again at this instant.
    retry_at: Option<u64>,
    attempts: u32,
    /// The last "unavailable" answer: what the message ends with if its ack wait runs out
    /// before another try is answered.
    last_unavailable: Option<Outcome>,
    /// De-duplicated (msg_id) publishes on a cluster: sent again at this instant if nothing
    /// answered (the node it went to may have died with the stream leader); the server
    /// drops the copies it already stored.
    silent_at: Option<u64>,
    silent_wait: u64,
}

/// How long an awaited, de-duplicated publish waits for an answer before it is sent again
/// (clustered servers), doubling up to [`SILENT_RESEND_MAX_MS`].
pub const SILENT_RESEND_MS: u64 = 1_000;
pub const SILENT_RESEND_MAX_MS: u64 = 4_000;

/// Counters of one group (or of the whole connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub inflight: u64,
    pub inflight_bytes: u64,
    pub published: u64,
    pub acked: u64,
    pub failed: u64,
    pub retried: u64,
}

/// Ids are sequential integers: a multiplicative hash spreads them well enough and costs far
/// less than SipHash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

/// A map keyed by sequential ids (messages, groups), hashed with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub struct Inflight {
    entries: IdMap<MsgId, Entry>,
    groups: IdMap<GroupId, GroupStats>,
    /// Groups whose stored outcomes are reported (a producer with a delivery callback).
    reporting: IdMap<GroupId, ()>,
    totals: GroupStats,
    next_id: MsgId,
    /// Ids below this were handed to the transport.
    sent_below: MsgId,
}

impl Inflight {
    pub fn new() -> Self {
        Inflight {
            next_id: 1,
            sent_below: 1,
            ..Default::default()
        }
    }

    /// The id the next registered message will get.
    pub fn next_id(&self) -> MsgId {
        self.next_id
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether somebody awaits this message's outcome, or its group reports stored outcomes
    /// (false for unknown ids): the stream name of its PubAck is then worth copying.
    pub fn is_waiter(&self, id: MsgId) -> bool {
        self.entries.get(&id).is_some_and(|e| {
            e.waiter || (!self.reporting.is_empty() && self.reporting.contains_key(&e.group))
        })
    }

    /// Whether the group's stored outcomes are reported (not only counted).
    pub fn set_report_stored(&mut self, group: GroupId, on: bool) {
        if on {
            self.reporting.insert(group, ());
        } else {
            self.reporting.remove(&group);
        }
    }

    pub fn contains(&self, id: MsgId) -> bool {
        self.entries.contains_key(&id)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        group: GroupId,
        tag: u64,
        bytes: usize,
        deadline_ms: u64,
        waiter: bool,
        frame: Option<Box<[u8]>>,
        dedup: bool,
    ) -> MsgId {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.entries.insert(
            id,
            Entry {
                group,
                tag,
                bytes,
                deadline_ms,
                waiter,
                frame,
                dedup,
                resend: false,
                retry_at: None,
                attempts: 0,
                last_unavailable: None,
                silent_at: None,
                silent_wait: 0,
            },
        );
        let g = self.groups.entry(group).or_default();
        for s in [g, &mut self.totals] {
            s.inflight += 1;
            s.inflight_bytes += u64::from(bytes);
            s.published += 1;
        }
        id
    }

    /// Finish a message. Returns `None` when the id is unknown (already finished: a late ack).
    pub fn complete(&mut self, id: MsgId, outcome: Outcome) -> Option<Completed> {
        let e = self.entries.remove(&id)?;
        Some(self.finish(id, e, outcome))
    }

    fn finish(&mut self, id: MsgId, e: Entry, outcome: Outcome) -> Completed {
        let stored = outcome.is_stored();
        let g = self.groups.entry(e.group).or_default();
        for s in [g, &mut self.totals] {
            s.inflight -= 1;
            s.inflight_bytes -= u64::from(e.bytes);
            if stored {
                s.acked += 1;
            } else {
                s.failed += 1;
            }
        }
        Completed {
            id,
            group: e.group,
            tag: e.tag,
            waiter: e.waiter,
            report_stored: !self.reporting.is_empty() && self.reporting.contains_key(&e.group),
            outcome,
        }
    }

    /// Everything registered so far has been handed to the transport.
    pub fn mark_sent(&mut self) {
        self.sent_below = self.next_id;
    }

    /// Expire messages whose deadline passed (all as unknown: see [`Inflight::expired_ids`]
    /// for callers that know which never left).
    pub fn expire(&mut self, now_ms: u64, out: &mut Vec<Completed>) {
        let expired = self.expired_ids(now_ms);
        self.finish_ids(expired, Outcome::Unknown(UnknownReason::AckTimeout), out);
    }

    /// The ids whose deadline passed, oldest first.
    pub fn expired_ids(&self, now_ms: u64) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The earliest deadline (an ack wait, or a retry), for scheduling the next sweep.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries
            .values()
            .map(|e| {
                let d = e.retry_at.map_or(e.deadline_ms, |r| r.min(e.deadline_ms));
                e.silent_at.map_or(d, |s| s.min(d))
            })
            .min()
    }

    /// A try of `id` was answered "unavailable" or "in process" (`outcome`, what it ends with
    /// if no later try is answered): if its frame is kept and its ack
    /// wait leaves room, schedule another try after a backoff (25 ms doubling, at most 500 ms)
    /// and return true; otherwise false (the caller completes it with `outcome`).
    pub fn retry_later(&mut self, id: MsgId, outcome: Outcome, now_ms: u64) -> bool {
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        if e.frame.is_none() {
            return false;
        }
        let backoff = (25u64 << e.attempts.min(5)).min(500);
        if now_ms.saturating_add(backoff) >= e.deadline_ms {
            return false;
        }
        e.retry_at = Some(now_ms + backoff);
        e.attempts += 1;
        e.last_unavailable = Some(outcome);
        true
    }

    /// Send `id` again if nothing answers it by `now + SILENT_RESEND_MS` (see `silent_at`).
    pub fn resend_if_silent(&mut self, id: MsgId, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            if e.dedup && e.frame.is_some() {
                e.silent_wait = SILENT_RESEND_MS;
                e.silent_at = Some(now_ms + SILENT_RESEND_MS);
            }
        }
    }

    /// Frames whose silence ran out (and whose ack wait leaves room), oldest first: appended
    /// to `buf`; their ids, offsets and lengths pushed to `ids`.
    pub fn take_silent(
        &mut self,
        now_ms: u64,
        buf: &mut Vec<u8>,
        ids: &mut Vec<(MsgId, usize, usize)>,
    ) {
        let due = self.ids_where(|e| {
            e.retry_at.is_none() && !e.resend && e.silent_at.is_some_and(|t| t <= now_ms)
        });
        for id in due {
            if let Some(e) = self.entries.get_mut(&id) {
                e.silent_wait = (e.silent_wait * 2).min(SILENT_RESEND_MAX_MS);
                e.silent_at = Some(now_ms + e.silent_wait);
                if now_ms + 50 >= e.deadline_ms {
                    continue;
                }
            }
            self.send_again(id, buf, ids);
        }
    }

    /// The ids of the entries that match, oldest (lowest id) first: the order frames are
    /// sent again in.
    fn ids_where(&self, pred: impl Fn(&Entry) -> bool) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .entries
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Append the kept frame of `id` to `buf` (noting where) and count the retry.
    fn send_again(&mut self, id: MsgId, buf: &mut Vec<u8>, ids: &mut Vec<(MsgId, usize, usize)>) {
        if let Some(e) = self.entries.get(&id) {
            if let Some(f) = &e.frame {
                let start = buf.len();
                buf.extend_from_slice(f);
                ids.push((id, start, f.len()));
            }
            let group = e.group;
            self.groups.entry(group).or_default().retried += 1;
            self.totals.retried += 1;
        }
    }

    /// How many times `id` was sent again after an "unavailable" answer.
    pub fn attempts(&self, id: MsgId) -> u32 {
        self.entries.get(&id).map_or(0, |e| e.attempts)
    }

    /// Frames whose retry is due, oldest first (appended to `buf`); returns their ids.
    pub fn take_retries(
        &mut self,
        now_ms: u64,
        buf: &mut Vec<u8>,
        ids: &mut Vec<(MsgId, usize, usize)>,
    ) {
        let due = self.ids_where(|e| e.retry_at.is_some_and(|r| r <= now_ms));
        for id in due {
            if let Some(e) = self.entries.get_mut(&id) {
                e.retry_at = None;
            }
            self.send_again(id, buf, ids);
        }
    }

    /// What an expired message ends with when it was waiting for another try (nothing of it
    /// is in flight): its last "unavailable" answer and the number of tries; `None` otherwise.
    pub fn unavailable_outcome(&self, id: MsgId) -> Option<(Outcome, u32)> {
        let e = self.entries.get(&id)?;
        if e.retry_at.is_some() {
            e.last_unavailable.clone().map(|o| (o, e.attempts))
        } else {
            None
        }
    }

    fn finish_ids(&mut self, mut ids: Vec<MsgId>, outcome: Outcome, out: &mut Vec<Completed>) {
        ids.sort_unstable();
        for id in ids {
            if let Some(e) = self.entries.remove(&id) {
                let c = self.finish(id, e, outcome.clone());
                out.push(c);
            }
        }
    }

    /// The link dropped. Messages already handed to the transport are re-sent later when they
    /// carry a frame (a message id), otherwise their outcome is unknown. Messages still in the
    /// local buffer stay as they are: they go out after the reconnect.
    pub fn on_disconnect(&mut self, out: &mut Vec<Completed>) {
        let sent_below = self.sent_below;
        let mut lost = Vec::new();
        for (&id, e) in self.entries.iter_mut() {
            if id < sent_below && e.retry_at.is_none() {
                if e.frame.is_some() && e.dedup {
                    e.resend = true;
                } else {
                    lost.push(id);
                }
            }
        }
        self.finish_ids(lost, Outcome::Unknown(UnknownReason::ConnectionLost), out);
    }

    /// Append the frames marked for re-sending, oldest first, with fresh deadlines.
    pub fn take_resends(&mut self, now_ms: u64, ack_wait_ms: Option<u64>, buf: &mut Vec<u8>) {
        for id in self.ids_where(|e| e.resend) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.resend = false;
                if let Some(f) = &e.frame {
                    buf.extend_from_slice(f);
                }
                if let Some(w) = ack_wait_ms {
                    e.deadline_ms = e.deadline_ms.max(now_ms + w);
                }
                let g = self.groups.entry(e.group).or_default();
                g.retried += 1;
                self.totals.retried += 1;
            }
        }
    }

    /// The connection is closed for good: everything still in flight ends now.
    pub fn close(&mut self, out: &mut Vec<Completed>) {
        // Waiting for another try: nothing of it is in flight, its last answer stands.
        let mut waiting: Vec<(MsgId, Outcome)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.retry_at.is_some())
            .filter_map(|(&id, e)| e.last_unavailable.clone().map(|o| (id, o)))
            .collect();
        waiting.sort_unstable_by_key(|(id, _)| *id);
        for (id, o) in waiting {
            if let Some(e) = self.entries.remove(&id) {
                out.push(self.finish(id, e, o));
            }
        }
        let sent_below = self.sent_below;
        let (sent, unsent): (Vec<MsgId>, Vec<MsgId>) = self
            .entries
            .iter()
            .map(|(&id, _)| id)
            .partition(|&id| id < sent_below);
        self.finish_ids(sent, Outcome::Unknown(UnknownReason::ConnectionLost), out);
        self.finish_ids(unsent, Outcome::NotSent(NotSentReason::Closed), out);
    }

    pub fn group(&self, group: GroupId) -> GroupStats {
        self.groups.get(&group).copied().unwrap_or_default()
    }

    pub fn totals(&self) -> GroupStats {
        self.totals
    }

    /// Forget a group's counters once its producer is gone and nothing is in flight.
    pub fn drop_group(&mut self, group: GroupId) {
        if self.groups.get(&group).is_some_and(|g| g.inflight == 0) {
            self.groups.remove(&group);
        }
        self.reporting.remove(&group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: u64) -> Outcome {
        Outcome::Stored {
            stream: "s".into(),
            seq,
            duplicate: false,
        }
    }

    #[test]
    fn lifecycle_and_counters() {
        let mut t = Inflight::new();
        let a = t.register(1, 0, 10, 100, true, None, false);
        let b = t.register(1, 0, 20, 200, false, None, false);
        let c = t.register(2, 0, 5, 50, false, Some(b"frame".to_vec().into()), true);
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(t.group(1).inflight, 2);
        assert_eq!(t.group(1).inflight_bytes, 30);
        let done = t.complete(a, stored(1)).unwrap();
        assert!(done.waiter);
        assert_eq!(t.complete(a, stored(1)), None, "late ack ignored");
        let mut out = Vec::new();
        t.expire(60, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, c);
        assert_eq!(out[0].outcome, Outcome::Unknown(UnknownReason::AckTimeout));
        assert_eq!(t.group(2).failed, 1);
        assert_eq!(t.group(1).acked, 1);
        assert_eq!(t.totals().inflight, 1);
        assert_eq!(t.next_deadline(), Some(200));
    }

    #[test]
    fn disconnect_resend_and_close() {
        let mut t = Inflight::new();
        let a = t.register(1, 0, 1, 1000, false, None, false);
        let b = t.register(1, 0, 1, 1000, false, Some(b"B".to_vec().into()), true);
        t.mark_sent();
        let c = t.register(1, 0, 1, 1000, false, None, false);
        let mut out = Vec::new();
        t.on_disconnect(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, a);
        assert_eq!(
            out[0].outcome,
            Outcome::Unknown(UnknownReason::ConnectionLost)
        );
        assert!(t.contains(b) && t.contains(c));
        let mut buf = Vec::new();
        t.take_resends(500, Some(1000), &mut buf);
        assert_eq!(buf, b"B");
        assert_eq!(t.group(1).retried, 1);
        out.clear();
        t.close(&mut out);
        let ids: Vec<_> = out.iter().map(|c| (c.id, c.outcome.clone())).collect();
        assert_eq!(
            ids,
            vec![
                (b, Outcome::Unknown(UnknownReason::ConnectionLost)),
                (c, Outcome::NotSent(NotSentReason::Closed))
            ]
        );
        assert!(t.is_empty());
        assert_eq!(t.totals().inflight, 0);
        assert_eq!(t.totals().inflight_bytes, 0);
    }
}
