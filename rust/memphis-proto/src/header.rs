//! NATS header blocks: `NATS/1.0[ <code>[ <description>]]\r\n(<key>: <value>\r\n)*\r\n`.
//!
//! Headers are multi-valued: a key may repeat and every value is kept, in order. The status
//! line is first-class (100 idle heartbeat / flow control, 404 no messages, 408 request
//! timeout, 409 consumer state, 503 no responders).

use crate::error::ProtoError;

pub const VERSION_LINE: &[u8] = b"NATS/1.0";

/// The status of a header block: code and description (both empty when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    pub code: u16,
    pub description: &'a [u8],
}

fn first_line(block: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'\n', block) {
        Some(i) => {
            let line = &block[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, &block[i + 1..])
        }
        None => (block, &[]),
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// The status code and description of a header block; code 0 when there is none.
pub fn status(block: &[u8]) -> Status<'_> {
    let (line, _) = first_line(block);
    let rest = line.strip_prefix(VERSION_LINE).unwrap_or(b"");
    let rest = trim(rest);
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return Status {
            code: 0,
            description: b"",
        };
    }
    let code = u16::from(rest[0] - b'0') * 100
        + u16::from(rest[1] - b'0') * 10
        + u16::from(rest[2] - b'0');
    Status {
        code,
        description: trim(&rest[3..]),
    }
}

/// Iterate the `(key, value)` pairs of a header block, in order, repeated keys included.
/// Lines without a colon are skipped.
pub fn pairs(block: &[u8]) -> Pairs<'_> {
    let (_, rest) = first_line(block);
    Pairs { rest }
}

pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = first_line(self.rest);
            self.rest = rest;
            if line.is_empty() {
                // The blank line ends the block.
                self.rest = &[];
                return None;
            }
            if let Some(colon) = memchr::memchr(b':', line) {
                let key = trim(&line[..colon]);
                if key.is_empty() {
                    continue;
                }
                return Some((key, trim(&line[colon + 1..])));
            }
        }
    }
}

/// Check a header key: printable ASCII, no colon, no whitespace.
pub fn check_key(key: &[u8]) -> Result<(), ProtoError> {
    if key.is_empty() || key.iter().any(|&b| !(33..=126).contains(&b) || b == b':') {
        return Err(ProtoError::InvalidArgument(format!(
            "invalid header key {:?}: keys are non-empty printable ASCII without ':' or spaces",
            String::from_utf8_lossy(key)
        )));
    }
    Ok(())
}

/// Check a header value: no CR or LF.
pub fn check_value(value: &[u8]) -> Result<(), ProtoError> {
    if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(ProtoError::InvalidArgument(format!(
            "invalid header value {:?}: values can not contain CR or LF",
            String::from_utf8_lossy(value)
        )));
    }
    Ok(())
}

/// Append one `key: value\r\n` line after checking both.
pub fn push_pair(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), ProtoError> {
    check_key(key)?;
    check_value(value)?;
    out.extend_from_slice(key);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Encode a whole header block from pairs.
pub fn encode<'a, I>(pairs: I) -> Result<Vec<u8>, ProtoError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(VERSION_LINE);
    out.extend_from_slice(b"\r\n");
    for (k, v) in pairs {
        push_pair(&mut out, k, v)?;
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status(b"NATS/1.0\r\n\r\n").code, 0);
        let s = status(b"NATS/1.0 503\r\n\r\n");
        assert_eq!((s.code, s.description), (503, &b""[..]));
        let s = status(b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n");
        assert_eq!((s.code, s.description), (408, &b"Request Timeout"[..]));
        let s = status(b"NATS/1.0 100 Idle Heartbeat\r\n\r\n");
        assert_eq!(s.code, 100);
    }

    #[test]
    fn multi_valued_pairs() {
        let block = b"NATS/1.0\r\nA: 1\r\nB:2\r\nA:  3 \r\nbad line\r\n\r\n";
        let got: Vec<_> = pairs(block).collect();
        assert_eq!(
            got,
            vec![
                (&b"A"[..], &b"1"[..]),
                (&b"B"[..], &b"2"[..]),
                (&b"A"[..], &b"3"[..])
            ]
        );
    }

    #[test]
    fn encode_roundtrip_and_checks() {
        let b = encode([(&b"k"[..], &b"v"[..]), (&b"k"[..], &b"w"[..])]).unwrap();
        assert_eq!(b, b"NATS/1.0\r\nk: v\r\nk: w\r\n\r\n");
        assert!(encode([(&b"a b"[..], &b"v"[..])]).is_err());
        assert!(encode([(&b"a:b"[..], &b"v"[..])]).is_err());
        assert!(encode([(&b"a"[..], &b"v\r\n"[..])]).is_err());
        assert!(encode([(&b""[..], &b"v"[..])]).is_err());
    }
}
