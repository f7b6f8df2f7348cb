//! The one place that turns bytes into executable code without compiling them.
#![allow(unsafe_code)]

use wasmtime::component::Component;
use wasmtime::Engine;

/// Loads a precompiled component.
///
/// The caller must pass bytes that this engine's compile cache wrote and whose
/// sha256 it has just checked against the digest recorded at write time (see
/// `cache.rs`). The bytes are taken from memory, not mapped from the file, so
/// nothing can change between that check and this load.
pub(crate) fn load_verified(engine: &Engine, verified_bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the artifact was produced by
    // `Engine::precompile_component`/`Component::serialize` of a compatible
    // engine and not tampered with. The cache only passes bytes it wrote
    // itself (in a 0700 directory it created) whose digest matches the one it
    // recorded when writing them; wasmtime additionally checks the engine
    // compatibility header and rejects mismatches with an error.
    unsafe { Component::deserialize(engine, verified_bytes) }
}
