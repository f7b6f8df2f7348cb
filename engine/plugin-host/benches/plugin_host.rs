//! `cargo bench -p lockstep-plugin-host` (components from `make components`).
//!
//! compile cold vs cached · a fresh instance per call, pooled vs on-demand · one call's round
//! trip through the engine path · the same fetch native vs through the
//! component against a loopback keep-alive server. Memory per live instance
//! is printed before the criterion runs (it is not a timing).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use lockstep_credentials::{FileBackend, StoreKind, StoreScope};
use lockstep_plugin_host::imports::PROVIDER_WORLD;
use lockstep_plugin_host::{wit, HostConfig, OperatorGrants, PluginHost, PluginSource, PoolingMode, Sandbox, SandboxConfig, StoreBinding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn component() -> (PathBuf, Arc<[u8]>) {
    let dir = std::env::var_os("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).expect("LOCKSTEP_COMPONENTS_DIR (make components)");
    let path = dir.join("lockstep_provider_hostile.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run make components", path.display()));
    (path, Arc::from(bytes))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn sandbox(pooling: PoolingMode, cache: &std::path::Path) -> Arc<Sandbox> {
    let mut cfg = SandboxConfig::new(cache);
    cfg.pooling = pooling;
    Sandbox::new(cfg).unwrap()
}

fn compile(c: &mut Criterion) {
    let rt = rt();
    let (_, wasm) = component();
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("cold", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().unwrap();
            let sb = sandbox(PoolingMode::Never, dir.path());
            rt.block_on(sb.compile(wasm.clone(), PROVIDER_WORLD)).unwrap()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(PoolingMode::Never, dir.path());
    rt.block_on(sb.compile(wasm.clone(), PROVIDER_WORLD)).unwrap();
    g.sample_size(50);
    g.bench_function("cached", |b| b.iter(|| rt.block_on(sb.compile(wasm.clone(), PROVIDER_WORLD)).unwrap()));
    g.finish();
}

/// A fresh instance for every call: the engine's path for a new isolation unit (instantiate,
/// the egress call that sets its grant, then get-secret), with instance reuse turned off.
/// Against `call/get-secret round trip (warm instance)` this is the cost of an instance.
fn instantiate(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("instantiate");
    for (name, mode) in [("pooled", PoolingMode::Always), ("on-demand", PoolingMode::Never)] {
        let dir = tempfile::tempdir().unwrap();
        let host = rt.block_on(host_with(dir.path(), |cfg| {
            cfg.sandbox.pooling = mode;
            cfg.recycle.max_age = Duration::ZERO;
        }));
        let bound = host.bind(binding(serde_json::json!({"mode": "ok"}))).unwrap();
        let r = secret_ref();
        g.bench_function(format!("{name} - fresh instance + egress + get-secret"), |b| b.iter(|| rt.block_on(bound.get_secret(&r)).unwrap()));
    }
    g.finish();
}

fn binding(config: serde_json::Value) -> StoreBinding {
    binding_of("bench", config)
}

/// A binding of its own store: its own isolation unit, so its own instance.
fn binding_of(uid: &str, config: serde_json::Value) -> StoreBinding {
    StoreBinding {
        provider_key: "hostile".into(),
        store: StoreScope {
            kind: StoreKind::ClusterSecretStore,
            name: "bench".into(),
            namespace: None,
            uid: uid.into(),
            generation: 1,
            provider_config: config,
            consumer_namespace: Some("default".into()),
        },
        controller_class: None,
        credentials: Arc::new(FileBackend::default()),
    }
}

async fn host(cache: &std::path::Path, overrides: Vec<lockstep_plugin_host::HostOverride>) -> PluginHost {
    host_with(cache, |cfg| cfg.http.overrides = overrides).await
}

async fn host_with(cache: &std::path::Path, tune: impl FnOnce(&mut HostConfig)) -> PluginHost {
    let (path, wasm) = component();
    let mut cfg = HostConfig::new(cache);
    cfg.grants = OperatorGrants::from_flags(&["*=http"], &[] as &[&str]).unwrap();
    tune(&mut cfg);
    let host = PluginHost::new(cfg).unwrap();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    host.load_and_register(&PluginSource::File { path, sha256 }).await.unwrap();
    host
}

fn secret_ref() -> wit::SecretRef {
    wit::SecretRef { key: "k".into(), version: None, property: None, metadata_policy: wit::MetadataPolicy::None }
}

fn call(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let host = rt.block_on(host(dir.path(), vec![]));
    let bound = host.bind(binding(serde_json::json!({"mode": "ok"}))).unwrap();
    let r = secret_ref();
    c.bench_function("call/get-secret round trip (warm instance)", |b| b.iter(|| rt.block_on(bound.get_secret(&r)).unwrap()));
}

/// A keep-alive HTTP/1.1 server answering every request with 64 bytes.
async fn keep_alive_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut pending = Vec::new();
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: 64\r\n\r\n{}", "x".repeat(64));
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn fetch(c: &mut Criterion) {
    let rt = rt();
    let addr = rt.block_on(keep_alive_server());
    let dir = tempfile::tempdir().unwrap();
    let overrides = vec![format!("backend.example={addr}").parse().unwrap()];
    let host = rt.block_on(host(dir.path(), overrides));
    let cfg = serde_json::json!({"mode": "fetch", "url": "http://backend.example/v1/secret",
                                 "egress": [{"scheme": "http", "host": "backend.example"}]});
    let bound = host.bind(binding(cfg)).unwrap();
    let r = secret_ref();
    let native = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/v1/secret");
    let mut g = c.benchmark_group("loopback fetch");
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("native reqwest", |b| {
        b.iter(|| rt.block_on(async { native.get(&url).send().await.unwrap().bytes().await.unwrap().len() }))
    });
    g.bench_function("through the component", |b| b.iter(|| rt.block_on(bound.get_secret(&r)).unwrap()));
    g.finish();
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
}

/// RSS growth per live instance: N stores, one call each, so N isolation units each keep
/// their instance idle for reuse (the engine's steady state), for both allocators.
fn memory_per_instance() {
    let rt = rt();
    for (name, mode) in [("pooled", PoolingMode::Always), ("on-demand", PoolingMode::Never)] {
        let dir = tempfile::tempdir().unwrap();
        let host = rt.block_on(host_with(dir.path(), |cfg| cfg.sandbox.pooling = mode));
        let r = secret_ref();
        let n = 200;
        let before = rss_kib();
        let live: Vec<_> = (0..n)
            .map(|i| {
                let bound = host.bind(binding_of(&format!("store-{i}"), serde_json::json!({"mode": "ok"}))).unwrap();
                rt.block_on(bound.get_secret(&r)).unwrap();
                bound
            })
            .collect();
        let after = rss_kib();
        println!("memory per live instance ({name}, {n} isolation units after one get-secret each): {} KiB", after.saturating_sub(before) / n);
        drop(live);
    }
}

criterion_group!(benches, compile, call, fetch, instantiate);

fn main() {
    benches();
    memory_per_instance();
    Criterion::default().configure_from_args().final_summary();
}
