//! Load-time check of what a component imports: only interfaces the host
//! provides, and never filesystem or sockets.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::HostError;

/// A named set of importable interfaces: `package/interface` without version,
/// plus the accepted version prefix.
#[derive(Debug, Clone, Copy)]
pub struct ImportSet {
    pub name: &'static str,
    /// Version prefix the import must carry, e.g. `0.2.` for WASI 0.2.x.
    pub version_prefix: &'static str,
    pub interfaces: &'static [&'static str],
}

/// What Rust's std (and any wasip2 guest) needs; backed by an empty context.
pub const WASI_BASE: ImportSet = ImportSet {
    name: "wasi base",
    version_prefix: "0.2.",
    interfaces: &[
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
        "wasi:clocks/monotonic-clock",
        "wasi:clocks/wall-clock",
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
    ],
};

/// Outbound HTTP, checked by the host's egress policy.
pub const WASI_HTTP: ImportSet = ImportSet {
    name: "wasi:http",
    version_prefix: "0.2.",
    interfaces: &["wasi:http/types", "wasi:http/outgoing-handler"],
};

/// The host interfaces of `lockstep:provider@0.1.x`.
pub const PROVIDER_HOST: ImportSet = ImportSet {
    name: "lockstep:provider",
    version_prefix: "0.1.",
    interfaces: &["lockstep:provider/types", "lockstep:provider/credentials", "lockstep:provider/log"],
};

/// Every import set of the provider world.
pub const PROVIDER_WORLD: &[ImportSet] = &[WASI_BASE, WASI_HTTP, PROVIDER_HOST];

fn split_version(name: &str) -> (&str, &str) {
    name.split_once('@').unwrap_or((name, ""))
}

/// Returns the component's import names, or the first one the host refuses.
pub fn check_imports(engine: &Engine, component: &Component, allowed: &[ImportSet]) -> Result<Vec<String>, HostError> {
    let mut names = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        let (iface, version) = split_version(name);
        let refused = |reason: String| HostError::ForbiddenImport { import: name.to_string(), reason };
        if iface.starts_with("wasi:filesystem/") {
            return Err(refused("plugins get no filesystem".into()));
        }
        if iface.starts_with("wasi:sockets/") {
            return Err(refused("plugins get no sockets; outbound HTTP goes through wasi:http".into()));
        }
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Err(refused("only interface imports are provided".into()));
        }
        match allowed.iter().find(|set| set.interfaces.contains(&iface)) {
            Some(set) if version.starts_with(set.version_prefix) => names.push(name.to_string()),
            Some(set) => {
                return Err(refused(format!("the host provides {} version {}x", set.name, set.version_prefix)));
            }
            None => return Err(refused("not provided by the Lockstep host".into())),
        }
    }
    Ok(names)
}
