//! Shared pieces of the plugin-host tests: the components directory, a host
//! around the hostile component, and a loopback HTTP server that counts
//! connections.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lockstep_credentials::{FileBackend, StoreKind, StoreScope};
use lockstep_plugin_host::{wit, CallLimits, HostConfig, HttpConfig, OperatorGrants, PluginHost, PluginSource, StoreBinding};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Components are built by `make components`, never by the tests.
pub fn component(name: &str) -> PathBuf {
    let dir = std::env::var_os("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("LOCKSTEP_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lockstep"));
        cache.join("components")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run `make components` first", path.display());
    path
}

pub fn pinned(name: &str) -> PluginSource {
    let path = component(name);
    let sha256 = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    PluginSource::File { path, sha256 }
}

/// One compile cache for the whole test binary (each test still gets its own engine).
pub fn shared_cache() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path().join("compiled")
}

pub const DEADLINE: Duration = Duration::from_millis(800);
pub const MEMORY_CAP: usize = 32 << 20;

pub fn config(http: HttpConfig, grants: &[&str]) -> HostConfig {
    let mut cfg = HostConfig::new(shared_cache());
    cfg.limits = CallLimits { deadline: DEADLINE, max_memory_bytes: MEMORY_CAP };
    cfg.http = http;
    cfg.grants = OperatorGrants::from_flags(grants, &["pod-token=env:LOCKSTEP_TEST_POD_TOKEN_UNSET"]).unwrap();
    cfg
}

pub async fn hostile_host(http: HttpConfig, grants: &[&str]) -> PluginHost {
    let host = PluginHost::new(config(http, grants)).unwrap();
    host.load_and_register(&pinned("lockstep_provider_hostile")).await.unwrap();
    host
}

pub const MANIFESTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-a}
stringData: {password: hunter2, other: nope}
---
apiVersion: v1
kind: Secret
metadata: {name: unreferenced, namespace: team-a}
stringData: {password: nope}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: wi, namespace: team-a}
"#;

/// A ClusterSecretStore of the hostile plugin with this config, consumed
/// from `team-a`. Every binding is a new generation, as after a spec change.
pub fn binding(config: serde_json::Value) -> StoreBinding {
    static GENERATION: AtomicI64 = AtomicI64::new(1);
    StoreBinding {
        provider_key: "hostile".into(),
        store: StoreScope {
            kind: StoreKind::ClusterSecretStore,
            name: "hostile".into(),
            namespace: None,
            uid: "uid-hostile".into(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            provider_config: config,
            consumer_namespace: Some("team-a".into()),
        },
        controller_class: None,
        credentials: Arc::new(FileBackend::from_yaml(MANIFESTS).unwrap()),
    }
}

pub fn secret_ref() -> wit::SecretRef {
    wit::SecretRef { key: "k".into(), version: None, property: None, metadata_policy: wit::MetadataPolicy::None }
}

pub async fn get(host: &PluginHost, config: serde_json::Value) -> Result<Vec<u8>, wit::ProviderError> {
    host.bind(binding(config))?.get_secret(&secret_ref()).await.map(|v| v.value)
}

/// The host still serves a well-behaved call.
pub async fn assert_healthy(host: &PluginHost) {
    let v = get(host, serde_json::json!({"mode": "ok"})).await.expect("the host serves the next call");
    assert_eq!(v, b"fine");
}

pub fn denied(result: Result<Vec<u8>, wit::ProviderError>) -> String {
    match result {
        Err(wit::ProviderError::Denied(m)) => m,
        other => panic!("expected denied, got {other:?}"),
    }
}

/// What a test server answers.
#[derive(Clone)]
pub enum Reply {
    Fixed { content_type: &'static str, body: Vec<u8> },
    /// `size` bytes, chunked (no length) or with a Content-Length header.
    Huge { size: usize, declared: bool },
}

/// A loopback HTTP/1.1 server; returns its address and a connection counter.
pub async fn serve(reply: Reply) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 << 10];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = match reply {
                    Reply::Fixed { content_type, body } => {
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                        let _ = sock.write_all(head.as_bytes()).await;
                        sock.write_all(&body).await
                    }
                    Reply::Huge { size, declared } => {
                        let head = if declared {
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n")
                        } else {
                            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_string()
                        };
                        let _ = sock.write_all(head.as_bytes()).await;
                        let chunk = vec![b'x'; 1 << 20];
                        let mut sent = 0;
                        while sent < size {
                            let r = if declared {
                                sock.write_all(&chunk).await
                            } else {
                                let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                                sock.write_all(&framed).await
                            };
                            if r.is_err() {
                                return;
                            }
                            sent += chunk.len();
                        }
                        if declared { Ok(()) } else { sock.write_all(b"0\r\n\r\n").await }
                    }
                };
            });
        }
    });
    (addr, count)
}
