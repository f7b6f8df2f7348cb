//! `application/x-www-form-urlencoded` bodies and percent-encoding for URLs.

/// Encodes pairs as a form body (`a=1&b=x+y`): unreserved characters kept,
/// space as `+`, everything else as `%XX`.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape_into(&mut out, k.as_ref(), true);
        out.push('=');
        escape_into(&mut out, v.as_ref(), true);
    }
    out
}

/// Percent-encodes one path segment or query value (space as `%20`, `/` encoded).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, false);
    out
}

fn escape_into(out: &mut String, s: &str, plus_for_space: bool) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if plus_for_space => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_body() {
        assert_eq!(
            encode(&[("grant_type", "client_credentials"), ("scope", "https://vault.azure.net/.default x")]),
            "grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default+x"
        );
        assert_eq!(encode::<&str, &str>(&[]), "");
        assert_eq!(encode(&[("k", "é&=")]), "k=%C3%A9%26%3D");
    }

    #[test]
    fn path_segment() {
        assert_eq!(escape("a b/c~d"), "a%20b%2Fc~d");
    }
}
