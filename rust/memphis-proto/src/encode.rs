//! Encoders for client operations. Everything appends to one write buffer, which the I/O layer
//! hands to the transport once per event-loop tick.

use crate::error::ProtoError;

/// Append the decimal form of `v`.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// A subject (or reply subject, or queue group) must be non-empty and contain no whitespace or
/// control characters, or the server would misread the line.
#[inline]
pub fn check_token(kind: &str, s: &[u8]) -> Result<(), ProtoError> {
    if s.is_empty() || s.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ProtoError::InvalidArgument(format!(
            "invalid {kind} {:?}: it must be non-empty and contain no whitespace",
            String::from_utf8_lossy(s)
        )));
    }
    Ok(())
}

/// A subject to publish to: also no wildcard tokens and no empty tokens.
#[inline]
pub fn check_publish_subject(s: &[u8]) -> Result<(), ProtoError> {
    check_token("subject", s)?;
    for tok in s.split(|&b| b == b'.') {
        if tok.is_empty() || tok == b"*" || tok == b">" {
            return Err(ProtoError::InvalidArgument(format!(
                "invalid subject {:?} to publish to: empty or wildcard token",
                String::from_utf8_lossy(s)
            )));
        }
    }
    Ok(())
}

pub fn write_connect(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\r\n");
}

pub fn write_ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

pub fn write_pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

pub fn write_sub(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>, sid: u64) {
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(q) = queue {
        out.extend_from_slice(q);
        out.push(b' ');
    }
    push_u64(out, sid);
    out.extend_from_slice(b"\r\n");
}

pub fn write_unsub(out: &mut Vec<u8>, sid: u64, max: Option<u64>) {
    out.extend_from_slice(b"UNSUB ");
    push_u64(out, sid);
    if let Some(m) = max {
        out.push(b' ');
        push_u64(out, m);
    }
    out.extend_from_slice(b"\r\n");
}

/// `PUB <subject> [reply] <size>\r\n<payload>\r\n`
#[inline]
pub fn write_pub(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.reserve(subject.len() + payload.len() + 48);
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    push_u64(out, payload.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// The control line of an `HPUB`; the caller appends the header block, the payload and CRLF.
#[inline]
pub fn write_hpub_line(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    hdr_len: usize,
    total_len: usize,
) {
    out.extend_from_slice(b"HPUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    push_u64(out, hdr_len as u64);
    out.push(b' ');
    push_u64(out, total_len as u64);
    out.extend_from_slice(b"\r\n");
}

/// `HPUB <subject> [reply] <hdr size> <total size>\r\n<headers><payload>\r\n`
#[inline]
pub fn write_hpub(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    out.reserve(subject.len() + headers.len() + payload.len() + 64);
    write_hpub_line(
        out,
        subject,
        reply,
        headers.len(),
        headers.len() + payload.len(),
    );
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// JetStream acknowledgement kinds and their fixed bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    Ack,
    Nak,
    /// `-NAK {"delay": <ns>}`: redeliver after the delay.
    NakDelay(u64),
    InProgress,
    Term,
}

impl AckKind {
    pub fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            AckKind::Ack => out.extend_from_slice(b"+ACK"),
            AckKind::Nak => out.extend_from_slice(b"-NAK"),
            AckKind::NakDelay(ns) => {
                out.extend_from_slice(b"-NAK {\"delay\": ");
                push_u64(out, *ns);
                out.push(b'}');
            }
            AckKind::InProgress => out.extend_from_slice(b"+WPI"),
            AckKind::Term => out.extend_from_slice(b"+TERM"),
        }
    }
}

/// Publish an acknowledgement to a JetStream reply subject.
#[inline]
pub fn write_ack(out: &mut Vec<u8>, reply: &[u8], kind: AckKind) {
    let fixed: &[u8] = match kind {
        AckKind::Ack => b"+ACK",
        AckKind::Nak => b"-NAK",
        AckKind::InProgress => b"+WPI",
        AckKind::Term => b"+TERM",
        AckKind::NakDelay(_) => {
            let mut body = Vec::with_capacity(40);
            kind.write_body(&mut body);
            write_pub(out, reply, None, &body);
            return;
        }
    };
    write_pub(out, reply, None, fixed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        let mut o = Vec::new();
        write_connect(&mut o, b"{\"verbose\":false}");
        write_ping(&mut o);
        write_pong(&mut o);
        write_sub(&mut o, b"foo.*", None, 1);
        write_sub(&mut o, b"bar", Some(b"q1"), 22);
        write_unsub(&mut o, 22, None);
        write_unsub(&mut o, 1, Some(5));
        write_pub(&mut o, b"a.b", None, b"hi");
        write_pub(&mut o, b"a.b", Some(b"_INBOX.1"), b"");
        write_hpub(
            &mut o,
            b"s",
            Some(b"r"),
            b"NATS/1.0\r\nk: v\r\n\r\n",
            b"xyz",
        );
        write_ack(&mut o, b"$JS.ACK.s.c.1.2.3.4.5", AckKind::Ack);
        write_ack(&mut o, b"r", AckKind::NakDelay(1_000_000_000));
        write_ack(&mut o, b"r", AckKind::Term);
        write_ack(&mut o, b"r", AckKind::InProgress);
        write_ack(&mut o, b"r", AckKind::Nak);
        let expected: &[u8] = b"CONNECT {\"verbose\":false}\r\nPING\r\nPONG\r\n\
SUB foo.* 1\r\nSUB bar q1 22\r\nUNSUB 22\r\nUNSUB 1 5\r\n\
PUB a.b 2\r\nhi\r\nPUB a.b _INBOX.1 0\r\n\r\n\
HPUB s r 18 21\r\nNATS/1.0\r\nk: v\r\n\r\nxyz\r\n\
PUB $JS.ACK.s.c.1.2.3.4.5 4\r\n+ACK\r\n\
PUB r 26\r\n-NAK {\"delay\": 1000000000}\r\n\
PUB r 5\r\n+TERM\r\nPUB r 4\r\n+WPI\r\nPUB r 4\r\n-NAK\r\n";
        assert_eq!(
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(expected)
        );
    }

    #[test]
    fn numbers() {
        for v in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut o = Vec::new();
            push_u64(&mut o, v);
            assert_eq!(o, v.to_string().as_bytes());
        }
    }

    #[test]
    fn subject_checks() {
        assert!(check_publish_subject(b"a.b").is_ok());
        assert!(check_publish_subject(b"").is_err());
        assert!(check_publish_subject(b"a b").is_err());
        assert!(check_publish_subject(b"a.*").is_err());
        assert!(check_publish_subject(b"a..b").is_err());
        assert!(check_publish_subject(b"a\r\n").is_err());
        assert!(check_token("queue", b"q").is_ok());
    }
}
