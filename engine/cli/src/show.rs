//! How secret values appear in CLI output: never as themselves unless the
//! user asked with `--show-values`.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `len=N sha256=HEX` (or the value itself, as text if it is UTF-8).
pub fn value(bytes: &[u8], show_values: bool) -> String {
    if show_values {
        return match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
        };
    }
    format!("<{} bytes, sha256:{}>", bytes.len(), hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_values_unless_asked() {
        let shown = value(b"hunter2", false);
        assert!(!shown.contains("hunter2"));
        assert!(shown.starts_with("<7 bytes, sha256:"));
        assert_eq!(value(b"hunter2", true), "hunter2");
        assert_eq!(value(&[0xff, 0x00, 0x01], true), "base64:/wAB");
    }
}
