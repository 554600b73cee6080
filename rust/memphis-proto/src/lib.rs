//! `memphis-proto`: a sans-IO NATS/JetStream client codec and connection state machine.
//!
//! No I/O, no async runtime, no Python: the I/O layer (memphis-fast's asyncio protocol, or a
//! test) fills [`conn::Core`]'s receive buffer, drains its write buffer, and tells it about
//! connects and disconnects. Everything a server sends is parsed in place; malformed or
//! oversized input is an error, never a panic or unbounded buffering.

pub mod conn;
pub mod encode;
pub mod error;
pub mod header;
pub mod inflight;
pub mod jetstream;
pub mod murmur;
pub mod parse;

pub use conn::{Core, JsPublish, Options, PullEnd, PullEndKind, PullRequest, Sink, State, Stats};
pub use encode::AckKind;
pub use error::ProtoError;
pub use inflight::{
    Completed, GroupId, GroupStats, IdMap, MsgId, NotSentReason, Outcome, UnknownReason,
};
pub use parse::{parse_op, Limits, MsgOp, Op, Parsed};
