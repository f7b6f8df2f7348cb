//! Key conversion, key validation, value decoding and the null-byte check
//! (ESO `runtime/esutils` and `runtime/decoding`). Errors name keys, never values.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use lockstep_api::types::{ConversionStrategy, DecodingStrategy, NullBytePolicy};

use crate::SyncError;

/// Longest Secret data key.
pub const MAX_KEY_LEN: usize = 253;

/// One key under a conversion strategy: every character that is not a
/// letter, digit, `-`, `.` or `_` becomes `_` (Default) or `_U%04x_` (Unicode).
pub fn convert_key(strategy: ConversionStrategy, key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c.is_alphabetic() || c.is_numeric() || matches!(c, '-' | '.' | '_') {
            out.push(c);
        } else {
            match strategy {
                ConversionStrategy::Default => out.push('_'),
                ConversionStrategy::Unicode => out.push_str(&format!("_U{:04x}_", c as u32)),
            }
        }
    }
    out
}

/// Converts every key of a map; two keys converting to the same one is an error.
pub fn convert_keys(
    strategy: ConversionStrategy,
    map: BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, SyncError> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let converted = convert_key(strategy, &k);
        if out.insert(converted.clone(), v).is_some() {
            return Err(SyncError::KeyCollision { key: converted });
        }
    }
    Ok(out)
}

/// Whether `key` may be a Secret data key.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Drops empty keys (as ESO does, silently) and rejects invalid ones.
/// Stricter than ESO, which admits non-ASCII letters and numbers here and
/// then fails on the apiserver's write: the error comes earlier and names the key.
pub fn validate_keys(map: &mut BTreeMap<String, Vec<u8>>) -> Result<(), SyncError> {
    map.remove("");
    let invalid: Vec<String> = map.keys().filter(|k| !is_valid_key(k)).cloned().collect();
    if invalid.is_empty() { Ok(()) } else { Err(SyncError::InvalidKeys { keys: invalid }) }
}

/// Applies a decoding strategy to one value. `Auto` tries standard base64,
/// then URL-safe base64, and keeps the bytes as they are if neither decodes.
pub fn decode(strategy: DecodingStrategy, key: &str, value: Vec<u8>) -> Result<Vec<u8>, SyncError> {
    // Go's base64 decoder skips CR and LF.
    let strip = |v: &[u8]| -> Vec<u8> { v.iter().copied().filter(|b| *b != b'\r' && *b != b'\n').collect() };
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => STANDARD
            .decode(strip(&value))
            .map_err(|_| SyncError::Decode { key: key.to_string(), strategy: "Base64" }),
        DecodingStrategy::Base64Url => URL_SAFE
            .decode(strip(&value))
            .map_err(|_| SyncError::Decode { key: key.to_string(), strategy: "Base64URL" }),
        DecodingStrategy::Auto => {
            let s = strip(&value);
            Ok(STANDARD.decode(&s).or_else(|_| URL_SAFE.decode(&s)).unwrap_or(value))
        }
    }
}

/// `nullBytePolicy: Fail` rejects a value containing a 0x00 byte.
pub fn check_null_bytes(policy: NullBytePolicy, key: &str, value: &[u8]) -> Result<(), SyncError> {
    if policy == NullBytePolicy::Fail && value.contains(&0) {
        return Err(SyncError::NullByte { key: key.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn default_conversion_replaces_with_underscore() {
        assert_eq!(convert_key(ConversionStrategy::Default, "foo/bar baz@x"), "foo_bar_baz_x");
        assert_eq!(convert_key(ConversionStrategy::Default, "a-b.c_d1"), "a-b.c_d1");
        // Letters outside ASCII are kept by conversion (ESO uses unicode.IsLetter) ...
        assert_eq!(convert_key(ConversionStrategy::Default, "é"), "é");
        // ... and refused by key validation here, where ESO lets the apiserver refuse the write.
        assert!(!is_valid_key("é"));
    }

    #[test]
    fn unicode_conversion_escapes_code_point() {
        assert_eq!(convert_key(ConversionStrategy::Unicode, "a/b"), "a_U002f_b");
        assert_eq!(convert_key(ConversionStrategy::Unicode, "x😀"), "x_U1f600_");
    }

    #[test]
    fn collision_after_conversion_is_an_error() {
        let err = convert_keys(ConversionStrategy::Default, map(&[("a/b", "1"), ("a@b", "2")])).unwrap_err();
        assert_eq!(err.to_string(), "secret name collision during conversion: a_b");
        assert!(!err.to_string().contains('1'));
    }

    #[test]
    fn validation_drops_empty_and_rejects_invalid() {
        let mut m = map(&[("", "x"), ("ok", "y")]);
        validate_keys(&mut m).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["ok"]);
        let mut m = map(&[("bad/key", "v"), ("ok", "y")]);
        let err = validate_keys(&mut m).unwrap_err().to_string();
        assert!(err.contains("bad/key") && err.starts_with("invalid secret keys"), "{err}");
        let mut m = map(&[(&"k".repeat(254), "v")]);
        assert!(validate_keys(&mut m).is_err());
        let mut m = map(&[(&"k".repeat(253), "v")]);
        assert!(validate_keys(&mut m).is_ok());
    }

    #[test]
    fn decoding_strategies() {
        let d = |s, v: &str| decode(s, "k", v.as_bytes().to_vec());
        assert_eq!(d(DecodingStrategy::None, "aGk=").unwrap(), b"aGk=");
        assert_eq!(d(DecodingStrategy::Base64, "aGk=").unwrap(), b"hi");
        assert_eq!(d(DecodingStrategy::Base64, "aG\nk=").unwrap(), b"hi");
        assert!(d(DecodingStrategy::Base64, "aGk").is_err(), "padding is required, as in Go's StdEncoding");
        assert_eq!(d(DecodingStrategy::Base64Url, "-_8=").unwrap(), [0xfb, 0xff]);
        assert!(d(DecodingStrategy::Base64, "-_8=").is_err());
        assert_eq!(d(DecodingStrategy::Auto, "-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(d(DecodingStrategy::Auto, "aGk=").unwrap(), b"hi");
        // Auto decodes whatever looks like base64 (ESO's documented pitfall) ...
        assert_eq!(d(DecodingStrategy::Auto, "1234").unwrap(), [0xd7, 0x6d, 0xf8]);
        // ... and keeps what does not.
        assert_eq!(d(DecodingStrategy::Auto, "not base64!").unwrap(), b"not base64!");
        let err = d(DecodingStrategy::Base64, "s3cr3t!!").unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn null_bytes() {
        assert!(check_null_bytes(NullBytePolicy::Ignore, "k", b"a\0b").is_ok());
        assert!(check_null_bytes(NullBytePolicy::Fail, "k", b"ab").is_ok());
        assert_eq!(check_null_bytes(NullBytePolicy::Fail, "k", b"a\0b").unwrap_err().to_string(), "value of key k contains a null byte (nullBytePolicy: Fail)");
    }
}
