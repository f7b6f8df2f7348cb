//! The world-independent sandbox: compile cache, import checks, allocators.

mod support;

use std::sync::Arc;

use lockstep_plugin_host::imports::PROVIDER_WORLD;
use lockstep_plugin_host::{CacheOutcome, HostError, PluginHost, PoolingMode, Sandbox, SandboxConfig};
use support::*;

fn wasm(name: &str) -> Arc<[u8]> {
    Arc::from(std::fs::read(component(name)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_artifact_is_recompiled() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    let bytes = wasm("lockstep_provider_hostile");

    let sandbox = Sandbox::new(SandboxConfig::new(&cache)).unwrap();
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
    let first = sandbox.compile(bytes.clone(), PROVIDER_WORLD).await.unwrap();
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    let artifact = sandbox.artifact_path(first.sha256());
    assert_eq!(std::fs::metadata(&artifact).unwrap().permissions().mode() & 0o777, 0o600);

    // A second engine of the same configuration loads the verified artifact.
    let again = Sandbox::new(SandboxConfig::new(&cache)).unwrap();
    assert_eq!(again.compile(bytes.clone(), PROVIDER_WORLD).await.unwrap().cache_outcome(), CacheOutcome::Hit);

    // Flip bytes in the middle of the artifact: the digest no longer matches.
    let mut tampered = std::fs::read(&artifact).unwrap();
    let mid = tampered.len() / 2;
    for b in &mut tampered[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&artifact, &tampered).unwrap();
    let third = Sandbox::new(SandboxConfig::new(&cache)).unwrap();
    assert_eq!(third.compile(bytes.clone(), PROVIDER_WORLD).await.unwrap().cache_outcome(), CacheOutcome::Recompiled);
    assert_ne!(std::fs::read(&artifact).unwrap(), tampered, "the artifact was rewritten");

    // The recompiled plugin runs.
    let mut cfg = config(Default::default(), &[]);
    cfg.sandbox = SandboxConfig::new(&cache);
    let host = PluginHost::new(cfg).unwrap();
    host.load_and_register(&pinned("lockstep_provider_hostile")).await.unwrap();
    assert_healthy(&host).await;

    // A wider directory is tightened back to 0700 on open.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    Sandbox::new(SandboxConfig::new(&cache)).unwrap();
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
}

/// A component that imports one (empty) instance named `name`, encoded by hand.
fn component_importing(name: &str) -> Vec<u8> {
    let mut out = b"\0asm\x0d\x00\x01\x00".to_vec();
    // Type section: one instance type with no declarations.
    out.extend_from_slice(&[0x07, 0x03, 0x01, 0x42, 0x00]);
    // Import section: `name` as an instance of type 0.
    let mut body = vec![0x01, 0x00, name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&[0x05, 0x00]);
    out.push(0x0a);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_sockets_and_unknown_imports_are_refused_at_load() {
    let sandbox = Sandbox::new(SandboxConfig::new(shared_cache())).unwrap();
    for (import, reason) in [
        ("wasi:filesystem/types@0.2.12", "no filesystem"),
        ("wasi:sockets/tcp@0.2.12", "no sockets"),
        ("acme:backdoor/shell@1.0.0", "not provided by the Lockstep host"),
        ("lockstep:provider/credentials@0.2.0", "version 0.1.x"),
    ] {
        let err = sandbox.compile(Arc::from(component_importing(import)), PROVIDER_WORLD).await.unwrap_err();
        match &err {
            HostError::ForbiddenImport { import: i, reason: r } => assert!(i == import && r.contains(reason), "{err}"),
            other => panic!("{import}: {other}"),
        }
    }
    // The control: the same encoding with a provided interface loads.
    sandbox.compile(Arc::from(component_importing("wasi:clocks/wall-clock@0.2.12")), PROVIDER_WORLD).await.unwrap();
    // A core module is not a component.
    let core = Arc::from(b"\0asm\x01\x00\x00\x00".as_slice());
    assert!(matches!(sandbox.compile(core, PROVIDER_WORLD).await, Err(HostError::NotAComponent)));
    // The real plugin imports neither filesystem nor sockets.
    let hostile = sandbox.compile(wasm("lockstep_provider_hostile"), PROVIDER_WORLD).await.unwrap();
    assert!(hostile.imports().iter().any(|i| i.starts_with("wasi:http/outgoing-handler@0.2")));
    assert!(hostile.imports().iter().all(|i| !i.starts_with("wasi:filesystem") && !i.starts_with("wasi:sockets")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_and_pooled_allocation_both_serve_calls() {
    for pooling in [PoolingMode::Never, PoolingMode::Auto] {
        let mut cfg = config(Default::default(), &[]);
        cfg.sandbox.pooling = pooling;
        let host = PluginHost::new(cfg).unwrap();
        assert_eq!(host.sandbox().is_pooled(), pooling != PoolingMode::Never, "this machine has the address space for the pool");
        host.load_and_register(&pinned("lockstep_provider_hostile")).await.unwrap();
        assert_healthy(&host).await;
        let err = get(&host, serde_json::json!({"mode": "memory-bomb"})).await.unwrap_err();
        assert!(format!("{err:?}").contains("memory limit of 32 MiB"), "{pooling:?}: {err:?}");
        assert_healthy(&host).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_metadata_and_provider_key_mapping() {
    let host = PluginHost::new(config(Default::default(), &[])).unwrap();
    let plugin = host.load(&pinned("lockstep_provider_hostile")).await.unwrap();
    assert_eq!(plugin.metadata().provider_key, "hostile");
    assert_eq!(plugin.metadata().token_audiences, vec!["api://hostile".to_string()]);
    assert!(host.plugin("hostile").is_none(), "load does not register");
    // The configuration decides which key a plugin serves.
    host.register("chaos", plugin.clone());
    assert_eq!(host.provider_keys(), vec!["chaos".to_string()]);
    let mut b = binding(serde_json::json!({"mode": "ok"}));
    b.provider_key = "chaos".into();
    assert_eq!(host.bind(b).unwrap().get_secret(&secret_ref()).await.unwrap().value, b"fine");
    // A pin that does not match is refused before compiling.
    let bad = lockstep_plugin_host::PluginSource::File { path: component("lockstep_provider_hostile"), sha256: "0".repeat(64) };
    assert!(host.load(&bad).await.unwrap_err().to_string().contains("pins"));
}
