//! On-disk cache of compiled components, keyed by the component's sha256 and
//! the engine's compatibility fingerprint.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::HostError;

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified artifact.
    Hit,
    /// Compiled: no artifact yet.
    Miss,
    /// Compiled: the artifact or its recorded digest did not match, or wasmtime refused it.
    Recompiled,
}

#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    fingerprint: String,
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only used to feed the digest")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompileCache {
    /// Creates `dir` with mode 0700 (or tightens an existing one to 0700; that
    /// fails unless the engine owns it).
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, HostError> {
        let io = |e: std::io::Error| HostError::Cache(format!("{}: {e}", dir.display()));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        let meta = std::fs::symlink_metadata(dir).map_err(io)?;
        if !meta.is_dir() {
            return Err(HostError::Cache(format!("{} is not a directory", dir.display())));
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let fingerprint = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self { dir: dir.to_path_buf(), fingerprint })
    }

    fn paths(&self, wasm_sha256: &str) -> (PathBuf, PathBuf) {
        let stem = format!("{wasm_sha256}-{}", self.fingerprint);
        (self.dir.join(format!("{stem}.cwasm")), self.dir.join(format!("{stem}.sha256")))
    }

    /// The path of the artifact for a component (tests tamper with it).
    pub(crate) fn artifact_path(&self, wasm_sha256: &str) -> PathBuf {
        self.paths(wasm_sha256).0
    }

    /// Loads the verified artifact or compiles (and writes) a new one. Blocking.
    pub(crate) fn load_or_compile(&self, engine: &Engine, wasm: &[u8], wasm_sha256: &str) -> Result<(Component, CacheOutcome), HostError> {
        let (artifact, digest_file) = self.paths(wasm_sha256);
        let mut outcome = CacheOutcome::Miss;
        if let (Ok(bytes), Ok(recorded)) = (std::fs::read(&artifact), std::fs::read_to_string(&digest_file)) {
            if sha256_hex(&bytes) == recorded.trim() {
                match crate::artifact::load_verified(engine, &bytes) {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => tracing::warn!(artifact = %artifact.display(), error = %e, "cached artifact refused; recompiling"),
                }
            } else {
                tracing::warn!(artifact = %artifact.display(), "cached artifact does not match its recorded sha256; recompiling");
            }
            outcome = CacheOutcome::Recompiled;
        }
        let compiled = engine
            .precompile_component(wasm)
            .map_err(|e| HostError::Compile(format!("{e:#}")))?;
        let digest = sha256_hex(&compiled);
        // Write the artifact, then the digest that vouches for it; each atomically.
        write_private(&artifact, &compiled).map_err(|e| HostError::Cache(format!("{}: {e}", artifact.display())))?;
        write_private(&digest_file, digest.as_bytes()).map_err(|e| HostError::Cache(format!("{}: {e}", digest_file.display())))?;
        let component = crate::artifact::load_verified(engine, &compiled).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        Ok((component, outcome))
    }
}

/// Writes `bytes` to a 0600 temporary file next to `path` and renames it into place.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Unique per writer: two compilations of one component may race in a process.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{seq}", std::process::id()));
    // A leftover from a crash could carry other permissions.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
