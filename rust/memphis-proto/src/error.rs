//! Errors of the codec and the connection state machine.

use std::fmt;

/// Everything that can go wrong in the codec. Input from the network never panics: it ends in
/// one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// A control line (the text up to CRLF) is longer than the configured limit.
    LineTooLong { limit: usize },
    /// A `MSG`/`HMSG` announces a payload larger than the configured limit.
    PayloadTooLarge { size: usize, limit: usize },
    /// The bytes are not a valid server operation.
    Malformed(String),
    /// A message to publish is larger than the server's `max_payload`.
    MessageTooLarge { size: usize, limit: usize },
    /// A subject, reply subject, queue group or header is not valid on the wire.
    InvalidArgument(String),
    /// The buffer for messages issued while disconnected is full.
    BufferFull { limit: usize },
    /// The connection is closed for good.
    Closed,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::LineTooLong { limit } => {
                write!(f, "protocol error: control line longer than {limit} bytes")
            }
            ProtoError::PayloadTooLarge { size, limit } => write!(
                f,
                "protocol error: server announced a {size}-byte message, over the {limit}-byte limit"
            ),
            ProtoError::Malformed(s) => write!(f, "protocol error: {s}"),
            ProtoError::MessageTooLarge { size, limit } => write!(
                f,
                "message of {size} bytes exceeds the server's max_payload of {limit} bytes"
            ),
            ProtoError::InvalidArgument(s) => f.write_str(s),
            ProtoError::BufferFull { limit } => write!(
                f,
                "the buffer for messages sent while disconnected is full ({limit} bytes)"
            ),
            ProtoError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for ProtoError {}

pub(crate) fn malformed(what: &str, line: &[u8]) -> ProtoError {
    let shown = &line[..line.len().min(80)];
    ProtoError::Malformed(format!("{what}: {:?}", String::from_utf8_lossy(shown)))
}
