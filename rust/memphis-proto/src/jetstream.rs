//! JetStream specifics: acknowledgement-subject metadata and publish acknowledgements.

use serde::Deserialize;
use std::borrow::Cow;

use crate::parse::parse_u64;

/// Metadata carried by a JetStream message's reply subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckMeta<'a> {
    /// JetStream domain (`None` for the 9-token form or the `_` placeholder).
    pub domain: Option<&'a [u8]>,
    pub stream: &'a [u8],
    pub consumer: &'a [u8],
    /// How many times this message has been delivered (1 on first delivery).
    pub delivered: u64,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    /// When the stream stored the message, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    pub pending: u64,
}

/// Parse `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (9 tokens) or
/// the newer `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]`
/// (11 or 12 tokens). Returns `None` for anything else.
pub fn parse_ack_subject(reply: &[u8]) -> Option<AckMeta<'_>> {
    let mut toks: [&[u8]; 12] = [&[]; 12];
    let mut n = 0;
    for t in reply.split(|&b| b == b'.') {
        if n == 12 {
            return None;
        }
        toks[n] = t;
        n += 1;
    }
    if n < 9 || toks[0] != b"$JS" || toks[1] != b"ACK" {
        return None;
    }
    let (domain, base) = match n {
        9 => (None, 2),
        11 | 12 => {
            let d = toks[2];
            (
                if d == b"_" || d.is_empty() {
                    None
                } else {
                    Some(d)
                },
                4,
            )
        }
        _ => return None,
    };
    Some(AckMeta {
        domain,
        stream: toks[base],
        consumer: toks[base + 1],
        delivered: parse_u64(toks[base + 2])?,
        stream_seq: parse_u64(toks[base + 3])?,
        consumer_seq: parse_u64(toks[base + 4])?,
        timestamp_ns: parse_u64(toks[base + 5])?,
        pending: parse_u64(toks[base + 6])?,
    })
}

/// What the server answered to a JetStream publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubAck {
    Stored {
        stream: String,
        seq: u64,
        duplicate: bool,
    },
    Error {
        code: u16,
        err_code: u32,
        description: String,
    },
}

#[derive(Deserialize)]
struct RawAck<'a> {
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: Option<bool>,
    #[serde(default)]
    error: Option<RawErr>,
}

#[derive(Deserialize)]
struct RawErr {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    err_code: Option<u32>,
    #[serde(default)]
    description: Option<String>,
}

/// The common PubAck shapes — a flat object with `"stream"`, `"seq"` and optionally
/// `"duplicate"` and `"domain"`, e.g. `{"stream":"s$1", "seq":42}` (nats-server writes a space
/// after the comma) — scanned without a JSON parser: this runs once per published message.
/// Anything else (escapes, an `"error"`, other keys) returns `None` and goes to serde_json.
fn scan_pub_ack(body: &[u8]) -> Option<(&[u8], u64, bool)> {
    canonical_pub_ack(body).or_else(|| scan_pub_ack_any(body))
}

/// The PubAck exactly as nats-server (2.10) writes it for a stream without a domain:
/// `{"stream":"<name>", "seq":<n>}` or `{"stream":"<name>", "seq":<n>,"duplicate": true}`.
/// Anything else (whitespace, a domain, other key orders, escapes) is `None` and goes to the
/// general scanner, which accepts all of these too: this is only the short way for the
/// shape of (nearly) every ack, about a sixth of the general scanner's instructions.
fn canonical_pub_ack(body: &[u8]) -> Option<(&[u8], u64, bool)> {
    let rest = body.strip_prefix(CANONICAL_ACK_START)?;
    let q = rest.iter().position(|&b| b == b'"')?;
    let stream = &rest[..q];
    if stream.contains(&b'\\') {
        return None;
    }
    let (seq, duplicate) = canonical_pub_ack_tail(&rest[q + 1..])?;
    Some((stream, seq, duplicate))
}

/// What a canonical PubAck starts with, up to its stream name.
pub(crate) const CANONICAL_ACK_START: &[u8] = br#"{"stream":""#;

/// The rest of a canonical PubAck after its stream name's closing quote: `, "seq":<n>}` or
/// `, "seq":<n>,"duplicate": true}` gives `(n, duplicate)`.
#[inline]
pub(crate) fn canonical_pub_ack_tail(rest: &[u8]) -> Option<(u64, bool)> {
    let rest = rest.strip_prefix(br#", "seq":"#)?;
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let seq = crate::parse::parse_u64(&rest[..n])?;
    match &rest[n..] {
        b"}" => Some((seq, false)),
        br#","duplicate": true}"# => Some((seq, true)),
        _ => None,
    }
}

/// Any PubAck of the keys `stream`, `seq`, `duplicate` and `domain`, in any order, with
/// whitespace; `None` for everything else (then serde_json decides).
fn scan_pub_ack_any(body: &[u8]) -> Option<(&[u8], u64, bool)> {
    fn ws(s: &[u8]) -> &[u8] {
        let n = s
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        &s[n..]
    }
    fn string(s: &[u8]) -> Option<(&[u8], &[u8])> {
        let s = s.strip_prefix(b"\"")?;
        // Short strings: a plain scan beats memchr's setup.
        let q = s.iter().position(|&b| b == b'"')?;
        let v = &s[..q];
        if v.contains(&b'\\') {
            return None;
        }
        Some((v, &s[q + 1..]))
    }
    let mut rest = ws(body.strip_prefix(b"{")?);
    let (mut stream, mut seq, mut duplicate) = (None, None, false);
    loop {
        let (key, r) = string(rest)?;
        rest = ws(ws(r).strip_prefix(b":")?);
        match key {
            b"stream" => {
                let (v, r) = string(rest)?;
                stream = Some(v);
                rest = r;
            }
            b"domain" => rest = string(rest)?.1,
            b"seq" => {
                let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                seq = Some(crate::parse::parse_u64(&rest[..n])?);
                rest = &rest[n..];
            }
            b"duplicate" => {
                if let Some(r) = rest.strip_prefix(b"true") {
                    duplicate = true;
                    rest = r;
                } else {
                    rest = rest.strip_prefix(b"false")?;
                }
            }
            _ => return None,
        }
        rest = ws(rest);
        if let Some(r) = rest.strip_prefix(b",") {
            rest = ws(r);
            continue;
        }
        if ws(rest.strip_prefix(b"}")?).is_empty() {
            return Some((stream?, seq?, duplicate));
        }
        return None;
    }
}

/// A stored PubAck's stream name, sequence and duplicate flag, borrowed from the body, or
/// `None` when the body is anything else (an error, or an unusual shape).
pub fn stored_pub_ack(body: &[u8]) -> Option<(&[u8], u64, bool)> {
    scan_pub_ack(body)
}

/// Parse a PubAck body. Anything that is neither a valid ack nor an API error becomes an
/// error outcome describing the problem (the message's fate is then unknown to us, but the
/// server did answer, so it is reported as not stored with code 0).
pub fn parse_pub_ack(body: &[u8]) -> PubAck {
    if let Some((stream, seq, duplicate)) = scan_pub_ack(body) {
        return PubAck::Stored {
            stream: String::from_utf8_lossy(stream).into_owned(),
            seq,
            duplicate,
        };
    }
    match serde_json::from_slice::<RawAck<'_>>(body) {
        Ok(RawAck { error: Some(e), .. }) => PubAck::Error {
            code: e.code.unwrap_or(0),
            err_code: e.err_code.unwrap_or(0),
            description: e.description.unwrap_or_default(),
        },
        Ok(RawAck {
            stream: Some(stream),
            seq: Some(seq),
            duplicate,
            ..
        }) => PubAck::Stored {
            stream: stream.into_owned(),
            seq,
            duplicate: duplicate.unwrap_or(false),
        },
        Ok(_) => PubAck::Error {
            code: 0,
            err_code: 0,
            description: format!(
                "invalid publish acknowledgement: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        },
        Err(e) => PubAck::Error {
            code: 0,
            err_code: 0,
            description: format!(
                "invalid publish acknowledgement ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subject_forms() {
        let m = parse_ack_subject(b"$JS.ACK.demo$1.g1.2.42.7.1716200000000000000.3").unwrap();
        assert_eq!(m.domain, None);
        assert_eq!(m.stream, b"demo$1");
        assert_eq!(m.consumer, b"g1");
        assert_eq!(
            (
                m.delivered,
                m.stream_seq,
                m.consumer_seq,
                m.timestamp_ns,
                m.pending
            ),
            (2, 42, 7, 1716200000000000000, 3)
        );
        let m = parse_ack_subject(b"$JS.ACK.hub.ACCHASH.s.c.1.2.3.4.5").unwrap();
        assert_eq!(m.domain, Some(&b"hub"[..]));
        assert_eq!((m.stream, m.stream_seq), (&b"s"[..], 2));
        let m = parse_ack_subject(b"$JS.ACK._.ACCHASH.s.c.1.2.3.4.5.rnd").unwrap();
        assert_eq!(m.domain, None);
        assert_eq!(m.pending, 5);
        assert!(parse_ack_subject(b"$JS.ACK.s.c.1.2.3.4").is_none());
        assert!(parse_ack_subject(b"$JS.ACK.s.c.x.2.3.4.5").is_none());
        assert!(parse_ack_subject(b"_INBOX.a.b").is_none());
        assert!(parse_ack_subject(b"$JS.ACK.a.b.c.d.1.2.3.4.5.6.7.8").is_none());
    }

    #[test]
    fn canonical_pub_ack_agrees_with_the_general_scanner() {
        // As nats-server 2.10.26 writes them (seen on the wire).
        let cases: &[&[u8]] = &[
            br#"{"stream":"orders#eu$2", "seq":42}"#,
            br#"{"stream":"s", "seq":18446744073709551615,"duplicate": true}"#,
            br#"{"stream":"s", "seq":0}"#,
            br#"{"stream":"", "seq":7}"#,
        ];
        for &c in cases {
            assert!(
                canonical_pub_ack(c).is_some(),
                "{}",
                String::from_utf8_lossy(c)
            );
            assert_eq!(canonical_pub_ack(c), scan_pub_ack_any(c));
        }
        // Not the canonical shape: left to the general scanner (which still reads them).
        let others: &[&[u8]] = &[
            br#"{"stream":"s","seq":1}"#,
            br#"{"stream":"s","seq":1,"duplicate":true}"#,
            br#"{"stream":"s", "seq":1,"duplicate":false}"#,
            br#"{"stream":"s", "domain":"d", "seq":1}"#,
            br#"{"stream":"s","seq":1,"domain":"d"}"#,
            br#"{"seq":1,"stream":"s"}"#,
            br#"{"stream":"s","seq":1} "#,
            br#"{ "stream":"s","seq":1}"#,
        ];
        for &c in others {
            assert_eq!(canonical_pub_ack(c), None, "{}", String::from_utf8_lossy(c));
            assert!(scan_pub_ack(c).is_some(), "{}", String::from_utf8_lossy(c));
        }
        // Malformed: neither takes them.
        let bad: &[&[u8]] = &[
            br#"{"stream":"s", "seq":}"#,
            br#"{"stream":"s", "seq":18446744073709551616}"#,
            br#"{"stream":"a\"b", "seq":1}"#,
            br#"{"stream":"s", "seq":1"#,
            br#"{"stream":"s"#,
        ];
        for &c in bad {
            assert_eq!(canonical_pub_ack(c), None, "{}", String::from_utf8_lossy(c));
            assert_eq!(scan_pub_ack(c), None, "{}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn pub_acks() {
        assert_eq!(
            parse_pub_ack(br#"{"stream":"orders#eu$2","seq":42}"#),
            PubAck::Stored {
                stream: "orders#eu$2".into(),
                seq: 42,
                duplicate: false
            }
        );
        assert_eq!(
            parse_pub_ack(br#"{"stream":"s","seq":1,"duplicate":true,"domain":"d"}"#),
            PubAck::Stored {
                stream: "s".into(),
                seq: 1,
                duplicate: true
            }
        );
        assert_eq!(
            parse_pub_ack(
                br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"s","seq":0}"#
            ),
            PubAck::Error {
                code: 503,
                err_code: 10077,
                description: "maximum messages exceeded".into()
            }
        );
        assert!(matches!(
            parse_pub_ack(b"garbage"),
            PubAck::Error { code: 0, .. }
        ));
        assert!(matches!(
            parse_pub_ack(b"{}"),
            PubAck::Error { code: 0, .. }
        ));
    }
}
