//! Embeds the built-in provider components. They are built by
//! `make components` (wasm32-wasip2, their own target directory) into
//! `$LOCKSTEP_COMPONENTS_DIR`; this script only copies them into `OUT_DIR`.
use std::path::PathBuf;

const BUILTINS: &[&str] = &["lockstep_provider_fake.wasm", "lockstep_provider_azure_keyvault.wasm"];

fn main() {
    println!("cargo:rerun-if-env-changed=LOCKSTEP_COMPONENTS_DIR");
    let dir = std::env::var_os("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"));
        cache.join("lockstep/components")
    });
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in BUILTINS {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        if let Err(e) = std::fs::copy(&src, out.join(name)) {
            panic!("built-in component {} not found ({e}); run `make components` first", src.display());
        }
    }
}
