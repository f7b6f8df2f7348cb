//! The byte strategy.
//!
//! Secret values are bytes (DER, decoded base64, ...) but minijinja works on
//! `String`. Values therefore cross the engine boundary through a reversible
//! mapping: every well-formed UTF-8 sequence becomes its character, every other
//! byte `b` becomes the escape character `U+10FF00 + b` (the last 256 code
//! points of plane 16, private use). Well-formed sequences that *encode* an
//! escape character are themselves escaped byte by byte, so `decode(encode(b))
//! == b` for every byte string. Text functions see real characters; byte
//! functions (`b64enc`, hashes, PKCS#12, ...) call [`decode`] first.
//! Template source may not contain escape characters (rejected at compile).

/// First escape code point; `ESCAPE_BASE + b` stands for the raw byte `b`.
pub const ESCAPE_BASE: u32 = 0x10FF00;

/// Maps bytes to a string reversibly.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_valid(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // SAFETY-free: `good` is valid UTF-8 by construction.
                push_valid(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for &b in &bad[..n] {
                    out.push(escape_char(b));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_valid(out: &mut String, s: &str) {
    for c in s.chars() {
        if is_escape(c) {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                out.push(escape_char(b));
            }
        } else {
            out.push(c);
        }
    }
}

fn escape_char(b: u8) -> char {
    char::from_u32(ESCAPE_BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// True for the 256 characters reserved for raw bytes.
pub fn is_escape(c: char) -> bool {
    (c as u32) >= ESCAPE_BASE
}

/// Inverse of [`encode`].
pub fn decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_escape(c) {
            out.push((c as u32 - ESCAPE_BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// Number of bytes `s` stands for (Go's `len` on a string).
pub fn byte_len(s: &str) -> usize {
    s.chars().map(|c| if is_escape(c) { 1 } else { c.len_utf8() }).sum()
}

/// Decodes to a real UTF-8 string, or `None` if the bytes are not UTF-8.
pub fn to_utf8(s: &str) -> Option<String> {
    if s.chars().any(is_escape) {
        String::from_utf8(decode(s)).ok()
    } else {
        Some(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_invalid_utf8_and_escape_lookalikes() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"plain".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x80],
            "é✓".as_bytes().to_vec(),
            "\u{10FF41}".as_bytes().to_vec(),
            vec![0xf4, 0x8f, 0xbd],
        ];
        for c in cases {
            let s = encode(&c);
            assert_eq!(decode(&s), c);
            assert_eq!(byte_len(&s), c.len());
        }
        assert_eq!(encode(b"abc"), "abc");
        assert_eq!(encode(&[0xff]).chars().count(), 1);
    }
}
