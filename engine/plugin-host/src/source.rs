//! Where plugin components come from, and which plugin serves which
//! `spec.provider` key.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::sha256_hex;
use crate::HostError;

/// A component to load. Files are pinned by sha256; an OCI variant (pull by
/// digest) fits next to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Bytes embedded in the binary.
    BuiltIn { name: String, wasm: &'static [u8] },
    /// A file whose content must have this sha256 (hex).
    File { path: PathBuf, sha256: String },
}

impl PluginSource {
    /// Parses `builtin:NAME` (looked up in `builtins`) or
    /// `file:/path/to/plugin.wasm@sha256:HEX` (a CLI flag value).
    pub fn parse(text: &str, builtins: &[(&str, &'static [u8])]) -> Result<Self, HostError> {
        if let Some(name) = text.strip_prefix("builtin:") {
            let (_, wasm) = builtins
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| HostError::Config(format!("plugin source {text:?}: no built-in plugin {name:?}")))?;
            return Ok(Self::BuiltIn { name: name.to_string(), wasm });
        }
        if let Some(rest) = text.strip_prefix("file:") {
            let (path, digest) = rest
                .rsplit_once("@sha256:")
                .ok_or_else(|| HostError::Config(format!("plugin source {text:?}: a file must be pinned: file:PATH@sha256:HEX")))?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(HostError::Config(format!("plugin source {text:?}: sha256 must be 64 hex digits")));
            }
            return Ok(Self::File { path: PathBuf::from(path), sha256: digest.to_ascii_lowercase() });
        }
        Err(HostError::Config(format!("plugin source {text:?}: expected builtin:NAME or file:PATH@sha256:HEX")))
    }

    /// A short description for logs and `plugin inspect`.
    pub fn describe(&self) -> String {
        match self {
            Self::BuiltIn { name, .. } => format!("builtin:{name}"),
            Self::File { path, sha256 } => format!("file:{}@sha256:{sha256}", path.display()),
        }
    }

    /// The component bytes, verified against the pin.
    pub async fn read(&self) -> Result<Arc<[u8]>, HostError> {
        match self {
            Self::BuiltIn { wasm, .. } => Ok(Arc::from(*wasm)),
            Self::File { path, sha256 } => {
                let bytes = tokio::fs::read(path).await.map_err(|e| HostError::Source(format!("{}: {e}", path.display())))?;
                let actual = sha256_hex(&bytes);
                if &actual != sha256 {
                    return Err(HostError::Source(format!("{}: sha256 is {actual}, but the configuration pins {sha256}", path.display())));
                }
                Ok(Arc::from(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pinned_sources() {
        static FAKE: &[u8] = b"\0asm";
        let b = PluginSource::parse("builtin:fake", &[("fake", FAKE)]).unwrap();
        assert_eq!(b.describe(), "builtin:fake");
        let hex = "ab".repeat(32);
        let f = PluginSource::parse(&format!("file:/p/x.wasm@sha256:{hex}"), &[]).unwrap();
        assert_eq!(f, PluginSource::File { path: "/p/x.wasm".into(), sha256: hex });
        assert!(PluginSource::parse("file:/p/x.wasm", &[]).is_err());
        assert!(PluginSource::parse("builtin:none", &[]).is_err());
        assert!(PluginSource::parse("oci:x", &[]).is_err());
    }

    #[tokio::test]
    async fn file_sources_are_checked_against_their_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"component").unwrap();
        let good = PluginSource::File { path: path.clone(), sha256: sha256_hex(b"component") };
        assert_eq!(&*good.read().await.unwrap(), b"component");
        let bad = PluginSource::File { path, sha256: sha256_hex(b"other") };
        assert!(bad.read().await.unwrap_err().to_string().contains("pins"));
    }
}
