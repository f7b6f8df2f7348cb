//! Provider components embedded in the binary (see `build.rs`).

/// `(name, component bytes)`, looked up by `builtin:NAME` plugin sources.
pub const BUILTINS: &[(&str, &[u8])] = &[
    ("fake", include_bytes!(concat!(env!("OUT_DIR"), "/lockstep_provider_fake.wasm"))),
    ("azure-keyvault", include_bytes!(concat!(env!("OUT_DIR"), "/lockstep_provider_azure_keyvault.wasm"))),
];

/// The plugin sources enabled when the configuration names none.
pub const DEFAULT_PLUGINS: &[&str] = &["builtin:fake", "builtin:azure-keyvault"];
